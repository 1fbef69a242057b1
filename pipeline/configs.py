"""Every knob of a deployment of the tfdet pipeline, in one place.

The constants below are the defaults; :class:`PipelineConfig` gathers them into the one object that
``create_pipeline`` takes and both runners fill from their flags (:func:`add_flags`,
:func:`from_flags`): a new knob is one field here. Run from the repository root (TFX template
convention): the components import ``models.*`` and ``components.*`` by module path.
"""

import argparse
import dataclasses
import os
from typing import Any, Dict, List, Optional

from pipeline import REPO_ROOT
from pipeline.engines.beam import ENGINES, beam_args

PIPELINE_NAME = "tfdet"

# Data: the converted TFRecords, one folder per span (span-<N>/{train,eval}-*.tfrecord).
DATA_ROOT = os.path.join(REPO_ROOT, "data", "default")
TRAIN_PATTERN = "span-{SPAN}/train-*.tfrecord"
EVAL_PATTERN = "span-{SPAN}/eval-*.tfrecord"
# Batch inference: images without boxes (`tfdet convert images ... --prefix unlabelled`) of the newest span
# that has any are scored by the blessed candidate (BulkInferrer -> BatchDetections: PredictionLogs and a
# COCO results JSON). None turns the branch off; the local runner turns it off when no file matches.
UNLABELLED_PATTERN = "span-{SPAN}/unlabelled-*.tfrecord"

# Local outputs: everything a local run writes goes under one folder (see output_layout).
OUTPUT_ROOT = os.path.join(REPO_ROOT, "tfx_pipeline_output")


def output_layout(output_root: str = OUTPUT_ROOT) -> Dict[str, str]:
    """Where a local run under ``output_root`` keeps its artifacts, its MLMD database and the served models."""
    return {"pipeline_root": os.path.join(output_root, PIPELINE_NAME),
            "metadata_path": os.path.join(output_root, "metadata", PIPELINE_NAME, "metadata.db"),
            "serving_model_dir": os.path.join(output_root, "serving_model", PIPELINE_NAME)}


PIPELINE_ROOT, METADATA_PATH, SERVING_MODEL_DIR = output_layout().values()

# Model and training.
MODEL_CONFIG = "cpu_small"  # a tfdet.zoo entry (tfdet.list_models())
NUM_CLASSES = 5
# Training steps, batch size and learning rate: None takes the zoo entry's recipe (its TRAIN dict).
TRAIN_STEPS = None
BATCH_SIZE = None
LEARNING_RATE = None
# Rolling window: train on the newest span and the WINDOW_SPANS - 1 spans before it that passed BoxGate
# (1 = the newest span only). Older spans come from the accepted-span registry BoxGate keeps under
# <pipeline root>/accepted_spans (see tfdet/dataio/spans.py).
WINDOW_SPANS = 1
# Training seed: the same seed, config and data give the same model on the same machine (None: unseeded).
SEED = None
# tf.distribute strategy of the Trainer: None (default strategy), "mirrored" (the devices of one
# machine) or "multi_worker" (MultiWorkerMirroredStrategy from the TF_CONFIG the training job sets).
DISTRIBUTION = None

# Drift against the previous accepted span (BoxGate, components/data_profile.py): L-infinity distance of the
# class distribution, Jensen-Shannon divergence (base 2) of box size / aspect / boxes-per-image / image-size
# histograms. Beyond a threshold the gate stops the run (DRIFT_ACTION "warn": it only reports); spans with
# fewer than MIN_DRIFT_EXAMPLES training examples are not judged.
DRIFT_THRESHOLDS = {"classes": 0.2, "box_size": 0.15, "box_aspect": 0.15, "boxes_per_image": 0.15, "image_size": 0.25}
DRIFT_ACTION = "stop"
MIN_DRIFT_EXAMPLES = 100

# Blessing: the candidate must reach MIN_MAP50 and lose at most MAX_MAP50_DROP against the baseline, and no
# class with at least MIN_CLASS_BOXES eval boxes may lose more than MAX_CLASS_AP50_DROP of its AP@0.5.
MIN_MAP50 = 0.5
MAX_MAP50_DROP = 0.01
MAX_CLASS_AP50_DROP = 0.1
MIN_CLASS_BOXES = 10
MAX_DETECTIONS = 100

# Beam: where the data steps run (pipeline/engines/beam.py): direct, in-memory, flink, portable or dataflow.
BEAM_ENGINE = "direct"
# the REST address of a Flink cluster (python -m pipeline.engines.cluster up starts one)
FLINK_MASTER = "localhost:8081"
DATAFLOW_ARGS = ["--project=your-project", "--region=us-central1", "--temp_location=gs://your-bucket/tfdet/beam_tmp"]

# Kubeflow Pipelines (pipeline/kubeflow_runner.py). Remote roots: every component reads and writes them.
KUBEFLOW_IMAGE = "gcr.io/your-project/tfdet-pipeline:latest"  # built from the repository's Dockerfile
KUBEFLOW_PIPELINE_ROOT = "gs://your-bucket/tfdet/pipeline_root"
KUBEFLOW_DATA_ROOT = "gs://your-bucket/tfdet/data/default"
KUBEFLOW_SERVING_MODEL_DIR = "gs://your-bucket/tfdet/serving_model"
KUBEFLOW_HOST = "http://localhost:8080"  # kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80
KUBEFLOW_EXPERIMENT = "tfdet"
KUBEFLOW_CRON = "0 0 3 * * *"  # KFP cron, seconds first: every day at 03:00
KUBEFLOW_DISTRIBUTION = "mirrored"  # every device of the Trainer's pod
# The Trainer's pod: vCPUs, memory, and an optional accelerator (e.g. "nvidia-tesla-t4", count 1).
KUBEFLOW_TRAINER_RESOURCES = {"cpu": 8, "memory_gb": 32, "accelerator": None, "accelerator_count": 0}
# Flink on Kubernetes (Beam's layout): the JobManager as a service, an SDK worker pool beside each TaskManager
# (the pipeline image running apache_beam.runners.worker.worker_pool_main), the job server built into the image.
KUBEFLOW_FLINK_MASTER = "flink-jobmanager:8081"
# Every job runs at the cluster's task slots (Beam's job server reads no Flink configuration: without --parallelism
# each operator would run at 1); the component pods cannot ask the cluster, so say it here. The worker pool beside
# each TaskManager runs the pipeline image (python pipeline/engines/worker.py pool), which has the project installed;
# the compiler names that image as the SDK's (--sdk_container_image), so TFX stages no sdist of itself per job.
KUBEFLOW_FLINK_SLOTS = 8
KUBEFLOW_FLINK_ARGS = ["--environment_type=EXTERNAL", "--environment_config=localhost:50000",
                       "--flink_job_server_jar=/opt/tfdet/flink/job-server-2.56.0/beam-flink-job-server.jar",
                       f"--parallelism={KUBEFLOW_FLINK_SLOTS}"]


RECIPE = "the model's recipe"  # what a training knob left unset means


def _knob(default: Any, help_text: str, flag: bool = True, **extra: Any) -> Any:
    mutable = isinstance(default, (list, dict))
    factory = dict(default_factory=lambda: default.copy()) if mutable else dict(default=default)
    return dataclasses.field(metadata={"help": help_text, "flag": flag, **extra}, **factory)


@dataclasses.dataclass
class PipelineConfig:
    """Everything a run of the pipeline is made from; defaults are the constants of this module."""

    pipeline_name: str = _knob(PIPELINE_NAME, "the pipeline's name in MLMD and Kubeflow", flag=False)
    pipeline_root: str = _knob(PIPELINE_ROOT, "where the components write their artifacts")
    data_root: str = _knob(DATA_ROOT, "folder of span-<N>/ TFRecord folders")
    serving_model_dir: str = _knob(SERVING_MODEL_DIR, "the Pusher's destination (TF Serving's model folder)")
    metadata_path: str = _knob(METADATA_PATH, "MLMD SQLite database (local runs)")
    train_pattern: str = _knob(TRAIN_PATTERN, "training files below data_root ({SPAN} is the span number)")
    eval_pattern: str = _knob(EVAL_PATTERN, "evaluation files below data_root")
    unlabelled_pattern: Optional[str] = _knob(UNLABELLED_PATTERN, "images to score by batch inference, below "
                                                                  "data_root (none: no batch inference)", type=str)
    model_config: str = _knob(MODEL_CONFIG, "a tfdet.zoo model (tfdet models)")
    num_classes: int = _knob(NUM_CLASSES, "classes of the data and the model")
    class_names: Optional[Dict[str, str]] = _knob(None, "id -> name from the data's label maps (the local runner "
                                                        "reads them), for classes the training split lacks", flag=False)
    train_steps: Optional[int] = _knob(TRAIN_STEPS, "training steps", type=int, unset=RECIPE)
    batch_size: Optional[int] = _knob(BATCH_SIZE, "global batch size", type=int, unset=RECIPE)
    learning_rate: Optional[float] = _knob(LEARNING_RATE, "peak learning rate", type=float, unset=RECIPE)
    seed: Optional[int] = _knob(SEED, "training seed: the same seed and data give the same model", type=int,
                                 unset="unseeded")
    min_map50: float = _knob(MIN_MAP50, "blessing: the candidate's COCO mAP@0.5 (pycocotools) must reach this")
    max_map50_drop: float = _knob(MAX_MAP50_DROP, "blessing: largest mAP@0.5 loss against the served model")
    max_class_ap50_drop: float = _knob(MAX_CLASS_AP50_DROP, "blessing: largest AP@0.5 loss of any one class "
                                                            "against the served model")
    min_class_boxes: int = _knob(MIN_CLASS_BOXES, "blessing: classes with fewer eval boxes are not judged alone")
    max_detections: int = _knob(MAX_DETECTIONS, "detections per image the Evaluator reads")
    window_spans: int = _knob(WINDOW_SPANS, "train on the newest span and the k-1 accepted spans before it")
    drift_thresholds: Dict[str, float] = _knob(DRIFT_THRESHOLDS, "drift allowed per feature")
    drift_action: str = _knob(DRIFT_ACTION, "on drift beyond the thresholds: stop or warn")
    min_drift_examples: int = _knob(MIN_DRIFT_EXAMPLES, "spans smaller than this are not judged for drift")
    distribution: Optional[str] = _knob(DISTRIBUTION, "tf.distribute strategy of the Trainer: none, mirrored, "
                                                      "multi_worker (TF_CONFIG)", type=str)
    trainer_resources: Optional[Dict[str, Any]] = _knob(None, "Kubeflow: the Trainer pod's cpu, memory_gb, "
                                                              "accelerator, accelerator_count", flag=False)
    beam: str = _knob(BEAM_ENGINE, "where the Beam steps run: " + ", ".join(ENGINES), choices=tuple(ENGINES))
    flink_master: str = _knob(FLINK_MASTER, "--beam flink: the Flink cluster's REST address (host:port)")
    beam_args: List[str] = _knob([], "extra Beam pipeline arguments, e.g. --beam-args=--parallelism=4 (repeat the "
                                     "flag for more)")
    enable_cache: bool = _knob(True, "reuse the outputs of components whose inputs did not change", flag=False)

    def beam_pipeline_args(self) -> List[str]:
        """The Beam arguments of every Beam-backed component (see :func:`pipeline.engines.beam.beam_args`)."""
        return beam_args(self.beam, self.flink_master, self.beam_args, DATAFLOW_ARGS, staging_root=self.pipeline_root)

    @classmethod
    def kubeflow(cls, **changes: Any) -> "PipelineConfig":
        """The defaults of a Kubeflow deployment (remote roots, mirrored training, the Trainer's pod size)."""
        defaults = dict(pipeline_root=KUBEFLOW_PIPELINE_ROOT, data_root=KUBEFLOW_DATA_ROOT,
                        serving_model_dir=KUBEFLOW_SERVING_MODEL_DIR, distribution=KUBEFLOW_DISTRIBUTION,
                        trainer_resources=dict(KUBEFLOW_TRAINER_RESOURCES), metadata_path="",
                        flink_master=KUBEFLOW_FLINK_MASTER)
        return cls(**{**defaults, **changes})


def _key_values(default: Dict[str, Any]):
    """argparse type of a dict knob's items: ``name=value``, the value typed like the default's values."""
    kind = type(next(iter(default.values()))) if default else str

    def parse(text: str):
        name, sep, value = text.partition("=")
        if not sep or (default and name not in default):
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(default)}, got {text!r}")
        return name, kind(value)
    return parse


def add_flags(parser: argparse.ArgumentParser, defaults: Optional[PipelineConfig] = None, skip=()) -> None:
    """One ``--flag`` per :class:`PipelineConfig` field that has one, with its default and help.

    A list field is a repeatable flag (each use adds an item); a dict field takes ``NAME=VALUE`` items that change
    those entries of the default.
    """
    defaults = defaults or PipelineConfig()
    for field in dataclasses.fields(PipelineConfig):
        if not field.metadata["flag"] or field.name in skip:
            continue
        default = getattr(defaults, field.name)
        flag, help_text = "--" + field.name.replace("_", "-"), field.metadata["help"]
        if isinstance(default, list):
            parser.add_argument(flag, action="append", default=None, help=f"{help_text} (default: {default})")
        elif isinstance(default, dict):
            parser.add_argument(flag, nargs="+", type=_key_values(default), default=None, metavar="NAME=VALUE",
                                help=f"{help_text} (default: {default})")
        else:
            kind = field.metadata.get("type") or (type(default) if default is not None else str)
            shown = field.metadata.get("unset", "none") if default is None else default
            parser.add_argument(flag, type=kind, default=default, choices=field.metadata.get("choices"),
                                help=f"{help_text} (default: {shown})")


def from_flags(args: argparse.Namespace, defaults: Optional[PipelineConfig] = None, **changes: Any) -> PipelineConfig:
    """A :class:`PipelineConfig` from parsed :func:`add_flags` flags (``none`` means no distribution)."""
    defaults = defaults or PipelineConfig()
    values = {}
    for field in dataclasses.fields(PipelineConfig):
        value = getattr(args, field.name, None)
        default = getattr(defaults, field.name)
        if not hasattr(args, field.name) or (value is None and isinstance(default, (list, dict))):
            continue
        values[field.name] = {**default, **dict(value)} if isinstance(default, dict) else value
    for name in ("distribution", "unlabelled_pattern"):
        if values.get(name) == "none":
            values[name] = None
    return dataclasses.replace(defaults, **values, **changes)
