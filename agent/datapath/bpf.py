"""BpfDatapath: the Datapath protocol (interface.py) on a real kernel, with bcc + pyroute2.

Life of a node's datapath:

  start()              compile bpf/bpf_lxc.c once (compiler.py); maps are created and
                       pinned under pin_dir, or reused when already pinned (a restart
                       keeps enforcing and keeps conntrack); a pinned map whose size is
                       not the configured one is recreated first (pinsize.py); load
                       both programs.
  pinned_endpoints()   what the pinned endpoints map holds, for the agent to reconcile
                       (it removes stale endpoints and re-adds current ones: add_endpoint
                       on an existing endpoint re-attaches the freshly loaded programs
                       with tc "replace", atomically).
  add_endpoint()       policy entries, then the endpoints6 entry (the pod's IPv6
                       address) and the endpoints entry, then tc attach: the first packet
                       through the programs is already decided by policy.
  update_endpoint()    diff + write (writer.py); enforcement flags after the entries.
  remove_endpoint()    detach, then delete the endpoint's entries (endpoints,
                       endpoints6, policy, conntrack, conntrack6).

Both families: ipcache/cidr/conntrack/endpoints have IPv6 twins (ipcache6, cidr6,
conntrack6, endpoints6); sync_cluster_maps writes each family of ClusterMaps to its own
tries, and the dumps and GC cover both. The policy map is family-free (identities).

The policy revision (bpf/lib/revision.h): conntrack entries cache the forward verdict
stamped with the revision it was decided under, and established packets skip the
identity and policy lookups while the stamp is current. So every write that can change
a verdict (policy, endpoints, ipcache, cidr and the IPv6 twins) is followed by `_bump_revision()`: in
add/update/remove_endpoint (in a `finally`, so a failed or partial write is covered),
at the end of sync_cluster_maps, and on start() (a new agent over existing pins never
trusts a stamp of the previous one). `_VerdictMap` also bumps when a write to one of
those maps fails, for callers whose own bump a raised error would skip.

Failures are DatapathError (MapFullError for a full map) with the endpoint and map in
the message. A full policy map during add_endpoint still attaches the programs with
enforcement on (the pod denies more than desired, never allows more), then raises. A
full ipcache or cidr map in sync_cluster_maps writes every entry that fits in both maps
(deletes first), then raises: the caller decides what may be enforced meanwhile.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import threading
import time
from typing import Any, Callable

from agent.datapath import attach as tc
from agent.datapath.hooks import Hooks
from agent.datapath import layout
from agent.datapath.compiler import (CompileOptions, Features, compile_datapath,
                                     load_programs, probe_features)
from agent.datapath.interface import (BatchHandler, ConntrackEntry, DatapathStats,
                                      EndpointSlot, KernelPolicyEntry, MapUsage)
from agent.datapath.pinsize import map_size, resize_pins
from agent.datapath.reader import EventReader
from agent.datapath.writer import (EntryValue, KernelMap, PolicyMapKey, PolicyWriter,
                                   PrefixWriter, endpoint_flags, read_prefix_map)
from core.errors import DatapathError, MapFullError
from core.protocols import Direction
from agent.policy.mapstate import ClusterMaps, EndpointPolicy

log = logging.getLogger(__name__)

PINNED_MAPS = ("ipcache", "cidr", "ipcache6", "cidr6", "endpoints", "endpoints6", "policy",
               "conntrack", "ct_unreplied", "conntrack6", "ct6_unreplied", "drop_metrics",
               "lost_events", "policy_revision", "tail_calls")
# Conntrack's two tables per family (bpf/lib/conntrack.h): confirmed connections, and
# those not answered yet. GC, dumps, stats and endpoint removal cover all four.
CONNTRACK_MAPS = ("conntrack", "ct_unreplied", "conntrack6", "ct6_unreplied")
IPV6_CONNTRACK_MAPS = ("conntrack6", "ct6_unreplied")
# Maps whose contents decide verdicts: a write to any of them needs a revision bump.
VERDICT_MAPS = ("ipcache", "cidr", "ipcache6", "cidr6", "endpoints", "endpoints6", "policy")


class _VerdictMap(KernelMap):
    """A verdict map: a failed update bumps the policy revision before the error
    propagates, so writes that succeeded before it never stay behind a cached verdict
    (whichever caller's own bump the error skips)."""

    def __init__(self, table: Any, name: str, bump: Callable[[], None]) -> None:
        super().__init__(table, name)
        self._bump = bump

    def update(self, key: Any, value: Any) -> None:
        try:
            super().update(key, value)
        except BaseException:
            self._bump()
            raise


class BpfDatapath:
    def __init__(self, node: str, pin_dir: str, *, max_conntrack: int = 65536,
                 max_conntrack_unreplied: int | None = None, max_policy: int = 16384, max_ipcache: int = 16384, max_cidr: int = 4096,
                 max_endpoints: int = 1024, ring_pages: int = 64,
                 ct_timeouts: dict[str, int] | None = None, netns: str | None = None,
                 features: Features | None = None, ct_accounting: bool = False,
                 attach_mode: str = "auto") -> None:
        """pin_dir: bpffs directory of this node's maps, e.g.
        /sys/fs/bpf/membrane/<lab>/<node>. netns: name of the network namespace holding
        the pods' host-side veths (None: the current one, as when the agent runs inside
        the node's namespace). ct_accounting: per-packet conntrack packet/byte counters
        (off: `bpf ct list` shows 0; see bpf/lib/conntrack.h). max_conntrack_unreplied:
        the table of connections not answered yet (default a quarter of
        max_conntrack, at least 1024). attach_mode: how programs go on a pod's veth
        (hooks.py): "tcx" (pinned TCX links, kernel 6.6+), "tc" (clsact filters),
        "auto" (TCX where the kernel has it, else clsact)."""
        self.node = node
        self.pin_dir = pin_dir.rstrip("/")
        self.netns = netns
        self._hooks = Hooks(attach_mode, self.pin_dir, netns)
        self.options = CompileOptions(
            pin_dir=self.pin_dir, max_ipcache=max_ipcache, max_cidr=max_cidr,
            max_endpoints=max_endpoints, max_policy=max_policy,
            max_conntrack=max_conntrack,
            max_conntrack_unreplied=(max_conntrack_unreplied if max_conntrack_unreplied
                                     else max(1024, max_conntrack // 4)),
            ring_pages=ring_pages,
            ct_timeouts=dict(ct_timeouts or {}), ct_accounting=ct_accounting)
        self.features = features or probe_features()
        self._bpf: Any = None
        self._progs: dict[str, Any] = {}
        self._maps: dict[str, KernelMap] = {}
        self._writer: PolicyWriter | None = None
        # ipcache/cidr shadows: map name -> PrefixWriter (made at the first sync after start)
        self._prefix_writers: dict[str, PrefixWriter] = {}
        self._reader: EventReader | None = None
        self._batch_handler: BatchHandler | None = None
        self._slots: dict[int, EndpointSlot] = {}          # endpoint id -> slot
        self._pinned: list[EndpointSlot] = []
        self.resized: dict[str, tuple[int, int]] = {}      # recreated at start: old, new
        self._lock = threading.RLock()

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._bpf is not None:
                return
            if not os.path.isdir("/sys/fs/bpf"):
                raise DatapathError("/sys/fs/bpf is not mounted: mount bpffs "
                                    "(mount -t bpf bpf /sys/fs/bpf)")
            self.resized = resize_pins(self.pin_dir, self._sizes())
            reused = [m for m in PINNED_MAPS
                      if os.path.exists(os.path.join(self.pin_dir, m))]
            t0 = time.monotonic()
            self._bpf = compile_datapath(self.options, self.features)
            self._progs = load_programs(self._bpf)
            for name in PINNED_MAPS:
                table = self._bpf[name.encode()]
                self._maps[name] = (_VerdictMap(table, name, self._bump_revision)
                                    if name in VERDICT_MAPS else KernelMap(table, name))
                # The kernel's size, not the C's declaration (they differ for a pin bcc
                # reused: status and MapFullError name the real one).
                self._maps[name].max_entries = map_size(table.map_fd)
            # Pinned conntrack entries may carry stamps of the previous agent: make
            # them all stale before this one writes (or reconciles) anything.
            self._bump_revision()
            self._writer = PolicyWriter(self._maps["policy"])
            self._reader = EventReader(self._bpf, self.node, ringbuf=self.features.ringbuf)
            self._reader.batch_handler = self._batch_handler
            self._pinned = self._read_endpoints()
            self._slots = {s.endpoint_id: s for s in self._pinned}
            log.info("datapath for node %s loaded in %.2fs; pins in %s (%s); %d pinned "
                     "endpoints; policy revision %d", self.node, time.monotonic() - t0,
                     self.pin_dir, f"reused {len(reused)} maps" if reused else "new maps",
                     len(self._pinned), self.policy_revision())

    def _sizes(self) -> dict[str, int]:
        """Configured max_entries of the maps whose size is configurable."""
        o = self.options
        return {"ipcache": o.max_ipcache, "cidr": o.max_cidr, "endpoints": o.max_endpoints,
                "policy": o.max_policy, "conntrack": o.max_conntrack,
                # The IPv6 twins take their IPv4 map's size (bpf/lib/common.h).
                "ipcache6": o.max_ipcache, "cidr6": o.max_cidr,
                "conntrack6": o.max_conntrack}

    def _require(self) -> None:
        if self._bpf is None:
            raise DatapathError(f"datapath of node {self.node} is not started: "
                                "call start() first")

    def _ifname(self, ifindex: int) -> str:
        return tc.ifname_of(ifindex, self.netns)

    def _read_endpoints(self) -> list[EndpointSlot]:
        out = []
        for k, v in self._maps["endpoints"].items():
            ifindex = int(k.value)
            out.append(EndpointSlot(endpoint_id=v.endpoint_id, ifname=self._ifname(ifindex),
                                    ifindex=ifindex,
                                    ipv4=layout.be32_to_ip(v.ipv4) if v.ipv4 else "",
                                    identity=v.identity, ipv6=self._read_ipv6(v.endpoint_id)))
        return sorted(out, key=lambda s: s.endpoint_id)

    def _read_ipv6(self, endpoint_id: int) -> str:
        """The endpoint's endpoints6 slot: its IPv6 address, "" when all zeros."""
        words = self._maps["endpoints6"].table[ctypes.c_uint32(endpoint_id)].ipv6
        return layout.words_to_ip6(words) if any(words) else ""

    def pinned_endpoints(self) -> list[EndpointSlot]:
        self._require()
        return list(self._pinned)

    def close(self, unpin: bool = False) -> None:
        with self._lock:
            if unpin and self._bpf is not None:
                for slot in list(self._slots.values()):
                    try:
                        self._hooks.detach(slot.ifname, slot.ifindex)
                    except DatapathError as e:
                        log.warning("close: %s", e)
            self._reader = None
            if self._bpf is not None:
                try:
                    self._bpf.cleanup()
                except Exception:  # bcc cleanup is best effort
                    pass
            self._bpf = None
            self._maps = {}
            self._writer = None
            if unpin:
                shutil.rmtree(self.pin_dir, ignore_errors=True)
                log.info("datapath of node %s: programs detached, pins removed", self.node)

    # --- endpoints -----------------------------------------------------------

    @staticmethod
    def _endpoint_value(slot: EndpointSlot, policy: EndpointPolicy) -> layout.endpoint_info:
        # No IPv4 address (an IPv6-only pod): 0.0.0.0, which no routed packet carries.
        ipv4 = layout.ip_to_be32(slot.ipv4) if slot.ipv4 else 0
        return layout.endpoint_info(identity=slot.identity, ipv4=ipv4,
                                    endpoint_id=slot.endpoint_id,
                                    flags=endpoint_flags(policy))

    @staticmethod
    def _ipv6_value(ipv6: str) -> layout.endpoint6_info:
        """An endpoints6 slot: the address, or zeros (the unspecified address) for none."""
        return layout.endpoint6_info(layout.ip6_to_words(ipv6)) if ipv6 \
            else layout.endpoint6_info()

    def _write_endpoint(self, slot: EndpointSlot, policy: EndpointPolicy) -> bool:
        """Writes the endpoints6 slot (the IPv6 address, or zeros), then the endpoints
        entry, so a new endpoint's first IPv6 packet already finds its address; returns
        whether either changed."""
        old = self._slots.get(slot.endpoint_id)
        if old is not None and old.ifindex != slot.ifindex:   # the pod got a new veth
            self._maps["endpoints"].delete(ctypes.c_uint32(old.ifindex))
        changed = self._write_if_changed("endpoints6", slot, ctypes.c_uint32(slot.endpoint_id),
                                         self._ipv6_value(slot.ipv6))
        changed |= self._write_if_changed("endpoints", slot, ctypes.c_uint32(slot.ifindex),
                                          self._endpoint_value(slot, policy))
        self._slots[slot.endpoint_id] = slot
        return changed

    def _write_if_changed(self, name: str, slot: EndpointSlot, key: ctypes.c_uint32,
                          value: ctypes.Structure) -> bool:
        m = self._maps[name]
        try:
            if bytes(m.table[key]) == bytes(value):
                return False
        except KeyError:
            pass
        try:
            m.update(key, value)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.E2BIG):
                raise MapFullError(f"endpoint {slot.endpoint_id} ({slot.ifname}): BPF map "
                                   f"'{name}' is full (max_entries {m.max_entries})") from e
            raise DatapathError(f"endpoint {slot.endpoint_id}: writing map '{name}': "
                                f"{e}") from e
        return True

    def _check_ifindex(self, slot: EndpointSlot) -> None:
        idx = tc.ifindex_of(slot.ifname, self.netns)
        if idx != slot.ifindex:
            raise DatapathError(f"endpoint {slot.endpoint_id}: {slot.ifname} has ifindex "
                                f"{idx}, not {slot.ifindex} as registered")

    def add_endpoint(self, slot: EndpointSlot, policy: EndpointPolicy) -> None:
        with self._lock:
            self._require()
            assert self._writer is not None
            self._check_ifindex(slot)
            full: MapFullError | None = None
            try:
                try:
                    self._writer.sync(slot.endpoint_id, policy, self._who(slot))
                except MapFullError as e:
                    full = e
                self._write_endpoint(slot, policy)
            finally:
                self._bump_revision()
            how = self._hooks.attach(slot.ifname, slot.ifindex, self._prog_fds())
            log.info("endpoint %d (%s, %s) attached (%s); ingress %s, egress %s",
                     slot.endpoint_id, slot.ifname, slot.ipv4 or slot.ipv6, how,
                     "enforced" if policy.ingress_enforced else "open",
                     "enforced" if policy.egress_enforced else "open")
            if full is not None:
                raise full

    def reattach(self, slot: EndpointSlot) -> None:
        with self._lock:
            self._require()
            # tc "replace" or a TCX link update: the new programs take over atomically,
            # no packet unjudged.
            self._hooks.attach(slot.ifname, slot.ifindex, self._prog_fds())
            log.info("endpoint %d (%s): programs of this agent attached to its pinned state",
                     slot.endpoint_id, slot.ifname)

    def _prog_fds(self) -> dict[str, int]:
        return {n: int(p.fd) for n, p in self._progs.items()}

    @property
    def attach_mode(self) -> str:
        """How the next attach goes: "tcx", "tc", or "auto" before the first."""
        return self._hooks.mode

    def update_endpoint(self, slot: EndpointSlot, policy: EndpointPolicy) -> int:
        with self._lock:
            self._require()
            assert self._writer is not None
            bump = True      # unless we know nothing was written
            try:
                try:
                    res = self._writer.sync(slot.endpoint_id, policy, self._who(slot))
                except MapFullError:
                    self._write_endpoint(slot, policy)   # enforcement on: deny, not allow
                    raise
                changed = self._write_endpoint(slot, policy)
                writes = res.writes + int(changed)
                bump = writes > 0
                return writes
            finally:
                if bump:
                    self._bump_revision()

    def remove_endpoint(self, endpoint_id: int) -> None:
        with self._lock:
            self._require()
            assert self._writer is not None
            slot = self._slots.get(endpoint_id)
            if slot is None:
                slot = next((s for s in self._read_endpoints()
                             if s.endpoint_id == endpoint_id), None)
            try:
                if slot is not None:
                    self._hooks.detach(slot.ifname, slot.ifindex)
                    self._maps["endpoints"].delete(ctypes.c_uint32(slot.ifindex))
                # An array slot cannot be deleted: zeros, the address no pod has.
                self._maps["endpoints6"].update(ctypes.c_uint32(endpoint_id),
                                                self._ipv6_value(""))
                self._writer.remove_endpoint(endpoint_id)
            finally:
                self._bump_revision()
            for name in CONNTRACK_MAPS:
                ct = self._maps[name]
                for k, _ in ct.items():
                    if k.endpoint_id == endpoint_id:
                        ct.delete(k)
            self._slots.pop(endpoint_id, None)
            log.info("endpoint %d removed", endpoint_id)

    @staticmethod
    def _who(slot: EndpointSlot) -> str:
        addresses = ", ".join(a for a in (slot.ipv4, slot.ipv6) if a)
        return f"endpoint {slot.endpoint_id} ({slot.ifname}, {addresses})"

    # --- cluster maps ----------------------------------------------------------

    def sync_cluster_maps(self, maps: ClusterMaps) -> int:
        with self._lock:
            self._require()
            # Each map is read from the kernel once (the first sync after start(): a
            # restarted agent diffs against the pinned maps), then diffed against the
            # shadow of what was written; a failed write makes the next sync re-read.
            # Both maps are synced even when one is full: each holds all it can.
            writes = 0
            failed: list[DatapathError] = []
            try:
                for version, suffix in ((4, ""), (6, "6")):
                    family = maps.family(version)
                    for name, desired in ((f"ipcache{suffix}", family.ipcache),
                                          (f"cidr{suffix}", family.cidrs)):
                        w = self._prefix_writers.get(name)
                        if w is None or w.map is not self._maps[name]:
                            w = self._prefix_writers[name] = PrefixWriter(self._maps[name],
                                                                          version)
                        try:
                            writes += w.sync(desired).writes
                        except DatapathError as err:
                            failed.append(err)
            finally:
                self._bump_revision()
            if len(failed) == 1:
                raise failed[0]
            if failed:
                kind = (MapFullError if all(isinstance(e, MapFullError) for e in failed)
                        else DatapathError)
                raise kind("; ".join(str(e) for e in failed)) from failed[0]
            return writes

    # --- policy revision ---------------------------------------------------------

    def policy_revision(self) -> int:
        """The current policy revision (bpf/lib/revision.h); 0 before start."""
        if self._bpf is None:
            return 0
        v = self._maps["policy_revision"].table[ctypes.c_uint32(0)]
        return int(v.revision)

    def _bump_revision(self) -> None:
        """Makes every cached conntrack verdict stale: the next forward packet of each
        established connection is decided by policy again (and re-stamped if allowed).
        Call after every write that can change a verdict (policy, endpoints, ipcache,
        cidr), never before it: a packet that read the old revision may still stamp
        it, which is what makes a stamp safe (revision.h)."""
        with self._lock:
            if self._bpf is None:
                return
            m = self._maps["policy_revision"]
            value = layout.policy_revision(
                revision=layout.next_revision(self.policy_revision()))
            try:
                KernelMap.update(m, ctypes.c_uint32(0), value)
            except OSError as e:
                # Not writing it would leave stale allows cached: refuse loudly.
                raise DatapathError(f"node {self.node}: writing map 'policy_revision': "
                                    f"{e}") from e

    def dump_ipcache(self) -> tuple[dict[str, int], dict[str, int]]:
        self._require()
        ipcache = {**read_prefix_map(self._maps["ipcache"]),
                   **read_prefix_map(self._maps["ipcache6"])}
        cidrs = {**read_prefix_map(self._maps["cidr"]), **read_prefix_map(self._maps["cidr6"])}
        return ipcache, cidrs

    # --- events ------------------------------------------------------------------

    def set_batch_handler(self, handler: BatchHandler | None) -> None:
        """Events in batches, one observe.events.EventBatch per poll (records decoded
        only when needed): observe.ring.FlowObserver.on_events."""
        self._batch_handler = handler
        if self._reader is not None:
            self._reader.batch_handler = handler

    def poll_events(self, timeout_ms: int) -> int:
        self._require()
        assert self._reader is not None
        return self._reader.poll(timeout_ms)

    # --- conntrack -----------------------------------------------------------------

    def collect_conntrack_garbage(self) -> int:
        """Deletes entries whose expiry (CLOCK_MONOTONIC, as bpf_ktime_get_ns) passed."""
        self._require()
        now = time.monotonic_ns()
        n = 0
        for name in CONNTRACK_MAPS:
            ct = self._maps[name]
            for k, v in ct.items():
                if v.expires_ns <= now and ct.delete(k):
                    n += 1
        if n:
            log.debug("conntrack GC on %s: %d expired entries deleted", self.node, n)
        return n

    def dump_conntrack(self) -> list[ConntrackEntry]:
        self._require()
        now = time.monotonic_ns()
        out = []
        for name in CONNTRACK_MAPS:
            address = layout.words_to_ip6 if name in IPV6_CONNTRACK_MAPS else layout.be32_to_ip
            for k, v in self._maps[name].items():
                # Shown as the first packet went: a key holds the tuple leaving the
                # endpoint, so an ingress-opened connection's is swapped back (entries
                # of builds before that kept the first packet's direction in the key).
                inbound = (k.direction == Direction.EGRESS
                           and bool(v.flags & layout.CT_F_INGRESS_FIRST))
                src, sport, dst, dport = k.saddr, k.sport, k.daddr, k.dport
                if inbound:
                    src, sport, dst, dport = dst, dport, src, sport
                out.append(ConntrackEntry(
                    endpoint_id=k.endpoint_id,
                    direction=int(Direction.INGRESS) if inbound else k.direction,
                    protocol=k.protocol,
                    src_ip=address(src), src_port=sport,
                    dst_ip=address(dst), dst_port=dport,
                    state=layout.CT_STATE_NAMES.get(v.state, f"state-{v.state}"),
                    expires_in_s=round((v.expires_ns - now) / 1e9, 3),
                    packets=v.packets, bytes=v.bytes))
        return sorted(out, key=lambda e: (e.endpoint_id, e.direction, e.protocol,
                                          e.src_ip, e.src_port, e.dst_ip, e.dst_port))

    # --- policy ----------------------------------------------------------------------

    def dump_policy(self, endpoint_id: int) -> list[KernelPolicyEntry]:
        """The endpoint's kernel entries with their counters. A port range appears as
        the power-of-two blocks it was written as."""
        self._require()
        out = []
        for k, v in self._maps["policy"].items():
            if k.endpoint_id != endpoint_id:
                continue
            mk = PolicyMapKey.from_c(k)
            value = EntryValue.from_c(v)
            out.append(KernelPolicyEntry(key=mk.to_policy_key(), packets=v.packets,
                                         bytes=v.bytes, allow=bool(value.match_type),
                                         tiers=value.describe_tiers()))
        return sorted(out, key=lambda e: e.key)

    # --- stats -----------------------------------------------------------------------

    def stats(self) -> DatapathStats:
        self._require()
        st = DatapathStats()
        for name in ("endpoints", "ipcache", "ipcache6", "cidr", "cidr6", "policy",
                     *CONNTRACK_MAPS):
            m = self._maps[name]
            st.maps.append(MapUsage(name=name, entries=len(m), max_entries=m.max_entries))
        # endpoints6 is an array (every slot exists): count the endpoints that have IPv6.
        st.maps.append(MapUsage(name="endpoints6",
                                entries=sum(1 for s in self._slots.values() if s.ipv6),
                                max_entries=self._maps["endpoints6"].max_entries))
        drops = self._bpf[b"drop_metrics"]
        for k, per_cpu in drops.items():
            total = sum(int(c.packets) for c in per_cpu)
            if total:
                st.drops[int(k.value)] = total
        st.lost_events = self.lost_events()
        return st

    def lost_events(self) -> int:
        self._require()
        lost = self._bpf[b"lost_events"]
        total = sum(int(sum(v)) for _, v in lost.items())
        if self._reader is not None:
            total += self._reader.user_lost
        return total
