"""The datapath as the agent sees it: a small typed interface, no bcc in sight.

`agent.datapath.bpf.BpfDatapath` implements it with bcc and pyroute2 on real kernels;
`agent.datapath.fake.FakeDatapath` implements it in memory (decisions via
`EndpointPolicy.evaluate`) for unit tests of everything above it. `agent.compose` builds
either one typed as `Datapath`, so mypy proves both match the Protocol.

Events take one path: `poll_events` hands everything one poll read to the batch handler
as a single `observe.events.EventBatch` (records decoded only when something needs them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from agent.policy.mapstate import ClusterMaps, EndpointPolicy, PolicyKey
from observe.events import EventBatch

BatchHandler = Callable[[EventBatch], None]


@dataclass(frozen=True)
class EndpointSlot:
    """A local endpoint as the datapath knows it (the `endpoints` and `endpoints6` map
    values). A pod has at most one address per family; "" for a family it lacks (its
    packets of that family then fail the source check)."""

    endpoint_id: int       # 1..65535, stable for the endpoint's life
    ifname: str            # host-side veth in the agent's network namespace
    ifindex: int
    ipv4: str
    identity: int
    ipv6: str = ""


@dataclass(frozen=True)
class KernelPolicyEntry:
    key: PolicyKey
    packets: int = 0
    bytes: int = 0
    allow: bool = True       # a NetworkPolicy allow covers it (match type > none)
    tiers: str = ""          # the tier rules it carries: "Admin #2 Deny, Baseline #1 Allow"


@dataclass(frozen=True)
class ConntrackEntry:
    endpoint_id: int
    direction: int           # mapstate.Direction of the packet that created it
    protocol: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    state: str               # "syn-sent", "established", "closing", "udp", "icmp", ...
    expires_in_s: float
    packets: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class MapUsage:
    name: str
    entries: int
    max_entries: int


@dataclass
class DatapathStats:
    maps: list[MapUsage] = field(default_factory=list)
    drops: dict[int, int] = field(default_factory=dict)   # DropReason value -> packets
    lost_events: int = 0                                  # ring buffer full in the kernel


class Datapath(Protocol):
    def start(self) -> None:
        """Compile (once), load, pin maps under the node's bpffs directory, reuse pinned state."""

    def pinned_endpoints(self) -> list[EndpointSlot]:
        """Endpoints found in pinned maps at start, for the agent to reconcile."""

    def add_endpoint(self, slot: EndpointSlot, policy: EndpointPolicy) -> None:
        """Writes policy and the endpoints entry, then attaches the programs (in that order,
        so the first packet is already decided by the endpoint's policy)."""

    def reattach(self, slot: EndpointSlot) -> None:
        """Swaps this datapath's programs onto an endpoint found pinned at start, without
        touching its maps: the pinned state keeps deciding until the agent regenerates,
        and events now reach this process's ring buffer (the old programs wrote to the
        previous agent's)."""

    def update_endpoint(self, slot: EndpointSlot, policy: EndpointPolicy) -> int:
        """Diffs the policy against the kernel map and writes the difference; returns writes.
        Raises MapFullError when the policy map has no room (the endpoint stays as it was
        minus removed entries: never more open than desired)."""

    def remove_endpoint(self, endpoint_id: int) -> None:
        """Detaches programs and deletes the endpoint's entries."""

    def sync_cluster_maps(self, maps: ClusterMaps) -> int:
        """Diffs ipcache and cidr maps against the kernel; returns writes."""

    def set_batch_handler(self, handler: BatchHandler | None) -> None:
        """Who gets the events (observe.ring.FlowObserver.on_events in the agent); None:
        nobody, records are read and dropped. A handler that raises is logged, and the
        reading goes on."""

    def poll_events(self, timeout_ms: int) -> int:
        """Reads what the ring buffer holds (waiting up to timeout_ms for the first
        record) and hands it to the handler as one EventBatch; returns how many."""

    def collect_conntrack_garbage(self) -> int:
        """Deletes expired conntrack entries; returns how many."""

    def dump_policy(self, endpoint_id: int) -> list[KernelPolicyEntry]: ...

    def dump_conntrack(self) -> list[ConntrackEntry]: ...

    def dump_ipcache(self) -> tuple[dict[str, int], dict[str, int]]:
        """(ipcache, cidrs) as in the kernel: prefix -> identity."""

    def stats(self) -> DatapathStats:
        """Map fill levels, drops by reason, lost events: walks maps, so not per packet."""

    def lost_events(self) -> int:
        """Events lost so far (kernel ring buffer full, or the reader's own loss): cheap,
        polled by the agent's event loop."""

    def close(self, unpin: bool = False) -> None:
        """Stops reading events. Programs and pinned maps stay (a restart keeps enforcing)
        unless unpin, which detaches everything and removes the pins."""
