"""Conntrack off the happy path (bpf/lib/conntrack.h): what a revoked connection, a
mid-stream TCP packet and another pod's flood can and cannot do.

- After a revocation no packet of the connection passes, in either direction: a packet
  in the reply direction is a reply only while the connection's verdict is current;
  with a stale stamp it is decided again as its connection's forward packet would be.
- A TCP entry created without a SYN lives seconds (CT_TIMEOUT_MIDSTREAM) until the peer
  answers, not the established 6 hours.
- Entries of connections not yet answered live in their own LRU table (ct_unreplied), so
  one pod's flood of bare ACKs only evicts other unanswered entries, never another pod's
  established connection.

The reply-direction packets are real: a server that speaks first (`nettool push`) sends
a line on its accepted connection whenever the test asks, and the client (`nettool
pull`) reports each line it receives.
"""

from __future__ import annotations

import queue
import subprocess
import threading
from typing import Any, Iterator

import pytest

from agent.policy.mapstate import Direction, EndpointPolicy, PolicyKey
from observe.events import EventType
from observe.reasons import DropReason
from tests.datapath.conftest import IDS, Env, attach_all, cluster_maps, make_datapath, \
    own_topology
from tests.datapath.topology import EXT_IP, Topology

TCP = 6
IN, EG = Direction.INGRESS, Direction.EGRESS
PUSH_PORT = 9100
ACK = 0x10
WITHIN = 1.0   # seconds: "no packet of the revoked connection passes within 1 s"


def policy(ingress: bool = False, egress: bool = False, *keys: PolicyKey) -> EndpointPolicy:
    return EndpointPolicy(ingress_enforced=ingress, egress_enforced=egress,
                          entries=frozenset(keys))


class Pushed:
    """A connection from `client` to a server in `server` that speaks first: push()
    sends one line from the server, received() says whether the client got it."""

    def __init__(self, topo: Topology, server_ns: str, client_ns: str, server_ip: str) -> None:
        self.topo = topo
        self.server = topo.spawn(server_ns, "push", str(PUSH_PORT), wait_ready=True,
                                 interactive=True)
        self.client = topo.spawn(client_ns, "pull", server_ip, str(PUSH_PORT))
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(self.client,), daemon=True).start()
        assert self.lines.get(timeout=5) == "connected"

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line.strip())

    def push(self, timeout: float = WITHIN) -> bool:
        """One line from the server; True when the client received it within timeout."""
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.write("x\n")
        self.server.stdin.flush()
        assert self.server.stdout.readline().strip() == "sent"
        try:
            return self.lines.get(timeout=timeout) == "got"
        except queue.Empty:
            return False

    def close(self) -> None:
        self.topo.stop(self.client)
        self.topo.stop(self.server)


@pytest.fixture
def pushed(clean: Env) -> Iterator[Pushed]:
    """p0 -> p1:PUSH_PORT, p1 speaking first; opened with every endpoint unenforced."""
    conn = Pushed(clean.topo, clean.ns("p1"), clean.ns("p0"), clean.ip("p1"))
    try:
        yield conn
    finally:
        conn.close()


def drops_at(evs: list[Any], env: Env, pod: str) -> list[Any]:
    ep = env.slot(pod).endpoint_id
    return [e for e in evs if e.type == EventType.DROP and e.endpoint_id == ep
            and PUSH_PORT in (e.src_port, e.dst_port)]


def test_after_the_clients_egress_allow_is_revoked_the_server_cannot_push_replies_in(
        clean: Env, pushed: Pushed) -> None:
    allow = policy(True, True, PolicyKey(EG, IDS["p1"], TCP, PUSH_PORT, PUSH_PORT))
    clean.set_policy("p0", allow)       # ingress: nothing but replies of its connections
    assert pushed.push(), "the server's line is a reply of the client's connection"
    clean.drain()
    clean.set_policy("p0", policy(True, True))            # the allow is revoked
    assert not pushed.push(), "a reply of a revoked connection passed"
    assert not pushed.push()
    drops = drops_at(clean.drain(0.1), clean, "p0")
    assert drops and all(e.drop_reason == DropReason.POLICY_DENIED and e.src_identity == IDS["p1"]
                         for e in drops)
    clean.set_policy("p0", allow)                         # restored: the stamp renews
    assert pushed.push(timeout=3.0)


def test_after_the_servers_ingress_allow_is_revoked_its_replies_do_not_leave(
        clean: Env, pushed: Pushed) -> None:
    allow = policy(True, True, PolicyKey(IN, IDS["p0"], TCP, PUSH_PORT, PUSH_PORT))
    clean.set_policy("p1", allow)       # egress: nothing but replies of its connections
    assert pushed.push()
    clean.drain()
    clean.set_policy("p1", policy(True, True))
    assert not pushed.push(), "the server's reply left after its ingress allow was revoked"
    drops = drops_at(clean.drain(0.1), clean, "p1")
    assert drops and all(e.drop_reason == DropReason.POLICY_DENIED for e in drops)


def test_a_reply_after_an_unrelated_revision_bump_passes_and_renews_the_stamp(
        clean: Env, pushed: Pushed) -> None:
    clean.set_policy("p0", policy(True, True, PolicyKey(EG, IDS["p1"], TCP, PUSH_PORT,
                                                        PUSH_PORT)))
    assert pushed.push()
    before = clean.dp.policy_revision()  # type: ignore[attr-defined]
    clean.dp.sync_cluster_maps(cluster_maps(clean.topo))  # type: ignore[attr-defined]
    assert clean.dp.policy_revision() > before  # type: ignore[attr-defined]
    assert pushed.push()                 # decided again, allowed, stamped
    ep = clean.slot("p0").endpoint_id
    stamps = [v.policy_rev for k, v in clean.dp._maps["conntrack"].items()  # type: ignore[attr-defined]
              if k.endpoint_id == ep and k.dport == PUSH_PORT]
    assert stamps == [clean.dp.policy_revision()]  # type: ignore[attr-defined]


def test_a_tcp_entry_opened_without_a_syn_lives_seconds_until_the_peer_answers(
        clean: Env) -> None:
    clean.set_policy("p1", policy(ingress=True))     # p1 never sees it: nobody answers
    clean.topo.run(clean.ns("p0"), "tcpraw", clean.ip("p0"), clean.ip("p1"), "80",
                   str(ACK), "1")
    ep = clean.slot("p0").endpoint_id
    found = [e for e in clean.dp.dump_conntrack()  # type: ignore[attr-defined]
             if e.endpoint_id == ep and e.protocol == TCP and e.dst_port == 80]
    assert len(found) == 1, found
    assert found[0].state == "midstream"
    assert 0 < found[0].expires_in_s <= 10, "a bare ACK bought hours of conntrack"


# -- floods -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(request: pytest.FixtureRequest) -> Iterator[tuple[Topology, Any, dict[str, Any]]]:
    """Its own node whose conntrack holds 256 entries (and 64 unanswered ones)."""
    topo = own_topology(request, "f", npods=3, subnet=3)
    dp = make_datapath(topo, "flood", max_conntrack=256, max_conntrack_unreplied=64)
    request.addfinalizer(lambda: dp.close(unpin=True))  # type: ignore[attr-defined]
    dp.start()  # type: ignore[attr-defined]
    dp.sync_cluster_maps(cluster_maps(topo))  # type: ignore[attr-defined]
    yield topo, dp, attach_all(topo, dp)


def test_one_pods_ack_flood_does_not_break_another_pods_established_connection(
        tiny: tuple[Topology, Any, dict[str, Any]]) -> None:
    topo, dp, slots = tiny
    p0, p1, p2 = topo.pods
    # p0 -> p1:PUSH_PORT, and in each pod only that connection's packets may pass: after
    # an eviction, p1's next line would be a new egress flow of p1, and denied.
    dp.update_endpoint(slots["p0"], policy(True, True, PolicyKey(EG, IDS["p1"], TCP,
                                                                 PUSH_PORT, PUSH_PORT)))
    dp.update_endpoint(slots["p1"], policy(True, True, PolicyKey(IN, IDS["p0"], TCP,
                                                                 PUSH_PORT, PUSH_PORT)))
    conn = Pushed(topo, p1.ns, p0.ns, p1.ip)
    try:
        assert conn.push()
        # p2 (unenforced) sends 3,000 bare ACKs, each its own flow, to the external host,
        # whose kernel answers each with a RST: twelve times the whole table.
        topo.run(p2.ns, "tcpraw", p2.ip, EXT_IP, "80", str(ACK), "3000", timeout=60)
        assert conn.push(), "the flood evicted p0's and p1's entries"
        assert conn.push()
    finally:
        conn.close()
