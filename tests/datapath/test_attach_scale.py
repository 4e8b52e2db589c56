"""tc attach (agent/datapath/attach.py): idempotent, only our filters and qdisc touched,
and a cost per attach that does not grow with the interfaces in the namespace.

Needs root and bcc (marked privileged by conftest). Everything happens inside one
network namespace this module creates (`mbat-<pid>`) on veth pairs whose both ends
live in it; the namespace is deleted at the end. The programs are two trivial
TC_ACT_OK programs compiled here, not the datapath: what is tested is attaching."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from agent.datapath import attach as tc

NS = f"mbat-{os.getpid()}"
PROGS = ("from_container", "to_container")


def ip(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["ip", *args], input=stdin, text=True, capture_output=True,
                          check=True).stdout


def tc_show(*args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", NS, "tc", *args], text=True,
                          capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    ip("netns", "add", NS)
    try:
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)


@pytest.fixture(scope="module")
def prog_fds() -> Iterator[dict[str, int]]:
    from bcc import BPF

    text = "\n".join(f"int {name}(struct __sk_buff *skb) {{ return 0; }}" for name in PROGS)
    b = BPF(text=text.encode())
    fns = {name: b.load_func(name.encode(), BPF.SCHED_CLS) for name in PROGS}
    yield {name: fn.fd for name, fn in fns.items()}
    b.cleanup()


def veths(netns: str, prefix: str, n: int) -> list[str]:
    """n veth pairs inside netns (both ends there), up; returns the first ends' names."""
    names = [f"{prefix}{i}" for i in range(n)]
    batch = "".join(f"link add {v} type veth peer name {v}p\nlink set {v} up\n"
                    for v in names)
    ip("-n", netns, "-batch", "-", stdin=batch)
    return names


def filters(ifname: str, hook: str) -> list[str]:
    return [line for line in tc_show("filter", "show", "dev", ifname, hook).splitlines()
            if " bpf " in line and " handle " in line]   # not the chain heads


def has_clsact(ifname: str) -> bool:
    return "clsact" in tc_show("qdisc", "show", "dev", ifname)


def test_attaching_twice_is_idempotent_and_detach_removes_what_we_added(
        netns: str, prog_fds: dict[str, int]) -> None:
    (v,) = veths(netns, "idem", 1)
    idx = tc.attach(v, prog_fds, netns)
    assert tc.attach(v, prog_fds, netns) == idx    # clsact exists now: EEXIST is fine
    assert tc.attached(v, netns) == {"ingress": "membrane:from_container",
                                     "egress": "membrane:to_container"}
    assert len(filters(v, "ingress")) == 1 and len(filters(v, "egress")) == 1
    assert tc.detach(v, netns) is True
    assert tc.attached(v, netns) == {} and not has_clsact(v)
    assert tc.detach(v, netns) is False


def test_a_namespace_that_is_gone_is_never_created_by_attach_detach_or_lookups(
        prog_fds: dict[str, int]) -> None:
    from core.errors import DatapathError

    gone = f"{NS}-gone"
    assert tc.detach("lxc0", gone) is False
    assert tc.detach(netns=gone, ifindex=7) is False
    assert tc.attached("lxc0", gone) == {}
    assert tc.ifname_of(7, gone) == ""
    for call in (lambda: tc.attach("lxc0", prog_fds, gone), lambda: tc.ifindex_of("lxc0", gone)):
        with pytest.raises(DatapathError, match=f"network namespace {gone} not found"):
            call()
    assert not os.path.exists(f"/run/netns/{gone}"), "pyroute2 created it (O_CREAT)"


def test_a_clsact_and_filters_that_are_not_ours_are_kept(
        netns: str, prog_fds: dict[str, int]) -> None:
    from pyroute2 import NetNS

    (v,) = veths(netns, "foreign", 1)
    ipr = NetNS(netns)
    try:
        idx = ipr.link_lookup(ifname=v)[0]
        ipr.tc("add", "clsact", idx)
        ipr.tc("add-filter", "bpf", idx, handle=1, fd=prog_fds["from_container"],
               name="someone-else", parent=tc.PARENT_INGRESS, classid=1,
               direct_action=True, prio=7)
    finally:
        ipr.close()
    tc.attach(v, prog_fds, netns)
    assert tc.attached(v, netns)["egress"] == "membrane:to_container"
    assert len(filters(v, "ingress")) == 2
    assert tc.detach(v, netns) is True
    remaining = filters(v, "ingress")
    assert len(remaining) == 1 and "someone-else" in remaining[0]
    assert filters(v, "egress") == [] and has_clsact(v), "not ours: left in place"


def test_attach_sends_no_dump_requests(netns: str, prog_fds: dict[str, int],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (v,) = veths(netns, "nodump", 1)
    calls: list[tuple[str, tuple[Any, ...]]] = []
    real = tc._netlink

    class Recording:
        def __init__(self, ipr: Any) -> None:
            self._ipr = ipr

        def __getattr__(self, name: str) -> Any:
            method = getattr(self._ipr, name)

            def call(*args: Any, **kwargs: Any) -> Any:
                calls.append((name, args))
                return method(*args, **kwargs)
            return call

    @contextmanager
    def recording(ns: str | None) -> Iterator[Any]:
        with real(ns) as ipr:
            yield Recording(ipr)

    monkeypatch.setattr(tc, "_netlink", recording)
    for _ in range(2):
        tc.attach(v, prog_fds, netns)
    names = [name for name, _ in calls]
    assert "get_qdiscs" not in names and "get_links" not in names
    assert not any(name == "tc" and args and str(args[0]).startswith("dump")
                   for name, args in calls)
    monkeypatch.undo()
    tc.detach(v, netns)


def test_the_cost_of_an_attach_does_not_grow_with_the_interfaces_in_the_namespace(
        netns: str, prog_fds: dict[str, int]) -> None:
    def timed(batch: list[str]) -> float:
        t0 = time.perf_counter()
        for v in batch:
            tc.attach(v, prog_fds, netns)
        return (time.perf_counter() - t0) / len(batch)

    first = timed(veths(netns, "sa", 40))   # a namespace of ~90 interfaces
    more = veths(netns, "sb", 360)          # now ~810, 400 of them attached below
    timed(more[:320])
    last = timed(more[320:])
    # Dumping every qdisc per attach made the last 40 several times slower.
    assert last < 2 * first + 0.002, f"first 40: {first * 1e3:.2f} ms/attach, " \
                                     f"last 40: {last * 1e3:.2f} ms/attach"
    assert tc.attached(more[-1], netns) == {"ingress": "membrane:from_container",
                                            "egress": "membrane:to_container"}
