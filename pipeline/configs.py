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
MODEL_CONFIG = "cpu_small"  # a models.zoo entry
NUM_CLASSES = 5
TRAIN_STEPS = 1500
BATCH_SIZE = 8
LEARNING_RATE = 1e-3

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
BEAM_RUNNERS = {
    "direct": ["--direct_running_mode=multi_processing", "--direct_num_workers=0"],
    "dataflow": ["--runner=DataflowRunner", "--project=your-project", "--region=us-central1",
                 "--temp_location=gs://your-bucket/tfdet/beam_tmp"],
    "flink": ["--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081", "--environment_type=EXTERNAL",
              "--environment_config=localhost:50000"],
    "spark": ["--runner=SparkRunner", "--spark_master_url=spark://spark-master:7077",
              "--environment_type=EXTERNAL", "--environment_config=localhost:50000"],
}
