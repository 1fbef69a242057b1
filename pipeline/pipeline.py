"""create_pipeline: the tfdet TFX DAG. It only wires components; every knob comes in its PipelineConfig.

ImportExampleGen + ImportSchemaGen (curated) -> StatisticsGen -> ExampleValidator -> BoxGate
-> Transform (analyzers) -> Trainer (the newest span plus the accepted spans of the rolling window; warm start
from the latest pushed = blessed model) -> CompareWithBaseline (pycocotools on the newest span's eval split: value,
change and per-class thresholds vs the served model) -> ModelCard -> Pusher (the card inside the version); the
Evaluator (TFMA) analyses the candidate beside it.
Batch inference (when ``unlabelled_pattern`` is set): UnlabelledExampleGen -> BulkInferrer (the blessed
candidate; nothing when it is not blessed) -> BatchDetections (COCO results JSON).
"""

from __future__ import annotations

import json
import os
from typing import List, Optional

import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from tfx import v1 as tfx

from components.baseline_blessing import CompareWithBaseline
from components.batch_detections import UNLABELLED_SPLIT, BatchDetections
from components.box_gate import BoxGate
from components.model_card import ModelCard
from components.pusher import Pusher
from components.schema import detection_schema
from pipeline.configs import PipelineConfig
from tfdet.dataio import features, spans
from tfdet.export.saved_model import BULK_SIGNATURE
from tfdet.training.distribute import STRATEGIES

COORDINATES_X_FIRST = [features.XMIN, features.YMIN, features.XMAX, features.YMAX]


def write_schema(pipeline_root: str, num_classes: int) -> str:
    """Writes the curated schema where ImportSchemaGen reads it (local or remote root); returns its path."""
    import tensorflow as tf

    directory = os.path.join(pipeline_root, "curated_schema")
    tf.io.gfile.makedirs(directory)
    path = os.path.join(directory, "schema.pbtxt")
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(text_format.MessageToString(detection_schema(num_classes)))
    return path


def coco_metric(class_name: str, name: str, num_classes: int, iou_thresholds: List[float], max_detections: int,
                **extra) -> tfma.MetricConfig:
    config = {"iou_thresholds": iou_thresholds, "class_ids": list(range(num_classes)),
              "max_num_detections": max_detections, "labels_to_stack": COORDINATES_X_FIRST + [features.LABEL],
              "predictions_to_stack": ["xmin", "ymin", "xmax", "ymax", "classes", "scores"],
              "num_detections_key": "num_detections", "name": name, **extra}
    return tfma.MetricConfig(class_name=class_name, config=json.dumps(config))


def eval_config(num_classes: int, max_detections: int) -> tfma.EvalConfig:
    """TFMA's mAP@[.5:.95], mAP@0.5 and mean average recall of the candidate, for analysis only.

    No thresholds: TFMA averages over every class id, an absent class counting as AP 0, which is not COCO's
    definition; CompareWithBaseline decides with pycocotools (components/baseline_blessing.py).
    """
    ious = [round(0.5 + 0.05 * i, 2) for i in range(10)]
    common = dict(num_classes=num_classes, max_detections=max_detections)
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", model_type="tf_generic")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            coco_metric("COCOMeanAveragePrecision", "mAP", iou_thresholds=ious, num_thresholds=101, **common),
            coco_metric("COCOMeanAveragePrecision", "mAP50", iou_thresholds=[0.5], num_thresholds=101, **common),
            coco_metric("COCOMeanAverageRecall", "mAR", iou_thresholds=ious, **common),
        ])])


def resource_spec(cpu: float = 0, memory_gb: float = 0, accelerator: Optional[str] = None,
                  accelerator_count: int = 0):
    """A Kubeflow container ResourceSpec (limits) for one component's pod."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
        cpu_limit=float(cpu), memory_limit=float(memory_gb))
    if accelerator:
        if accelerator_count < 1:
            raise ValueError(f"accelerator {accelerator!r} needs accelerator_count >= 1, got {accelerator_count}")
        spec.accelerator.type = accelerator
        spec.accelerator.count = int(accelerator_count)
    return spec


def recipe_steps(model_config: str) -> int:
    """The zoo entry's training steps (its ``TRAIN["steps"]``)."""
    from tfdet.zoo import train_recipe

    recipe = train_recipe(model_config)
    if "steps" not in recipe:
        raise ValueError(f"zoo model {model_config!r} has no 'steps' in its TRAIN recipe; pass train_steps")
    return int(recipe["steps"])


def batch_inference(config: PipelineConfig, model, blessing) -> list:
    """UnlabelledExampleGen -> BulkInferrer -> BatchDetections: the blessed ``model`` scores the newest span of
    ``config.unlabelled_pattern`` (PredictionLogs, then a COCO results JSON; see components/batch_detections.py).
    """
    unlabelled_gen = tfx.components.ImportExampleGen(
        input_base=config.data_root,
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name=UNLABELLED_SPLIT,
                                                                   pattern=config.unlabelled_pattern)]),
        # one split in, one out (a single input split would otherwise be hashed into train and eval)
        output_config=tfx.proto.Output(split_config=tfx.proto.SplitConfig(
            splits=[tfx.proto.SplitConfig.Split(name=UNLABELLED_SPLIT, hash_buckets=1)]))
    ).with_id("UnlabelledExampleGen")
    bulk_inferrer = tfx.components.BulkInferrer(
        examples=unlabelled_gen.outputs["examples"], model=model, model_blessing=blessing,
        data_spec=tfx.proto.DataSpec(example_splits=[UNLABELLED_SPLIT]),
        model_spec=tfx.proto.ModelSpec(model_signature_name=[BULK_SIGNATURE]))
    detections = BatchDetections(examples=unlabelled_gen.outputs["examples"],
                                 inference_result=bulk_inferrer.outputs["inference_result"],
                                 model_blessing=blessing, model=model, num_classes=config.num_classes)
    return [unlabelled_gen, bulk_inferrer, detections]


def registry_dir(config: PipelineConfig) -> str:
    """The accepted-span registry BoxGate writes and the Trainer reads (tfdet/dataio/spans.py)."""
    return os.path.join(config.pipeline_root, "accepted_spans")


def data_components(config: PipelineConfig) -> dict:
    """The data half of the DAG, name -> component: ImportExampleGen (the newest span) and ImportSchemaGen (the
    curated schema) -> StatisticsGen -> ExampleValidator -> BoxGate -> Transform (analyzers, after the gate)."""
    c = config
    example_gen = tfx.components.ImportExampleGen(
        input_base=c.data_root,
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name="train", pattern=c.train_pattern),
                                             tfx.proto.Input.Split(name="eval", pattern=c.eval_pattern)]))
    schema_gen = tfx.components.ImportSchemaGen(schema_file=write_schema(c.pipeline_root, c.num_classes))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"],
                                                  schema=schema_gen.outputs["schema"])
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                        schema=schema_gen.outputs["schema"])
    box_gate = BoxGate(examples=example_gen.outputs["examples"], anomalies=example_validator.outputs["anomalies"],
                       num_classes=c.num_classes, registry_dir=registry_dir(c),
                       drift_thresholds=json.dumps(c.drift_thresholds), drift_action=c.drift_action,
                       min_drift_examples=c.min_drift_examples)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn="models.transform.preprocessing_fn", materialize=False, disable_statistics=True,
        splits_config=tfx.proto.SplitsConfig(analyze=["train"]))
    transform.add_upstream_node(box_gate)
    return {"example_gen": example_gen, "statistics_gen": statistics_gen, "schema_gen": schema_gen,
            "example_validator": example_validator, "box_gate": box_gate, "transform": transform}


def create_pipeline(config: PipelineConfig, metadata_connection_config=None) -> tfx.dsl.Pipeline:
    """The tfdet pipeline of ``config`` (see :class:`pipeline.configs.PipelineConfig` for every knob).

    ``config.trainer_resources`` (Kubeflow only) sizes the Trainer's pod; the local runner ignores it.
    ``train_steps``, ``batch_size`` and ``learning_rate`` default to the zoo entry's recipe.
    """
    c = config
    spans.check_window(c.window_spans)
    named = [name for name in STRATEGIES if name != "default"]
    if c.distribution is not None and c.distribution not in named:
        raise ValueError(f"distribution must be None, {' or '.join(map(repr, named))}, got {c.distribution!r}")
    data = data_components(c)
    example_gen, transform, box_gate = data["example_gen"], data["transform"], data["box_gate"]
    num_classes, serving_model_dir = c.num_classes, c.serving_model_dir
    trainer = tfx.components.Trainer(
        run_fn="models.trainer.run_fn",
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=c.train_steps or recipe_steps(c.model_config)),
        eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=0),
        custom_config={"model_config": c.model_config, "num_classes": num_classes, "batch_size": c.batch_size,
                       "learning_rate": c.learning_rate, "warm_start_dir": serving_model_dir,
                       "window_spans": c.window_spans, "accepted_spans_dir": registry_dir(c),
                       "distribution": c.distribution, "seed": c.seed, "class_names": c.class_names or {}})
    trainer.add_upstream_node(box_gate)
    if c.trainer_resources:
        trainer.with_platform_config(resource_spec(**c.trainer_resources))
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        example_splits=["eval"], eval_config=eval_config(num_classes, c.max_detections))
    compare = CompareWithBaseline(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        serving_dir=serving_model_dir, num_classes=num_classes,
        min_map50=c.min_map50, max_map50_drop=c.max_map50_drop, max_class_ap50_drop=c.max_class_ap50_drop,
        min_class_boxes=c.min_class_boxes)
    card = ModelCard(examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
                     blessing=compare.outputs["blessing"], gate_report=box_gate.outputs["report"],
                     num_classes=num_classes, serving_dir=serving_model_dir)
    pusher = Pusher(
        model=trainer.outputs["model"], model_blessing=compare.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)),
        model_card=card.outputs["card"])
    components = [*data.values(), trainer, evaluator, compare, card, pusher]
    if c.unlabelled_pattern:
        components += batch_inference(c, trainer.outputs["model"], compare.outputs["blessing"])
    return tfx.dsl.Pipeline(
        pipeline_name=c.pipeline_name, pipeline_root=c.pipeline_root,
        components=components,
        enable_cache=c.enable_cache, metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=c.beam_pipeline_args())
