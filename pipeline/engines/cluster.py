"""A Beam engine on this machine for the pipeline's data steps: a Flink session cluster, or Beam's portable job service.

    python -m pipeline.engines.cluster fetch                 Flink's jars (PyPI), Beam's job server (Maven), verified
    python -m pipeline.engines.cluster up [--workers 2]      JobManager + TaskManagers, each its own JVM, on loopback
    python -m pipeline.engines.cluster up --isolated ...     the TaskManagers on simulated hosts (engines/hosts.py)
    python -m pipeline.engines.cluster up --engine portable  Beam's job service + an SDK worker pool (not distributed)
    python -m pipeline.engines.cluster status [--json]       processes, ports, logs, the Flink web / REST address, jobs
    python -m pipeline.engines.cluster down                  stops every process it started

``up`` starts a small supervisor that owns the engine's processes: it restarts one that dies (as Kubernetes or
systemd would restart a TaskManager), so a Flink job that loses a TaskManager recovers by Flink's restart
strategy. The state (pids, ports, logs) lives in ``$TFDET_HOME/cluster/<engine>/``, and so do the engine's temporary
files (``scratch/``: Flink's blob caches, the SDK workers' ``TMPDIR``), emptied by ``up`` and ``down``. Then
``python -m pipeline.local_runner --beam flink`` (or ``--beam portable``) runs the pipeline's Beam steps there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any, Dict, List, Optional, Sequence

from pipeline import REPO_ROOT
from pipeline.engines import flink, hosts
from pipeline.engines.flink import FlinkSetupError
from tfdet.files import cache_dir

ENGINES = ("flink", "portable")
WORKER_BOOT = os.path.join(REPO_ROOT, "pipeline", "engines", "worker.py")
PORTABLE_JOB_PORT = 8099
PORTABLE_WORKER_POOL_PORT = 50000
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0


class ClusterError(RuntimeError):
    """The engine could not be started, reached or stopped; the message says what to do."""


def state_dir(engine: str) -> str:
    """``$TFDET_HOME/cluster/<engine>``: the plan, the state (pids) and the logs of a running engine."""
    return cache_dir("cluster", engine)


def _write_json(path: str, content: Any) -> None:
    temp = f"{path}.tmp-{os.getpid()}"
    with open(temp, "w") as handle:
        json.dump(content, handle, indent=2)
    os.replace(temp, path)


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("localhost", port))
        except OSError:
            return False
    return True


def rest(address: str, path: str, timeout: float = 5.0) -> Dict[str, Any]:
    """A GET of Flink's REST API at ``address`` (host:port); raises OSError when it does not answer."""
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as response:  # noqa: S310 (http only)
        return json.load(response)


# ---- the plan: which processes an engine is made of ---------------------------------------------------------------

def flink_plan(directory: str, workers: int, taskmanager_memory: str, rest_port: int, isolated: bool = False,
               shared: Sequence[str] = (), subnet: str = hosts.SUBNET) -> Dict[str, Any]:
    """The processes of a Flink session cluster with ``workers`` TaskManagers, configured in ``directory``.

    Beside each TaskManager runs a Beam worker pool (:mod:`pipeline.engines.worker`) on its loopback. ``isolated``:
    the JobManager, and each TaskManager with its pool, on a host of its own (:mod:`pipeline.engines.hosts`) that
    sees of this machine only the ``shared`` folders. Otherwise everything is on this machine's loopback and the
    TaskManagers share one pool.
    """
    flink.fetch_flink(quiet=True)
    flink.job_server_jar(build=True, quiet=True)  # built now, so that the first pipeline run does not wait for it
    conf = os.path.join(directory, "conf")
    logs = os.path.join(directory, "log")
    os.makedirs(logs, exist_ok=True)
    scratch = scratch_dir(directory)
    network = hosts.plan(workers, subnet) if isolated else None
    if network:  # inside its namespace a host may listen on every address: they are its loopback and its veth
        address = hosts.host(network, "jobmanager")["address"]
        flink.write_config(conf, workers, taskmanager_memory, rest_port, address, bind="0.0.0.0")
    else:
        address = "localhost"
        flink.write_config(conf, workers, taskmanager_memory, rest_port)
    image = {"flink": flink.flink_home(), "python": sys.prefix, "conf": conf, "log": logs}
    inside = {name: f"{hosts.IMAGE}/{name}" for name in [*image, "boot"]}
    pool = ["pool", "--port", str(flink.WORKER_POOL_PORT)]

    def on_host(name: str, command: List[str]) -> Dict[str, Any]:
        """``command`` on the simulated host ``name``, which has the image and the boot of the SDK workers."""
        host_dir = os.path.join(scratch, "hosts", name)
        boot = os.path.join(host_dir, "boot")
        os.makedirs(boot, exist_ok=True)
        shutil.copyfile(WORKER_BOOT, os.path.join(boot, os.path.basename(WORKER_BOOT)))
        entry = hosts.write_entry(host_dir, dict(image, boot=boot), shared, hidden=[cache_dir(), REPO_ROOT])
        return {"command": hosts.wrap(command, hosts.host(network, name)["namespace"], entry), "host": name}

    log = os.path.join(logs, "jobmanager.log")
    if network:
        command = flink.jobmanager_command(conf, log, "/tmp", paths=inside)
        processes = {"jobmanager": {**on_host("jobmanager", command), "log": log}}
    else:
        processes = {"jobmanager": {"command": flink.jobmanager_command(conf, log, scratch), "log": log},
                     "worker-pool": {"command": [sys.executable, WORKER_BOOT, *pool],
                                     "log": os.path.join(logs, "worker-pool.log")}}
    for index in range(1, workers + 1):
        name = f"taskmanager-{index}"
        log = os.path.join(logs, f"{name}.log")
        if not network:
            processes[name] = {"command": flink.taskmanager_command(conf, log, name, scratch), "log": log}
            continue
        command = flink.taskmanager_command(conf, log, name, "/tmp", hosts.host(network, name)["address"], inside)
        processes[name] = {**on_host(name, command), "log": log}
        boot = [f"{inside['python']}/bin/python", f"{inside['boot']}/{os.path.basename(WORKER_BOOT)}", *pool]
        processes[f"worker-pool-{index}"] = {**on_host(name, boot),
                                             "log": os.path.join(logs, f"worker-pool-{index}.log")}
    return {"engine": "flink", "rest": f"{address}:{rest_port}", "workers": workers, "network": network,
            "processes": processes}


def scratch_dir(directory: str) -> str:
    """``<directory>/scratch``: the engine's temporary files (which killed processes leave), emptied by up and down."""
    return os.path.join(directory, "scratch")


def portable_plan(directory: str, job_port: int, worker_pool_port: int) -> Dict[str, Any]:
    """Beam's portable job service and one SDK worker pool, both with this interpreter (the project's venv)."""
    logs = os.path.join(directory, "log")
    os.makedirs(logs, exist_ok=True)
    python = sys.executable
    return {"engine": "portable", "job_endpoint": f"localhost:{job_port}",
            "worker_pool": f"localhost:{worker_pool_port}", "workers": 1,
            "processes": {
                "job-service": {"command": [python, "-m", "apache_beam.runners.portability.local_job_service_main",
                                            "--port", str(job_port)], "log": os.path.join(logs, "job-service.log")},
                "worker-pool": {"command": [python, "-m", "apache_beam.runners.worker.worker_pool_main",
                                            "--service_port", str(worker_pool_port)],
                                "log": os.path.join(logs, "worker-pool.log")}}}


# ---- the supervisor ----------------------------------------------------------------------------------------------

def _start(spec: Dict[str, Any], environment: Dict[str, str]) -> subprocess.Popen:
    log = open(spec["log"].replace(".log", ".out"), "ab")  # the JVM's own stdout / stderr beside its log
    # its own session: the process and what it starts (Beam's SDK workers) can be stopped as one group
    if spec.get("host"):  # on a host of its own, /tmp is the host's (pipeline/engines/hosts.py)
        environment = dict(environment, TMPDIR="/tmp")
    return subprocess.Popen(spec["command"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=environment, start_new_session=True)


def _stop_group(pid: int, timeout: float = STOP_TIMEOUT, child: Optional[subprocess.Popen] = None) -> None:
    """SIGTERM to the process group ``pid`` leads, SIGKILL after ``timeout`` s; returns when the group is gone.

    ``child``: the leader, when this process started it: reaped while waiting (an unreaped zombie would keep the
    group alive).
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child is not None:
                child.poll()
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def worker_environment(scratch: str) -> Dict[str, str]:
    """The environment of the engine's processes: the image's (``TF_USE_LEGACY_KERAS=1``, this interpreter first on
    PATH), none of the caller's ``PYTHONPATH`` (the SDK workers import the project's code from what the job stages),
    and ``TMPDIR`` in the scratch, which ``down`` empties."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), environment.get("PATH", "")])
    environment.update(TMPDIR=scratch, TF_USE_LEGACY_KERAS="1", PYTHONWARNINGS="ignore::FutureWarning")
    return environment


def supervise(directory: str) -> None:
    """Runs the plan in ``directory``: starts every process, restarts one that exits, stops all on SIGTERM."""
    plan = _read_json(os.path.join(directory, "plan.json"))
    environment = worker_environment(scratch_dir(directory))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    children: Dict[str, subprocess.Popen] = {}
    state = {**{k: v for k, v in plan.items() if k != "processes"}, "supervisor": os.getpid(),
             "started": time.time(), "processes": {}}
    state_path = os.path.join(directory, "state.json")
    for name, spec in plan["processes"].items():
        children[name] = _start(spec, environment)
        state["processes"][name] = {"pid": children[name].pid, "log": spec["log"], "restarts": 0}
    _write_json(state_path, state)
    while not stopping:
        time.sleep(0.5)
        for name, child in children.items():
            if child.poll() is None or stopping:
                continue
            _stop_group(child.pid, timeout=2.0, child=child)  # what it left behind (orphaned SDK workers)
            children[name] = _start(plan["processes"][name], environment)
            entry = state["processes"][name]
            entry.update(pid=children[name].pid, restarts=entry["restarts"] + 1, last_exit=child.returncode,
                         last_restart=time.time())
            _write_json(state_path, state)
    # TaskManagers before the JobManager, so that none of them tries to reconnect
    for name in sorted(children, key=lambda n: n == "jobmanager"):
        _stop_group(children[name].pid, child=children[name])
    os.remove(state_path)


# ---- the commands ------------------------------------------------------------------------------------------------

def read_state(engine: str) -> Optional[Dict[str, Any]]:
    """The running engine's state (``supervisor``, ``processes``: name -> pid, log, restarts), None when down."""
    state = _read_json(os.path.join(state_dir(engine), "state.json"))
    if state and alive(state.get("supervisor")):
        return state
    return None


def up(engine: str = "flink", workers: int = 2, taskmanager_memory: str = flink.TASKMANAGER_MEMORY,
       rest_port: int = flink.REST_PORT,
       job_port: int = PORTABLE_JOB_PORT, worker_pool_port: int = PORTABLE_WORKER_POOL_PORT, isolated: bool = False,
       shared: Sequence[str] = (), subnet: str = hosts.SUBNET) -> Dict[str, Any]:
    """Starts ``engine`` (idempotent: a running one with the same size is returned as it is); returns its state.

    ``isolated`` (Flink, root only): each TaskManager on a host of its own that sees of this machine only the
    ``shared`` folders (give it the data and output roots); see :mod:`pipeline.engines.hosts`.
    """
    if engine not in ENGINES:
        raise ClusterError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    running = read_state(engine)
    if running:
        if engine == "flink" and (running["workers"], bool(running.get("network"))) != (workers, isolated):
            raise ClusterError(f"a Flink cluster with {running['workers']} workers"
                               f"{' on hosts of their own' if running.get('network') else ''} is already running: "
                               f"`python -m pipeline.engines.cluster down` first to change it")
        return running
    if workers < 1:
        raise ClusterError(f"--workers must be at least 1, got {workers}")
    if isolated and engine != "flink":
        raise ClusterError("--isolated is for the Flink engine")
    directory = state_dir(engine)
    ports = ([rest_port] + ([] if isolated else [flink.WORKER_POOL_PORT]) if engine == "flink"
             else [job_port, worker_pool_port])
    taken = [port for port in ports if not port_free(port)]
    if taken:
        raise ClusterError(f"port {taken[0]} on localhost is in use by another program: stop it, or choose another "
                           f"port ({'--rest-port' if engine == 'flink' else '--job-port / --worker-pool-port'})")
    shutil.rmtree(scratch_dir(directory), ignore_errors=True)
    os.makedirs(scratch_dir(directory))
    plan = (flink_plan(directory, workers, taskmanager_memory, rest_port, isolated, shared, subnet)
            if engine == "flink" else portable_plan(directory, job_port, worker_pool_port))
    _write_json(os.path.join(directory, "plan.json"), plan)
    if plan.get("network"):
        hosts.create(plan["network"])
    with open(os.path.join(directory, "supervisor.log"), "ab") as log:
        subprocess.Popen([sys.executable, "-m", "pipeline.engines.cluster", "_supervise", directory], stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO_ROOT)
    return wait_ready(engine, plan)


def wait_ready(engine: str, plan: Dict[str, Any], timeout: float = READY_TIMEOUT) -> Dict[str, Any]:
    """Waits until every TaskManager registered (Flink) or both services listen (portable); returns the state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(engine)
        if state:
            dead = [name for name, entry in state["processes"].items() if entry["restarts"]]
            if dead:
                break
            if engine == "flink":
                try:
                    if rest(plan["rest"], "/overview", timeout=2.0)["taskmanagers"] == plan["workers"]:
                        return state
                except OSError:
                    pass
            elif not any(port_free(int(address.rsplit(":", 1)[1]))
                         for address in (plan["job_endpoint"], plan["worker_pool"])):
                return state
        time.sleep(1.0)
    logs = [spec["log"] for spec in plan["processes"].values()]
    down(engine)
    raise ClusterError(f"the {engine} engine did not come up within {timeout:.0f} s; it was stopped. Logs: "
                       f"{', '.join(logs)}")


def down(engine: str = "flink") -> bool:
    """Stops the engine's supervisor and every process it started, removes the hosts' namespaces (``--isolated``) and
    the scratch; returns whether anything was running."""
    directory = state_dir(engine)
    state = _read_json(os.path.join(directory, "state.json"))
    plan = _read_json(os.path.join(directory, "plan.json")) or {}
    if not state:
        if plan.get("network"):  # a cluster whose supervisor never started, or was killed before it wrote its state
            hosts.remove(plan["network"])
        return False
    supervisor = state.get("supervisor")
    if alive(supervisor):
        os.kill(supervisor, signal.SIGTERM)
        deadline = time.monotonic() + 3 * STOP_TIMEOUT
        while alive(supervisor) and time.monotonic() < deadline:
            time.sleep(0.2)
    for entry in state["processes"].values():  # a supervisor that was killed leaves its children behind
        if alive(entry["pid"]):
            _stop_group(entry["pid"])
    if state.get("network"):
        hosts.remove(state["network"])
    if os.path.exists(os.path.join(directory, "state.json")):
        os.remove(os.path.join(directory, "state.json"))
    shutil.rmtree(scratch_dir(directory), ignore_errors=True)
    return True


def status(engine: str = "flink") -> Dict[str, Any]:
    """Processes (pid, alive, restarts, log), addresses and, for Flink, its own view: TaskManagers, slots, jobs."""
    state = read_state(engine)
    if not state:
        return {"engine": engine, "running": False}
    report: Dict[str, Any] = {"engine": engine, "running": True, "supervisor": state["supervisor"],
                              "workers": state["workers"],
                              "processes": {name: {**entry, "alive": alive(entry["pid"])}
                                            for name, entry in state["processes"].items()}}
    if engine == "flink":
        report["rest"] = f"http://{state['rest']}"
        try:
            overview = rest(state["rest"], "/overview")
            jobs = rest(state["rest"], "/jobs/overview")["jobs"]
            report.update(taskmanagers=overview["taskmanagers"], slots=overview["slots-total"],
                          flink_version=overview["flink-version"],
                          jobs=[{"id": job["jid"], "name": job["name"], "state": job["state"],
                                 "seconds": round(job["duration"] / 1000, 1)} for job in jobs])
        except OSError as error:
            report["rest_error"] = str(error)
    else:
        report.update(job_endpoint=state["job_endpoint"], worker_pool=state["worker_pool"])
    return report


def render_status(report: Dict[str, Any]) -> str:
    if not report["running"]:
        return (f"{report['engine']}: not running (start it: python -m pipeline.engines.cluster up --engine "
                f"{report['engine']})")
    lines = [f"{report['engine']}: running (supervisor pid {report['supervisor']})"]
    if "rest" in report:
        answer = (f"  Flink {report['flink_version']}, {report['taskmanagers']} TaskManagers, {report['slots']} slots"
                  if "taskmanagers" in report else f"  (not answering: {report.get('rest_error')})")
        lines.append(f"web UI / REST: {report['rest']}{answer}")
    else:
        lines.append(f"job endpoint {report['job_endpoint']}, SDK worker pool {report['worker_pool']} "
                     f"(one process: not a distributed engine)")
    for name, entry in report["processes"].items():
        lines.append(f"  {name:15s} pid {entry['pid']:>7}  {'alive' if entry['alive'] else 'DEAD '}  "
                     f"restarts {entry['restarts']}  log {entry['log']}")
    for job in report.get("jobs", []):
        lines.append(f"  job {job['id']}  {job['state']:9s} {job['seconds']:7.1f} s  {job['name']}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.engines.cluster", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="download Flink's jars and build Beam's Flink job server (verified)")
    start = commands.add_parser("up", help="start the engine and wait until it is ready")
    start.add_argument("--engine", choices=ENGINES, default="flink")
    start.add_argument("--workers", type=int, default=2, help="Flink TaskManagers, each a JVM with one slot")
    start.add_argument("--taskmanager-memory", default=flink.TASKMANAGER_MEMORY,
                       help="each TaskManager's process memory")
    start.add_argument("--rest-port", type=int, default=flink.REST_PORT, help="Flink's web UI and REST API")
    start.add_argument("--job-port", type=int, default=PORTABLE_JOB_PORT, help="portable: the job service")
    start.add_argument("--worker-pool-port", type=int, default=PORTABLE_WORKER_POOL_PORT,
                       help="portable: the SDK worker pool")
    start.add_argument("--isolated", action="store_true",
                       help="flink, as root: each TaskManager on a simulated host of its own (network and mount "
                            "namespaces) that sees only the --share folders of this machine")
    start.add_argument("--share", action="append", default=[], metavar="DIR",
                       help="--isolated: a folder the hosts see (the data and output roots; repeat the flag)")
    start.add_argument("--subnet", default=hosts.SUBNET, help="--isolated: the hosts' private network")
    for name, text in (("down", "stop the engine"), ("status", "what runs, where, and Flink's jobs")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--engine", choices=ENGINES, default="flink")
        if name == "status":
            command.add_argument("--json", action="store_true")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_supervise"]:
        supervise(argv[1])
        return 0
    args = _parser().parse_args(argv)
    try:
        if args.command == "fetch":
            print(f"Flink {flink.FLINK_VERSION}: {flink.fetch_flink()}")
            print(f"Beam's Flink job server (verified): {flink.job_server_jar(build=True)}")
        elif args.command == "up":
            up(args.engine, args.workers, args.taskmanager_memory, args.rest_port, args.job_port,
               args.worker_pool_port, args.isolated, [os.path.abspath(p) for p in args.share], args.subnet)
            print(render_status(status(args.engine)))
        elif args.command == "down":
            print(f"{args.engine}: stopped" if down(args.engine) else f"{args.engine}: was not running")
        else:
            report = status(args.engine)
            print(json.dumps(report, indent=2) if args.json else render_status(report))
    except (ClusterError, FlinkSetupError, hosts.HostsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
