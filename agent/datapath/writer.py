"""Desired state vs kernel state: diff the engine's map state against the BPF maps and
write only the difference (as Cilium's pkg/endpoint/bpf.go syncPolicyMap does).

* `expand()` turns an EndpointPolicy into policy-map entries: any-protocol entries at
  prefix 56, every-port entries at prefix 64, and each port range (endPort) into the
  few power-of-two aligned port blocks covering it (`port_prefixes`), never one entry
  per port. See bpf/lib/policy.h for the key layout. With tier entries, `flatten` then
  gives every entry the facts of every entry covering it (a shorter prefix of the same
  endpoint, direction and peer): the kernel's LPM returns only the longest prefix, and
  one lookup per peer identity must see every rule that matches (policy.h). Without
  tier entries nothing is inherited: a covering allow is never better than the covered
  one's, so NetworkPolicy-only maps are what they always were.
* `endpoint_flags()` is the endpoints map's flags byte for an EndpointPolicy.
* `PolicyWriter.sync()` applies deletes first, then adds: a map that fills up midway
  leaves the endpoint with a subset of its desired entries, never with entries it no
  longer should have. A full map raises MapFullError naming the endpoint and map.
* `PrefixWriter.sync()` does the same for ipcache and cidr (prefix -> identity), and
  their IPv6 twins ipcache6 and cidr6 (one writer per map, each of one family), against
  a shadow of what it wrote: the kernel map is read once, not per sync.

Nothing here knows Kubernetes; the maps are reached through `KernelMap`, a thin wrapper
over a bcc table that reports errno (bcc's own `__setitem__` loses it).
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import logging
import os
import re
import socket
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

from core.errors import DatapathError, MapFullError
from core.protocols import ANY_PROTOCOL, Direction
from agent.datapath import layout
from agent.policy.mapstate import (TIER_ACTION_MASK, TIER_AUDIT, EndpointPolicy, MatchType,
                                   PolicyKey, TierAction, TierLevel)
from agent.policy.ports import port_blocks

log = logging.getLogger(__name__)

_FULL_ERRNOS = (errno.ENOSPC, errno.E2BIG, errno.ENOMEM)


class MapIO(Protocol):
    """What the writer needs of a map: a bcc table (KernelMap) or a dict in tests."""

    name: str
    max_entries: int

    def update(self, key: ctypes.Structure, value: ctypes.Structure) -> None: ...

    def delete(self, key: ctypes.Structure) -> bool: ...

    def items(self) -> Iterable[tuple[Any, Any]]: ...


class KernelMap:
    """A bcc table with errno-preserving update/delete."""

    def __init__(self, table: Any, name: str) -> None:
        self.table = table
        self.name = name
        self.max_entries = int(table.max_entries)

    def update(self, key: Any, value: Any) -> None:
        from bcc.libbcc import lib  # late: tests drive the writer with dict maps, no bcc

        res = lib.bpf_update_elem(self.table.map_fd, ctypes.byref(key),
                                  ctypes.byref(value), 0)
        if res < 0:
            err = ctypes.get_errno() or -res
            raise OSError(err, os.strerror(err))

    def delete(self, key: Any) -> bool:
        from bcc.libbcc import lib  # late: as in update()

        return bool(lib.bpf_delete_elem(self.table.map_fd, ctypes.byref(key)) == 0)

    def items(self) -> Iterable[tuple[Any, Any]]:
        return list(self.table.items())

    def __len__(self) -> int:
        return sum(1 for _ in self.table.keys())


# --- policy entries ---------------------------------------------------------

@dataclass(frozen=True, order=True)
class PolicyMapKey:
    """One policy map entry as Python sees it (ports host byte order)."""

    endpoint_id: int
    direction: int
    peer: int
    protocol: int
    port: int           # first port of the block (0 when the prefix stops before it)
    prefixlen: int      # 56, 64 or 64 + n

    def to_c(self) -> layout.policy_key:
        return layout.policy_key(prefixlen=self.prefixlen, peer_identity=self.peer,
                                 endpoint_id=self.endpoint_id, direction=self.direction,
                                 protocol=self.protocol, dport=layout.htons(self.port))

    @classmethod
    def from_c(cls, k: Any) -> "PolicyMapKey":
        return cls(endpoint_id=k.endpoint_id, direction=k.direction, peer=k.peer_identity,
                   protocol=k.protocol, port=layout.ntohs(k.dport), prefixlen=k.prefixlen)

    def to_policy_key(self) -> PolicyKey:
        """The engine's view of this one kernel entry (a range entry appears as its
        blocks, each a PolicyKey)."""
        if self.prefixlen <= layout.POLICY_PREFIX_ANY_PROTO:
            return PolicyKey(Direction(self.direction), self.peer, ANY_PROTOCOL)
        size = 1 << (layout.POLICY_PREFIX_FULL - self.prefixlen)
        return PolicyKey(Direction(self.direction), self.peer, self.protocol,
                         self.port, self.port + size - 1)


# Port ranges become these blocks; the engine counts a policy's entries with the same
# function (agent.policy.ports) before it hands the policy over.
port_prefixes = port_blocks

_SPECIFICITY = {MatchType.L3_L4: 4, MatchType.L3_ONLY: 3, MatchType.L4_ONLY: 2,
                MatchType.ALL: 1, MatchType.NONE: 0}


@dataclass(frozen=True, order=True)
class EntryValue:
    """A policy map value as the writer compares it (its counters are the kernel's)."""

    match_type: int = 0           # MatchType of the best NetworkPolicy allow; 0: none
    admin_flags: int = 0          # TierEntry.flags of the first Admin-tier rule; 0: none
    admin_rank: int = 0
    baseline_flags: int = 0
    baseline_rank: int = 0

    def to_c(self) -> layout.policy_entry:
        return layout.policy_entry(match_type=self.match_type, admin_flags=self.admin_flags,
                                   admin_rank=self.admin_rank,
                                   baseline_flags=self.baseline_flags,
                                   baseline_rank=self.baseline_rank)

    @classmethod
    def from_c(cls, v: Any) -> "EntryValue":
        return cls(int(v.match_type), int(v.admin_flags), int(v.admin_rank),
                   int(v.baseline_flags), int(v.baseline_rank))

    def describe_tiers(self) -> str:
        """The tier rules this value carries, for `membrane bpf policy get`."""
        parts = []
        for name, flags, rank in (("Admin", self.admin_flags, self.admin_rank),
                                  ("Baseline", self.baseline_flags, self.baseline_rank)):
            if flags:
                action = TierAction(flags & TIER_ACTION_MASK).name.title()
                audit = " (audit)" if flags & TIER_AUDIT else ""
                parts.append(f"{name} #{rank} {action}{audit}")
        return ", ".join(parts)

    def merged(self, other: "EntryValue") -> "EntryValue":
        """Both entries' facts: the better allow, the earlier rule of each tier."""
        out = self
        if _SPECIFICITY[MatchType(other.match_type)] > _SPECIFICITY[MatchType(out.match_type)]:
            out = replace(out, match_type=other.match_type)
        if other.admin_flags and (not out.admin_flags or other.admin_rank < out.admin_rank):
            out = replace(out, admin_flags=other.admin_flags, admin_rank=other.admin_rank)
        if other.baseline_flags and (not out.baseline_flags
                                     or other.baseline_rank < out.baseline_rank):
            out = replace(out, baseline_flags=other.baseline_flags,
                          baseline_rank=other.baseline_rank)
        return out


def expand_key(endpoint_id: int, key: PolicyKey) -> list[PolicyMapKey]:
    d = int(key.direction)
    if key.protocol == ANY_PROTOCOL:
        return [PolicyMapKey(endpoint_id, d, key.peer, 0, 0,
                             layout.POLICY_PREFIX_ANY_PROTO)]
    if key.every_port:
        return [PolicyMapKey(endpoint_id, d, key.peer, key.protocol, 0,
                             layout.POLICY_PREFIX_ANY_PORT)]
    return [PolicyMapKey(endpoint_id, d, key.peer, key.protocol, port,
                         layout.POLICY_PREFIX_ANY_PORT + bits)
            for port, bits in port_prefixes(key.port_low, key.port_high)]


def expand(endpoint_id: int, policy: EndpointPolicy) -> dict[PolicyMapKey, EntryValue]:
    """Kernel entries for an endpoint's policy. Entries of a direction that is not
    enforced are written too (harmless: the C does not look them up), so that turning
    enforcement on is one flag write."""
    own: dict[PolicyMapKey, EntryValue] = {}
    for key in policy.entries:
        value = EntryValue(match_type=int(key.match_type))
        for mk in expand_key(endpoint_id, key):
            old = own.get(mk)
            own[mk] = value if old is None else old.merged(value)
    if not policy.tier_entries:
        return own
    for entry in policy.tier_entries:
        if entry.level is TierLevel.ADMIN:
            value = EntryValue(admin_flags=entry.flags, admin_rank=entry.rank)
        else:
            value = EntryValue(baseline_flags=entry.flags, baseline_rank=entry.rank)
        for mk in expand_key(endpoint_id, entry.key):
            old = own.get(mk)
            own[mk] = value if old is None else old.merged(value)
    return flatten(own)


def covering(mk: PolicyMapKey) -> Iterator[PolicyMapKey]:
    """The shorter prefixes of the same endpoint, direction and peer that contain mk:
    any protocol, then this protocol every port, then each wider port block."""
    if mk.prefixlen <= layout.POLICY_PREFIX_ANY_PROTO:
        return
    yield replace(mk, protocol=0, port=0, prefixlen=layout.POLICY_PREFIX_ANY_PROTO)
    for plen in range(layout.POLICY_PREFIX_ANY_PORT, mk.prefixlen):
        bits = plen - layout.POLICY_PREFIX_ANY_PORT
        mask = (0xFFFF << (16 - bits)) & 0xFFFF
        yield replace(mk, port=mk.port & mask, prefixlen=plen)


def flatten(own: Mapping[PolicyMapKey, EntryValue]) -> dict[PolicyMapKey, EntryValue]:
    """Every entry merged with the entries covering it (see the module docstring)."""
    out: dict[PolicyMapKey, EntryValue] = {}
    for mk, value in own.items():
        for wider in covering(mk):
            found = own.get(wider)
            if found is not None:
                value = value.merged(found)
        out[mk] = value
    return out


def endpoint_flags(policy: EndpointPolicy) -> int:
    """The endpoints map's flags byte (endpoints.h EP_F_*_ENFORCED, policy.h the rest)."""
    flags = 0
    for direction, enforced, tiered, default_deny in (
            (Direction.INGRESS, layout.EP_F_INGRESS_ENFORCED, layout.EP_F_INGRESS_TIERED,
             layout.EP_F_INGRESS_DEFAULT_DENY),
            (Direction.EGRESS, layout.EP_F_EGRESS_ENFORCED, layout.EP_F_EGRESS_TIERED,
             layout.EP_F_EGRESS_DEFAULT_DENY)):
        if policy.enforced(direction):
            flags |= enforced
        if policy.tiered(direction):
            flags |= tiered
        if direction in policy.default_deny:
            flags |= default_deny
    return flags | (layout.EP_F_AUDIT if policy.audit else 0)


@dataclass
class SyncResult:
    added: int = 0
    deleted: int = 0
    changed: int = 0

    @property
    def writes(self) -> int:
        return self.added + self.deleted + self.changed


class PolicyWriter:
    """Keeps the policy map in step with the desired entries of each endpoint.

    The kernel contents are read once (one scan of the pinned map, so a restarted
    agent diffs against what is really enforced) and then tracked as we write."""

    def __init__(self, policy_map: MapIO) -> None:
        self.map = policy_map
        self._kernel: dict[int, dict[PolicyMapKey, EntryValue]] | None = None

    def kernel(self) -> dict[int, dict[PolicyMapKey, EntryValue]]:
        if self._kernel is None:
            self._kernel = {}
            for k, v in self.map.items():
                mk = PolicyMapKey.from_c(k)
                self._kernel.setdefault(mk.endpoint_id, {})[mk] = EntryValue.from_c(v)
        return self._kernel

    def entries(self, endpoint_id: int) -> dict[PolicyMapKey, EntryValue]:
        return dict(self.kernel().get(endpoint_id, {}))

    def sync(self, endpoint_id: int, policy: EndpointPolicy, what: str = "") -> SyncResult:
        desired = expand(endpoint_id, policy)
        return self.sync_entries(endpoint_id, desired, what)

    def sync_entries(self, endpoint_id: int, desired: Mapping[PolicyMapKey, EntryValue],
                     what: str = "") -> SyncResult:
        current = self.kernel().setdefault(endpoint_id, {})
        res = SyncResult()
        who = what or f"endpoint {endpoint_id}"
        # Deletes first: never more open than desired, even if adds fail below.
        for mk in sorted(set(current) - set(desired)):
            self.map.delete(mk.to_c())
            del current[mk]
            res.deleted += 1
        for mk in sorted(desired):
            wanted = desired[mk]
            if current.get(mk) == wanted:
                continue
            value = wanted.to_c()
            try:
                self.map.update(mk.to_c(), value)
            except OSError as e:
                if e.errno in _FULL_ERRNOS:
                    log.error("policy map full writing %s: %d added, %d deleted, "
                              "%d still missing", who, res.added, res.deleted,
                              sum(1 for k in desired if k not in current))
                    raise MapFullError(
                        f"{who}: BPF map '{self.map.name}' is full "
                        f"(max_entries {self.map.max_entries}); the endpoint enforces "
                        "a subset of its policy (denying more, never allowing more). "
                        "Raise max_policy or reduce rules.") from e
                raise DatapathError(f"{who}: writing map '{self.map.name}': {e}") from e
            if mk in current:
                res.changed += 1
            else:
                res.added += 1
            current[mk] = wanted
        if res.writes:
            log.info("policy map sync %s: %d added, %d deleted, %d changed",
                     who, res.added, res.deleted, res.changed)
        return res

    def remove_endpoint(self, endpoint_id: int) -> int:
        return self.sync_entries(endpoint_id, {}, f"endpoint {endpoint_id}").deleted


# --- ipcache / cidr ---------------------------------------------------------

# "a.b.c.d/n" (or a bare address) in the form ipaddress accepts: no leading zeros.
_OCTET = r"(0|[1-9][0-9]{0,2})"
_DOTTED = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?:/(0|[1-9][0-9]?))?\Z")


def parse_prefix(prefix: str) -> tuple[str, int, int]:
    """IPv4 prefix text -> (normal text "a.b.c.d/n", prefixlen, address as the u32 the
    LPM key holds (network byte order in memory)). Host bits are cleared, as
    ipaddress.IPv4Network(strict=False) does; "10.0.0.1" means 10.0.0.1/32. Dotted quads
    are parsed here directly (the engine's prefixes; ~2x faster than ipaddress); anything
    else goes through ipaddress, which raises ValueError for non-prefixes."""
    m = _DOTTED.match(prefix)
    if m is not None:
        a, b, c, d, bits = m.groups()
        plen = 32 if bits is None else int(bits)
        octets = (int(a), int(b), int(c), int(d))
        if plen <= 32 and max(octets) <= 255:
            addr = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
            net = addr & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF)
            if net == addr and bits is not None:
                text = prefix
            else:
                text = (f"{net >> 24}.{(net >> 16) & 255}.{(net >> 8) & 255}.{net & 255}"
                        f"/{plen}")
            return text, plen, socket.htonl(net)
    n = ipaddress.IPv4Network(prefix, strict=False)
    return str(n), n.prefixlen, layout.ip_to_be32(str(n.network_address))


def parse_prefix6(prefix: str) -> tuple[str, int, ctypes.Array[ctypes.c_uint32]]:
    """IPv6 prefix text -> (normal text "fd00::/8", prefixlen, the four words the LPM key
    holds), host bits cleared; a bare address means /128. ValueError otherwise."""
    n = ipaddress.IPv6Network(prefix, strict=False)
    return str(n), n.prefixlen, layout.ip6_to_words(str(n.network_address))


def read_prefix_map(m: MapIO) -> dict[str, int]:
    return {layout.key_prefix(k): int(v.identity) for k, v in m.items()}


class PrefixWriter:
    """Keeps an LPM prefix map (ipcache, cidr: prefix -> identity) in step with the
    desired state, writing only the difference.

    As PolicyWriter does for the policy map, the kernel map is read once (at the first
    sync, so a restarted agent diffs against what the pinned map really holds) and
    then tracked in a shadow as we write. A sync compares the desired mapping with the
    shadow (dict lookups; keys already spelled as the shadow's normal "a.b.c.d/n" are
    never re-parsed) and writes only changed entries: no kernel read, no parsing of
    unchanged prefixes. A failed write (or a delete of an entry the kernel no longer
    had) marks the shadow stale: the next sync re-reads the kernel map."""

    def __init__(self, prefix_map: MapIO, family: int = 4) -> None:
        """family: 4 for an `ipcache_key` map (ipcache, cidr), 6 for an `ipcache6_key`
        one (ipcache6, cidr6); a prefix of the other family is a ValueError."""
        self.map = prefix_map
        self.family = family
        self._parse: Callable[[str], tuple[str, int, Any]] = (
            parse_prefix if family == 4 else parse_prefix6)
        self._key_type: type[layout.ipcache_key] | type[layout.ipcache6_key] = (
            layout.ipcache_key if family == 4 else layout.ipcache6_key)
        self._shadow: dict[str, int] | None = None
        self.kernel_reads = 0            # full reads of the kernel map (tests, debugging)

    def kernel(self) -> dict[str, int]:
        """What the kernel map holds, as far as we know (read once, then tracked)."""
        if self._shadow is None:
            self._shadow = read_prefix_map(self.map)
            self.kernel_reads += 1
        return self._shadow

    def resync(self) -> None:
        """Forget the shadow: the next sync reads the kernel map again."""
        self._shadow = None

    def _diff(self, desired: Mapping[str, int]) -> tuple[list[str], dict[str, int]]:
        """(prefixes to delete, normal prefix -> identity to write)."""
        cur = self.kernel()
        get = cur.get
        upserts: dict[str, int] = {}
        respelled: set[str] = set()    # normal forms of keys not spelled as the shadow's
        kept = 0                       # shadow keys the desired state has (as spelled)
        for prefix, ident in desired.items():
            old = get(prefix)
            if old is not None:        # a shadow key: normal already
                kept += 1
                if old != ident:
                    upserts[prefix] = int(ident)
                continue
            normal = self._parse(prefix)[0]
            if normal != prefix:
                if normal in desired:  # the normal spelling, also present, wins
                    continue
                respelled.add(normal)
            if get(normal) != ident:
                upserts[normal] = int(ident)
        kept += sum(1 for n in respelled if n in cur)
        if kept == len(cur):
            return [], upserts         # every shadow entry is still wanted
        stale = [p for p in cur if p not in desired and p not in respelled]
        return sorted(stale), upserts

    def sync(self, desired: Mapping[str, int]) -> SyncResult:
        """prefix -> identity: deletes first, then adds and changes. A full map does not
        stop it: every entry that fits is written (changes of existing prefixes always
        fit), then MapFullError says how many did not."""
        res = SyncResult()
        cur = self.kernel()
        if desired == cur:
            return res
        deletes, upserts = self._diff(desired)
        lost = 0
        refused: list[str] = []
        try:
            for prefix in deletes:
                _, plen, addr = self._parse(prefix)
                if not self.map.delete(self._key_type(plen, addr)):
                    lost += 1
                del cur[prefix]
                res.deleted += 1
            for prefix in sorted(upserts):
                ident = upserts[prefix]
                _, plen, addr = self._parse(prefix)
                try:
                    self.map.update(self._key_type(plen, addr),
                                    layout.remote_identity(identity=ident))
                except OSError as e:
                    if e.errno in _FULL_ERRNOS:
                        refused.append(f"{prefix} -> {ident}")
                        continue   # not written: the shadow stays right
                    raise DatapathError(f"writing map '{self.map.name}' {prefix}: {e}") from e
                if prefix in cur:
                    res.changed += 1
                else:
                    res.added += 1
                cur[prefix] = ident
        except Exception:
            # The kernel may hold anything between the old and the new state: read it
            # again at the next sync rather than trust the shadow.
            self.resync()
            raise
        if lost:
            log.warning("%s: %d entries the agent had written were already gone from the "
                        "kernel map (written by someone else?); re-reading it next sync",
                        self.map.name, lost)
            self.resync()
        if res.writes:
            log.info("%s sync: %d added, %d deleted, %d changed",
                     self.map.name, res.added, res.deleted, res.changed)
        if refused:
            raise MapFullError(
                f"BPF map '{self.map.name}' is full (max_entries {self.map.max_entries}): "
                f"{len(refused)} of {len(desired)} entries not written (first: "
                f"{refused[0]}); raise its size")
        return res


def sync_prefix_map(m: MapIO, desired: Mapping[str, int]) -> SyncResult:
    """One-off sync that reads the kernel map first (PrefixWriter keeps the shadow
    across syncs instead: use it for repeated syncs)."""
    return PrefixWriter(m).sync(desired)


def iter_blocks(entries: Iterable[PolicyMapKey]) -> Iterator[PolicyKey]:
    for e in sorted(entries):
        yield e.to_policy_key()
