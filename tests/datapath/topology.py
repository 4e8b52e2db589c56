"""Throwaway network namespaces for datapath tests: a node, pods, an external host.
Dual-stack: every address below has an IPv6 twin.

    pod netns  eth0 10.200.<n>.1x/32, fd00:200:<n>::1x/128 --veth-- lxc<i> (node netns)
    ext netns  eth0 172.31.250.2/24, fd00:31:250::2/64; lo 172.31.251.10, fd00:31:251::10
               --veth-- ext0 172.31.250.1, fd00:31:250::1 (node)
    node: lo 10.200.255.1/32, fd00:200:ff::1/128 (the node's own addresses, seen by
          pods as identity host)

Pods route everything via 169.254.1.1 and fe80::1 (static neighbour entries for the host
veth's MAC), the node has a /32 and a /128 route and static neighbours per pod; no
duplicate address detection anywhere, so addresses work at once. Nothing links to the machine's
real network. Built with lab/netbuilder.py: every namespace is named
mbrt-<pid>-<tag>-* and recorded before it is created; veths are created inside the node
namespace, so their names never touch the host's. destroy() deletes exactly the
namespaces this object recorded (which takes their veths with them) and kills the
servers it started, by pid.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.errors import LabError
from lab.netbuilder import NetBuilder, pod_command

NETTOOL = str(Path(__file__).with_name("nettool.py"))
SERVER_PORTS = (80, 443, 5353, 8080, 9000)
NODE_IP = "10.200.255.1"
EXT_IP = "172.31.250.2"
EXT2_IP = "172.31.251.10"
EXT_GATEWAY = "172.31.250.1"
POD_GATEWAY = "169.254.1.1"
NODE_IP6 = "fd00:200:ff::1"
EXT_IP6 = "fd00:31:250::2"
EXT2_IP6 = "fd00:31:251::10"
EXT_GATEWAY6 = "fd00:31:250::1"
POD_GATEWAY6 = "fe80::1"
# IPv6 on, without duplicate address detection (set before any link exists).
NO_DAD = {"net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"}


@dataclass
class Pod:
    name: str
    ns: str
    ip: str
    host_if: str
    ifindex: int = 0
    ip6: str = ""


@dataclass
class Topology:
    tag: str
    npods: int = 3
    subnet: int = 0
    external: bool = True
    prefix: str = field(init=False)
    node: str = field(init=False)
    ext: str = field(init=False)
    pods: list[Pod] = field(default_factory=list)
    _namespaces: list[str] = field(default_factory=list)
    _procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefix = f"mbrt-{os.getpid()}-{self.tag}"
        self.node = f"{self.prefix}-node"
        self.ext = f"{self.prefix}-ext"

    # --- build / destroy ---------------------------------------------------

    def build(self) -> "Topology":
        try:
            with NetBuilder(record=self._namespaces.append) as net:
                self._build(net)
            for ns in [p.ns for p in self.pods] + ([self.ext] if self.external else []):
                self.spawn(ns, "serve", "both", *map(str, SERVER_PORTS), wait_ready=True)
        except BaseException:
            self.destroy()
            raise
        return self

    def _build(self, net: NetBuilder) -> None:
        net.create(self.node, {"net.ipv4.ip_forward": "1",
                               "net.ipv6.conf.all.forwarding": "1", **NO_DAD})
        net.address(self.node, "lo", f"{NODE_IP}/32")
        net.address(self.node, "lo", f"{NODE_IP6}/128")
        for i in range(self.npods):
            pod = Pod(name=f"p{i}", ns=f"{self.prefix}-p{i}",
                      ip=f"10.200.{self.subnet}.{10 + i}", host_if=f"lxc{i}",
                      ip6=str(ipaddress.ip_address(f"fd00:200:{self.subnet:x}::{10 + i:x}")))
            net.create(pod.ns, NO_DAD)
            host = net.veth(self.node, pod.host_if, "eth0", peer_netns=pod.ns)
            pod_mac = net.link(pod.ns, "eth0").mac
            pod.ifindex = host.index
            net.address(pod.ns, "eth0", f"{pod.ip}/32")
            net.address(pod.ns, "eth0", f"{pod.ip6}/128")
            net.up(pod.ns, "eth0")
            net.route(pod.ns, POD_GATEWAY, dev="eth0")
            net.route(pod.ns, "default", via=POD_GATEWAY, dev="eth0")
            net.neighbour(pod.ns, "eth0", POD_GATEWAY, host.mac)
            net.route(pod.ns, "default", via=POD_GATEWAY6, dev="eth0")
            net.neighbour(pod.ns, "eth0", POD_GATEWAY6, host.mac)
            net.up(self.node, pod.host_if)
            net.route(self.node, f"{pod.ip}/32", dev=pod.host_if)
            net.neighbour(self.node, pod.host_if, pod.ip, pod_mac)
            net.route(self.node, f"{pod.ip6}/128", dev=pod.host_if)
            net.neighbour(self.node, pod.host_if, pod.ip6, pod_mac)
            self.pods.append(pod)
        if self.external:
            net.create(self.ext, NO_DAD)
            net.veth(self.node, "ext0", "eth0", peer_netns=self.ext)
            net.address(self.node, "ext0", f"{EXT_GATEWAY}/24")
            net.address(self.node, "ext0", f"{EXT_GATEWAY6}/64")
            net.up(self.node, "ext0")
            net.address(self.ext, "eth0", f"{EXT_IP}/24")
            net.address(self.ext, "eth0", f"{EXT_IP6}/64")
            net.address(self.ext, "lo", f"{EXT2_IP}/32")
            net.address(self.ext, "lo", f"{EXT2_IP6}/128")
            net.up(self.ext, "eth0")
            net.route(self.ext, "default", via=EXT_GATEWAY)
            net.route(self.ext, "default", via=EXT_GATEWAY6)
            net.route(self.node, "172.31.251.0/24", via=EXT_IP)
            net.route(self.node, "fd00:31:251::/64", via=EXT_IP6)

    def spawn(self, ns: str, *args: str, wait_ready: bool = False,
              interactive: bool = False) -> subprocess.Popen[str]:
        """interactive: the process reads commands from a stdin pipe (nettool conn)."""
        p = subprocess.Popen(pod_command(ns, [sys.executable, "-u", NETTOOL, *args]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.PIPE if interactive else None, text=True)
        self._procs.append(p)
        if wait_ready:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"server in {ns} did not start: {line!r} "
                                   f"{p.stderr.read() if p.stderr else ''}")
        return p

    def stop(self, p: subprocess.Popen[str]) -> None:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=5)

    def destroy(self) -> None:
        for p in self._procs:
            try:
                self.stop(p)
            except Exception:
                pass
        self._procs.clear()
        failed: list[LabError] = []
        with NetBuilder() as net:
            for ns in reversed(self._namespaces):
                try:
                    net.delete(ns)
                except LabError as err:   # the others still go; this one is reported
                    failed.append(err)
        self._namespaces.clear()
        if failed:
            raise failed[0]

    # --- traffic -------------------------------------------------------------

    def run(self, ns: str, *args: str, timeout: float = 10) -> str:
        r = subprocess.run(pod_command(ns, [sys.executable, NETTOOL, *args]),
                           text=True, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"nettool {args} in {ns} failed: {r.stderr}")
        return r.stdout.strip()

    def tcp(self, src: str, ip: str, port: int, timeout: float = 1.0) -> str:
        return self.run(src, "tcp", ip, str(port), str(timeout))

    def udp(self, src: str, ip: str, port: int, timeout: float = 1.0) -> str:
        return self.run(src, "udp", ip, str(port), str(timeout))

    def ping(self, src: str, ip: str, timeout: float = 1.0) -> str:
        return self.run(src, "ping", ip, str(timeout))


def wait_for(pred: Callable[[], object], timeout: float = 3.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())
