"""The card of a model trained outside the pipeline (``tfdet report``): evaluated here on the TFRecords given, with
what its work dir recorded of the training."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence

from tfdet.reporting.card import model_card


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def work_dir_training(model: str) -> Optional[Dict[str, Any]]:
    """The card's training part from a work dir's ``config.json`` and ``history.json`` (None for a bare
    SavedModel, which records no training)."""
    from tfdet.training.work_dir import CONFIG, HISTORY

    config, history = _read_json(os.path.join(model, CONFIG)), _read_json(os.path.join(model, HISTORY))
    if config is None and history is None:
        return None
    config, history = config or {}, history or {}
    epochs = history.get("history", {})
    facts = {"model": config.get("config"), "seed": history.get("seed", config.get("seed")),
             "steps": history.get("steps"), "batch size": history.get("batch_size"),
             "start": history.get("initialisation"), "resumed from": history.get("resumed_from") or "no",
             "train seconds": history.get("seconds", "not recorded"), "trained on": config.get("data"),
             "distribution": history.get("distribution")}
    losses = {name: values for name, values in epochs.items() if name.startswith("loss")}
    return {"facts": facts, "losses": losses}


def report_card(model: str, records: Sequence[bytes], num_classes: int, names: Mapping[int, str],
                data_name: str) -> str:
    """The HTML card of ``model`` (a work dir or a SavedModel tfdet exported) evaluated on serialized examples."""
    import platform

    import tensorflow as tf

    from tfdet import version_info
    from tfdet.dataio import features
    from tfdet.evaluation.report import detection_report, worst_and_best
    from tfdet.evaluation.saved_model import ground_truth, saved_model_detections
    from tfdet.training.work_dir import saved_model_dir

    exported = saved_model_dir(model)
    truth = ground_truth(records)
    detections = saved_model_detections(exported, records, truth)
    evaluation = detection_report(truth, detections, num_classes, names)
    shown = set(sum(worst_and_best(evaluation["images"]).values(), []))
    images = {i: tf.train.Example.FromString(records[i]).features.feature[features.ENCODED].bytes_list.value[0]
              for i in shown}
    lineage = {"model": os.path.abspath(model), "evaluated on": data_name,
               "code": "tfdet {version}, commit {commit}".format(**version_info()),
               "packages": f"tensorflow {tf.__version__}, python {platform.python_version()}"}
    return model_card(f"Model card: {os.path.basename(os.path.normpath(model))}", evaluation, truth, detections,
                      images, names, training=work_dir_training(model), lineage=lineage)
