import io
import os

import numpy as np
import pytest
from PIL import Image

from components.box_checks import (
    check_example,
    check_features,
    failure_message,
    new_report,
    passed,
    source_id,
    split_files,
    split_pattern,
)
from tfdet.dataio import features


def png(height=8, width=8) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def example(boxes=((0.1, 0.1, 0.5, 0.5),), labels=(1,), encoded=None, **overrides) -> bytes:
    proto = features.make_example(encoded=png() if encoded is None else encoded, image_format="png", height=8,
                                  width=8, filename="x.png", source_id="img-7", boxes=list(boxes),
                                  label_ids=list(labels), label_names=["c"] * len(labels))
    for key, values in overrides.items():
        feature = proto.features.feature[key]
        feature.ClearField("float_list")
        feature.float_list.value.extend(values)
    return proto.SerializeToString()


def test_sound_examples_pass():
    assert check_example(example(), num_classes=3) == []
    assert check_example(example(boxes=(), labels=()), num_classes=3) == []


def test_each_problem_is_named():
    assert check_example(example(boxes=((0.5, 0.1, 0.2, 0.4),)), 3) == ["box_inverted"]
    assert check_example(example(boxes=((0.1, 0.1, 0.5, 1.2),)), 3) == ["box_out_of_range"]
    assert check_example(example(boxes=((float("nan"), 0.1, 0.5, 0.5),)), 3) == ["box_not_finite"]
    assert check_example(example(labels=(3,)), 3) == ["label_out_of_range"]
    assert check_example(example(**{features.YMIN: [0.1, 0.2]}), 3) == ["count_mismatch"]
    assert check_example(example(encoded=b"not an image"), 3) == ["image_undecodable"]
    assert check_example(example(encoded=b""), 3) == ["image_missing"]
    assert check_example(example(encoded=b"not an image"), 3, decode_image=False) == []  # bytes not looked at


def test_the_edges_of_what_is_sound():
    # a box may touch the image's edges, class 0 is a class; a box of zero height or width is inverted
    assert check_example(example(boxes=((0.0, 0.0, 1.0, 1.0),), labels=(0,)), 3) == []
    assert check_example(example(boxes=((0.3, 0.1, 0.3, 0.5),)), 3) == ["box_inverted"]
    assert check_example(example(boxes=((0.1, 0.4, 0.5, 0.4),)), 3) == ["box_inverted"]


def test_parsed_features_are_checked_with_their_images_decoded_unless_told_not_to():
    import tensorflow as tf

    parsed = tf.train.Example.FromString(example(encoded=b"not an image")).features.feature
    assert check_features(parsed, 3) == ["image_undecodable"]
    assert check_features(parsed, 3, decode_image=False) == []


def test_images_the_model_cannot_decode_are_caught_with_its_own_ops():
    def encoded(image_format, **options):
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format=image_format, **options)
        return buffer.getvalue()

    jpeg = encoded("JPEG")
    corrupt = bytearray(png(16, 16))
    corrupt[len(corrupt) // 2] ^= 0xFF  # whole PNG framing, a broken chunk inside: TF's decoder raises
    # Pillow opens all of these; TensorFlow (training, serving) does not
    for data in (encoded("WEBP"), encoded("TIFF"), jpeg[: len(jpeg) - 40], bytes(corrupt)):
        assert check_example(example(encoded=data), 3) == ["image_undecodable"]
    assert check_example(example(encoded=jpeg), 3) == []


@pytest.mark.parametrize("finding", [{"bad_examples": 1}, {"schema_anomalies": {"image/height": "missing"}},
                                     {"empty_splits": ["eval"]}, {"leaks": [{"train": ["t1"], "eval": ["e1"]}]},
                                     {"drift": [{"feature": "box_size"}]}])
def test_each_finding_alone_stops_the_gate(finding):
    assert passed(new_report(3))
    assert not passed({**new_report(3), **finding})


def test_drift_only_warns_when_told_to():
    assert passed({**new_report(3), "drift": [{"feature": "box_size"}], "drift_action": "warn"})


def test_split_files_are_one_splits_files(tmp_path):
    for name in ("Split-train/a.gz", "Split-train/b.gz", "Split-eval/c.gz"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert sorted(os.path.basename(f) for f in split_files(str(tmp_path), "train")) == ["a.gz", "b.gz"]
    assert split_pattern(str(tmp_path), "train") == str(tmp_path / "Split-train" / "*")
    assert split_files(str(tmp_path), "test") == []


def test_offenders_are_named_by_source_id_empty_or_garbled_ones_too():
    import tensorflow as tf

    unnamed = tf.train.Example.FromString(example(labels=(9,)))
    del unnamed.features.feature[features.SOURCE_ID]
    garbled = tf.train.Example.FromString(example(labels=(9,)))
    garbled.features.feature[features.SOURCE_ID].bytes_list.value[:] = [b"\xffid"]
    assert [source_id(e.features.feature) for e in (unnamed, garbled)] == ["", "\ufffdid"]
    assert source_id(tf.train.Example.FromString(example()).features.feature) == "img-7"


def test_the_whole_failure_message_with_every_kind_of_finding():
    report = new_report(3)
    report.update(
        empty_splits=["eval"], bad_examples=12, examples_checked={"train": 40, "eval": 0},
        problems={"box_inverted": 12, "label_out_of_range": 1},
        offending=[{"split": "train", "source_id": f"s{i}",
                    "problems": ["box_inverted", "label_out_of_range"] if i == 0 else ["box_inverted"]}
                   for i in range(12)],
        schema_anomalies={"train": {"image/height": "missing", "image/encoded": "wrong type"}},
        leaks=[{"train": ["a", "b", "c", "d"], "eval": ["e", "f", "g", "h"], "in": "this span's eval split"}] * 6,
        leak_count=6,
        drift=[{"feature": "classes", "measure": "L-infinity", "distance": 0.3, "threshold": 0.2,
                "current": {"0": 1.0}, "previous": {"0": 0.7, "1": 0.3}, "previous_span": 4}])
    offenders = ", ".join(["train source_id 's0' (box_inverted+label_out_of_range)"] +
                          [f"train source_id 's{i}' (box_inverted)" for i in range(1, 10)])
    leak = ("Leakage: train image(s) a, b, c have the same bytes as eval image(s) e, f, g of this span's eval "
            "split. ")
    drift = ("Drift: classes moved 0.3 (L-infinity) from span 4, more than 0.2: now {'0': 1.0}, before "
             "{'0': 0.7, '1': 0.3}. ")
    advice = ("Fix or drop these examples (tfdet convert --on-error skip reports bad records; keep each image in one "
              "split) and add a new span; if the drift is real, raise the thresholds in pipeline/configs.py or run "
              "with --drift-action warn.")
    head = ("Split 'eval' has no examples: its files are empty or missing (a conversion that rejected every record? "
            "tfdet convert exits with status 1 then). 12 of 40 examples have bad boxes or images: box_inverted 12 "
            "(a box has ymin >= ymax or xmin >= xmax), label_out_of_range 1 (a label is outside [0, num_classes)). "
            f"First offenders: {offenders}. Schema anomalies in split train: image/encoded: wrong type; "
            f"image/height: missing. {leak * 5}... 1 more leaked images. ")
    assert failure_message(report, "/r/report.json") == f"{head}{drift}{advice} Full report: /r/report.json"
    report.update(drift_action="warn", leaks=report["leaks"][:5], leak_count=5)  # drift reported, not a reason to stop
    assert failure_message(report) == f"{head.replace('... 1 more leaked images. ', '')}{advice}"


def test_a_new_report_is_what_report_json_starts_from():
    assert new_report(3) == {"num_classes": 3, "examples_checked": {}, "bad_examples": 0, "problems": {},
                             "offending": [], "schema_anomalies": {}, "empty_splits": [], "leaks": [],
                             "leak_count": 0, "duplicates": {}, "duplicate_count": {}, "drift": [],
                             "drift_action": "stop", "passed": True}
