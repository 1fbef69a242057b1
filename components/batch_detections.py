"""BatchDetections: BulkInferrer's PredictionLogs as a COCO results file, with every image accounted for.

The pipeline's batch-inference branch is UnlabelledExampleGen -> BulkInferrer (the blessed candidate's
``bulk_inference`` signature, see tfdet/export/saved_model.py) -> BatchDetections. BulkInferrer writes one
PredictionLog per image (the request keeps the serialized tf.Example, the response the signature's
outputs); this component reads them in a Beam pipeline on the pipeline's engine and writes, in its
``detections`` artifact:

* ``detections.json``: COCO results, ``[{"image_id", "category_id", "bbox": [x, y, w, h] in pixels of
  the stored image, "score"}]`` (the rows up to ``num_detections``: the served model's own score
  threshold and per-image limit);
* ``images.json``: ``{"images": [{"id", "source_id", "file_name", "height", "width"}], "categories"}``;
  image ids number the images in ``source_id`` order, so a rerun gives the same ids;
* ``refused.json``: the images the model's input checks refused (``valid`` False), with the reason;
* ``summary.json``: ``images_in = scored + refused`` and the detections count, or, when BulkInferrer
  skipped an unblessed model, why nothing was scored.

Numbering in source-id order is a distributed sort: the images' keys are cut into ranges at approximate
quantiles, each range is numbered on its own from the counts of the ranges before it and written to JSON-lines
files of its own (``parts/images-<range>.jsonl``, ...), which this component then joins in range order into the
three JSON arrays, line by line (the files are streamed, never held): the arrays list the images, detections and
refusals in id order.
"""

import bisect
import hashlib
import json
import os
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx import v1 as tfx
from tfx.types.artifact import Artifact
from tfx.utils import path_utils

from components.baseline_blessing import class_names
from components.box_checks import split_pattern
from tfdet.core.detections import split_detections
from tfdet.dataio import features
from tfdet.evaluation.coco import coco_results
from tfdet.files import write_json

PREDICTION_LOGS_GLOB = "prediction_logs*"
# the one split UnlabelledExampleGen writes and BulkInferrer reads (pipeline/pipeline.py)
UNLABELLED_SPLIT = "unlabelled"


class Detections(Artifact):
    """Batch-inference detections in COCO results format (see :mod:`components.batch_detections`)."""

    TYPE_NAME = "tfdet.Detections"


def log_row(record: bytes) -> Dict[str, Any]:
    """One serialized PredictionLog as the image's identity, validity and COCO detections (``image_id`` unset)."""
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog.FromString(record)
    request = log.predict_log.request.inputs
    (serialized,) = request[next(iter(request))].string_val
    example = features.read_example(serialized)
    outputs = {key: tf.make_ndarray(value) for key, value in log.predict_log.response.outputs.items()}
    error = np.reshape(outputs["error"], [-1])
    # pixels of the image as stored (the example's own height and width), one image per log
    found = coco_results(split_detections(outputs, [(example["height"], example["width"])], image_ids=[0]),
                         rounded=True)
    return {"key": (example["source_id"], example["filename"], hashlib.sha256(serialized).hexdigest()),
            "image": {"source_id": example["source_id"], "file_name": example["filename"],
                      "height": example["height"], "width": example["width"]},
            "valid": bool(np.reshape(outputs["valid"], [-1])[0]), "error": error[0].decode() if error.size else "",
            "detections": found}


def _range_of(row: Dict[str, Any], bounds: List[Tuple]) -> Tuple[int, Dict[str, Any]]:
    return bisect.bisect_right(bounds[1:-1], row["key"]), row


def _write_range(group: Tuple[int, Iterable[Dict[str, Any]]], sizes: Mapping[int, int], parts: str):
    """Numbers the rows of one key range (after every row of the ranges before it, in key order), writes them as
    ``parts/<output>-<range>.jsonl`` for each of :data:`OUTPUTS` and yields the range's tally. A retried bundle
    writes the same files again (each is written under a temporary name and renamed over)."""
    index, rows = group
    first = sum(count for other, count in sizes.items() if other < index)
    tally = [0, 0, 0]  # as OUTPUTS: detections, images scored, images refused
    lines: Dict[str, List[str]] = {name: [] for name in OUTPUTS}
    for offset, row in enumerate(sorted(rows, key=lambda row: row["key"])):
        image = {"id": first + offset, **row["image"]}
        if not row["valid"]:
            tally[2] += 1
            lines["refused"].append(json.dumps({**image, "error": row["error"]}))
            continue
        tally[1] += 1
        lines["images"].append(json.dumps(image))
        for detection in row["detections"]:
            tally[0] += 1
            lines["detections"].append(json.dumps({**detection, "image_id": image["id"]}))
    tf.io.gfile.makedirs(parts)
    for name, written in lines.items():
        if written:
            path = os.path.join(parts, f"{name}-{index:05d}.jsonl")
            with tf.io.gfile.GFile(f"{path}.{uuid.uuid4().hex}.partial", "w") as handle:
                handle.write("\n".join(written) + "\n")
            tf.io.gfile.rename(handle.name, path, overwrite=True)
    yield tuple(tally)


def _add(tallies: Iterable[Tuple[int, ...]]) -> Tuple[int, ...]:
    return tuple(sum(column) for column in zip((0, 0, 0), *tallies))


OUTPUTS = ("detections", "images", "refused")


def build(pipeline: beam.Pipeline, inference_pattern: Optional[str], examples_pattern: str, out_dir: str,
          ranges: int = 64) -> None:
    """Adds the collection to ``pipeline``: the rows of :data:`OUTPUTS` as JSON-lines files per key range under
    ``out_dir/parts/`` and the counts in ``out_dir/parts/counts.json``.

    ``inference_pattern``: BulkInferrer's PredictionLog files (None when it wrote none). ``ranges``: how many key
    ranges the numbering sorts separately (each must fit one worker's memory).
    """
    parts = os.path.join(out_dir, "parts")
    examples = (pipeline | "Examples" >> beam.io.ReadFromTFRecord(examples_pattern, coder=beam.coders.BytesCoder())
                if tf.io.gfile.glob(examples_pattern) else pipeline | "NoExamples" >> beam.Create([]))
    counted = [examples | "CountImages" >> beam.combiners.Count.Globally()
               | "AsImagesIn" >> beam.Map(lambda n: ("images_in", n))]
    if inference_pattern:
        rows = (pipeline | "Logs" >> beam.io.ReadFromTFRecord(inference_pattern, coder=beam.coders.BytesCoder())
                | "Rows" >> beam.Map(log_row))
        bounds = (rows | "Keys" >> beam.Map(lambda row: row["key"])
                  | "Bounds" >> beam.ApproximateQuantiles.Globally(ranges + 1))
        in_ranges = rows | "InRanges" >> beam.Map(_range_of, beam.pvalue.AsSingleton(bounds))
        sizes = (in_ranges | "RangeOf" >> beam.Keys() | "RangeSizes" >> beam.combiners.Count.PerElement()
                 | "AsSizes" >> beam.combiners.ToDict())
        tallies = (in_ranges | "ByRange" >> beam.GroupByKey()
                   | "NumberAndWrite" >> beam.FlatMap(_write_range, beam.pvalue.AsSingleton(sizes), parts))
        counted.append(tallies | "Tally" >> beam.CombineGlobally(_add)
                       | "AsTally" >> beam.Map(lambda tally: ("tally", dict(zip(OUTPUTS, tally)))))
    _ = (tuple(counted) | "Counts" >> beam.Flatten() | "One" >> beam.combiners.ToDict()
         | "CountsJson" >> beam.Map(json.dumps)
         | "WriteCounts" >> beam.io.WriteToText(os.path.join(parts, "counts.json"), shard_name_template="",
                                                num_shards=1))


def join_json_array(pattern: str, path: str, head: str = "[", tail: str = "]") -> None:
    """Writes ``head``, the lines of every file matching ``pattern`` joined by commas, and ``tail`` into ``path``,
    a line at a time (the shards are never held in memory), then deletes the shards."""
    files = sorted(tf.io.gfile.glob(pattern))
    temp = f"{path}.partial"
    with tf.io.gfile.GFile(temp, "w") as out:
        out.write(head)
        first = True
        for name in files:
            with tf.io.gfile.GFile(name) as handle:
                for line in handle:
                    if line.strip():
                        out.write(("" if first else ",\n") + line.rstrip("\n"))
                        first = False
        out.write(tail)
    tf.io.gfile.rename(temp, path, overwrite=True)
    for name in files:
        tf.io.gfile.remove(name)


def write_batch_detections(inference_dir: str, examples_uri: str, output_dir: str, blessed: bool, num_classes: int,
                           beam_pipeline: beam.Pipeline, split: str = UNLABELLED_SPLIT,
                           class_names: Optional[Mapping[int, str]] = None, ranges: int = 64) -> Dict[str, Any]:
    """Runs the collection (:func:`build`) with ``beam_pipeline`` and writes the four files of the module docstring
    into ``output_dir``; returns the summary.

    Every example of ``split`` BulkInferrer was given must come back scored or refused when the model is blessed,
    else this raises naming the difference.
    """
    logs = os.path.join(inference_dir, PREDICTION_LOGS_GLOB)
    with beam_pipeline as pipeline:
        build(pipeline, logs if tf.io.gfile.glob(logs) else None, split_pattern(examples_uri, split), output_dir,
              ranges)
    parts = os.path.join(output_dir, "parts")
    with tf.io.gfile.GFile(os.path.join(parts, "counts.json")) as handle:
        counts = json.load(handle)
    tally = counts.get("tally", {})
    summary = {"images_in": counts["images_in"], "scored": tally.get("images", 0),
               "refused": tally.get("refused", 0), "detections": tally.get("detections", 0), "blessed": blessed}
    if not blessed:
        summary["skipped"] = "the candidate model was not blessed, so BulkInferrer scored nothing"
    elif summary["scored"] + summary["refused"] != summary["images_in"]:
        raise RuntimeError(f"BulkInferrer returned {summary['scored'] + summary['refused']} PredictionLogs in "
                           f"{inference_dir} for {summary['images_in']} unlabelled examples; rerun the pipeline (a "
                           f"partial inference result is never reported as complete)")
    names = class_names or {i: str(i) for i in range(num_classes)}
    categories = json.dumps([{"id": int(k), "name": v} for k, v in sorted(names.items())])
    join_json_array(os.path.join(parts, "detections-*.jsonl"), os.path.join(output_dir, "detections.json"))
    join_json_array(os.path.join(parts, "images-*.jsonl"), os.path.join(output_dir, "images.json"),
                    head='{"images": [', tail=f'], "categories": {categories}}}')
    join_json_array(os.path.join(parts, "refused-*.jsonl"), os.path.join(output_dir, "refused.json"))
    tf.io.gfile.rmtree(parts)
    write_json(os.path.join(output_dir, "summary.json"), summary)
    return summary


@tfx.dsl.components.component(use_beam=True)
def BatchDetections(  # noqa: N802  (TFX components are named like classes)
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    inference_result: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.InferenceResult],
    model_blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    detections: tfx.dsl.components.OutputArtifact[Detections],
    num_classes: tfx.dsl.components.Parameter[int],
    split: tfx.dsl.components.Parameter[str] = UNLABELLED_SPLIT,
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """COCO results of BulkInferrer's PredictionLogs (see the module docstring), collected on the pipeline's engine."""
    blessed = bool(model_blessing.get_int_custom_property("blessed"))
    # the categories by the names the scoring model was exported with, as the blessing's reasons name them
    names = class_names(path_utils.serving_model_path(model.uri), num_classes)
    summary = write_batch_detections(inference_result.uri, examples.uri, detections.uri, blessed, num_classes,
                                     beam_pipeline, split, class_names=names)
    for key in ("images_in", "scored", "refused", "detections"):
        detections.set_int_custom_property(key, int(summary[key]))
