"""Desired state vs kernel state: diff the engine's map state against the BPF maps and
write only the difference (as Cilium's pkg/endpoint/bpf.go syncPolicyMap does).

* `expand()` turns an EndpointPolicy into policy-map entries: any-protocol entries at
  prefix 56, every-port entries at prefix 64, and each port range (endPort) into the
  few power-of-two aligned port blocks covering it (`port_prefixes`), never one entry
  per port. See bpf/lib/policy.h for the key layout.
* `PolicyWriter.sync()` applies deletes first, then adds: a map that fills up midway
  leaves the endpoint with a subset of its desired entries, never with entries it no
  longer should have. A full map raises MapFullError naming the endpoint and map.
* `sync_prefix_map()` does the same for ipcache and cidr (prefix -> identity).

Nothing here knows Kubernetes; the maps are reached through `KernelMap`, a thin wrapper
over a bcc table that reports errno (bcc's own `__setitem__` loses it).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Protocol

from agent.datapath import layout
from agent.errors import DatapathError, MapFullError
from agent.policy.mapstate import (ANY_PROTOCOL, Direction, EndpointPolicy, MatchType,
                                   PolicyKey)

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
        from bcc.libbcc import lib

        res = lib.bpf_update_elem(self.table.map_fd, ctypes.byref(key),
                                  ctypes.byref(value), 0)
        if res < 0:
            err = ctypes.get_errno() or -res
            raise OSError(err, os.strerror(err))

    def delete(self, key: Any) -> bool:
        from bcc.libbcc import lib

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
        bits = self.prefixlen - layout.POLICY_PREFIX_ANY_PORT
        size = 1 << (16 - bits)
        return PolicyKey(Direction(self.direction), self.peer, self.protocol,
                         self.port, self.port + size - 1)


def port_prefixes(low: int, high: int) -> list[tuple[int, int]]:
    """Inclusive port range -> [(first port, prefix bits over the 16-bit port)], the
    fewest power-of-two aligned blocks that cover it exactly (80-8080 -> 14 blocks)."""
    if not 0 <= low <= high <= 65535:
        raise ValueError(f"bad port range {low}-{high}")
    out: list[tuple[int, int]] = []
    while low <= high:
        size = (low & -low) if low else 1 << 16
        while size > high - low + 1:
            size >>= 1
        out.append((low, 16 - (size.bit_length() - 1)))
        low += size
    return out


_SPECIFICITY = {MatchType.L3_L4: 4, MatchType.L3_ONLY: 3, MatchType.L4_ONLY: 2,
                MatchType.ALL: 1, MatchType.NONE: 0}


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


def expand(endpoint_id: int, policy: EndpointPolicy) -> dict[PolicyMapKey, int]:
    """Kernel entries (-> match type) for an endpoint's policy. Entries of a direction
    that is not enforced are written too (harmless: the C does not look them up), so
    that turning enforcement on is one flag write."""
    out: dict[PolicyMapKey, int] = {}
    for key in policy.entries:
        mt = key.match_type
        for mk in expand_key(endpoint_id, key):
            old = out.get(mk)
            if old is None or _SPECIFICITY[mt] > _SPECIFICITY[MatchType(old)]:
                out[mk] = int(mt)
    return out


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
        self._kernel: dict[int, dict[PolicyMapKey, int]] | None = None

    def kernel(self) -> dict[int, dict[PolicyMapKey, int]]:
        if self._kernel is None:
            self._kernel = {}
            for k, v in self.map.items():
                mk = PolicyMapKey.from_c(k)
                self._kernel.setdefault(mk.endpoint_id, {})[mk] = int(v.match_type)
        return self._kernel

    def entries(self, endpoint_id: int) -> dict[PolicyMapKey, int]:
        return dict(self.kernel().get(endpoint_id, {}))

    def sync(self, endpoint_id: int, policy: EndpointPolicy, what: str = "") -> SyncResult:
        desired = expand(endpoint_id, policy)
        return self.sync_entries(endpoint_id, desired, what)

    def sync_entries(self, endpoint_id: int, desired: Mapping[PolicyMapKey, int],
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
            mt = desired[mk]
            if current.get(mk) == mt:
                continue
            value = layout.policy_entry(match_type=mt)
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
            current[mk] = mt
        if res.writes:
            log.info("policy map sync %s: %d added, %d deleted, %d changed",
                     who, res.added, res.deleted, res.changed)
        return res

    def remove_endpoint(self, endpoint_id: int) -> int:
        return self.sync_entries(endpoint_id, {}, f"endpoint {endpoint_id}").deleted


# --- ipcache / cidr ---------------------------------------------------------

def read_prefix_map(m: MapIO) -> dict[str, int]:
    return {layout.key_prefix(k): int(v.identity) for k, v in m.items()}


def sync_prefix_map(m: MapIO, desired: Mapping[str, int]) -> SyncResult:
    """prefix -> identity: deletes, then adds and changes."""
    import ipaddress

    want = {str(ipaddress.IPv4Network(p, strict=False)): int(i) for p, i in desired.items()}
    current = read_prefix_map(m)
    res = SyncResult()
    for prefix in sorted(set(current) - set(want)):
        m.delete(layout.prefix_key(prefix))
        res.deleted += 1
    for prefix, ident in sorted(want.items()):
        if current.get(prefix) == ident:
            continue
        try:
            m.update(layout.prefix_key(prefix), layout.remote_identity(identity=ident))
        except OSError as e:
            if e.errno in _FULL_ERRNOS:
                raise MapFullError(
                    f"BPF map '{m.name}' is full (max_entries {m.max_entries}) writing "
                    f"{prefix} -> {ident}; raise its size") from e
            raise DatapathError(f"writing map '{m.name}' {prefix}: {e}") from e
        if prefix in current:
            res.changed += 1
        else:
            res.added += 1
    if res.writes:
        log.info("%s sync: %d added, %d deleted, %d changed",
                 m.name, res.added, res.deleted, res.changed)
    return res


def iter_blocks(entries: Iterable[PolicyMapKey]) -> Iterator[PolicyKey]:
    for e in sorted(entries):
        yield e.to_policy_key()
