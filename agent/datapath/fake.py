"""FakeDatapath: the Datapath protocol in memory, for tests of everything above it.

Decisions are `EndpointPolicy.evaluate` with identities from `ClusterMaps` (the same
semantics the C implements), so an agent test can ask "would this packet pass?" via
`decide()` without a kernel. Every call is recorded in `calls` (name, args) in order,
and tests can inject events (`inject_event`: handed over as one EventBatch at the next
poll, as the real reader does) and map-full failures (`fail_next`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from agent.datapath.interface import (BatchHandler, ConntrackEntry, DatapathStats,
                                      EndpointSlot, KernelPolicyEntry, MapUsage)
from agent.datapath.writer import endpoint_flags, expand
from core.errors import DatapathError, MapFullError
from agent.policy.mapstate import ClusterMaps, Direction, EndpointPolicy, MatchType
from observe.events import DatapathEvent, EventBatch

log = logging.getLogger(__name__)


@dataclass
class FakeDatapath:
    node: str = "fake-node"
    max_policy: int = 16384
    max_conntrack: int = 65536
    max_ipcache: int = 16384
    max_cidr: int = 4096
    pinned: list[EndpointSlot] = field(default_factory=list)   # as if found at start
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    started: bool = False
    endpoints: dict[int, EndpointSlot] = field(default_factory=dict)
    policies: dict[int, EndpointPolicy] = field(default_factory=dict)
    attached: set[int] = field(default_factory=set)        # endpoint ids
    cluster: ClusterMaps = field(default_factory=ClusterMaps)
    conntrack: list[ConntrackEntry] = field(default_factory=list)
    drops: dict[int, int] = field(default_factory=dict)
    lost_events_count: int = 0   # what lost_events() and stats() report
    _handler: BatchHandler | None = None
    _pending: list[DatapathEvent] = field(default_factory=list)
    _fail: dict[str, Exception] = field(default_factory=dict)

    # --- test controls -----------------------------------------------------------

    def fail_next(self, method: str, error: Exception | None = None) -> None:
        """The next call of `method` raises `error` (MapFullError by default)."""
        self._fail[method] = error or MapFullError(f"fake: map full in {method}")

    def inject_event(self, event: DatapathEvent) -> None:
        self._pending.append(event)

    def decide(self, endpoint_id: int, direction: Direction, peer_ip: str, protocol: int,
               port: int) -> tuple[bool, MatchType]:
        """The verdict the real datapath would give a forward packet."""
        policy = self.policies.get(endpoint_id)
        if policy is None:
            raise DatapathError(f"fake: no endpoint {endpoint_id}")
        peer, cidr = self.cluster.identities_of(peer_ip)
        if peer == 0:
            peer = 2   # unknown addresses are world, as in the C
        peers = [peer] + ([cidr] if cidr else [])
        return policy.evaluate(direction, peers, protocol, port)

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        err = self._fail.pop(name, None)
        if err is not None:
            raise err

    def call_names(self) -> list[str]:
        return [c[0] for c in self.calls]

    # --- the protocol ------------------------------------------------------------

    def start(self) -> None:
        self._record("start")
        self.started = True
        for slot in self.pinned:
            self.endpoints.setdefault(slot.endpoint_id, slot)
            self.attached.add(slot.endpoint_id)

    def pinned_endpoints(self) -> list[EndpointSlot]:
        self._record("pinned_endpoints")
        return list(self.pinned)

    def _entries(self, policy: EndpointPolicy, endpoint_id: int) -> int:
        return len(expand(endpoint_id, policy))

    def _check_room(self, slot: EndpointSlot, policy: EndpointPolicy) -> None:
        used = sum(self._entries(p, eid) for eid, p in self.policies.items()
                   if eid != slot.endpoint_id)
        if used + self._entries(policy, slot.endpoint_id) > self.max_policy:
            raise MapFullError(f"endpoint {slot.endpoint_id} ({slot.ifname}): BPF map "
                               f"'policy' is full (max_entries {self.max_policy})")

    def add_endpoint(self, slot: EndpointSlot, policy: EndpointPolicy) -> None:
        self._record("add_endpoint", slot, policy)
        full: MapFullError | None = None
        try:
            self._check_room(slot, policy)
        except MapFullError as e:
            full = e
        self.endpoints[slot.endpoint_id] = slot
        self.policies[slot.endpoint_id] = policy
        self.attached.add(slot.endpoint_id)
        if full:
            raise full

    def reattach(self, slot: EndpointSlot) -> None:
        self._record("reattach", slot)
        self.endpoints[slot.endpoint_id] = slot
        self.attached.add(slot.endpoint_id)

    def update_endpoint(self, slot: EndpointSlot, policy: EndpointPolicy) -> int:
        self._record("update_endpoint", slot, policy)
        self._check_room(slot, policy)
        old = self.policies.get(slot.endpoint_id, EndpointPolicy())
        self.endpoints[slot.endpoint_id] = slot
        self.policies[slot.endpoint_id] = policy
        before = expand(slot.endpoint_id, old)
        after = expand(slot.endpoint_id, policy)
        writes = len(set(before) ^ set(after))
        writes += sum(1 for k in set(before) & set(after) if before[k] != after[k])
        flags_changed = endpoint_flags(old) != endpoint_flags(policy)
        return writes + int(flags_changed)

    def remove_endpoint(self, endpoint_id: int) -> None:
        self._record("remove_endpoint", endpoint_id)
        self.endpoints.pop(endpoint_id, None)
        self.policies.pop(endpoint_id, None)
        self.attached.discard(endpoint_id)
        self.conntrack = [c for c in self.conntrack if c.endpoint_id != endpoint_id]

    def sync_cluster_maps(self, maps: ClusterMaps) -> int:
        self._record("sync_cluster_maps", maps)
        old = self.cluster
        # As the kernel: what fits is written (deletes first), the rest is refused.
        full = [name for name, table, size in (("ipcache", maps.ipcache, self.max_ipcache),
                                               ("cidr", maps.cidrs, self.max_cidr))
                if len(table) > size]
        self.cluster = ClusterMaps(dict(sorted(maps.ipcache.items())[:self.max_ipcache]),
                                   dict(sorted(maps.cidrs.items())[:self.max_cidr]))
        if full:
            raise MapFullError(f"fake: BPF map(s) {', '.join(full)} full")
        writes = 0
        for a, b in ((old.ipcache, maps.ipcache), (old.cidrs, maps.cidrs)):
            writes += len(set(a) ^ set(b)) + sum(1 for k in set(a) & set(b) if a[k] != b[k])
        return writes

    def set_batch_handler(self, handler: BatchHandler | None) -> None:
        self._handler = handler

    def poll_events(self, timeout_ms: int) -> int:
        pending, self._pending = self._pending, []
        if not pending:
            if timeout_ms > 0:
                time.sleep(min(timeout_ms, 10) / 1000)
            return 0
        if self._handler is not None:
            try:
                self._handler(EventBatch.of_events(pending))
            except Exception:  # as the real reader: a failing handler must not stop it
                log.exception("event batch handler failed")
        return len(pending)

    def collect_conntrack_garbage(self) -> int:
        self._record("collect_conntrack_garbage")
        before = len(self.conntrack)
        self.conntrack = [c for c in self.conntrack if c.expires_in_s > 0]
        return before - len(self.conntrack)

    def dump_policy(self, endpoint_id: int) -> list[KernelPolicyEntry]:
        policy = self.policies.get(endpoint_id, EndpointPolicy())
        values = expand(endpoint_id, policy)
        return [KernelPolicyEntry(key=k.to_policy_key(), allow=bool(v.match_type),
                                  tiers=v.describe_tiers())
                for k, v in sorted(values.items())]

    def dump_conntrack(self) -> list[ConntrackEntry]:
        return list(self.conntrack)

    def dump_ipcache(self) -> tuple[dict[str, int], dict[str, int]]:
        return dict(self.cluster.ipcache), dict(self.cluster.cidrs)

    def stats(self) -> DatapathStats:
        used = sum(self._entries(p, eid) for eid, p in self.policies.items())
        return DatapathStats(
            maps=[MapUsage("endpoints", len(self.endpoints), 1024),
                  MapUsage("ipcache", len(self.cluster.ipcache), self.max_ipcache),
                  MapUsage("cidr", len(self.cluster.cidrs), self.max_cidr),
                  MapUsage("policy", used, self.max_policy),
                  MapUsage("conntrack", len(self.conntrack), self.max_conntrack)],
            drops=dict(self.drops), lost_events=self.lost_events_count)

    def lost_events(self) -> int:
        return self.lost_events_count

    def close(self, unpin: bool = False) -> None:
        self._record("close", unpin)
        if unpin:
            self.attached.clear()
            self.endpoints.clear()
            self.policies.clear()
