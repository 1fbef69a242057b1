"""Compilation for Kubeflow Pipelines (no cluster is reachable here: the compiled spec is the contract)."""

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.kubeflow_runner import compile_pipeline


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("kfp")
    path = compile_pipeline(str(root / "pipeline.yaml"), "example.io/tfdet:test", str(root / "pipeline_root"),
                            "gs://bucket/data", "gs://bucket/serving", beam="dataflow", train_steps=123)
    with open(path) as handle:
        return yaml.safe_load(handle)


def test_compiles_to_a_kfp_pipeline_spec(compiled):
    spec = json_format.ParseDict(compiled, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=True)
    assert spec.schema_version == "2.0.0" and spec.pipeline_info.name == "tfdet"
    tasks = set(spec.root.dag.tasks)
    assert {"ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "BoxGate", "Transform",
            "Trainer", "Evaluator", "CompareWithBaseline", "Pusher"} <= tasks


def test_image_beam_arguments_and_parameters_reach_the_spec(compiled):
    text = yaml.safe_dump(compiled)
    executors = compiled["deploymentSpec"]["executors"]
    assert executors and all(e["container"]["image"] == "example.io/tfdet:test" for e in executors.values())
    assert "--runner=DataflowRunner" in text
    assert "gs://bucket/data" in text and "gs://bucket/serving" in text
    assert "123" in yaml.safe_dump(compiled["root"]["dag"]["tasks"]["Trainer"])


def test_output_must_be_yaml(tmp_path):
    with pytest.raises(ValueError, match=r"--output must end in .yaml"):
        compile_pipeline(str(tmp_path / "p.json"), "img", str(tmp_path), "d", "s")
    with pytest.raises(ValueError, match=r"--beam must be one of \['dataflow', 'direct', 'flink', 'spark'\]"):
        compile_pipeline(str(tmp_path / "p.yaml"), "img", str(tmp_path), "d", "s", beam="storm")
