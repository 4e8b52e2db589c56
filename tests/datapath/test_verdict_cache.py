"""The forward verdict cached in conntrack (bpf/lib/revision.h): established packets pass
without policy lookups while their entry carries the current policy revision; every
write that can change a verdict bumps the revision, so the next packet is decided again.
Conntrack expiry is refreshed about once a second, not per packet.

Each test drives one TCP connection packet by packet (`nettool conn`: one line per
send, "ok" when its echo returns)."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from agent.datapath import layout
from agent.policy.mapstate import ClusterMaps, Direction, EndpointPolicy, PolicyKey
from observe.events import EventType
from observe.reasons import DropReason
from tests.datapath.conftest import IDS, Env, cluster_maps
from tests.datapath.topology import Topology, wait_for

TCP = 6
IN, EG = Direction.INGRESS, Direction.EGRESS
PORT = 9000


def ingress(*keys: PolicyKey) -> EndpointPolicy:
    return EndpointPolicy(ingress_enforced=True, entries=frozenset(keys))


class Conn:
    """One TCP connection from a pod, sending a line (one small packet) on demand."""

    def __init__(self, topo: Topology, ns: str, ip: str, port: int,
                 timeout: float = 0.5) -> None:
        self.topo = topo
        self.proc: subprocess.Popen[str] = topo.spawn(ns, "conn", ip, str(port), str(timeout),
                                                      interactive=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline().strip()
        assert line == "connected", line

    def send(self) -> str:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write("x\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.topo.stop(self.proc)


def ct_entry(env: Env, pod: str, direction: Direction) -> Any:
    """The raw conntrack value (layout.ct_entry) of the pod's connection to/from PORT,
    opened in `direction`. Keys hold the tuple as it leaves the pod: PORT is the remote
    port of a connection the pod opened, its own port of one opened to it."""
    ep = env.slot(pod).endpoint_id
    inbound = direction == Direction.INGRESS
    found = [v for k, v in env.dp._maps["conntrack"].items()  # type: ignore[attr-defined]
             if k.endpoint_id == ep and k.direction == int(Direction.EGRESS)
             and (k.sport if inbound else k.dport) == PORT and k.protocol == TCP
             and bool(v.flags & layout.CT_F_INGRESS_FIRST) == inbound]
    assert len(found) == 1, found
    return found[0]


def decisions(env: Env, pod: str) -> int:
    """Sum of the pod's policy entry counters: allow decisions, not packets."""
    return sum(e.packets for e in env.dp.dump_policy(env.slot(pod).endpoint_id))  # type: ignore[attr-defined]


def revision(env: Env) -> int:
    return int(env.dp.policy_revision())  # type: ignore[attr-defined]


def policy_drops(evs: list[Any], env: Env, pod: str) -> list[Any]:
    ep = env.slot(pod).endpoint_id
    return [e for e in evs if e.type == EventType.DROP and e.endpoint_id == ep
            and e.dst_port == PORT]


def test_established_packets_pass_on_the_cached_verdict_without_policy_decisions(
        clean: Env) -> None:
    clean.set_policy("p1", ingress(PolicyKey(IN, IDS["p0"], TCP, PORT, PORT)))
    c = Conn(clean.topo, clean.ns("p0"), clean.ip("p1"), PORT)
    try:
        assert c.send() == "ok"
        assert ct_entry(clean, "p1", IN).policy_rev == revision(clean) != 0
        before = decisions(clean, "p1")
        assert before >= 1                      # the SYN was decided
        for _ in range(10):
            assert c.send() == "ok"
        assert decisions(clean, "p1") == before  # ten more packets, no decision
        # a bump (here: an unchanged ipcache rewritten) makes the next packet decide
        clean.dp.sync_cluster_maps(cluster_maps(clean.topo))  # type: ignore[attr-defined]
        assert c.send() == "ok"
        assert decisions(clean, "p1") == before + 1
        assert ct_entry(clean, "p1", IN).policy_rev == revision(clean)
        verdicts = [e for e in clean.drain(0.1) if e.type == EventType.POLICY_VERDICT
                    and e.endpoint_id == clean.slot("p1").endpoint_id]
        assert len(verdicts) == 1               # one per connection, not per decision
    finally:
        c.close()


def test_cached_connection_is_cut_at_the_next_packet_after_its_allow_is_deleted(
        clean: Env) -> None:
    allow = ingress(PolicyKey(IN, IDS["p0"], TCP, PORT, PORT))
    clean.set_policy("p1", allow)
    c = Conn(clean.topo, clean.ns("p0"), clean.ip("p1"), PORT)
    try:
        for _ in range(3):
            assert c.send() == "ok"
        rev = revision(clean)
        assert ct_entry(clean, "p1", IN).policy_rev == rev      # cached
        clean.drain()
        clean.set_policy("p1", ingress())                       # the allow is deleted
        assert revision(clean) > rev
        assert c.send() == "timeout"                            # the very next packet
        assert c.send() == "timeout"
        evs = clean.drain(0.1)
        drops = policy_drops(evs, clean, "p1")
        assert len(drops) >= 2, evs                             # each denied packet
        assert all(e.drop_reason == DropReason.POLICY_DENIED and e.src_identity == IDS["p0"]
                   for e in drops)
        # an established connection gets drops, no new verdict records
        assert not [e for e in evs if e.type == EventType.POLICY_VERDICT
                    and e.endpoint_id == clean.slot("p1").endpoint_id]
        # the denied entry was not re-stamped; restoring the allow lets it flow again
        assert ct_entry(clean, "p1", IN).policy_rev == rev
        clean.set_policy("p1", allow)
        assert wait_for(lambda: c.send() == "ok", 5.0)
    finally:
        c.close()


def test_cached_connection_is_cut_when_the_peer_gets_an_identity_not_allowed(
        clean: Env) -> None:
    clean.set_policy("p1", ingress(PolicyKey(IN, IDS["p0"], TCP, PORT, PORT)))
    c = Conn(clean.topo, clean.ns("p0"), clean.ip("p1"), PORT)
    try:
        for _ in range(3):
            assert c.send() == "ok"
        rev = revision(clean)
        assert ct_entry(clean, "p1", IN).policy_rev == rev      # cached
        clean.drain()
        relabelled = dict(cluster_maps(clean.topo).ipcache)
        relabelled[f"{clean.ip('p0')}/32"] = 1999               # p0 relabelled
        clean.dp.sync_cluster_maps(ClusterMaps(ipcache=relabelled, cidrs={}))  # type: ignore[attr-defined]
        assert revision(clean) > rev
        assert c.send() == "timeout"
        drops = policy_drops(clean.drain(0.1), clean, "p1")
        assert drops and all(e.src_identity == 1999 for e in drops)
        # back to the allowed identity: the same connection flows again
        clean.dp.sync_cluster_maps(cluster_maps(clean.topo))  # type: ignore[attr-defined]
        assert wait_for(lambda: c.send() == "ok", 5.0)
    finally:
        c.close()


def test_a_long_lived_connection_keeps_its_expiry_advancing_about_once_a_second(
        clean: Env) -> None:
    # p0 denies all ingress: p1's echoes reach it only as replies of its conntrack entry,
    # across a revision bump too.
    clean.set_policy("p0", ingress())
    clean.set_policy("p1", ingress(PolicyKey(IN, IDS["p0"], TCP, PORT, PORT)))
    c = Conn(clean.topo, clean.ns("p0"), clean.ip("p1"), PORT)
    try:
        assert c.send() == "ok"
        first = ct_entry(clean, "p0", EG).expires_ns
        seen = {first}
        sends = 0
        start = time.monotonic()
        while time.monotonic() - start < 2.6:
            assert c.send() == "ok"
            sends += 1
            seen.add(ct_entry(clean, "p0", EG).expires_ns)
            if sends == 10:
                clean.dp.sync_cluster_maps(cluster_maps(clean.topo))  # type: ignore[attr-defined]
            time.sleep(0.04)
        last = ct_entry(clean, "p1", IN), ct_entry(clean, "p0", EG)
        assert sends >= 20
        assert last[1].expires_ns - first >= 1.5e9, "expiry did not advance"
        # written about once a second (plus the first packets' state changes), not
        # once per packet
        assert len(seen) <= 5, (len(seen), sends)
        for e in last:
            assert e.state == 2                 # established
            # within the refresh interval of a full 6 h established timeout
            left = e.expires_ns - time.monotonic_ns()
            assert 21600e9 - 1.5e9 < left <= 21600e9
        assert clean.dp.collect_conntrack_garbage() == 0  # type: ignore[attr-defined]
    finally:
        c.close()
