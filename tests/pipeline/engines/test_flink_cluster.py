"""The pipeline's Beam steps on a real Flink cluster whose TaskManagers are hosts of their own -- ``make test-slow``,
which ``.ci/run`` runs after ``make test``.

``pipeline.engines.cluster up --isolated`` starts, from Flink's jars (PyPI) and Beam's job server (built by Maven), a
JobManager and two TaskManagers, each a JVM on a simulated host (pipeline/engines/hosts.py): its own network namespace
and address on a bridge, its own mount namespace with a private /tmp, the checkout and the tfdet cache hidden, and a
Beam worker pool beside each TaskManager whose SDK workers install the project's code that Beam stages with each job.
The hosts see of this machine only the folder the tests share with them (data and outputs).

0. The hosts really are hosts of their own: addresses on the bridge, the checkout and the cache out of sight.
1. The whole pipeline runs with ``--beam flink`` and with the DirectRunner on the same data and seed: every Beam
   component (both ExampleGens, StatisticsGen, BoxGate, Transform, the Evaluator, BulkInferrer, BatchDetections) is
   a job that Flink's own REST API lists as FINISHED, every operator at the cluster's slot count, and each one's
   data-heavy operator reading records on both TaskManagers; the workers on both hosts installed the staged package.
   The data-only outputs equal the DirectRunner's (the examples, the statistics, the gate's report, Transform's
   analyzer results), and the model-dependent ones equal the same work done in-process on Flink's own model (TFMA
   on the DirectRunner for the Evaluator's metrics, the SavedModel's signature for BulkInferrer's detections): two
   trainings on examples sharded in a different order need not give the same model. The model's outputs move in
   their last bits with the batches a runner forms, so metrics agree to 0.01 and confident detections one to one.
2. A TaskManager is killed with SIGKILL while it runs subtasks of ImportExampleGen's job: the supervisor starts a
   new one on the same host, Flink restarts the job (its exception history records the lost TaskManager), the run
   completes, and the next run with a new span trains on both spans, each counted once.
3. An unreachable cluster or a missing job server is one clear error line, at once.
Afterwards nothing is left: no process, namespace, bridge or scratch file.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

import numpy as np
import pytest
import tensorflow as tf
from learnable_data import write_span  # tests/ is on the path (its conftest)

from pipeline.engines import cluster, flink, hosts
from tfdet.dataio.synthetic import generate_default_dataset

pytestmark = pytest.mark.cluster
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ARGS = ["--model-config", "tiny", "--train-steps", "10", "--batch-size", "4", "--min-map50", "0.0", "--seed", "7",
        "--window-spans", "2"]
# what each Beam component's job does, as Flink names its operators
JOB_MARKERS = {"ImportExampleGen/UnlabelledExampleGen": "InputToRecord", "StatisticsGen": "GenerateStatistics",
               "BoxGate": "ByFingerprint", "Transform": "WriteTransformFn",
               "Evaluator": "ExtractEvaluateAndWriteResults", "BulkInferrer": "WritePredictionLogs",
               "BatchDetections": "ByRange"}
# the operator of each job that reads and processes its examples: on a cluster that shares the work out, it reads
# file ranges on every TaskManager
DATA_HEAVY = {"InputToRecord": "WriteSplit[train]}", "GenerateStatistics": "{TFXIORead[train], GenerateStatistics",
              "ByFingerprint": "Check[train]", "WriteTransformFn": "{TFXIOReadAndDecode[AnalysisIndex0], Analyze}",
              "ExtractEvaluateAndWriteResults": "FlattenExamples", "WritePredictionLogs": "RunInference[unlabelled]",
              "ByRange": "{Logs, Rows}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def left_in_system_temp(before: set) -> list:
    """What Flink's processes or TFX's Beam executors left in the system's temporary directory since ``before``."""
    temp = tempfile.gettempdir()
    new = sorted(set(os.listdir(temp)) - before)
    return ([name for name in new if name.startswith(("tm_", "jm_", "blobStore-", "flink-", "jaas-", "liblz4-java"))]
            + [name for name in new if os.path.isdir(os.path.join(temp, name, "build", "tfx"))])


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The one folder of this machine the cluster's hosts see (as a network file system would give it)."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="module")
def flink_cluster(tmp_path_factory, shared):
    """A 2-TaskManager cluster on hosts of their own, in a home of its own (Flink's jars and the job server shared
    with the user's cache), always torn down: every process it started is gone afterwards, so are its namespaces and
    bridge, and every file its processes and the pipeline runs on it wrote outside their outputs."""
    built = flink.job_server_dir(), flink.flink_home()  # fetched by `make test-slow` beforehand
    home = tmp_path_factory.mktemp("tfdet_home")
    os.makedirs(home / "flink")
    for path in built:
        os.symlink(path, home / "flink" / os.path.basename(path))
    previous = os.environ.get("TFDET_HOME")
    os.environ["TFDET_HOME"] = str(home)
    system_temp = set(os.listdir(tempfile.gettempdir()))
    state = cluster.up("flink", workers=2, rest_port=free_port(), isolated=True, shared=[str(shared)])
    scratch = cluster.scratch_dir(cluster.state_dir("flink"))
    try:
        yield state
    finally:
        pids = [entry["pid"] for entry in cluster.read_state("flink")["processes"].values()] + [state["supervisor"]]
        stopped = cluster.down("flink")
        if previous is None:
            os.environ.pop("TFDET_HOME")
        else:
            os.environ["TFDET_HOME"] = previous
        assert stopped
        assert not [pid for pid in pids if cluster.alive(pid)], "processes left behind"
        assert hosts.existing() == [], "network namespaces left behind"
        assert subprocess.run(["ip", "link", "show", hosts.BRIDGE], capture_output=True).returncode != 0
        assert not os.path.exists(scratch), "down leaves the cluster's scratch files"
        assert not left_in_system_temp(system_temp)


def on_host(pid: int, *command: str) -> subprocess.CompletedProcess:
    """``command`` in the network and mount namespaces of process ``pid`` (a TaskManager: on its host)."""
    return subprocess.run(["nsenter", "-t", str(pid), "-n", "-m", *command], capture_output=True, text=True)


def test_the_taskmanagers_are_hosts_of_their_own(flink_cluster, shared):
    rest = flink_cluster["rest"]
    network = flink_cluster["network"]
    assert rest.split(":")[0] == hosts.host(network, "jobmanager")["address"]  # not loopback
    registered = {tm["id"]: tm["path"] for tm in cluster.rest(rest, "/taskmanagers")["taskmanagers"]}
    for name in ("taskmanager-1", "taskmanager-2"):
        address = hosts.host(network, name)["address"]
        assert f"@{address}:" in registered[name]  # it reached the JobManager from its own address
        pid = cluster.read_state("flink")["processes"][name]["pid"]
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert address in on_host(pid, "ip", "-br", "addr").stdout
        for hidden in (REPO, os.environ["TFDET_HOME"], flink.flink_home()):  # empty or absent on the host
            assert on_host(pid, "sh", "-c", f"ls -A {hidden} 2>/dev/null | wc -l").stdout.strip() == "0", hidden
        assert on_host(pid, "ls", str(shared)).returncode == 0  # the shared folder is there
        # the host's own /tmp, not this machine's (beside the mount point of the shared folder, if it lies in /tmp)
        private = set(on_host(pid, "ls", "/tmp").stdout.split())
        expected = {"hsperfdata_root", str(shared).split(os.sep)[2]}
        assert any(name.startswith("flink-rpc-akka") for name in private), private
        assert not private & set(os.listdir(tempfile.gettempdir())) - expected, private


def run_pipeline(data_root: str, output_root: str, *extra: str, env: Optional[dict] = None
                 ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.local_runner", "--data-root", data_root, "--output-root",
                           output_root, *ARGS, *extra], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800)


def user_env(**settings: str) -> dict:
    """The environment as a user's shell has it: without the tests' TF_CPP_MIN_LOG_LEVEL (conftest sets 2, which
    lets TensorFlow's start-up errors about CUDA factories through; the runner's own default hides them)."""
    env = dict(os.environ, **settings)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def jobs(rest: str) -> dict:
    """Flink's job list: id -> (state, the operator names of the job)."""
    listed = cluster.rest(rest, "/jobs/overview")["jobs"]
    return {job["jid"]: (job["state"], " ".join(vertex["name"] for vertex in
                                                cluster.rest(rest, f"/jobs/{job['jid']}")["vertices"]))
            for job in listed}


def artifact_dir(output_root: str, component: str, holding: str) -> str:
    """The one folder under ``component``'s outputs that holds ``holding`` (a file or folder name)."""
    (found,) = [root for root, dirs, files in os.walk(os.path.join(output_root, "tfdet", component))
                if holding in dirs + files]
    return found


def examples(output_root: str, component: str, split: str) -> list:
    """The serialized examples an ExampleGen wrote, sorted."""
    uri = os.path.join(artifact_dir(output_root, component, f"Split-{split}"), f"Split-{split}")
    return sorted(tf.data.TFRecordDataset(tf.io.gfile.glob(f"{uri}/*"), compression_type="GZIP").as_numpy_iterator())


def feature_statistics(output_root: str, split: str) -> dict:
    """Per feature: counts and moments (numbers), uniques and top values (strings), sizes (bytes)."""
    import tensorflow_data_validation as tfdv

    uri = artifact_dir(output_root, "StatisticsGen", f"Split-{split}")
    dataset = tfdv.load_stats_binary(os.path.join(uri, f"Split-{split}", "FeatureStats.pb")).datasets[0]
    out = {"num_examples": dataset.num_examples}
    for feature in dataset.features:
        name = feature.path.step[0]
        if feature.HasField("num_stats"):
            numeric = feature.num_stats
            out[name] = (numeric.common_stats.num_non_missing, numeric.min, numeric.max, numeric.mean,
                         numeric.std_dev)
        elif feature.HasField("string_stats"):
            text = feature.string_stats
            out[name] = (text.common_stats.num_non_missing, text.unique,
                         sorted((v.value, v.frequency) for v in text.top_values))
        else:
            out[name] = (feature.bytes_stats.common_stats.num_non_missing, feature.bytes_stats.avg_num_bytes)
    return out


def gate_report(output_root: str) -> dict:
    with open(os.path.join(artifact_dir(output_root, "BoxGate", "report.json"), "report.json")) as handle:
        return json.load(handle)


def transform_results(output_root: str) -> dict:
    from models.transform import dataset_statistics

    graph = artifact_dir(output_root, "Transform", "transform_fn")
    return dataset_statistics(graph, examples(output_root, "ImportExampleGen", "train")[0])


def metrics_of(result) -> dict:
    return {name: value["doubleValue"] for name, value in result.slicing_metrics[0][1][""][""].items()}


def evaluator_metrics(output_root: str) -> dict:
    import tensorflow_model_analysis as tfma

    return metrics_of(tfma.load_eval_result(artifact_dir(output_root, "Evaluator", "eval_config.json")))


def trained_model(output_root: str) -> str:
    return os.path.join(artifact_dir(output_root, "Trainer", "Format-Serving"), "Format-Serving")


def in_process_metrics(output_root: str, work_dir: str) -> dict:
    """TFMA on the in-process DirectRunner: the pipeline's own eval config, model and eval split."""
    import tensorflow_model_analysis as tfma

    from pipeline.configs import PipelineConfig
    from pipeline.pipeline import eval_config

    config = eval_config(num_classes=2, max_detections=PipelineConfig().max_detections)
    split = os.path.join(artifact_dir(output_root, "ImportExampleGen", "Split-eval"), "Split-eval")
    result = tfma.run_model_analysis(
        eval_shared_model=tfma.default_eval_shared_model(trained_model(output_root), eval_config=config),
        eval_config=config, data_location=os.path.join(split, "*"), output_path=work_dir)
    return metrics_of(result)


def detections(output_root: str) -> list:
    with open(os.path.join(artifact_dir(output_root, "BatchDetections", "detections.json"), "detections.json")) as f:
        return sorted(json.load(f), key=lambda row: (row["image_id"], -row["score"], row["bbox"]))


def signature_detections(output_root: str) -> list:
    """The trained model's serving signature on the unlabelled examples, in BatchDetections' COCO form."""
    from tfdet.dataio import features
    from tfdet.evaluation import coco_results

    records = sorted(examples(output_root, "UnlabelledExampleGen", "unlabelled"),
                     key=lambda record: features.read_example(record)["source_id"])
    served = tf.saved_model.load(trained_model(output_root)).signatures["serving_default"](
        examples=tf.constant(records))
    found = []
    for image_id, record in enumerate(records):
        example, count = features.read_example(record), int(served["num_detections"][image_id])
        scale = [example["height"], example["width"]] * 2
        found.append({"image_id": image_id, "boxes": served["detection_boxes"][image_id, :count].numpy() * scale,
                      "scores": served["detection_scores"][image_id, :count].numpy(),
                      "classes": served["detection_classes"][image_id, :count].numpy()})
    return sorted(coco_results(found), key=lambda row: (row["image_id"], -row["score"], row["bbox"]))


def spread(rest: str, job: str, marker: str) -> dict:
    """Per TaskManager, the records the job's data-heavy operator (its vertex named with ``marker``) read there."""
    (vertex,) = [v for v in cluster.rest(rest, f"/jobs/{job}")["vertices"] if marker in v["name"]]
    read: dict = {}
    for subtask in cluster.rest(rest, f"/jobs/{job}/vertices/{vertex['id']}")["subtasks"]:
        read[subtask["taskmanager-id"]] = read.get(subtask["taskmanager-id"], 0) + subtask["metrics"]["read-records"]
    return read


@pytest.mark.timeout(3600)
def test_every_beam_step_runs_on_flink_and_matches_the_direct_runner(flink_cluster, shared):
    rest = flink_cluster["rest"]
    root = shared / "equal"
    data_root = str(root / "data")
    write_span(data_root, 1, num_unlabelled=4)  # learnable in 80 steps: metrics well above the floor of noise
    direct, on_flink = str(root / "direct"), str(root / "flink")
    learn = ["--num-classes", "2", "--train-steps", "80"]

    before = set(jobs(rest))
    ran = run_pipeline(data_root, on_flink, *learn, "--beam", "flink", "--flink-master", rest)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "Beam steps on: flink" in ran.stdout
    new = {job: value for job, value in jobs(rest).items() if job not in before}
    assert len(new) == 8 and all(state == "FINISHED" for state, _ in new.values()), new
    slots = cluster.rest(rest, "/overview")["slots-total"]
    assert slots == 2
    for component, marker in JOB_MARKERS.items():
        found = [job for job, (_, names) in new.items() if marker in names]
        assert len(found) == (2 if "/" in component else 1), (component, found)
        for job in found:
            # every operator at the cluster's slot count; the one that reads the examples reads on each host (the
            # UnlabelledExampleGen's job reads no train split)
            assert {v["parallelism"] for v in cluster.rest(rest, f"/jobs/{job}")["vertices"]} == {slots}, component
            if "WriteSplit[unlabelled]" in new[job][1]:
                continue
            read = spread(rest, job, DATA_HEAVY[marker])
            assert len([tm for tm, count in read.items() if count > 0]) == 2, (component, read)
    scratch = cluster.scratch_dir(cluster.state_dir("flink"))
    for name in ("taskmanager-1", "taskmanager-2"):  # the workers of both hosts installed what Beam staged
        installed = [json.load(open(os.path.join(root_, "installed.json")))["packages"] for root_ in
                     glob.glob(os.path.join(scratch, "hosts", name, "tmp", "beam-staged", "*"))]
        assert installed and all(packages and packages[0].startswith("tfdet_pipeline_code-")
                                 for packages in installed), (name, installed)
    assert run_pipeline(data_root, direct, *learn, "--beam", "direct").returncode == 0
    assert gate_report(on_flink) == gate_report(direct)

    for split in ("train", "eval"):
        assert examples(on_flink, "ImportExampleGen", split) == examples(direct, "ImportExampleGen", split)
    assert examples(on_flink, "UnlabelledExampleGen", "unlabelled") == examples(direct, "UnlabelledExampleGen",
                                                                                 "unlabelled")
    for split in ("train", "eval"):
        mine, theirs = feature_statistics(on_flink, split), feature_statistics(direct, split)
        assert mine.keys() == theirs.keys() and mine["num_examples"] == theirs["num_examples"] > 0
        for name in mine:
            if isinstance(mine[name], tuple) and isinstance(mine[name][-1], float):
                np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-6, err_msg=name)
            else:
                assert mine[name] == theirs[name], name
    mine, theirs = transform_results(on_flink), transform_results(direct)
    assert mine["class_vocabulary"] == theirs["class_vocabulary"]
    for name in ("pixel_mean", "pixel_std", "box_height_mean", "box_width_mean", "boxes_per_image"):
        np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-5, err_msg=name)
    # the model's outputs move in the last bits with the batch a runner forms (bfloat16 kernels): near-equal
    # scores can swap, so the figures agree to 0.01 and the confident detections one to one
    mine, theirs = evaluator_metrics(on_flink), in_process_metrics(on_flink, str(root / "tfma"))
    assert set(mine) >= {"mAP", "mAP50", "mAR"} and mine["mAP50"] > 0.3
    for name in ("mAP", "mAP50", "mAR"):
        assert mine[name] == pytest.approx(theirs[name], abs=0.01), name
    mine, theirs = detections(on_flink), signature_detections(on_flink)
    assert confident(mine, 0.3) and len(confident(mine, 0.3)) <= len(confident(theirs, 0.29))
    for found, reference in ((confident(mine, 0.3), theirs), (confident(theirs, 0.31), mine)):
        for row in found:
            assert any(same_detection(row, other) for other in reference), row


def confident(rows: list, floor: float) -> list:
    return [row for row in rows if row["score"] >= floor]


def same_detection(a: dict, b: dict) -> bool:
    return ((a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
            and np.allclose(a["bbox"], b["bbox"], atol=0.5) and abs(a["score"] - b["score"]) < 0.01)


def running_on(rest: str, job: str) -> list:
    """The TaskManagers (their resource ids, our process names) running one of ``job``'s tasks right now."""
    names = set()
    for vertex in cluster.rest(rest, f"/jobs/{job}")["vertices"]:
        for entry in cluster.rest(rest, f"/jobs/{job}/vertices/{vertex['id']}/taskmanagers")["taskmanagers"]:
            if entry["status"] == "RUNNING" or entry.get("status-counts", {}).get("RUNNING"):
                names.add(entry["taskmanager-id"])
    return sorted(names)


def kill_a_taskmanager_during(rest: str, marker: str, before: set, killed: dict) -> None:
    """Waits for a task of a new job whose operators include ``marker`` to run, then SIGKILLs its TaskManager: a
    TaskManager whose tasks had finished could die without the job noticing."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        for job, (state, names) in jobs(rest).items():
            if job in before or marker not in names or state != "RUNNING":
                continue
            hosts = running_on(rest, job)
            if hosts:
                pid = cluster.read_state("flink")["processes"][hosts[0]]["pid"]
                os.kill(pid, signal.SIGKILL)
                killed.update(job=job, pid=pid, name=hosts[0])
                return
        time.sleep(0.2)


@pytest.mark.timeout(3600)
def test_a_taskmanager_killed_mid_job_is_replaced_and_no_span_is_lost_or_counted_twice(flink_cluster, shared):
    rest = flink_cluster["rest"]
    tmp_path = shared / "kill"
    generate_default_dataset(str(tmp_path / "data"), "small", spans=(1,), num_train=40, num_eval=8, num_shards=4)
    data_root, output_root = str(tmp_path / "data" / "small"), str(tmp_path / "out")
    flags = ["--beam", "flink", "--flink-master", rest]
    killed: dict = {}
    restarts = {name: entry["restarts"] for name, entry in cluster.read_state("flink")["processes"].items()}
    watcher = threading.Thread(target=kill_a_taskmanager_during, args=(rest, "InputToRecord", set(jobs(rest)), killed))
    watcher.start()
    ran = run_pipeline(data_root, output_root, *flags)
    watcher.join()
    assert killed, "ImportExampleGen's job was never seen running"
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert not cluster.alive(killed["pid"])
    state = cluster.read_state("flink")["processes"][killed["name"]]
    assert state["restarts"] == restarts[killed["name"]] + 1 and cluster.alive(state["pid"])
    history = cluster.rest(rest, f"/jobs/{killed['job']}/exceptions")["exceptionHistory"]["entries"]
    assert cluster.rest(rest, f"/jobs/{killed['job']}")["state"] == "FINISHED" and history  # it failed, then recovered
    assert len(examples(output_root, "ImportExampleGen", "train")) == 40  # not one lost, not one twice

    generate_default_dataset(str(tmp_path / "data"), "small", spans=(2,), num_train=24, num_eval=8, num_shards=2)
    ran = run_pipeline(data_root, output_root, *flags)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "examples: train 24, eval 8" in ran.stdout and "on spans 2, 1" in ran.stdout
    registry = os.path.join(output_root, "tfdet", "accepted_spans")
    entries = [json.load(open(os.path.join(registry, name))) for name in sorted(os.listdir(registry))
               if not name.endswith(".profile.json")]
    assert [(e["span"], e["examples_checked"]) for e in entries] == [(1, {"train": 40, "eval": 8}),
                                                                     (2, {"train": 24, "eval": 8})]


def test_an_unreachable_cluster_is_one_error_line_at_once(tmp_path):
    write_span(str(tmp_path / "data"), 1)  # data the checks before the engine's accept
    started = time.monotonic()
    ran = run_pipeline(str(tmp_path / "data"), str(tmp_path / "out"), "--beam", "flink", "--flink-master",
                       f"localhost:{free_port()}", env=user_env())
    assert ran.returncode == 2 and time.monotonic() - started < 30
    (line,) = ran.stderr.strip().splitlines()
    assert line.startswith("error: no Flink cluster answers at http://localhost:") and line.endswith(
        "start one with `python -m pipeline.engines.cluster up`, or pass --flink-master HOST:PORT")


def test_a_missing_job_server_is_one_error_line(tmp_path):
    env = user_env(TFDET_HOME=str(tmp_path / "empty_home"))
    ran = subprocess.run([sys.executable, "-m", "pipeline.local_runner", "--beam", "flink"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 2
    (line,) = ran.stderr.strip().splitlines()
    assert line == (f"error: Beam's Flink job server is not built ({tmp_path}/empty_home/flink/job-server-2.56.0/"
                    f"beam-flink-job-server.jar is missing): run `python -m pipeline.engines.cluster fetch` (needs "
                    f"Maven and Java 17)")
