"""Every knob of a deployment of the tfdet pipeline, in one place.

Run from the repository root (TFX template convention): the components import
``models.*`` and ``components.*`` by module path.
"""

import os

PIPELINE_NAME = "tfdet"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Data: the converted TFRecords, one folder per span (span-<N>/{train,eval}-*.tfrecord).
DATA_ROOT = os.path.join(REPO_ROOT, "data", "default")
TRAIN_PATTERN = "span-{SPAN}/train-*.tfrecord"
EVAL_PATTERN = "span-{SPAN}/eval-*.tfrecord"

# Local outputs.
OUTPUT_ROOT = os.path.join(REPO_ROOT, "tfx_pipeline_output")
PIPELINE_ROOT = os.path.join(OUTPUT_ROOT, PIPELINE_NAME)
METADATA_PATH = os.path.join(OUTPUT_ROOT, "metadata", PIPELINE_NAME, "metadata.db")
SERVING_MODEL_DIR = os.path.join(OUTPUT_ROOT, "serving_model", PIPELINE_NAME)

# Model and training.
MODEL_CONFIG = "cpu_small"  # a tfdet.zoo entry (tfdet.list_models())
NUM_CLASSES = 5
# Training steps, batch size and learning rate: None takes the zoo entry's recipe (its TRAIN dict).
TRAIN_STEPS = None
BATCH_SIZE = None
LEARNING_RATE = None
# Rolling window: train on the newest span and the WINDOW_SPANS - 1 spans before it that passed BoxGate
# (1 = the newest span only). Older spans come from the accepted-span registry BoxGate keeps under
# <pipeline root>/accepted_spans (see components/span_registry.py).
WINDOW_SPANS = 1
# tf.distribute strategy of the Trainer: None (default strategy), "mirrored" (the devices of one
# machine) or "multi_worker" (MultiWorkerMirroredStrategy from the TF_CONFIG the training job sets).
DISTRIBUTION = None

# Blessing: the candidate must reach MIN_MAP50 and lose at most MAX_MAP50_DROP against the baseline.
MIN_MAP50 = 0.5
MAX_MAP50_DROP = 0.01
MAX_DETECTIONS = 100

# Beam: the DirectRunner on every core locally; Dataflow / Flink / Spark by other arguments.
BEAM_PIPELINE_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]

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
BEAM_RUNNERS = {
    "direct": ["--direct_running_mode=multi_processing", "--direct_num_workers=0"],
    "dataflow": ["--runner=DataflowRunner", "--project=your-project", "--region=us-central1",
                 "--temp_location=gs://your-bucket/tfdet/beam_tmp"],
    "flink": ["--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081", "--environment_type=EXTERNAL",
              "--environment_config=localhost:50000"],
    "spark": ["--runner=SparkRunner", "--spark_master_url=spark://spark-master:7077",
              "--environment_type=EXTERNAL", "--environment_config=localhost:50000"],
}
