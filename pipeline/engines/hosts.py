"""Hosts of their own on this machine, for a cluster whose workers must share nothing with the submitter.

``python -m pipeline.engines.cluster up --isolated`` puts the Flink JobManager on a simulated host, and each
TaskManager with the Beam worker pool beside it on another: each host has its own network namespace, with its own
address on a veth
pair joined to a bridge (this machine's side of the bridge, from which jobs are submitted, is the only other
address it reaches), and its own mount namespace, in which

* ``/tmp`` is the host's own folder (the TaskManager's working files, the SDK workers' staged packages);
* this machine's tfdet cache (``$TFDET_HOME``) and the project's checkout are hidden under empty tmpfs mounts, so a
  worker that reached for the submitter's code or cache would fail;
* the host's image -- Flink's jars, the Python interpreter with its libraries (TFX, Beam, TensorFlow), the boot of
  the SDK workers -- is mounted under ``/mnt``, where a real host would have it installed;
* the folders named as shared (the data and output roots, as a network file system would give them) keep their
  paths.

Needs root (network and mount namespaces); everything it makes is removed by :func:`remove`, and the mounts end with
the processes that hold them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import subprocess
from typing import Any, Dict, List, Sequence

BRIDGE = "tfdet-br"
NAMESPACE = "tfdet-{}"
VETH = "tfdet-v{}"
SUBNET = "10.231.0.0/24"
IMAGE = "/mnt"  # where a host's image is mounted (in its own mount namespace only)


class HostsError(RuntimeError):
    """The simulated hosts cannot be made; the message says why and what to do."""


def _ip(*args: str, namespace: str = "", check: bool = True) -> subprocess.CompletedProcess:
    command = (["ip", "netns", "exec", namespace, "ip"] if namespace else ["ip"]) + list(args)
    run = subprocess.run(command, capture_output=True, text=True)
    if check and run.returncode != 0:
        raise HostsError(f"`{' '.join(command)}` failed: {run.stderr.strip()}")
    return run


def plan(count: int, subnet: str = SUBNET) -> Dict[str, Any]:
    """The network of a JobManager and ``count`` TaskManager hosts: each host's name, namespace and address, and the
    bridge's address (this machine's side, from which the job is submitted)."""
    network = ipaddress.ip_network(subnet)
    addresses = list(network.hosts())
    if count + 11 > len(addresses):
        raise HostsError(f"subnet {subnet} has room for {len(addresses) - 11} TaskManagers, not {count}")
    names = ["jobmanager"] + [f"taskmanager-{i}" for i in range(1, count + 1)]
    return {"bridge": BRIDGE, "subnet": subnet, "prefix": network.prefixlen, "address": str(addresses[0]),
            "hosts": [{"name": name, "namespace": NAMESPACE.format(name.replace("taskmanager-", "tm")),
                       "veth": VETH.format(i), "address": str(addresses[i + 9])} for i, name in enumerate(names)]}


def host(network: Dict[str, Any], name: str) -> Dict[str, str]:
    """The host called ``name`` (``jobmanager``, ``taskmanager-<i>``) of ``network``."""
    return next(entry for entry in network["hosts"] if entry["name"] == name)


def existing() -> List[str]:
    """The network namespaces of earlier isolated clusters still on this machine."""
    run = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return sorted(line.split()[0] for line in run.stdout.splitlines()
                  if line.split() and line.split()[0].startswith(NAMESPACE.format("")))


def _routed(subnet: str) -> List[str]:
    """Routes of this machine (outside the bridge) that overlap ``subnet``."""
    run = subprocess.run(["ip", "-j", "route"], capture_output=True, text=True)
    wanted = ipaddress.ip_network(subnet)
    clashes = []
    for route in json.loads(run.stdout or "[]"):
        destination = route.get("dst", "")
        if destination in ("", "default") or route.get("dev") == BRIDGE:
            continue
        if ipaddress.ip_network(destination, strict=False).overlaps(wanted):
            clashes.append(f"{destination} dev {route.get('dev')}")
    return clashes


def create(network: Dict[str, Any]) -> None:
    """Makes the bridge, one namespace per host and the veth pairs between them; removes what it made on failure."""
    if os.geteuid() != 0:
        raise HostsError("--isolated needs root (it makes network and mount namespaces); run without it for a "
                         "cluster on loopback")
    for name in existing():  # left by a cluster that was killed: only remove those no process lives in
        if subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.strip():
            raise HostsError(f"network namespace {name} is in use by another isolated cluster: `python -m "
                             f"pipeline.engines.cluster down` first")
    remove(network)
    clashes = _routed(network["subnet"])
    if clashes:
        raise HostsError(f"subnet {network['subnet']} overlaps this machine's route(s) {', '.join(clashes)}: pass "
                         f"--subnet with a free private range")
    try:
        _ip("link", "add", network["bridge"], "type", "bridge")
        _ip("addr", "add", f"{network['address']}/{network['prefix']}", "dev", network["bridge"])
        _ip("link", "set", network["bridge"], "up")
        for host in network["hosts"]:
            _ip("netns", "add", host["namespace"])
            _ip("link", "add", host["veth"], "type", "veth", "peer", "name", "eth0", "netns", host["namespace"])
            _ip("link", "set", host["veth"], "master", network["bridge"], "up")
            _ip("addr", "add", f"{host['address']}/{network['prefix']}", "dev", "eth0", namespace=host["namespace"])
            _ip("link", "set", "eth0", "up", namespace=host["namespace"])
            _ip("link", "set", "lo", "up", namespace=host["namespace"])
    except HostsError:
        remove(network)
        raise


def remove(network: Dict[str, Any]) -> None:
    """Deletes the namespaces (their veth ends go with them) and the bridge; what is already gone is skipped."""
    for host in network["hosts"]:
        _ip("netns", "delete", host["namespace"], check=False)
        _ip("link", "delete", host["veth"], check=False)
    _ip("link", "delete", network["bridge"], check=False)


def write_entry(host_dir: str, image: Dict[str, str], shared: Sequence[str], hidden: Sequence[str]) -> str:
    """Writes the script that makes a host's mount namespace and then runs its command; returns its path.

    Args:
        host_dir: the host's own folder (its ``tmp/`` becomes the host's ``/tmp``).
        image: name -> folder of this machine mounted at ``/mnt/<name>`` (Flink, the interpreter, the boot, the
            configuration and the log folder).
        shared: folders the host sees at their own paths (the data and output roots).
        hidden: folders covered with an empty tmpfs (the tfdet cache, the checkout); ``/tmp`` is always replaced.
    """
    tmp = os.path.join(host_dir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    lines = ["#!/bin/sh", "set -e", f"mount -t tmpfs tfdet-image {IMAGE}"]
    for name, source in image.items():
        lines += [f"mkdir -p {IMAGE}/{name}", f"mount --bind {shlex.quote(source)} {IMAGE}/{name}"]
    for index, source in enumerate(shared):
        lines += [f"mkdir -p {IMAGE}/shared/{index}", f"mount --bind {shlex.quote(source)} {IMAGE}/shared/{index}"]
    lines.append(f"mount --bind {shlex.quote(tmp)} /tmp")
    for folder in hidden:
        if not os.path.abspath(folder).startswith("/tmp/"):
            lines.append(f"mount -t tmpfs tfdet-hidden {shlex.quote(folder)}")
    for index, source in enumerate(shared):  # back where the submitter has them, above what was hidden
        lines += [f"mkdir -p {shlex.quote(source)}", f"mount --bind {IMAGE}/shared/{index} {shlex.quote(source)}"]
    lines.append('exec "$@"')
    path = os.path.join(host_dir, "enter.sh")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def wrap(command: Sequence[str], namespace: str, entry: str) -> List[str]:
    """``command`` run on a host: in its network namespace, in a mount namespace of its own made by ``entry``."""
    return ["ip", "netns", "exec", namespace, "unshare", "--mount", "--propagation", "private", "/bin/sh", entry,
            *command]
