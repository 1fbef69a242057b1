"""ModelCard: the model card of every trained candidate, served or refused (tfdet/reporting/card.py renders it).

It runs after CompareWithBaseline and gathers what the run recorded -- nothing is evaluated again:

* evaluation: the blessing's own pycocotools report and detections (components/baseline_blessing.py);
* decision: the blessing's verdict, each rule as a row (components/blessing_rules.rule_table);
* data: BoxGate's report (examples and boxes per class and split, the histograms, drift and its thresholds, the
  findings) and the spans the Trainer's window held;
* training: the Trainer's training_history.json (config and overrides, seed, steps, losses per term, time, start);
* lineage: the served version it was compared with, the rollbacks of the serving directory, the code and packages.

The card is ``model_card.html`` in the artifact; the Pusher copies it into the version it pushes
(``assets.extra/model_card.html``, which TF Serving ignores), so a served version carries its card. A refused run's
card leads with the refusal and stays in the run's outputs.
"""

import json
import os
import platform
from typing import Any, Dict, List, Optional

import tensorflow as tf
from tfx import v1 as tfx
from tfx.types.artifact import Artifact
from tfx.utils import path_utils

from components.baseline_blessing import DETECTIONS_FILE, EVALUATION_FILE, class_names
from components.blessing_rules import rule_table
from components.box_checks import failure_message, split_files
from components.box_gate import BoxGateReport
from components.data_profile import BINS
from tfdet.dataio import features
from tfdet.dataio.tfrecord_files import read_records
from tfdet.evaluation.report import worst_and_best
from tfdet.evaluation.saved_model import ground_truth
from tfdet.export.serving import ROLLBACKS_FILE
from tfdet.reporting.card import model_card, write_card

CARD_FILE = "model_card.html"
HISTORY_FILE = "training_history.json"


class ModelCardArtifact(Artifact):
    """A model card (``model_card.html``)."""

    TYPE_NAME = "tfdet.ModelCard"


def _read(path: str) -> Optional[Any]:
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def _detections(rows: List[Dict], ids: List[int]) -> List[Dict]:
    """COCO results rows -> per image boxes (y first, pixels), scores, classes."""
    found = {i: {"image_id": i, "boxes": [], "scores": [], "classes": []} for i in ids}
    for row in rows:
        x, y, w, h = row["bbox"]
        entry = found[int(row["image_id"])]
        entry["boxes"].append([y, x, y + h, x + w])
        entry["scores"].append(row["score"])
        entry["classes"].append(row["category_id"])
    return list(found.values())


def data_section(report: Dict, names: Dict[int, str], spans: List) -> Dict[str, Any]:
    """The card's data part from BoxGate's report."""
    profiles = report.get("profiles", {})
    splits = {split: {"examples": report["examples_checked"].get(split, 0),
                      "boxes": {names.get(int(k), k): v for k, v in profile["labels"].items()}}
              for split, profile in profiles.items()}
    histograms = {title: {"edges": BINS[feature].tolist(),
                          "splits": {split: profile["distributions"][feature] for split, profile in profiles.items()}}
                  for feature, title in (("box_size", "box size: sqrt(area / image area)"),
                                         ("box_aspect", "box aspect: log2(width / height)"))}
    passed = report.get("passed", True)
    summary = (f"passed: {sum(report['examples_checked'].values())} examples checked, "
               f"{sum(len(ids) for groups in report.get('duplicates', {}).values() for ids in groups)} duplicate "
               f"images reported" if passed else failure_message(report))
    return {"spans": spans, "splits": splits, "class_names": list(names.values()), "histograms": histograms,
            "drift": [{**moved, "threshold": moved["threshold"]} for moved in report.get("drift", [])],
            "drift_note": report.get("drift_note", "drift judged against the previous accepted span, thresholds "
                                                   f"{report.get('thresholds', {})}"),
            "gate_summary": summary}


def training_section(history: Dict) -> Dict[str, Any]:
    """The card's training part from the Trainer's training_history.json."""
    overrides = history.get("overrides") or {}
    facts = {"model": history.get("zoo_model"), "overrides": overrides or "none", "seed": history.get("seed"),
             "steps": history.get("steps"), "batch size": history.get("batch_size"),
             "start": history.get("initialisation"), "warm start from": history.get("warm_started_from") or "no",
             "resumed from": history.get("resumed_from") or "no",
             "train seconds": history.get("seconds", "not recorded"), "distribution": history.get("distribution")}
    losses = {name: values for name, values in history.items() if name.startswith("loss") and isinstance(values, list)}
    return {"facts": facts, "losses": losses}


def lineage_section(verdict: Dict, serving_dir: str, history: Dict) -> Dict[str, Any]:
    import apache_beam
    import tfx as tfx_package

    rollbacks = _read(os.path.join(serving_dir, ROLLBACKS_FILE)) or []
    code = history.get("code") or {}
    return {"compared with (parent)": verdict.get("baseline_model") or "nothing was served",
            "rollbacks in this serving directory": "; ".join(f"v{r['to']} served again as v{r['as']} ({r['at']})"
                                                             for r in rollbacks) or "none",
            "code": f"tfdet {code.get('version', '?')}, commit {code.get('commit', 'unknown')}",
            "packages": f"tensorflow {tf.__version__}, tfx {tfx_package.__version__}, apache-beam "
                        f"{apache_beam.__version__}, python {platform.python_version()}"}


@tfx.dsl.components.component
def ModelCard(  # noqa: N802  (TFX components are named like classes)
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    gate_report: tfx.dsl.components.InputArtifact[BoxGateReport],
    card: tfx.dsl.components.OutputArtifact[ModelCardArtifact],
    num_classes: tfx.dsl.components.Parameter[int],
    serving_dir: tfx.dsl.components.Parameter[str],
    split: tfx.dsl.components.Parameter[str] = "eval",
) -> None:
    """Writes ``model_card.html`` for the candidate (see the module docstring)."""
    verdict = _read(os.path.join(blessing.uri, "comparison.json"))
    evaluation = _read(os.path.join(blessing.uri, EVALUATION_FILE))["candidate"]
    history = _read(os.path.join(model.uri, HISTORY_FILE)) or {}
    names = class_names(path_utils.serving_model_path(model.uri), num_classes)
    records = read_records(split_files(examples.uri, split))
    truth = ground_truth(records)
    shown = set(sum(worst_and_best({int(k): v for k, v in evaluation["images"].items()}).values(), []))
    images = {i: tf.train.Example.FromString(records[i]).features.feature[features.ENCODED].bytes_list.value[0]
              for i in shown}
    decision = {"blessed": verdict["blessed"], "reasons": verdict["reasons"], "rules": rule_table(verdict)}
    spans = [entry["span"] for entry in history.get("train_spans", [])]
    html = model_card(
        f"Model card: {history.get('zoo_model', 'detector')} trained on span(s) {', '.join(map(str, spans)) or '?'}",
        evaluation, truth, _detections(_read(os.path.join(blessing.uri, DETECTIONS_FILE)), list(range(len(truth)))),
        images, names, training=training_section(history),
        data=data_section(_read(os.path.join(gate_report.uri, "report.json")), names, spans),
        decision=decision, lineage=lineage_section(verdict, serving_dir, history),
        min_class_boxes=int(verdict.get("min_class_boxes", 10)))
    write_card(os.path.join(card.uri, CARD_FILE), html)
    card.set_int_custom_property("blessed", int(verdict["blessed"]))
