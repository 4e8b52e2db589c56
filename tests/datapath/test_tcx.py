"""TCX links (agent/datapath/tcx.py, hooks.py), with real packets between namespaces
this module creates.

- attach_mode "tcx" puts both programs on a pod's veth as pinned TCX links (no clsact
  qdisc), and they enforce;
- the links outlive the agent (pins): a connection keeps flowing while no agent runs and
  across a restart, whose re-attach swaps the programs in the same links;
- switching modes over the same pins leaves exactly one hook of ours; detaching removes
  only our links: a link someone else made on the same device stays;
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator

import pytest

from agent.datapath import attach as clsact
from agent.datapath import bpfsys, tcx
from agent.policy.mapstate import Direction, EndpointPolicy, PolicyKey
from tests.datapath.conftest import IDS, attach_all, cluster_maps, make_datapath, own_topology
from tests.datapath.topology import Topology

IN = Direction.INGRESS
ALLOW_9000 = EndpointPolicy(ingress_enforced=True,
                            entries=frozenset({PolicyKey(IN, IDS["p0"], 6, 9000, 9000)}))


@pytest.fixture(scope="module")
def topo(request: pytest.FixtureRequest) -> Iterator[Topology]:
    yield own_topology(request, "x", npods=2, subnet=4, external=False)


def _lines(proc: Any) -> list[str]:
    try:
        data = proc.stdout.read()
    except (BlockingIOError, TypeError):
        return []
    return (data or "").split()


def _link_ids(pin_dir: str, ifindex: int) -> dict[str, int]:
    out = {}
    for _, _, hook in tcx.HOOKS:
        fd = bpfsys.obj_get(tcx.link_path(pin_dir, ifindex, hook))
        try:
            info = bpfsys.link_info(fd)
            assert info.type == bpfsys.BPF_LINK_TYPE_TCX and info.ifindex == ifindex
            out[hook] = info.id
        finally:
            os.close(fd)
    return out


def test_tcx_links_enforce_outlive_the_agent_and_are_updated_in_place(topo: Topology) -> None:
    p0, p1 = topo.pods
    dp1: Any = make_datapath(topo, "tcx", attach_mode="tcx")
    dp2: Any = None
    stream = None
    try:
        dp1.start()
        dp1.sync_cluster_maps(cluster_maps(topo))
        slots = attach_all(topo, dp1)
        assert dp1.attach_mode == "tcx"
        for p in (p0, p1):
            assert tcx.attached(dp1.pin_dir, p.ifindex) == {
                "ingress": "membrane:from_container", "egress": "membrane:to_container"}
            assert clsact.attached(p.host_if, topo.node) == {}, "a clsact filter as well"
        dp1.update_endpoint(slots["p1"], ALLOW_9000)
        dp1.update_endpoint(slots["p0"], EndpointPolicy(ingress_enforced=True))
        assert topo.tcp(p0.ns, p1.ip, 80, 0.5) == "timeout", "TCX program does not enforce"
        stream = topo.spawn(p0.ns, "stream", p1.ip, "9000")
        assert stream.stdout is not None
        assert stream.stdout.readline().strip() == "connected"
        before = _link_ids(dp1.pin_dir, p1.ifindex)

        dp1.close()                  # the agent goes away: links and tail calls pinned
        del dp1
        os.set_blocking(stream.stdout.fileno(), False)
        time.sleep(0.3)
        _lines(stream)
        time.sleep(0.5)
        assert _lines(stream), "connection stalled while no agent was running"
        assert topo.tcp(p0.ns, p1.ip, 80, 0.5) == "timeout", "unenforced without an agent"

        dp2 = make_datapath(topo, "tcx", attach_mode="tcx")
        dp2.start()
        for s in slots.values():
            dp2.reattach(s)
        assert _link_ids(dp2.pin_dir, p1.ifindex) == before, "links re-made, not updated"
        _lines(stream)
        time.sleep(0.5)
        assert _lines(stream), "open connection cut by the restart"
        assert topo.tcp(p0.ns, p1.ip, 80, 0.5) == "timeout"
    finally:
        if stream is not None:
            topo.stop(stream)
        if dp2 is not None:
            dp2.close(unpin=True)
    for p in (p0, p1):
        assert not os.path.exists(tcx.link_path(dp2.pin_dir, p.ifindex, "ingress"))
    assert topo.tcp(p0.ns, p1.ip, 80) == "ok", "a program stayed attached after cleanup"


def test_switching_modes_leaves_one_hook_and_detach_spares_foreign_links(
        topo: Topology) -> None:
    p0, p1 = topo.pods
    foreign = -1
    dp: Any = make_datapath(topo, "modes", attach_mode="tc")
    try:
        dp.start()
        dp.sync_cluster_maps(cluster_maps(topo))
        slots = attach_all(topo, dp)
        assert clsact.attached(p1.host_if, topo.node) == {
            "ingress": "membrane:from_container", "egress": "membrane:to_container"}
        assert tcx.attached(dp.pin_dir, p1.ifindex) == {}
        dp.close()
        dp = make_datapath(topo, "modes", attach_mode="tcx")   # restarted in the other mode
        dp.start()
        dp.add_endpoint(slots["p1"], EndpointPolicy(ingress_enforced=True))
        assert clsact.attached(p1.host_if, topo.node) == {}, "the clsact filter stayed"
        assert set(tcx.attached(dp.pin_dir, p1.ifindex)) == {"ingress", "egress"}
        assert topo.tcp(p0.ns, p1.ip, 80, 0.5) == "timeout"

        # A link we did not pin (another tool's) on the same device: another program
        # (the kernel refuses one program twice on a hook), here one of our full ones.
        pass_fd = dp._progs["to_container_full"].fd
        foreign = _foreign_link(topo, pass_fd, p1)
        dp.remove_endpoint(slots["p1"].endpoint_id)
        assert tcx.attached(dp.pin_dir, p1.ifindex) == {}
        assert bpfsys.link_info(foreign).ifindex == p1.ifindex, "a foreign link was detached"
    finally:
        if foreign >= 0:
            os.close(foreign)
        dp.close(unpin=True)


def _foreign_link(topo: Topology, prog_fd: int, pod: Any) -> int:
    return tcx._in_netns(topo.node, lambda: bpfsys.link_create_tcx(
        prog_fd, pod.ifindex, bpfsys.BPF_TCX_EGRESS))
