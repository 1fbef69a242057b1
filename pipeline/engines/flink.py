"""Apache Flink for the pipeline's Beam steps: Flink's jars, Beam's job server for it, and the cluster's processes.

* Flink 1.16.3 comes from PyPI's ``apache-flink-libraries`` (the jars of Flink's binary distribution, without its
  shell scripts), sha256-pinned, unpacked once into ``$TFDET_HOME/flink/``.
* Beam's Flink job server is built by Maven from ``pipeline/engines/flink_job_server/pom.xml`` out of Beam's own runner
  and job-service artifacts (Maven Central serves no job-server jar), and every jar is checked against
  ``jars.sha256``. Beam 2.56's runner is the newest with both modules served; the Python SDK (2.59) talks to it
  through the portable job API, and it submits to Flink 1.16.
* A session cluster on this machine is a JobManager and TaskManagers, each a JVM started from Flink's Java entry
  points with the memory settings Flink's own scripts would compute (its ``BashJavaUtils``).

:mod:`pipeline.engines.cluster` runs the processes; :mod:`pipeline.engines.beam` turns a cluster address into Beam
arguments.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from typing import Dict, List, Optional, Tuple

from tfdet.files import cache_dir, sha256_of

FLINK_VERSION = "1.16.3"
# the sdist of apache-flink-libraries 1.16.3 on PyPI
FLINK_LIBRARIES_SHA256 = "d15df4185e9c507836b031879b64e18f68955dd7e90cd7d39b450513ed64ebbe"
BEAM_FLINK_VERSION = "1.16"  # Beam's --flink_version for this cluster
JOB_SERVER_PROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flink_job_server")
JOB_SERVER_JAR = "beam-flink-job-server.jar"
REST_PORT = 8081
# the Beam worker pool beside each TaskManager (Beam's Kubernetes layout: --environment_config=localhost:50000)
WORKER_POOL_PORT = 50000
# Flink 1.16 predates Java 17: its network and serialisation code reaches into these JDK internals
JAVA_MODULE_OPTIONS = (
    ["--add-exports=java.base/sun.net.util=ALL-UNNAMED", "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED"]
    + [f"--add-opens=java.base/{package}=ALL-UNNAMED" for package in (
        "java.lang", "java.lang.reflect", "java.io", "java.net", "java.nio", "sun.nio.ch", "java.text", "java.time",
        "java.util", "java.util.concurrent", "java.util.concurrent.atomic", "java.util.concurrent.locks")])
# each TaskManager's process memory: with CLUSTER_SETTINGS' shares, a task heap of about 750 MB
TASKMANAGER_MEMORY = "3584m"
# Beam's batch translation needs what Flink's defaults do not give it (see docs/scaling.md): one slot per
# TaskManager so that each operator's sort buffer gets a large share of managed memory (TFDV's combiners hold
# whole Arrow batches of images), hash-partitioned blocking shuffles (the sort shuffle wants 512 buffers per
# partition), direct memory for the gRPC buffers that stream elements to the SDK workers (Flink gives tasks
# none by default, and Transform's image batches at 100k examples overflowed the framework's share), and a restart
# strategy so that a job survives the loss of a TaskManager.
CLUSTER_SETTINGS = {
    "taskmanager.numberOfTaskSlots": 1,
    "taskmanager.memory.managed.fraction": 0.4,
    "taskmanager.memory.task.off-heap.size": "512m",
    "taskmanager.memory.network.min": "256mb",
    "taskmanager.memory.network.max": "256mb",
    "taskmanager.network.sort-shuffle.min-parallelism": 1024,
    "jobmanager.memory.process.size": "1024m",
    "restart-strategy": "fixed-delay",
    "restart-strategy.fixed-delay.attempts": 3,
    "restart-strategy.fixed-delay.delay": "2 s",
    "heartbeat.interval": 2000,
    "heartbeat.timeout": 10000,
    "slot.request.timeout": 60000,
    # every job ships Beam's job-server jar (160 MB) to each TaskManager's blob cache; Flink's default keeps a
    # finished job's copy for an hour, so a session of pipeline runs piles up gigabytes
    "blob.service.cleanup.interval": 60,
}
LOG4J = """rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
appender.main.name = MainAppender
appender.main.type = File
appender.main.append = true
appender.main.fileName = ${sys:log.file}
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
"""


class FlinkSetupError(RuntimeError):
    """Something the Flink engine needs is missing or wrong; the message says how to get it."""


def java() -> str:
    """The ``java`` executable ($JAVA_HOME first, then PATH), checked to be Java 11 or newer."""
    home = os.environ.get("JAVA_HOME")
    found = os.path.join(home, "bin", "java") if home and os.path.exists(os.path.join(home, "bin", "java")) \
        else shutil.which("java")
    if not found:
        raise FlinkSetupError("java not found (neither $JAVA_HOME/bin/java nor on PATH): Flink and Beam's job server "
                              "need Java 17 (Debian: apt-get install openjdk-17-jre-headless)")
    version = subprocess.run([found, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version)
    major = int(match.group(1)) if match else 0
    major = int(match.group(2)) if major == 1 and match.group(2) else major  # "1.8" is Java 8
    if major < 11:
        raise FlinkSetupError(f"{found} is Java {major or '?'}; Flink {FLINK_VERSION} and Beam's job server need Java "
                              f"11 or newer (17 is what is tested): set JAVA_HOME")
    return found


def flink_home() -> str:
    """Where Flink's jars are unpacked: ``$TFDET_HOME/flink/flink-<version>`` (``lib/``, ``bin/``)."""
    return cache_dir("flink", f"flink-{FLINK_VERSION}")


def job_server_dir() -> str:
    """Where Maven builds the job server: ``$TFDET_HOME/flink/job-server-<beam>`` (the jar and ``lib/``)."""
    return cache_dir("flink", "job-server-" + _pom_version())


def _pom_version() -> str:
    with open(os.path.join(JOB_SERVER_PROJECT, "pom.xml")) as handle:
        return re.search(r"<beam.version>([^<]+)</beam.version>", handle.read()).group(1)


def fetch_flink(quiet: bool = False) -> str:
    """Downloads apache-flink-libraries from PyPI (once), checks its sha256, unpacks its jars; returns Flink's home."""
    home = flink_home()
    if glob.glob(os.path.join(home, "lib", "flink-dist-*.jar")):
        return home
    with tempfile.TemporaryDirectory(dir=os.path.dirname(home)) as scratch:
        if not quiet:
            print(f"Flink {FLINK_VERSION}'s jars: apache-flink-libraries from PyPI", flush=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--dest", scratch,
                   "--disable-pip-version-check", "--progress-bar", "on" if not quiet else "off",
                   f"apache-flink-libraries=={FLINK_VERSION}"] + (["--quiet"] if quiet else [])
        if subprocess.run(command).returncode != 0:
            raise FlinkSetupError(f"pip could not download apache-flink-libraries=={FLINK_VERSION} (Flink's jars) "
                                  f"from the package index: check that PyPI is reachable")
        (archive,) = glob.glob(os.path.join(scratch, "apache-flink-libraries-*.tar.gz"))
        digest = sha256_of(archive)
        if digest != FLINK_LIBRARIES_SHA256:
            raise FlinkSetupError(f"{os.path.basename(archive)} has sha256 {digest}, expected "
                                  f"{FLINK_LIBRARIES_SHA256}: the download is corrupt or the package changed; it was "
                                  f"not used")
        unpacked = os.path.join(scratch, "unpacked")
        with tarfile.open(archive) as tar:
            wanted = [m for m in tar.getmembers() if m.isfile() and re.search(r"/deps/(lib/[^/]+|bin/[^/]+)\.jar$",
                                                                              m.name)]
            for member in wanted:
                member.name = re.sub(r"^.*/deps/", "", member.name)
                tar.extract(member, unpacked)
        for part in ("lib", "bin"):
            target = os.path.join(home, part)
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(os.path.join(unpacked, part), target)
    return home


def job_server_jar(build: bool = False, quiet: bool = False) -> str:
    """The job server's launcher jar; with ``build``, Maven builds it when missing and every jar is verified.

    Raises:
        FlinkSetupError: it is missing (and ``build`` is False), Maven or Java is missing, or a jar's sha256
            differs from ``pipeline/engines/flink_job_server/jars.sha256``.
    """
    out = job_server_dir()
    jar = os.path.join(out, JOB_SERVER_JAR)
    if os.path.exists(jar) and not build:
        return jar
    if not os.path.exists(jar):
        if not build:
            raise FlinkSetupError(f"Beam's Flink job server is not built ({jar} is missing): run "
                                  f"`python -m pipeline.engines.cluster fetch` (needs Maven and Java 17)")
        maven = shutil.which("mvn")
        if not maven:
            raise FlinkSetupError("mvn not found on PATH: Maven builds Beam's Flink job server from Maven Central "
                                  "(Debian: apt-get install maven)")
        java()
        command = [maven, "-B", "--strict-checksums", "-f", os.path.join(JOB_SERVER_PROJECT, "pom.xml"), "package",
                   f"-Dout={out}"]
        _maven(command, out, quiet)
    verify_job_server(out)
    return jar


def _maven(command: List[str], out: str, quiet: bool) -> None:
    """Runs Maven with its log in ``out/maven.log``; shows a bar of the lock's jars as they arrive (nothing when
    ``quiet``); on failure raises with the log's last lines."""
    from tqdm import tqdm

    os.makedirs(out, exist_ok=True)
    wanted = {os.path.basename(name) for name in read_lock(os.path.join(JOB_SERVER_PROJECT, "jars.sha256"))}
    log_path = os.path.join(out, "maven.log")
    with open(log_path, "w") as log, tqdm(total=len(wanted) - 1, unit="jar", disable=quiet,
                                          desc="Beam's Flink job server (Maven Central)") as bar:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            log.write(line)
            arrived = re.search(r"Downloaded from \S+: \S+/([^/\s]+\.jar) ", line)
            if arrived and arrived.group(1) in wanted:
                bar.update(1)
        code = process.wait()
    if code != 0:
        with open(log_path) as handle:
            tail = "".join(handle.readlines()[-15:])
        raise FlinkSetupError(f"Maven could not build Beam's Flink job server (`{' '.join(command)}` failed; check "
                              f"that Maven Central is reachable). The end of {log_path}:\n{tail}")


def verify_job_server(out: str) -> None:
    """Checks the launcher and every jar of ``lib/`` against ``jars.sha256`` (no more, no fewer)."""
    expected = read_lock(os.path.join(JOB_SERVER_PROJECT, "jars.sha256"))
    found = {JOB_SERVER_JAR: os.path.join(out, JOB_SERVER_JAR)}
    found.update({f"lib/{name}": os.path.join(out, "lib", name) for name in os.listdir(os.path.join(out, "lib"))})
    problems = [f"{name}: missing" for name in sorted(set(expected) - set(found))]
    problems += [f"{name}: not in the lock" for name in sorted(set(found) - set(expected))]
    problems += [f"{name}: sha256 {sha256_of(path)} != {expected[name]}" for name, path in sorted(found.items())
                 if name in expected and sha256_of(path) != expected[name]]
    if problems:
        raise FlinkSetupError(f"Beam's Flink job server in {out} does not match "
                              f"pipeline/engines/flink_job_server/jars.sha256 "
                              f"({len(problems)} problems, first: {problems[0]}); delete {out} and run "
                              f"`python -m pipeline.engines.cluster fetch` again")


def read_lock(path: str) -> Dict[str, str]:
    """``{relative path: sha256}`` of a ``sha256sum``-format file (``#`` comments allowed)."""
    with open(path) as handle:
        rows = [line.split() for line in handle if line.strip() and not line.startswith("#")]
    return {name: digest for digest, name in rows}


def write_config(conf_dir: str, workers: int, taskmanager_memory: str, rest_port: int = REST_PORT,
                 address: str = "localhost", bind: str = "") -> None:
    """Writes ``flink-conf.yaml`` (the JobManager and its REST API at ``address``, listening on ``bind``, default the
    same; :data:`CLUSTER_SETTINGS`) and the log configuration. TaskManagers listen on ``localhost`` unless their
    command says otherwise."""
    os.makedirs(conf_dir, exist_ok=True)
    bind = bind or address
    settings = {"jobmanager.rpc.address": address, "jobmanager.bind-host": bind,
                "rest.address": address, "rest.bind-address": bind, "rest.port": rest_port,
                "taskmanager.host": "localhost", "taskmanager.bind-host": "localhost",
                "taskmanager.memory.process.size": taskmanager_memory, **CLUSTER_SETTINGS}
    settings["parallelism.default"] = workers * int(settings["taskmanager.numberOfTaskSlots"])
    with open(os.path.join(conf_dir, "flink-conf.yaml"), "w") as handle:
        handle.writelines(f"{key}: {value}\n" for key, value in settings.items())
    with open(os.path.join(conf_dir, "log4j.properties"), "w") as handle:
        handle.write(LOG4J)


def _jvm(conf_dir: str, log_file: str, heap: List[str], scratch_dir: str, home: str) -> List[str]:
    # every temporary file of the JVM in one directory its owner can empty: Flink's io.tmp.dirs (blob caches,
    # TaskManager working directories, the unpacked RPC jar) defaults to it, and so do native libraries
    temp = [f"-Djava.io.tmpdir={scratch_dir}"] if scratch_dir else []
    return [java(), *JAVA_MODULE_OPTIONS, *heap, *temp, f"-Dlog.file={log_file}",
            f"-Dlog4j.configurationFile=file:{os.path.join(conf_dir, 'log4j.properties')}",
            "-cp", os.path.join(home, "lib", "*")]


def jobmanager_command(conf_dir: str, log_file: str, scratch_dir: str = "",
                       paths: Optional[Dict[str, str]] = None) -> List[str]:
    """The JobManager (standalone session entry point) of the configuration in ``conf_dir``; ``paths`` as for
    :func:`taskmanager_command`."""
    heap, dynamic = _resource_params("GET_JM_RESOURCE_PARAMS", conf_dir)
    where = paths or {"conf": conf_dir, "log": os.path.dirname(log_file), "flink": flink_home()}
    return _jvm(where["conf"], os.path.join(where["log"], os.path.basename(log_file)), heap, scratch_dir,
                where["flink"]) + [
        "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint", "--configDir", where["conf"],
        *dynamic]


def taskmanager_command(conf_dir: str, log_file: str, resource_id: str, scratch_dir: str = "", host: str = "",
                        paths: Optional[Dict[str, str]] = None) -> List[str]:
    """A TaskManager of the configuration in ``conf_dir``, named ``resource_id`` in the cluster.

    ``host``: the address it listens on (default: the configuration's, loopback). ``paths``: where the TaskManager
    finds its files when it runs on a host of its own (``conf``, ``log``, ``flink``: :mod:`pipeline.engines.hosts`); the
    memory settings are computed here from ``conf_dir`` either way.
    """
    heap, dynamic = _resource_params("GET_TM_RESOURCE_PARAMS", conf_dir)
    where = paths or {"conf": conf_dir, "log": os.path.dirname(log_file), "flink": flink_home()}
    conf = where["conf"]
    listen = ["-D", f"taskmanager.host={host}", "-D", f"taskmanager.bind-host={host}"] if host else []
    return _jvm(conf, os.path.join(where["log"], os.path.basename(log_file)), heap, scratch_dir, where["flink"]) + [
        "org.apache.flink.runtime.taskexecutor.TaskManagerRunner", "--configDir", conf, *dynamic,
        "-D", f"taskmanager.resource-id={resource_id}", *listen]


def _resource_params(command: str, conf_dir: str) -> Tuple[List[str], List[str]]:
    """The JVM heap options and the ``-D`` memory settings Flink's scripts pass (computed by BashJavaUtils)."""
    home = flink_home()
    classpath = os.pathsep.join([os.path.join(home, "bin", "bash-java-utils.jar"), os.path.join(home, "lib", "*")])
    run = subprocess.run([java(), *JAVA_MODULE_OPTIONS, "-cp", classpath,
                          "org.apache.flink.runtime.util.bash.BashJavaUtils", command, "--configDir", conf_dir],
                         capture_output=True, text=True)
    results = [line.split(":", 1)[1].split() for line in run.stdout.splitlines()
               if line.startswith("BASH_JAVA_UTILS_EXEC_RESULT:")]
    if run.returncode != 0 or len(results) < 2:
        raise FlinkSetupError(f"Flink could not size its {command.split('_')[1]} memory from {conf_dir}: "
                              f"{(run.stdout + run.stderr).strip().splitlines()[-1:]}")
    return results[0], results[1]
