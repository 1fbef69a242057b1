"""Each head learns: RetinaNet, FCOS and ATSS, on the tiny backbone, put boxes on the objects of an easy set with the
right classes within 100 steps (seeded), measured by pycocotools."""

import os

import pytest
from learnable_data import CLASSES, write_span

from tfdet.dataio.tfrecord_files import read_records
from tfdet.evaluation import average_precision
from tfdet.evaluation.saved_model import ground_truth
from tfdet.training.train import train_detector
from tfdet.zoo._parts import ATSS_HEAD, FCOS_HEAD

TOWER = dict(stacked_convs=1, feat_channels=32, norm_cfg=dict(name="GN", groups=8))
HEADS = {
    "AnchorHead": {},  # tiny's own RetinaNet head
    "FCOSHead": dict(FCOS_HEAD, regress_ranges=[(-1, 32), (32, 64), (64, 128), (128, 1e8)], **TOWER),
    "ATSSHead": dict(ATSS_HEAD, **TOWER),
}


@pytest.fixture(scope="module")
def easy_span(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("easy"))
    write_span(root, 1)
    return os.path.join(root, "span-1")


@pytest.mark.long(1)
@pytest.mark.parametrize("head", HEADS)
def test_the_head_finds_the_objects_with_their_classes(head, easy_span, tmp_path):
    overrides = {"head": HEADS[head]} if HEADS[head] else {}
    result = train_detector("tiny", f"{easy_span}/train-*.tfrecord", str(tmp_path / "run"), num_classes=2,
                            steps=100, seed=0, overrides=overrides, export=False, verbose=0)
    model = result["model"]
    assert type(model.head).__name__ == head
    from tfdet.evaluation import collect_detections, eval_dataset

    truth, found = collect_detections(model, eval_dataset(f"{easy_span}/eval-*.tfrecord", model.config.input_size,
                                                          model.config.mean, model.config.std))
    assert sorted(len(t["boxes"]) for t in truth) == sorted(len(t["boxes"]) for t in ground_truth(
        read_records(f"{easy_span}/eval-*.tfrecord")))  # every eval image and box is judged
    at_50 = average_precision(truth, found, 2, 0.5, dict(enumerate(CLASSES)))
    # every class found in its own right: swapped or confused classes would score near 0 on both
    assert set(at_50["per_class_AP"]) == set(CLASSES) and min(at_50["per_class_AP"].values()) >= 0.6, at_50
    assert at_50["AP"] >= 0.75 and at_50["recall"] >= 0.9, at_50
