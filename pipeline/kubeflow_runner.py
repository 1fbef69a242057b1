"""Compiles the tfdet pipeline for Kubeflow Pipelines (KubeflowV2DagRunner -> a kfp 2 pipeline YAML).

    python -m pipeline.kubeflow_runner --output pipeline.yaml [--image IMAGE] [--pipeline-root gs://...]
        [--data-root gs://...] [--serving-dir gs://...] [--beam direct|dataflow|flink|spark] [--train-steps N]

The same create_pipeline as the local runner; the components run in IMAGE (the repository's
Dockerfile), so roots must be remote stores every pod can reach. Only compilation is implemented
here; submitting and scheduling runs (kfp.Client) are not yet.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", category=FutureWarning)

from pipeline import configs  # noqa: E402


def compile_pipeline(output: str, image: str, pipeline_root: str, data_root: str, serving_dir: str,
                     beam: str = "direct", train_steps: int = configs.TRAIN_STEPS,
                     model_config: str = configs.MODEL_CONFIG) -> str:
    """Writes the kfp pipeline YAML to ``output`` (it must end in .yaml: the kfp 2 client rejects
    the JSON PipelineJob form) and returns its path."""
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    if not output.endswith(".yaml"):
        raise ValueError(f"--output must end in .yaml (kfp 2 loads the YAML pipeline spec), got {output!r}")
    if beam not in configs.BEAM_RUNNERS:
        raise ValueError(f"--beam must be one of {sorted(configs.BEAM_RUNNERS)}, got {beam!r}")
    pipeline = create_pipeline(
        configs.PIPELINE_NAME, pipeline_root, data_root, serving_dir, train_pattern=configs.TRAIN_PATTERN,
        eval_pattern=configs.EVAL_PATTERN, model_config=model_config, num_classes=configs.NUM_CLASSES,
        train_steps=train_steps, batch_size=configs.BATCH_SIZE, learning_rate=configs.LEARNING_RATE,
        min_map50=configs.MIN_MAP50, max_map50_drop=configs.MAX_MAP50_DROP, max_detections=configs.MAX_DETECTIONS,
        beam_pipeline_args=configs.BEAM_RUNNERS[beam])
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output)), output_filename=os.path.basename(output))
    runner.run(pipeline)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="pipeline.yaml")
    parser.add_argument("--image", default=configs.KUBEFLOW_IMAGE)
    parser.add_argument("--pipeline-root", default=configs.KUBEFLOW_PIPELINE_ROOT)
    parser.add_argument("--data-root", default=configs.KUBEFLOW_DATA_ROOT)
    parser.add_argument("--serving-dir", default=configs.KUBEFLOW_SERVING_MODEL_DIR)
    parser.add_argument("--beam", default="direct", help="Beam runner of the data steps: " + ", ".join(
        sorted(configs.BEAM_RUNNERS)))
    parser.add_argument("--train-steps", type=int, default=configs.TRAIN_STEPS)
    parser.add_argument("--model-config", default=configs.MODEL_CONFIG)
    args = parser.parse_args(argv)
    path = compile_pipeline(args.output, args.image, args.pipeline_root, args.data_root, args.serving_dir,
                            args.beam, args.train_steps, args.model_config)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
