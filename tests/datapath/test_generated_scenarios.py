"""Generated scenarios: the BPF datapath decides every probed connection exactly as the
policy engine's reference matrix (agent/policy/matrix.py) says.

Two families of scenarios (scenarios.py): NetworkPolicies alone, and NetworkPolicies
mixed with cluster-wide tiers of either API version (ClusterNetworkPolicy v1alpha2,
AdminNetworkPolicy / BaselineAdminNetworkPolicy v1alpha1: Allow, Deny and Pass at
colliding and distinct priorities, namespaces/pods subjects and peers, networks, nodes,
port numbers, ranges and named ports), some namespaces and policies in audit mode.

For each random cluster:

1. The maps are programmed as agent/regeneration.py's regenerate() does: a fresh PolicyEngine
   (the agent's allocator classes, in memory) takes the objects, the allocators are
   flushed, `sync_cluster_maps(engine.cluster_maps(local node))`, then every pod's
   EndpointPolicy is written with `update_endpoint`. (The agent's first write is
   add_endpoint: the same map writes, then a tc attach to the pod's veth. There are no
   veths here: every endpoint is written at an ifindex no interface has.) Every pod is
   an endpoint of this one datapath, as the matrix sees it: each side of a connection
   is decided by its own pod's policy.
2. Probes: (source, destination, protocol, port), a sample (seeded by the scenario) of
   the pod pairs and of pods with peers off the cluster (world addresses inside and
   outside ipBlocks, the local node as host, the other node as remote-node), over TCP,
   UDP and SCTP and the ports the scenario mentions (numbers, endPort bounds and their
   neighbours, container ports) plus a few nobody mentions. Every pod and peer is
   dual-stack: half the probes are IPv4, half IPv6 (each between addresses of its
   family). A third of the IPv4 packets carry options (4 or 40 bytes), so the L4 header
   is not always at offset 34; a third of the IPv6 ones extension headers.
3. Each probe's first packet of a new connection (TCP SYN, UDP datagram, SCTP INIT)
   runs through the source pod's from_container and the destination pod's
   to_container with BPF_PROG_TEST_RUN (progrun.py: no network, no attach). The test
   run's packet comes from loopback, so the programs look their endpoint up under
   ifindex 1: for its runs, a pod's endpoint is moved there with update_endpoint (the
   agent's path when a pod's veth changes) and back afterwards. Every probe has its own
   source port, from a range no probed port falls in, so each is a new flow at both
   ends and never a reply of another.
4. Verdicts: each program's must be what `EndpointPolicy.decide` says the packet gets
   (the policies' verdict, `matrix.direction_allows`, unless audit mode lets a denied
   packet pass), and the combined one (both programs pass) must equal `matrix.allowed`
   for pod pairs without audit (an off-cluster peer has only the pod's side). For
   NetworkPolicies alone that must also be the spec's (netpol_spec.py, read off the
   pods' own labels; a policy beyond the default limits isolating and allowing
   nothing); with tiers, tests/unit/test_npa_conformance_model.py holds the engine to
   the API's conformance cases. Each run must report one policy-verdict event with that
   verdict (AUDIT for an audited one), the match type `decide` gives (a tier Deny's
   own, NONE for a NetworkPolicy deny) and the peer identity `ClusterMaps.identities_of`
   gives; a denied run also a drop with reason POLICY_DENIED (not another drop passing
   for a deny), an audited run none.

Between scenarios the maps are cleared through the same interface (remove_endpoint,
the cluster maps as they were before this module), so scenarios are independent. The
programs are the session's (conftest `datapath`): compiled once, only map contents
change. Deterministic: hypothesis derandomized, probes sampled with the scenario as seed.
"""

from __future__ import annotations

import json
import os
import random
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, seed, settings

from agent.datapath.interface import EndpointSlot
from agent.k8s.objects import Protocol
from agent.policy.engine import PolicyEngine
from agent.policy.mapstate import ClusterMaps, Direction, EndpointPolicy, MatchType
from agent.policy.matrix import direction_allows, endpoints, peer_identities
from agent.policy.modes import PolicyModes
from identity.cidr import CidrAllocator
from identity.local import LocalAllocator
from identity.reserved import ReservedIdentity
from observe.events import EventBatch, EventType
from observe.reasons import DropReason
from tests.datapath.conftest import EventListeners
from tests.datapath.netpol_spec import spec_allows
from tests.datapath.progrun import (TC_ACT_OK, TC_ACT_SHOT, Ext, dest_options, first_packet,
                                    fragment, hop_by_hop, prog_test_run, routing)
from tests.datapath.scenarios import (LOCAL_NODE, LOCAL_NODE_IP, LOCAL_NODE_IP6,
                                      REMOTE_NODE_IP, REMOTE_NODE_IP6, WORLD_IPS, WORLD_IPS6,
                                      Scenario, probed_ports, scenarios)

# CI runs a fixed set. To hunt further, a seeded random one, e.g.
#   MEMBRANE_SCENARIOS=2000 MEMBRANE_SCENARIO_SEED=7 .venv/bin/pytest -q tests/datapath/...
EXAMPLES = int(os.environ.get("MEMBRANE_SCENARIOS", "100"))
TIER_EXAMPLES = int(os.environ.get("MEMBRANE_TIER_SCENARIOS", "100"))
SEED = os.environ.get("MEMBRANE_SCENARIO_SEED", "")
PROBES_PER_SCENARIO = 400
LOOPBACK = 1                   # skb->ifindex of every BPF_PROG_TEST_RUN packet
FIRST_ENDPOINT_ID = 3000       # clear of conftest's (100+)
PARKED_IFINDEX = 0x7FFF0000    # endpoints' own ifindices: no interface has them
IP_OPTIONS = (0, 0, 0, 0, 4, 40)   # a probe's IPv4 options: mostly none, some, the most
# An IPv6 probe's extension headers: mostly none, some, a long chain with a first fragment.
EXT_CHAINS: tuple[tuple[Ext, ...], ...] = (
    (), (), (), (), (hop_by_hop(),),
    (hop_by_hop(16), dest_options(), routing(), fragment(0, more=True), dest_options(24)))
EXTERNAL = {4: [("world", ip) for ip in WORLD_IPS]
            + [("host", LOCAL_NODE_IP), ("remote-node", REMOTE_NODE_IP)],
            6: [("world", ip) for ip in WORLD_IPS6]
            + [("host", LOCAL_NODE_IP6), ("remote-node", REMOTE_NODE_IP6)]}


@dataclass(frozen=True)
class Peer:
    name: str            # "ns/pod", or "world 203.0.113.7", "host 172.18.0.11", ...
    ip: str
    pod: str | None      # the pod key when the peer is an endpoint

    def __str__(self) -> str:
        return f"{self.name} ({self.ip})" if self.pod else self.name


@dataclass(frozen=True)
class Probe:
    src: Peer
    dst: Peer
    protocol: Protocol
    port: int
    sport: int
    ip_options: int = 0    # bytes of IPv4 options: the L4 header further in
    ext: tuple[Ext, ...] = ()   # IPv6 extension headers in front of it

    @property
    def family(self) -> int:
        return 6 if ":" in self.src.ip else 4

    def __str__(self) -> str:
        opts = f", {self.ip_options} bytes of IP options" if self.ip_options else ""
        opts += f", extension headers {[kind for kind, _ in self.ext]}" if self.ext else ""
        return (f"{self.src} -> {self.dst} {self.protocol.value}/{self.port} IPv{self.family} "
                f"(sport {self.sport}{opts})")


@dataclass
class Side:
    """One program run of a probe: whose program, and what it must decide and report."""

    pod: str
    direction: Direction       # EGRESS: the source's from_container, INGRESS: the
    want: bool                 # destination's to_container; want: direction_allows
    want_match: MatchType      # EndpointPolicy.decide's (NONE: NetworkPolicy deny, or not
    want_peer: int             # enforced); want_peer: the peer identity the event names
    want_audit: bool = False   # denied, passed by audit mode: the event says AUDIT
    got: bool | None = None    # the tc verdict: TC_ACT_OK


@dataclass
class Result:
    probe: Probe
    sides: list[Side]
    want: bool                 # matrix.allowed (pod pairs), else the one side's
    spec: bool | None = None   # netpol_spec.spec_allows (pod pairs)

    @property
    def got(self) -> bool:
        return all(s.got for s in self.sides)

    @property
    def agrees(self) -> bool:
        return self.got == self.want and all(s.got == s.want for s in self.sides)

    def __str__(self) -> str:
        def side(s: Side) -> str:
            mark = "" if s.got == s.want else f" (reference: {'allow' if s.want else 'deny'})"
            return f"{s.direction.name.lower()} {'PASS' if s.got else 'DROP'}{mark}"
        return (f"{self.probe}: datapath {', '.join(side(s) for s in self.sides)} = "
                f"{'allowed' if self.got else 'denied'}; reference "
                f"{'allowed' if self.want else 'denied'}")


@dataclass
class Harness:
    """The session datapath, programmed scenario by scenario as the agent would."""

    dp: Any
    baseline: ClusterMaps
    events: list[Any] = field(default_factory=list)
    slots: dict[str, EndpointSlot] = field(default_factory=dict)
    policies: dict[str, EndpointPolicy] = field(default_factory=dict)

    def on_events(self, batch: EventBatch) -> None:
        self.events.extend(batch.events())

    def drain(self) -> None:
        while self.dp.poll_events(0):
            pass

    def program(self, scenario: Scenario) -> PolicyEngine:
        """agent.regeneration.Regenerator.regenerate's order: engine, allocator flush,
        cluster maps, then every endpoint."""
        labels = LocalAllocator(None, persist="on_flush")
        cidrs = CidrAllocator(None, persist="on_flush")
        engine = PolicyEngine(labels, cidrs, modes=scenario.modes)
        engine.update(scenario.objects)
        labels.flush()
        cidrs.flush()
        self.dp.sync_cluster_maps(engine.cluster_maps(LOCAL_NODE))
        for i, key in enumerate(endpoints(engine)):
            identity = engine.identity_of(key)
            pod = engine.pods()[key]
            assert identity is not None and pod.ip and pod.ipv6
            slot = EndpointSlot(endpoint_id=FIRST_ENDPOINT_ID + i, ifname="",
                                ifindex=PARKED_IFINDEX + i, ipv4=pod.ip, identity=identity.id,
                                ipv6=pod.ipv6)
            self.slots[key] = slot
            self.policies[key] = engine.endpoint_policy(key)
            self.dp.update_endpoint(slot, self.policies[key])
        return engine

    @contextmanager
    def at_loopback(self, pod: str) -> Iterator[EndpointSlot]:
        """The pod's endpoint under ifindex 1 (where test runs look), then back."""
        slot, policy = self.slots[pod], self.policies[pod]
        self.dp.update_endpoint(replace(slot, ifindex=LOOPBACK), policy)
        try:
            yield slot
        finally:
            self.dp.update_endpoint(slot, policy)

    def clear(self) -> None:
        """Back to the state before the first scenario, through the same interface."""
        for slot in self.slots.values():
            self.dp.remove_endpoint(slot.endpoint_id)   # entries, policy, conntrack
        self.slots.clear()
        self.policies.clear()
        self.dp.sync_cluster_maps(self.baseline)
        self.drain()
        self.events.clear()

    def assert_clear(self) -> None:
        maps = self.dp._maps
        ours = range(FIRST_ENDPOINT_ID, FIRST_ENDPOINT_ID + 64)
        assert not [k for k, _ in maps["policy"].items() if k.endpoint_id in ours]
        for ct in ("conntrack", "ct_unreplied"):
            assert not [k for k, _ in maps[ct].items() if k.endpoint_id in ours]
        assert not [v for _, v in maps["endpoints"].items() if v.endpoint_id in ours]
        assert self.dp.dump_ipcache() == (dict(self.baseline.ipcache),
                                          dict(self.baseline.cidrs))


@pytest.fixture(scope="module")
def harness(datapath: Any, event_listeners: EventListeners) -> Iterator[Harness]:
    ipcache, cidrs = datapath.dump_ipcache()
    h = Harness(datapath, ClusterMaps(ipcache, cidrs))
    h.drain()
    with event_listeners.listening(h.on_events):   # the session's listener gets them back
        try:
            yield h
        finally:
            h.clear()


# --- probes and the reference --------------------------------------------------------------

def source_ports(ports: list[int], n: int) -> range:
    """n source ports, none of them a probed port (so no probe is another's reply)."""
    base = 20000
    while any(base <= p < base + n for p in ports):
        base += n
    assert base + n <= 65536, "no free source port range"
    return range(base, base + n)


def sample_probes(scenario: Scenario, engine: PolicyEngine) -> list[Probe]:
    """PROBES_PER_SCENARIO probes, half of each family; of each family's, half between
    pods (all there are, if fewer), the rest with off-cluster peers; drawn with the
    scenario as seed."""
    ports = probed_ports(scenario)
    # A str seed is stable across runs and processes (JSON: a huge policy dumps fast).
    rng = random.Random(json.dumps(scenario.documents, sort_keys=True))

    def space(pairs: list[tuple[Peer, Peer]]) -> list[tuple[Peer, Peer, Protocol, int]]:
        return [(s, d, proto, port) for s, d in pairs for proto in Protocol for port in ports]

    chosen: list[tuple[Peer, Peer, Protocol, int]] = []
    for family in (4, 6):
        pods = [Peer(key, engine.pods()[key].address(family) or "", key)
                for key in endpoints(engine)]
        external = [Peer(f"{kind} {ip}", ip, None) for kind, ip in EXTERNAL[family]]
        internal = space([(s, d) for s in pods for d in pods if s != d])
        off = space([(p, x) for p in pods for x in external]
                    + [(x, p) for p in pods for x in external])
        budget = PROBES_PER_SCENARIO // 2
        n_internal = min(len(internal), budget // 2)
        n_off = min(len(off), budget - n_internal)
        chosen += [internal[i] for i in sorted(rng.sample(range(len(internal)), n_internal))]
        chosen += [off[i] for i in sorted(rng.sample(range(len(off)), n_off))]
    sports = source_ports(ports, len(chosen))
    return [Probe(*c, sport=sport, ip_options=rng.choice(IP_OPTIONS) if ":" not in c[0].ip
                  else 0, ext=rng.choice(EXT_CHAINS) if ":" in c[0].ip else ())
            for c, sport in zip(chosen, sports)]


def reference(scenario: Scenario, engine: PolicyEngine, probes: list[Probe]) -> list[Result]:
    maps = engine.cluster_maps(LOCAL_NODE)
    cache: dict[Peer, tuple[set[int], int]] = {}

    def identities(peer: Peer) -> tuple[set[int], int]:
        """(what policy sees the peer as, what the event names it as)."""
        if peer not in cache:
            ident, cidr = maps.identities_of(peer.ip)
            shown = cidr if ident == ReservedIdentity.WORLD and cidr else ident
            family = 6 if ":" in peer.ip else 4
            seen = (peer_identities(engine, peer.pod, family=family) if peer.pod
                    else {ident, cidr} - {0})
            cache[peer] = seen, shown
        return cache[peer]

    def side(pod: str, direction: Direction, peer: Peer, p: Probe) -> Side:
        seen, shown = identities(peer)
        decision = engine.endpoint_policy(pod).decide(direction, seen, p.protocol.number,
                                                      p.port)
        assert decision.allowed == direction_allows(engine, pod, direction, seen,
                                                    p.protocol, p.port)
        return Side(pod, direction, decision.passes, decision.match_type, shown,
                    decision.audited)

    # A policy beyond the default limits is enforced fail-closed, and only it.
    skip = {pod: engine.unenforced_policies(pod) for pod in endpoints(engine)}
    tiered = bool(scenario.objects.cluster_policies) or scenario.modes != PolicyModes()
    out = []
    for p in probes:
        sides = []
        if p.src.pod:
            sides.append(side(p.src.pod, Direction.EGRESS, p.dst, p))
        if p.dst.pod:
            sides.append(side(p.dst.pod, Direction.INGRESS, p.src, p))
        # matrix.allowed for pod pairs: both sides' direction_allows (checked per side
        # above, on the peers' identities computed once per peer), audit aside.
        want = all(s.want for s in sides)
        spec = None
        if p.src.pod and p.dst.pod and not tiered:
            spec = spec_allows(scenario.objects, p.src.pod, p.dst.pod, p.protocol, p.port,
                               skip, family=p.family)
        out.append(Result(p, sides, want, spec))
    return out


# --- running the programs ------------------------------------------------------------------

def run_probes(h: Harness, results: list[Result]) -> None:
    progs = {Direction.EGRESS: h.dp._progs["from_container"].fd,
             Direction.INGRESS: h.dp._progs["to_container"].fd}
    for pod in h.slots:
        with h.at_loopback(pod):
            for r in results:
                p = r.probe
                for s in r.sides:
                    if s.pod != pod:
                        continue
                    frame = first_packet(p.protocol.number, p.src.ip, p.dst.ip, p.sport,
                                         p.port, p.ip_options, p.ext)
                    rc, _ = prog_test_run(progs[s.direction], frame)
                    assert rc in (TC_ACT_OK, TC_ACT_SHOT), f"{p} {s.direction.name}: tc {rc}"
                    s.got = rc == TC_ACT_OK
        h.drain()   # the ring holds a few thousand events: empty it per pod


def event_problems(h: Harness, results: list[Result]) -> list[tuple[Result, str]]:
    """Each run: one policy-verdict event with its verdict, match type and peer
    identity; a drop (reason POLICY) exactly when denied; nothing else."""
    ids = {s.endpoint_id: pod for pod, s in h.slots.items()}
    seen: dict[tuple[str, int, int], list[Any]] = {}
    for ev in h.events:
        if ev.endpoint_id in ids:
            seen.setdefault((ids[ev.endpoint_id], int(ev.direction), ev.src_port), []).append(ev)
    problems: list[tuple[Result, str]] = []
    for r in results:
        for s in r.sides:
            evs = seen.pop((s.pod, int(s.direction), r.probe.sport), [])
            verdicts = [(e.allowed, e.audit, MatchType(e.match_type).name,
                         e.dst_identity if s.direction is Direction.EGRESS else e.src_identity)
                        for e in evs if e.type == EventType.POLICY_VERDICT]
            drops = [DropReason(e.drop_reason).name for e in evs if e.type == EventType.DROP]
            want = [(s.got, s.want_audit, s.want_match.name, s.want_peer)]
            want_drops = [] if s.got else [DropReason.POLICY_DENIED.name]
            if verdicts != want or drops != want_drops:
                problems.append((r, f"{r.probe} {s.direction.name}: events (allowed, audit, "
                                    f"match, peer) {verdicts}, drops {drops}; expected "
                                    f"{want}, {want_drops}"))
    assert not seen, f"events of no probe: {seen}"
    return problems


def report(scenario: Scenario, engine: PolicyEngine, h: Harness, bad: list[Result],
           total: int, problems: list[tuple[Result, str]]) -> str:
    lines = [f"datapath and reference disagree on {len(bad)} of {total} probes"
             + (f"; {len(problems)} event problems" if problems else "")]
    lines += [f"  {r}" for r in bad[:25]] + [f"  {text}" for _, text in problems[:10]]
    shown = bad[:25] + [r for r, _ in problems[:10]]
    for pod in sorted({pod for r in shown for pod in (r.probe.src.pod, r.probe.dst.pod)
                       if pod}):
        pol, slot = engine.endpoint_policy(pod), h.slots[pod]
        lines.append(f"endpoint {pod} (id {slot.endpoint_id}, identity {slot.identity}): "
                     f"ingress {'enforced' if pol.ingress_enforced else 'open'}, "
                     f"egress {'enforced' if pol.egress_enforced else 'open'}")
        lines += [f"    {k}" for k in sorted(pol.entries)]
        lines += [f"    {t}" for t in sorted(pol.tier_entries)]
        lines.append(f"  kernel: {[str(e.key) for e in h.dp.dump_policy(slot.endpoint_id)]}")
    maps = engine.cluster_maps(LOCAL_NODE)
    lines.append(f"ipcache {dict(maps.ipcache)}")
    lines.append(f"cidr {dict(maps.cidrs)}")
    lines.append("scenario:")
    lines.append(scenario.yaml())
    return "\n".join(lines)


def _exploring(test: Any) -> Any:
    """MEMBRANE_SCENARIO_SEED=S: another (random, seeded) set of scenarios."""
    return seed(int(SEED))(test) if SEED else test


def check_scenario(harness: Harness, scenario: Scenario) -> None:
    harness.assert_clear()
    try:
        engine = harness.program(scenario)
        results = reference(scenario, engine, sample_probes(scenario, engine))
        off_spec = [f"{r.probe}: reference {'allows' if r.want else 'denies'}, the spec "
                    f"{'allows' if r.spec else 'denies'}"
                    for r in results if r.spec is not None and r.spec != r.want]
        assert not off_spec, "\n".join(off_spec[:25]) + "\nscenario:\n" + scenario.yaml()
        run_probes(harness, results)
        harness.drain()
        bad = [r for r in results if not r.agrees]
        problems = event_problems(harness, results)
        assert not bad and not problems, report(scenario, engine, harness, bad,
                                                len(results), problems)
    finally:
        harness.clear()


_SETTINGS = dict(derandomize=not SEED, deadline=None, print_blob=False, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_exploring
@settings(max_examples=EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(scenario=scenarios())
def test_the_datapath_decides_every_probe_as_the_reference_matrix(
        harness: Harness, scenario: Scenario) -> None:
    check_scenario(harness, scenario)


@_exploring
@settings(max_examples=TIER_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(scenario=scenarios(tiers=True))
def test_tiers_mixed_with_networkpolicies_are_decided_as_the_reference_matrix(
        harness: Harness, scenario: Scenario) -> None:
    check_scenario(harness, scenario)
