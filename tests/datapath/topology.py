"""Throwaway network namespaces for datapath tests: a node, pods, an external host.

    pod netns  eth0 10.200.<n>.1x/32 --veth-- lxc<i> (node netns)   ... node forwards
    ext netns  eth0 172.31.250.2/24, lo 172.31.251.10 --veth-- ext0 172.31.250.1 (node)
    node: lo 10.200.255.1/32 (the node's own address, seen by pods as identity host)

Pods route everything via 169.254.1.1 (a static neighbour entry for the host veth's MAC),
the node has a /32 route and static neighbour per pod. Nothing links to the machine's
real network. Every namespace is named mbrt-<pid>-<tag>-*; veths are created inside the
node namespace, so their names never touch the host's. destroy() deletes exactly the
namespaces this object created (which takes their veths with them) and kills the
servers it started, by pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

NETTOOL = str(Path(__file__).with_name("nettool.py"))
SERVER_PORTS = (80, 443, 5353, 8080, 9000)
NODE_IP = "10.200.255.1"
EXT_IP = "172.31.250.2"
EXT2_IP = "172.31.251.10"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, text=True, capture_output=True)


def link_info(ns: str, ifname: str) -> dict[str, object]:
    out = sh("ip", "-n", ns, "-j", "link", "show", ifname).stdout
    return json.loads(out)[0]  # type: ignore[no-any-return]


@dataclass
class Pod:
    name: str
    ns: str
    ip: str
    host_if: str
    ifindex: int = 0


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

    def _netns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self._namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def build(self) -> "Topology":
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise
        return self

    def _build(self) -> None:
        self._netns(self.node)
        sh("ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "-n", self.node, "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        for i in range(self.npods):
            pod = Pod(name=f"p{i}", ns=f"{self.prefix}-p{i}",
                      ip=f"10.200.{self.subnet}.{10 + i}", host_if=f"lxc{i}")
            self._netns(pod.ns)
            sh("ip", "-n", self.node, "link", "add", pod.host_if, "type", "veth", "peer",
               "name", "eth0", "netns", pod.ns)
            host_mac = str(link_info(self.node, pod.host_if)["address"])
            pod_mac = str(link_info(pod.ns, "eth0")["address"])
            pod.ifindex = int(link_info(self.node, pod.host_if)["ifindex"])  # type: ignore
            sh("ip", "-n", pod.ns, "addr", "add", f"{pod.ip}/32", "dev", "eth0")
            sh("ip", "-n", pod.ns, "link", "set", "eth0", "up")
            sh("ip", "-n", pod.ns, "route", "add", "169.254.1.1", "dev", "eth0",
               "scope", "link")
            sh("ip", "-n", pod.ns, "route", "add", "default", "via", "169.254.1.1",
               "dev", "eth0")
            sh("ip", "-n", pod.ns, "neigh", "add", "169.254.1.1", "lladdr", host_mac,
               "dev", "eth0", "nud", "permanent")
            sh("ip", "-n", self.node, "link", "set", pod.host_if, "up")
            sh("ip", "-n", self.node, "route", "add", f"{pod.ip}/32", "dev", pod.host_if)
            sh("ip", "-n", self.node, "neigh", "add", pod.ip, "lladdr", pod_mac, "dev",
               pod.host_if, "nud", "permanent")
            self.pods.append(pod)
        if self.external:
            self._netns(self.ext)
            sh("ip", "-n", self.node, "link", "add", "ext0", "type", "veth", "peer",
               "name", "eth0", "netns", self.ext)
            sh("ip", "-n", self.node, "addr", "add", "172.31.250.1/24", "dev", "ext0")
            sh("ip", "-n", self.node, "link", "set", "ext0", "up")
            sh("ip", "-n", self.ext, "addr", "add", f"{EXT_IP}/24", "dev", "eth0")
            sh("ip", "-n", self.ext, "addr", "add", f"{EXT2_IP}/32", "dev", "lo")
            sh("ip", "-n", self.ext, "link", "set", "eth0", "up")
            sh("ip", "-n", self.ext, "route", "add", "default", "via", "172.31.250.1")
            sh("ip", "-n", self.node, "route", "add", "172.31.251.0/24", "via", EXT_IP)
        for ns in [p.ns for p in self.pods] + ([self.ext] if self.external else []):
            self.spawn(ns, "serve", "both", *map(str, SERVER_PORTS), wait_ready=True)

    def spawn(self, ns: str, *args: str, wait_ready: bool = False,
              interactive: bool = False) -> subprocess.Popen[str]:
        """interactive: the process reads commands from a stdin pipe (nettool conn)."""
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-u", NETTOOL,
                              *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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
        for ns in reversed(self._namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self._namespaces.clear()

    # --- traffic -------------------------------------------------------------

    def run(self, ns: str, *args: str, timeout: float = 10) -> str:
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, NETTOOL, *args],
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


def wait_for(pred, timeout: float = 3.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())
