"""lab/netbuilder.py against the kernel: namespaces it makes and removes by name, never
one it was only asked to open, and wires that carry packets. Every namespace here is
mbnb-<pid>-*, recorded before it exists and deleted by name in a finalizer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from core.errors import LabError
from lab.netbuilder import (NamespaceExists, NamespaceNotFound, NetBuilder, call_in, exists,
                            net_command, pod_command, sysctl)
from tests.lab.conftest import needs_root

pytestmark = pytest.mark.privileged

PREFIX = f"mbnb-{os.getpid()}"


@pytest.fixture
def made() -> Iterator[list[str]]:
    """The namespaces a test's builder recorded; all deleted afterwards, by name."""
    needs_root()
    names: list[str] = []
    yield names
    with NetBuilder() as net:
        for name in reversed(names):
            net.delete(name)
    assert not [n for n in names if exists(n)]


def ip_json(netns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", netns, *args], capture_output=True, text=True,
                          check=True).stdout


def test_create_records_the_name_first_and_brings_lo_up(made: list[str]) -> None:
    seen_before: list[bool] = []

    def record(name: str) -> None:
        seen_before.append(exists(name))
        made.append(name)

    with NetBuilder(record=record) as net:
        net.create(f"{PREFIX}-a")
    assert made == [f"{PREFIX}-a"] and seen_before == [False]
    assert "state UNKNOWN" in ip_json(f"{PREFIX}-a", "link", "show", "lo")


def test_an_existing_name_is_refused_and_not_recorded(made: list[str]) -> None:
    with NetBuilder(record=made.append) as net:
        net.create(f"{PREFIX}-b")
        with pytest.raises(NamespaceExists):
            net.create(f"{PREFIX}-b")
    assert made == [f"{PREFIX}-b"]


def test_opening_a_missing_namespace_never_creates_it(made: list[str]) -> None:
    gone = f"{PREFIX}-never"
    with NetBuilder(record=made.append) as net:
        with pytest.raises(NamespaceNotFound):
            net.up(gone, "lo")
        with pytest.raises(NamespaceNotFound):
            net.create(f"{PREFIX}-c")
            net.veth(f"{PREFIX}-c", "v0", "eth0", peer_netns=gone)
        net.delete(gone)   # a name that is not there: nothing to do
    with pytest.raises(NamespaceNotFound):
        call_in(gone, lambda: None)
    assert not exists(gone) and not Path("/run/netns", gone).exists()
    assert made == [f"{PREFIX}-c"]


def test_a_veth_joins_two_namespaces_and_carries_packets(made: list[str]) -> None:
    a, b = f"{PREFIX}-pa", f"{PREFIX}-pb"
    with NetBuilder(record=made.append) as net:
        net.create(a)
        net.create(b)
        end = net.veth(a, "lxc0", "eth0", peer_netns=b, mac="02:00:00:00:00:01",
                       peer_mac="02:00:00:00:00:02")
        assert end.mac == "02:00:00:00:00:01" and net.links(a)["lxc0"] == end.index
        assert net.link(b, "eth0").mac == "02:00:00:00:00:02"
        assert "lxc0" not in net.links(b) and "eth0" not in net.links(a)
        net.address(a, "lxc0", "10.99.0.1/32")
        net.address(b, "eth0", "10.99.0.2/32")
        net.up(a, "lxc0")
        net.up(b, "eth0")
        net.route(a, "10.99.0.2", dev="lxc0")
        net.route(b, "default", via="10.99.0.1", dev="eth0", onlink=True)
        net.neighbour(b, "eth0", "10.99.0.1", end.mac)
        with pytest.raises(LabError, match="File exists"):
            net.route(a, "10.99.0.2", dev="lxc0")
        net.route(a, "10.99.0.2", dev="lxc0", replace=True)
    assert "10.99.0.1 dev eth0 lladdr 02:00:00:00:00:01 PERMANENT" in ip_json(b, "neigh")
    assert "default via 10.99.0.1 dev eth0 onlink" in ip_json(b, "route")
    ping = subprocess.run(pod_command(b, ["ping", "-c", "1", "-W", "2", "10.99.0.1"]),
                          capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_sysctls_and_callables_apply_to_the_namespace_alone(made: list[str]) -> None:
    ns = f"{PREFIX}-s"
    before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    with NetBuilder(record=made.append) as net:
        net.create(ns, {"net.ipv4.ip_forward": "1"})
    assert call_in(ns, Path("/proc/sys/net/ipv4/ip_forward").read_text).strip() == "1"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == before
    sysctl(ns, {"net.ipv4.ip_forward": "0"})
    assert call_in(ns, Path("/proc/sys/net/ipv4/ip_forward").read_text).strip() == "0"
    with pytest.raises(ZeroDivisionError):
        call_in(ns, lambda: 1 // 0)


def test_commands_enter_the_namespace(made: list[str]) -> None:
    ns = f"{PREFIX}-x"
    with NetBuilder(record=made.append) as net:
        net.create(ns)
    script = "import socket; print(socket.if_nameindex())"
    for command in (pod_command, net_command):
        out = subprocess.run(command(ns, [sys.executable, "-c", script]),
                             capture_output=True, text=True, check=True).stdout
        assert out.strip() == "[(1, 'lo')]", command.__name__


def test_bridges_take_ports(made: list[str]) -> None:
    ns = f"{PREFIX}-br"
    with NetBuilder(record=made.append) as net:
        net.create(ns)
        net.bridge(ns, "br0")
        net.veth(ns, "port0", "peer0")
        net.attach_to_bridge(ns, "port0", "br0")
        net.up(ns, "br0", "port0")
        net.down(ns, "port0")
    assert "master br0" in ip_json(ns, "link", "show", "port0")
    assert "state DOWN" in ip_json(ns, "link", "show", "port0")
