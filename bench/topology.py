"""Throwaway network namespaces for benchmarks: one node namespace, pods routed through it.

    pod netns   eth0 <ip>/32 and <ip6>/128, default via 169.254.1.1 and fe80::1 (static
       |  veth  neighbours = host veth MAC)
    node netns  <host_if>, /32 and /128 routes + static neighbours per pod, forwarding on
                for both families (dual-stack, as the lab: every benchmark can run over
                either family)

This is the lab's shape (lab/) without its controller, so that a benchmark can build
three identical nodes side by side and compare them, with the lab's builder
(lab/netbuilder.py). Every namespace is named `mbrb-<pid>-<tag>-...` and recorded before
it is created, in its node and in this run's list (`remove_leftovers`); veths are created
inside the node namespace so their names never touch the machine's. `destroy()` kills the
processes it started (by pid) and deletes the namespaces it created (by name), which
takes their veths, routes, iptables rules and ipsets with them. Nothing here touches the
root namespace.

Extra endpoints for scale tests are veth pairs with both ends in the node namespace
(`dm<i>` / `dp<i>`; this kernel has no `dummy` driver): `dm<i>` gets an ifindex, a clsact
qdisc and the programs like a pod's veth, but carries no traffic.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, cast

from core.errors import LabError
from lab.netbuilder import NetBuilder, net_command, pod_command

# Workers started by a benchmark inherit its prefix, so they may touch its namespaces.
PREFIX = os.environ.get("MBRB_PREFIX") or f"mbrb-{os.getpid()}"
ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
if not os.path.exists(PYTHON):
    PYTHON = sys.executable
GATEWAY = "169.254.1.1"
GATEWAY6 = "fe80::1"
# IPv6 without duplicate address detection: an address works the moment it is added.
NO_DAD = {"net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"}
PIN_ROOT = f"/sys/fs/bpf/{PREFIX}"
# Every namespace this process created, in order: what `remove_leftovers` deletes.
CREATED: list[str] = []


def sh(*args: str, check: bool = True, input: str | None = None,
       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(args), text=True, capture_output=True, input=input,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:8])}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def own(ns: str) -> str:
    """Guard for every command run inside a namespace: it must be one of ours, so an
    iptables/ipset/tc command can never land in the root or someone else's namespace."""
    if not ns.startswith(PREFIX + "-"):
        raise ValueError(f"refusing to touch namespace {ns!r}: not created by this run")
    return ns


def pod_cmd(ns: str, *args: str) -> list[str]:
    """The command line running args in one of our namespaces as a pod's process (it
    remounts /sys, fine for pods and iptables; what needs /sys/fs/bpf uses `nsenter_cmd`)."""
    return pod_command(own(ns), args)


def in_ns(ns: str, *args: str, check: bool = True, input: str | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs a command inside one of our namespaces (`pod_cmd`) to completion."""
    return sh(*pod_cmd(ns, *args), check=check, input=input, timeout=timeout)


def nsenter_cmd(ns: str, *args: str) -> list[str]:
    """Enter only the network namespace (as the agent does): bpffs pins stay visible."""
    return net_command(own(ns), args)


def _record(name: str) -> None:
    CREATED.append(own(name))


def remove_leftovers() -> None:
    """Deletes every namespace this process created that a crash left behind (by name),
    and the pin root."""
    with NetBuilder() as net:
        for name in reversed(CREATED):
            try:
                net.delete(name)
            except LabError as err:   # say so, and remove the others
                print(f"bench: {err}", file=sys.stderr)
    CREATED.clear()
    cleanup_pins()


@dataclass
class Pod:
    name: str
    ns: str
    ip: str
    host_if: str
    ifindex: int = 0
    ip6: str = ""

    def address(self, family: int) -> str:
        return self.ip6 if family == 6 else self.ip


@dataclass
class Node:
    """One node namespace with its pods. `subnet` keeps the addresses of nodes built
    side by side apart (10.<subnet>.0.<10+i> and fd00:<subnet>::<10+i>), which keeps any
    mix-up visible."""

    tag: str
    pod_names: Sequence[str] = ("client", "server")
    subnet: int = 210
    name: str = field(init=False)
    pods: dict[str, Pod] = field(default_factory=dict)
    dummies: list[tuple[str, int]] = field(default_factory=list)   # (ifname, ifindex)
    _namespaces: list[str] = field(default_factory=list)
    _procs: list[subprocess.Popen[str]] = field(default_factory=list)
    _net: NetBuilder = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"{PREFIX}-{self.tag}-node"
        self._net = NetBuilder(record=self._record)

    def _record(self, name: str) -> None:
        _record(name)
        self._namespaces.append(name)

    # -- build / destroy ------------------------------------------------------------
    def build(self) -> "Node":
        try:
            self._net.create(own(self.name), {"net.ipv4.ip_forward": "1",
                                              "net.ipv6.conf.all.forwarding": "1", **NO_DAD})
            for i, pod in enumerate(self.pod_names):
                self._add_pod(pod, f"10.{self.subnet}.0.{10 + i}", f"lxc{i}",
                              f"fd00:{self.subnet}::{10 + i}")
        except BaseException:
            self.destroy()
            raise
        return self

    def _add_pod(self, pod: str, ip: str, host_if: str, ip6: str) -> None:
        ns = own(f"{PREFIX}-{self.tag}-{pod}")
        net = self._net
        net.create(ns, NO_DAD)
        host = net.veth(self.name, host_if, "eth0", peer_netns=ns)
        pod_mac = net.link(ns, "eth0").mac
        net.address(ns, "eth0", f"{ip}/32")
        net.address(ns, "eth0", f"{ip6}/128")
        net.up(ns, "eth0")
        net.route(ns, GATEWAY, dev="eth0")
        net.route(ns, "default", via=GATEWAY, dev="eth0")
        net.neighbour(ns, "eth0", GATEWAY, host.mac)
        net.route(ns, "default", via=GATEWAY6, dev="eth0")
        net.neighbour(ns, "eth0", GATEWAY6, host.mac)
        net.up(self.name, host_if)
        net.route(self.name, f"{ip}/32", dev=host_if)
        net.neighbour(self.name, host_if, ip, pod_mac)
        net.route(self.name, f"{ip6}/128", dev=host_if)
        net.neighbour(self.name, host_if, ip6, pod_mac)
        self.pods[pod] = Pod(pod, ns, ip, host_if, host.index, ip6)

    def add_dummies(self, n: int) -> list[tuple[str, int]]:
        """n idle endpoints `dm<i>` in the node namespace (peers `dp<i>` beside them)."""
        start = len(self.dummies)
        added = []
        for i in range(start, start + n):
            end = self._net.veth(self.name, f"dm{i}", f"dp{i}")
            self._net.up(self.name, end.name)
            added.append((end.name, end.index))
        self.dummies += added
        return added

    def spawn(self, pod: str, *args: str) -> subprocess.Popen[str]:
        """A long-running process in a pod's namespace; destroy() kills it by pid."""
        p = subprocess.Popen(pod_cmd(self.pods[pod].ns, *args),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._procs.append(p)
        return p

    def track(self, p: subprocess.Popen[str]) -> subprocess.Popen[str]:
        self._procs.append(p)
        return p

    def destroy(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._procs.clear()
        failed: list[LabError] = []
        for ns in reversed(self._namespaces):
            try:
                self._net.delete(ns)
            except LabError as err:   # the others still go; this one is reported
                failed.append(err)
        self._namespaces.clear()
        self._net.close()
        if failed:
            raise failed[0]


def cleanup_pins() -> None:
    shutil.rmtree(PIN_ROOT, ignore_errors=True)


if "MBRB_PREFIX" not in os.environ:
    # The benchmark's own process (not a worker, which shares its pin root) removes the
    # pin root it used when it exits, however it exits.
    atexit.register(cleanup_pins)


def pin_dir(name: str) -> str:
    return f"{PIN_ROOT}/{name}"


def python_in_pod(*args: str) -> list[str]:
    """The pod-side traffic tool (stdlib only, so it starts fast in any namespace)."""
    return [PYTHON, "-u", str(ROOT / "bench" / "traffic.py"), *args]


def worker_in_node(node: str, module: str, *args: str) -> list[str]:
    """A bench worker that runs the agent's code inside a node namespace, as the agent
    does (nsenter --net keeps /sys/fs/bpf), from the repository root."""
    return nsenter_cmd(node, PYTHON, "-m", module, *args)


def run_worker(node: str, module: str, *args: str, timeout: float = 600) -> dict[str, object]:
    """Runs a worker to completion; its last stdout line is its JSON result."""
    env = {**os.environ, "MBRB_PREFIX": PREFIX}
    r = subprocess.run(worker_in_node(node, module, *args), text=True, capture_output=True,
                       cwd=ROOT, timeout=timeout, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"worker {module} {' '.join(args)} failed (exit {r.returncode}):"
                           f"\n{r.stderr[-3000:]}")
    return cast(dict[str, object], json.loads(lines[-1]))
