import io
import json

import numpy as np
import pytest
import tensorflow as tf

from tfdet.evaluation import coco_metrics
from tfdet.evaluation.coco import COCO_METRIC_NAMES as METRICS
from tfdet.evaluation.coco import average_precision, coco_results, collect_detections, eval_dataset, evaluate_coco


def gt(*boxes, labels=None, image_id=0):
    return {"image_id": image_id, "height": 100, "width": 100, "boxes": np.array(boxes, np.float32).reshape(-1, 4),
            "labels": np.array(labels if labels is not None else [0] * len(boxes))}


def det(boxes, scores, classes, image_id=0):
    return {"image_id": image_id, "boxes": np.array(boxes, np.float32).reshape(-1, 4), "scores": np.array(scores),
            "classes": np.array(classes)}


def test_perfect_detections_score_one():
    metrics = coco_metrics([gt([10, 10, 50, 60], labels=[1])], [det([[10, 10, 50, 60]], [0.9], [1])], num_classes=2,
                           label_map={0: "a", 1: "b"})
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    assert metrics["per_class_AP"] == {"b": pytest.approx(1.0)}  # class a has no ground truth


def test_one_shifted_box_hand_worked():
    # ground truth 40 x 40; the detection is shifted by 8 px in x: intersection 40 x 32 = 1280,
    # union 2 * 1600 - 1280 = 1920 -> IoU 2/3. It matches at IoU thresholds 0.50 .. 0.65 (4 of 10):
    # AP@[.5:.95] = 0.4, AP50 = 1, AP75 = 0.
    metrics = coco_metrics([gt([10, 10, 50, 50])], [det([[10, 18, 50, 58]], [0.8], [0])], num_classes=1)
    assert metrics["AP"] == pytest.approx(0.4, abs=1e-6)
    assert (metrics["AP50"], metrics["AP75"]) == (pytest.approx(1.0), pytest.approx(0.0))


def test_wrong_class_and_a_false_positive_ranked_first():
    # two images, one box each; the highest-scoring detection is a false positive, so at recall 0.5 precision is
    # 1/2 and at recall 1 it is 2/3: COCO's 101-point interpolated precision is 2/3 everywhere -> AP50 = 2/3.
    truth = [gt([0, 0, 40, 40], image_id=0), gt([0, 0, 40, 40], image_id=1)]
    found = [det([[0, 0, 40, 40], [60, 60, 90, 90]], [0.7, 0.9], [0, 0], image_id=0),
             det([[0, 0, 40, 40]], [0.8], [0], image_id=1)]
    metrics = coco_metrics(truth, found, num_classes=1)
    assert metrics["AP50"] == pytest.approx(2 / 3, abs=1e-6)
    wrong_class = coco_metrics([gt([0, 0, 40, 40])], [det([[0, 0, 40, 40]], [0.9], [1])], num_classes=2)
    assert wrong_class["AP50"] == pytest.approx(0.0)


def test_no_detections_and_no_ground_truth():
    empty = coco_metrics([gt([0, 0, 10, 10]), gt(image_id=1)], [det([], [], [])], num_classes=1)
    assert empty == {"num_images": 2, "num_detections": 0, "per_class_AP": {}, **{name: 0.0 for name in METRICS}}
    assert coco_metrics([gt()], [det([[0, 0, 10, 10]], [0.5], [0])], num_classes=1)["AP"] == -1.0


def test_classes_without_a_label_map_are_named_by_their_ids():
    metrics = coco_metrics([gt([10, 10, 50, 60], labels=[1])], [det([[10, 10, 50, 60]], [0.9], [1])], num_classes=2)
    assert metrics["per_class_AP"] == {"1": pytest.approx(1.0)}
    assert (metrics["num_images"], metrics["num_detections"]) == (1, 1)


# -- average_precision: one IoU threshold, as the tree-crown papers report it ------------------------------------

def test_average_precision_at_one_iou_threshold_hand_worked():
    # the shifted box of test_one_shifted_box_hand_worked: IoU 2/3, a match at 0.6 and a miss at 0.7
    truth, found = [gt([10, 10, 50, 50])], [det([[10, 18, 50, 58]], [0.8], [0])]
    assert average_precision(truth, found, num_classes=1, iou_threshold=0.6) == {
        "AP": pytest.approx(1.0), "per_class_AP": {"0": pytest.approx(1.0)}, "recall": pytest.approx(1.0)}
    assert average_precision(truth, found, num_classes=1, iou_threshold=0.7) == {
        "AP": pytest.approx(0.0), "per_class_AP": {"0": pytest.approx(0.0)}, "recall": pytest.approx(0.0)}


def test_average_precision_means_the_classes_with_ground_truth_by_their_names():
    # class a found, class b missed (the detection is labelled a), class c has no ground truth and is left out
    truth = [gt([0, 0, 40, 40], [50, 50, 90, 90], labels=[0, 1])]
    found = [det([[0, 0, 40, 40], [50, 50, 90, 90]], [0.9, 0.8], [0, 0])]
    result = average_precision(truth, found, num_classes=3, iou_threshold=0.5, label_map={0: "a", 1: "b", 2: "c"})
    assert result["per_class_AP"] == {"a": pytest.approx(1.0), "b": pytest.approx(0.0)}
    assert result["AP"] == pytest.approx(0.5) and result["recall"] == pytest.approx(0.5)


def test_average_precision_without_detections_or_ground_truth():
    assert average_precision([gt([0, 0, 10, 10])], [det([], [], [])], 1, 0.5) == {"AP": 0.0, "per_class_AP": {},
                                                                                  "recall": 0.0}
    assert average_precision([gt()], [det([[0, 0, 10, 10]], [0.5], [0])], 1, 0.5)["AP"] == -1.0


# -- the evaluation pipeline and a detector over it --------------------------------------------------------------

# image -> (height, width, normalised boxes, labels): a wide image (letterboxed into the top half of the input),
# a tall one (into the left half), and one box fewer in the second so that the batch is padded
SCENE = {0: (8, 16, [(0.25, 0.5, 0.75, 1.0), (0.0, 0.0, 0.5, 0.25)], [0, 1]),
         1: (16, 8, [(0.5, 0.25, 1.0, 0.75)], [1]),
         2: (8, 16, [(0.0, 0.0, 1.0, 0.5), (0.5, 0.5, 1.0, 1.0)], [1, 0])}
COLOUR = (51, 102, 204)


def _solid_png(height: int, width: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), COLOUR).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def records(tmp_path) -> str:
    from gate_data import example

    path = str(tmp_path / "eval.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for image_id, (height, width, boxes, labels) in SCENE.items():
            writer.write(example(f"img{image_id}", _solid_png(height, width), boxes=boxes, labels=labels,
                                 size=(height, width)))
    return path


def _in_pixels(image_id: int) -> np.ndarray:
    height, width, boxes, _ = SCENE[image_id]
    return np.array(boxes, np.float32) * np.array([height, width, height, width], np.float32)


class Oracle:
    """A detector answering each batch with its own letterboxed true boxes (score 1), leaving out ``drop``'s
    class; it records the test-time overrides it was built with."""

    num_classes = 2

    def __init__(self, dataset: tf.data.Dataset, drop: int = -1) -> None:
        self.answers = [(batch["bboxes"], batch["labels"], batch["mask"] & (batch["labels"] != drop))
                        for batch in dataset]
        self.overrides, self.seen = None, []

    def detect_function(self, **overrides):
        self.overrides, answers = overrides, iter(self.answers)

        def detect(images):
            self.seen.append(images.shape.as_list())
            boxes, labels, keep = next(answers)
            order = tf.argsort(tf.cast(~keep, tf.int32), axis=1, stable=True)  # the kept boxes first
            return {"detection_boxes": tf.gather(boxes, order, batch_dims=1),
                    "detection_classes": tf.gather(labels, order, batch_dims=1),
                    "detection_scores": tf.ones(tf.shape(labels)),
                    "num_detections": tf.reduce_sum(tf.cast(keep, tf.int32), 1)}

        return detect


def test_eval_dataset_letterboxes_normalises_and_pads_its_batches(records):
    batches = list(eval_dataset(records, (32, 32), mean=(0.2, 0.4, 0.8), std=(0.5, 0.5, 0.5), batch_size=2))
    assert [b["image"].shape.as_list() for b in batches] == [[2, 32, 32, 3], [1, 32, 32, 3]]
    first, last = batches
    assert first["original_size"].numpy().tolist() == [[8, 16], [16, 8]]
    np.testing.assert_allclose(first["image_window"].numpy(), [[0, 0, 0.5, 1], [0, 0, 1, 0.5]])
    colour = (np.array(COLOUR) / 255.0 - (0.2, 0.4, 0.8)) / 0.5
    np.testing.assert_allclose(first["image"][0, :16].numpy(), np.broadcast_to(colour, (16, 32, 3)), atol=1e-5)
    np.testing.assert_allclose(first["image"][1, :, :16].numpy(), np.broadcast_to(colour, (32, 16, 3)), atol=1e-5)
    # boxes are the model input's: the wide image's box squeezed into the top half
    np.testing.assert_allclose(first["bboxes"][0, 0].numpy(), [0.125, 0.5, 0.375, 1.0], atol=1e-6)
    assert first["mask"].numpy().tolist() == [[True, True], [True, False]]
    assert last["labels"].numpy().tolist() == [[1, 0]]


def test_collect_detections_gives_truth_and_detections_in_original_pixels_with_running_ids(records):
    dataset = eval_dataset(records, (32, 32), mean=(0, 0, 0), std=(1, 1, 1), batch_size=2)
    oracle = Oracle(dataset)
    truth, found = collect_detections(oracle, dataset, score_thr=0.01)
    assert oracle.overrides == {"score_thr": 0.01} and oracle.seen == [[2, 32, 32, 3], [1, 32, 32, 3]]
    assert [t["image_id"] for t in truth] == [d["image_id"] for d in found] == [0, 1, 2]  # across batches
    for image_id, (height, width, _, labels) in SCENE.items():
        assert (truth[image_id]["height"], truth[image_id]["width"]) == (height, width)
        np.testing.assert_allclose(truth[image_id]["boxes"], _in_pixels(image_id), atol=1e-4)
        np.testing.assert_allclose(found[image_id]["boxes"], _in_pixels(image_id), atol=1e-4)
        assert truth[image_id]["labels"].tolist() == found[image_id]["classes"].tolist() == labels


def test_collect_detections_without_a_letterbox_reads_boxes_as_the_whole_image(records):
    # a dataset with no image_window: boxes are normalised to the image itself (two images of SCENE[0])
    height, width, boxes, labels = SCENE[0]
    batch = {"image": tf.zeros([2, height, width, 3]), "bboxes": tf.constant([boxes] * 2, tf.float32),
             "labels": tf.constant([labels] * 2), "mask": tf.constant([[True, True]] * 2),
             "original_size": tf.constant([[height, width]] * 2)}
    dataset = tf.data.Dataset.from_tensors(batch)
    truth, found = collect_detections(Oracle(dataset), dataset)
    for image in (0, 1):
        np.testing.assert_allclose(truth[image]["boxes"], _in_pixels(0), atol=1e-4)
        np.testing.assert_allclose(found[image]["boxes"], _in_pixels(0), atol=1e-4)


def test_evaluate_coco_scores_an_oracle_one_and_writes_coco_results(records, tmp_path):
    dataset = eval_dataset(records, (32, 32), mean=(0, 0, 0), std=(1, 1, 1), batch_size=2)
    output = str(tmp_path / "detections.json")
    oracle = Oracle(dataset)
    metrics = evaluate_coco(oracle, dataset, label_map={0: "tree", 1: "snag"}, output_json=output, score_thr=0.01)
    assert oracle.overrides == {"score_thr": 0.01}
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    assert metrics["per_class_AP"] == {"tree": pytest.approx(1.0), "snag": pytest.approx(1.0)}
    with open(output) as handle:
        written = json.load(handle)
    # COCO's results format: [x, y, width, height] in the image's pixels, 0-based category ids, running image ids
    assert sorted((r["image_id"], r["category_id"], r["bbox"], r["score"]) for r in written) == [
        (0, 0, [8.0, 2.0, 8.0, 4.0], 1.0), (0, 1, [0.0, 0.0, 4.0, 4.0], 1.0), (1, 1, [2.0, 8.0, 4.0, 8.0], 1.0),
        (2, 0, [8.0, 4.0, 8.0, 4.0], 1.0), (2, 1, [0.0, 0.0, 8.0, 8.0], 1.0)]


def test_evaluate_coco_scores_a_detector_blind_to_one_class_half(records):
    dataset = eval_dataset(records, (32, 32), mean=(0, 0, 0), std=(1, 1, 1), batch_size=2)
    metrics = evaluate_coco(Oracle(dataset, drop=1), dataset, label_map={0: "tree", 1: "snag"})
    assert metrics["per_class_AP"] == {"tree": pytest.approx(1.0), "snag": pytest.approx(0.0)}
    assert metrics["AP50"] == pytest.approx(0.5)


def test_average_precision_counts_up_to_100_detections_per_image():
    # twelve trees in one image, all found: recall and AP are 1 (at 10 detections per image recall would be 10/12)
    boxes = [[8 * i, 0, 8 * i + 6, 6] for i in range(12)]
    truth = [gt(*boxes)]
    found = [det(boxes, [1.0 - 0.01 * i for i in range(12)], [0] * 12)]
    result = average_precision(truth, found, num_classes=1, iou_threshold=0.4)
    assert result["recall"] == pytest.approx(1.0) and result["AP"] == pytest.approx(1.0)


def test_average_precision_of_true_boxes_outside_the_classes_is_undefined():
    # a label of 5 with 2 classes: no class has ground truth, as with none at all
    result = average_precision([gt([0, 0, 10, 10], labels=[5])], [det([[0, 0, 10, 10]], [0.9], [0])], 2, 0.5)
    assert result == {"AP": -1.0, "per_class_AP": {}, "recall": -1.0}


def test_the_results_file_rounds_boxes_to_a_hundredth_of_a_pixel(tmp_path):
    third = (1 / 3, 1 / 3, 2 / 3, 2 / 3)  # 3.333... px in a 10 px image
    batch = {"image": tf.zeros([1, 10, 10, 3]), "bboxes": tf.constant([[third]], tf.float32),
             "labels": tf.constant([[0]]), "mask": tf.constant([[True]]), "original_size": tf.constant([[10, 10]])}
    dataset = tf.data.Dataset.from_tensors(batch)
    output = str(tmp_path / "detections.json")
    evaluate_coco(Oracle(dataset), dataset, output_json=output)
    with open(output) as handle:
        assert json.load(handle) == [{"image_id": 0, "category_id": 0, "bbox": [3.33, 3.33, 3.33, 3.33], "score": 1.0}]


def test_coco_areas_split_small_medium_and_large_boxes(capsys):
    # COCO's area ranges: small < 32^2 px, medium up to 96^2, large above; one box of each, the large one missed
    truth = [{"image_id": 0, "height": 400, "width": 400, "labels": np.array([0, 0, 0]),
              "boxes": np.array([[0, 0, 20, 20], [100, 100, 150, 150], [200, 200, 350, 350]], np.float32)}]
    found = [det([[0, 0, 20, 20], [100, 100, 150, 150]], [0.9, 0.8], [0, 0])]
    metrics = coco_metrics(truth, found, num_classes=1)
    assert (metrics["APs"], metrics["APm"], metrics["APl"]) == (pytest.approx(1.0), pytest.approx(1.0),
                                                                pytest.approx(0.0))
    assert capsys.readouterr().out == ""  # pycocotools' progress lines stay off the console


def test_coco_results_keep_full_precision_unless_rounded():
    image = det([[1 / 3, 1 / 3, 2 / 3, 2 / 3]], [0.123456789], [1])
    (exact,) = coco_results([image])
    (rounded,) = coco_results([image], rounded=True)
    third = float(np.float32(1 / 3))
    assert exact["bbox"][:2] == [third, third] and exact["bbox"][2:] == pytest.approx([third, third], rel=1e-6)
    assert exact["score"] == pytest.approx(0.123456789, rel=1e-7)
    assert rounded == {"image_id": 0, "category_id": 1, "bbox": [0.33, 0.33, 0.33, 0.33], "score": 0.12346}
