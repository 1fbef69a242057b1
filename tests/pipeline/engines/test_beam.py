"""pipeline/engines/beam.py, worker.py and flink_runner.py without a cluster: the arguments each engine
gets, the project's package the workers install, the SDK workers' boot installing what a job stages, and the Flink
runner's reads giving the same records."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer

import apache_beam as beam
import grpc
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_artifact_api_pb2_grpc, beam_provision_api_pb2, beam_runner_api_pb2
from apache_beam.runners.portability import artifact_service
from tfx.utils import dependency_utils

from pipeline.engines import beam as engines
from pipeline.engines import flink_runner
from pipeline.engines import worker as beam_worker


@pytest.fixture
def home_and_temp(tmp_path, monkeypatch):
    """A TFDET_HOME and a system temporary directory of the test's own, both empty."""
    home, temp = tmp_path / "home", tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TFDET_HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return home, temp


def test_the_workers_package_is_the_projects_code_built_once_per_content(home_and_temp, monkeypatch):
    home, temp = home_and_temp
    path = engines.worker_package()
    assert os.path.dirname(path) == str(home / "worker_packages") and path.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
    for module in ("tfdet/dataio/features.py", "components/box_scan.py", "components/batch_detections.py",
                   "models/transform.py"):
        assert module in names
    assert not [name for name in names if name.startswith(("tests/", "pipeline/", "benchmarks/"))]
    assert os.listdir(temp) == []  # the build tree is gone

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("built a second time"))
    assert engines.worker_package() == path


def test_a_changed_source_file_is_a_new_package(home_and_temp, tmp_path):
    root = tmp_path / "repo"
    for package in engines.WORKER_PACKAGES:
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "components" / "step.py").write_text("ANSWER = 1\n")
    first = engines.worker_package(str(root))
    assert engines.worker_package(str(root)) == first
    (root / "components" / "step.py").write_text("ANSWER = 2\n")
    second = engines.worker_package(str(root))
    assert second != first and os.path.exists(first)
    with zipfile.ZipFile(second) as wheel:
        assert wheel.read("components/step.py") == b"ANSWER = 2\n"


class _Overview(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"slots-total": 6, "taskmanagers": 3}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flink_rest():
    """A stand-in for Flink's REST API that reports 6 task slots."""
    server = HTTPServer(("localhost", 0), _Overview)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"localhost:{server.server_port}"
    server.shutdown()


def test_each_run_adds_the_package_and_on_flink_the_clusters_slot_count(home_and_temp, flink_rest, monkeypatch):
    monkeypatch.setattr(engines.flink, "job_server_jar", lambda: "/opt/job-server.jar")
    package = f"--extra_package={engines.worker_package()}"
    assert engines.runtime_args("direct", engines.beam_args("direct")) == [package]
    on_flink = engines.beam_args("flink", flink_rest, staging_root="/shared/root")
    assert engines.runtime_args("flink", on_flink) == [package, "--parallelism=6"]
    assert engines.runtime_args("flink", on_flink + ["--parallelism=3"]) == [package]  # the user's stays
    for option in engines.TFX_DEPENDENCY_OPTIONS:
        assert engines.runtime_args("direct", engines.beam_args("direct", extra=[f"{option}=theirs"])) == []
    # with the package named, TFX's executors build and stage nothing of their own
    args = engines.beam_args("direct") + [package]
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", lambda: pytest.fail("TFX would build"))
    assert dependency_utils.make_beam_dependency_flags(args) == args


def test_flink_jobs_go_through_the_spreading_runner_to_worker_pools_with_shared_staging(monkeypatch):
    monkeypatch.setattr(engines.flink, "job_server_jar", lambda: "/opt/job-server.jar")
    args = engines.beam_args("flink", "jm:8081", staging_root="gs://bucket/root")
    assert args[0] == "--runner=pipeline.engines.flink_runner.FlinkRunner"
    assert "--artifacts_dir=gs://bucket/root/beam_artifacts" in args
    assert args[-2:] == ["--environment_type=EXTERNAL", "--environment_config=localhost:50000"]
    mine = engines.beam_args("flink", "jm:8081", extra=["--environment_type=DOCKER", "--environment_config=img"])
    assert [a for a in mine if a.startswith("--environment")] == ["--environment_type=DOCKER",
                                                                  "--environment_config=img"]


def write_records(path, records):
    with tf.io.TFRecordWriter(str(path), "GZIP") as writer:
        for record in records:
            writer.write(record)


def test_the_flink_runners_reads_give_the_same_records(tmp_path):
    for shard in range(3):
        write_records(tmp_path / f"part-{shard}.gz", [f"{shard}-{i}".encode() for i in range(5)])
    pipeline = beam.Pipeline(options=PipelineOptions(["--direct_running_mode=in_memory"]))
    records = pipeline | beam.io.ReadFromTFRecord(str(tmp_path / "part-*.gz"), coder=beam.coders.BytesCoder())
    _ = records | beam.combiners.ToList() | beam.Map(
        lambda found: (tmp_path / "found.json").write_text(json.dumps(sorted(r.decode() for r in found))))
    pipeline.replace_all([flink_runner.SpreadTFRecordReads()])
    kinds = []
    pipeline.visit(type("Kinds", (beam.pipeline.PipelineVisitor,), {
        "enter_composite_transform": lambda self, node: kinds.append(type(node.transform).__name__)})())
    assert "ReadTFRecordsSpread" in kinds and "ReadFromTFRecord" not in kinds
    pipeline.run().wait_until_finish()
    assert json.loads((tmp_path / "found.json").read_text()) == sorted(f"{s}-{i}" for s in range(3) for i in range(5))


def staged(name: str, path: str) -> beam_runner_api_pb2.ArtifactInformation:
    """A FILE artifact staged under ``name``, as Beam's stager describes one."""
    return beam_runner_api_pb2.ArtifactInformation(
        type_urn=common_urns.artifact_types.FILE.urn,
        type_payload=beam_runner_api_pb2.ArtifactFilePayload(path=path).SerializeToString(),
        role_urn=common_urns.artifact_roles.STAGING_TO.urn,
        role_payload=beam_runner_api_pb2.ArtifactStagingToRolePayload(staged_name=name).SerializeToString())


def test_the_boot_installs_what_the_job_staged_once_and_imports_it(home_and_temp, tmp_path):
    package = engines.worker_package()
    listing = tmp_path / "extra_packages.txt"
    listing.write_text(os.path.basename(package) + "\n")
    server = grpc.server(beam.utils.thread_pool_executor.shared_unbounded_instance())
    beam_artifact_api_pb2_grpc.add_ArtifactRetrievalServiceServicer_to_server(
        artifact_service.ArtifactRetrievalService(artifact_service.BeamFilesystemHandler(None).file_reader), server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        info = beam_provision_api_pb2.ProvisionInfo(dependencies=[
            staged(os.path.basename(package), package), staged("extra_packages.txt", str(listing))])
        args = argparse.Namespace(artifact_endpoint=f"localhost:{port}")
        cache = str(tmp_path / "cache")
        site = beam_worker.install_dependencies(args, info, cache)
        assert json.loads(open(os.path.join(os.path.dirname(site), "installed.json")).read())["packages"] == [
            os.path.basename(package)]
        assert beam_worker.install_dependencies(args, info, cache) == site  # a second worker: nothing again
    finally:
        server.stop(0)
    found = subprocess.run([sys.executable, "-c", "import components.box_scan as m; print(m.__file__)"],
                           env=dict(os.environ, PYTHONPATH=site), cwd=str(tmp_path), capture_output=True, text=True)
    assert found.stdout.strip() == os.path.join(site, "components", "box_scan.py"), found.stderr[-500:]
    assert beam_worker.install_dependencies(args, beam_provision_api_pb2.ProvisionInfo(), cache) is None
