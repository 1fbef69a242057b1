"""Kubeflow Pipelines: compilation, and submit / schedule through the real kfp.Client.

No cluster is reachable here: the compiled spec is checked against kfp's PipelineSpec, and the client
talks to a local HTTP server that answers like the KFP API and records every request.
"""

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.kubeflow_runner import compile_pipeline, main, schedule, submit

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def compiled_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("kfp")
    return compile_pipeline(str(root / "pipeline.yaml"), "example.io/tfdet:test", str(root / "pipeline_root"),
                            "gs://bucket/data", "gs://bucket/serving", beam="dataflow", train_steps=123,
                            window_spans=3, distribution="mirrored",
                            trainer_resources={"cpu": 4, "memory_gb": 16, "accelerator": "nvidia-tesla-t4",
                                               "accelerator_count": 1})


@pytest.fixture(scope="module")
def compiled(compiled_path):
    with open(compiled_path) as handle:
        return yaml.safe_load(handle)


def test_compiles_to_a_kfp_pipeline_spec(compiled):
    spec = json_format.ParseDict(compiled, pipeline_spec_pb2.PipelineSpec())  # strict: every field is kfp's
    assert spec.schema_version == "2.0.0" and spec.pipeline_info.name == "tfdet"
    tasks = set(spec.root.dag.tasks)
    assert {"ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "BoxGate", "Transform",
            "Trainer", "Evaluator", "CompareWithBaseline", "Pusher", "UnlabelledExampleGen", "BulkInferrer",
            "BatchDetections"} <= tasks


def test_image_beam_arguments_and_parameters_reach_the_spec(compiled):
    text = yaml.safe_dump(compiled)
    executors = compiled["deploymentSpec"]["executors"]
    assert executors and all(e["container"]["image"] == "example.io/tfdet:test" for e in executors.values())
    assert "--runner=DataflowRunner" in text
    assert "gs://bucket/data" in text and "gs://bucket/serving" in text
    trainer = compiled["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    assert json.loads(trainer["train_args"]["runtimeValue"]["constantValue"]["stringValue"])["num_steps"] == 123
    custom = json.loads(trainer["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])
    assert custom["window_spans"] == 3 and custom["distribution"] == "mirrored"
    assert custom["warm_start_dir"] == "gs://bucket/serving" and custom["accepted_spans_dir"].endswith("accepted_spans")
    gate = compiled["root"]["dag"]["tasks"]["BoxGate"]["inputs"]["parameters"]
    assert gate["registry_dir"]["runtimeValue"]["constantValue"]["stringValue"] == custom["accepted_spans_dir"]
    assert executors["Trainer_executor"]["container"]["resources"] == {
        "cpuLimit": 4.0, "memoryLimit": 16.0, "accelerator": {"count": "1", "type": "nvidia-tesla-t4"}}
    assert all("resources" not in e["container"] for name, e in executors.items() if name != "Trainer_executor")


def test_output_must_be_yaml(tmp_path):
    with pytest.raises(ValueError, match=r"--output must end in .yaml"):
        compile_pipeline(str(tmp_path / "p.json"), "img", str(tmp_path), "d", "s")
    with pytest.raises(ValueError, match=r"Beam engine must be one of direct, in-memory, flink, portable, dataflow, "
                                         r"got 'storm'"):
        compile_pipeline(str(tmp_path / "p.yaml"), "img", str(tmp_path), "d", "s", beam="storm")


def test_the_command_says_what_cannot_compile_in_one_line_before_the_slow_imports(tmp_path):
    """Through a new process, as a user runs it: exit 2, one line, and TFX never imported."""
    probe = ("import sys; from pipeline.kubeflow_runner import main; code = main(sys.argv[1:]); "
             "assert 'tfx' not in sys.modules, 'TFX was imported'; sys.exit(code)")
    for argv, line in (
            (["compile", "--output", "p.json"], "error: --output must end in .yaml (kfp 2 loads the YAML pipeline "
                                                "spec), got 'p.json': --output p.yaml"),
            (["schedule", "--cron", "30 2 * * *", "--package", str(tmp_path / "p.yaml")],
             "error: a KFP cron expression has 6 fields (second, minute, hour, day of month, month, day of week); "
             "'30 2 * * *' has 5 (did you mean '0 30 2 * * *'?)"),
            (["submit", "--package", "missing.yaml"], "error: pipeline package 'missing.yaml' does not exist: compile "
                                                      "it first (python -m pipeline.kubeflow_runner compile --output "
                                                      "missing.yaml)")):
        done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, cwd=REPO,
                              timeout=120)
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [line], (argv, done.stderr[-2000:])


class RecordingKfpApi(http.server.BaseHTTPRequestHandler):
    """The few routes of the KFP v2beta1 REST API that kfp.Client uses to submit and schedule;
    every request is recorded (method, path, query, JSON body)."""

    requests: list = []
    experiments: dict = {}

    def log_message(self, *args):
        pass

    def _answer(self, payload, status=200):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append({"method": self.command, "path": url.path,
                              "query": urllib.parse.parse_qs(url.query), "body": body})
        return url.path, urllib.parse.parse_qs(url.query), body

    def do_GET(self):  # noqa: N802
        path, query, _ = self._record()
        if path == "/apis/v2beta1/healthz":
            return self._answer({"multi_user": False})
        if path == "/apis/v2beta1/experiments":
            wanted = json.loads(query["filter"][0])["predicates"][0]["stringValue"]
            found = [e for e in self.experiments.values() if e["display_name"] == wanted]
            return self._answer({"experiments": found, "total_size": len(found)})
        return self._answer({"error": f"no route {path}"}, 404)

    def do_POST(self):  # noqa: N802
        path, _, body = self._record()
        if path == "/apis/v2beta1/experiments":
            experiment = dict(body, experiment_id=f"exp-{len(self.experiments) + 1}")
            self.experiments[experiment["experiment_id"]] = experiment
            return self._answer(experiment)
        if path == "/apis/v2beta1/runs":
            return self._answer(dict(body, run_id="run-1", state="PENDING"))
        if path == "/apis/v2beta1/recurringruns":
            return self._answer(dict(body, recurring_run_id="rr-1", status="ENABLED"))
        return self._answer({"error": f"no route {path}"}, 404)


@pytest.fixture
def kfp_api():
    RecordingKfpApi.requests, RecordingKfpApi.experiments = [], {}
    server = http.server.ThreadingHTTPServer(("localhost", 0), RecordingKfpApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}", RecordingKfpApi
    server.shutdown()


def posted(api, path):
    return [r["body"] for r in api.requests if r["method"] == "POST" and r["path"] == path]


def test_submit_creates_the_experiment_once_and_starts_a_run_of_the_package(compiled_path, kfp_api, capsys):
    host, api = kfp_api
    assert main(["submit", "--host", host, "--experiment", "detectors", "--package", compiled_path,
                 "--run-name", "span 7"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "experiment_id=exp-1 run_id=run-1"
    assert submit(host, compiled_path, "detectors") == {"experiment_id": "exp-1", "run_id": "run-1"}
    # created once (single-user install: no namespace), found by name the second time
    assert posted(api, "/apis/v2beta1/experiments") == [{"display_name": "detectors", "namespace": ""}]
    runs = posted(api, "/apis/v2beta1/runs")
    assert [r["display_name"] for r in runs] == ["span 7", "tfdet run"]
    assert all(r["experiment_id"] == "exp-1" for r in runs)
    with open(compiled_path) as handle:
        package = yaml.safe_load(handle)
    assert runs[0]["pipeline_spec"] == package  # the compiled YAML, sent as it is
    assert runs[0]["pipeline_spec"]["deploymentSpec"]["executors"]


def test_schedule_creates_a_recurring_run_with_six_field_cron_and_no_catchup(compiled_path, kfp_api, capsys):
    host, api = kfp_api
    assert main(["schedule", "--host", host, "--experiment", "retraining", "--package", compiled_path,
                 "--cron", "0 30 2 * * 1-5", "--name", "nightly", "--namespace", "team-a"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "experiment_id=exp-1 recurring_run_id=rr-1"
    (job,) = posted(api, "/apis/v2beta1/recurringruns")
    assert job["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * 1-5"}}
    assert job["no_catchup"] is True and job["max_concurrency"] == 1 and job["mode"] == "ENABLE"
    assert job["experiment_id"] == "exp-1" and job["display_name"] == "nightly"
    with open(compiled_path) as handle:
        assert job["pipeline_spec"] == yaml.safe_load(handle)
    assert posted(api, "/apis/v2beta1/experiments") == [{"display_name": "retraining", "namespace": "team-a"}]


def test_schedule_refuses_a_five_field_cron_before_contacting_the_host(compiled_path, kfp_api):
    host, api = kfp_api
    with pytest.raises(ValueError, match=re.escape(
            "a KFP cron expression has 6 fields (second, minute, hour, day of month, month, day of week); "
            "'30 2 * * *' has 5 (did you mean '0 30 2 * * *'?)")):
        schedule(host, compiled_path, "retraining", "30 2 * * *")
    assert api.requests == []
    with pytest.raises(FileNotFoundError, match=r"pipeline package 'missing.yaml' does not exist: compile it first"):
        submit(host, "missing.yaml", "detectors")


def test_bad_window_distribution_and_resources_are_refused(tmp_path):
    out = str(tmp_path / "p.yaml")
    with pytest.raises(ValueError, match=r"window_spans must be >= 1 \(1 = the newest span only\), got 0"):
        compile_pipeline(out, "img", str(tmp_path), "d", "s", window_spans=0)
    with pytest.raises(ValueError, match=r"distribution must be None, 'mirrored' or 'multi_worker', got 'horovod'"):
        compile_pipeline(out, "img", str(tmp_path), "d", "s", distribution="horovod")
    with pytest.raises(ValueError, match=r"distribution 'multi_worker' needs several Trainer processes with TF_CONFIG, "
                                         r"and TFX's Trainer on Kubeflow is one pod: use 'mirrored'"):
        compile_pipeline(out, "img", str(tmp_path), "d", "s", distribution="multi_worker")
    with pytest.raises(ValueError, match=r"accelerator 'nvidia-tesla-t4' needs accelerator_count >= 1, got 0"):
        compile_pipeline(out, "img", str(tmp_path), "d", "s", trainer_resources={"accelerator": "nvidia-tesla-t4"})


def test_submit_without_a_package_compiles_from_the_flags(kfp_api, tmp_path, capsys):
    host, api = kfp_api
    assert main(["submit", "--host", host, "--experiment", "detectors", "--image", "example.io/tfdet:flags",
                 "--pipeline-root", str(tmp_path / "root"), "--trainer-cpu", "2", "--trainer-memory-gb", "6",
                 "--distribution", "none", "--beam", "flink"]) == 0
    (run,) = posted(api, "/apis/v2beta1/runs")
    executors = run["pipeline_spec"]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"example.io/tfdet:flags"}
    assert executors["Trainer_executor"]["container"]["resources"] == {"cpuLimit": 2.0, "memoryLimit": 6.0}
    spec_text = json.dumps(run["pipeline_spec"])
    # Beam's Flink-on-Kubernetes layout: the JobManager service, a worker pool beside each TaskManager running the
    # pipeline image (named as the SDK's, so that TFX stages nothing), every job at the cluster's slots, the job
    # server the image carries (not this machine's)
    for arg in ("--runner=pipeline.engines.flink_runner.FlinkRunner", "--flink_master=flink-jobmanager:8081",
                "--environment_type=EXTERNAL", "--environment_config=localhost:50000", "--parallelism=8",
                "--sdk_container_image=example.io/tfdet:flags",
                "--flink_job_server_jar=/opt/tfdet/flink/job-server-2.56.0/beam-flink-job-server.jar"):
        assert arg in spec_text, arg
    assert "PROCESS" not in spec_text
    trainer = run["pipeline_spec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    assert json.loads(trainer["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])["distribution"] is None
