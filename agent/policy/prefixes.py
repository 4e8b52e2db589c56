"""The ipBlock prefixes the engine knows, each with its CIDR identity, indexed for the two
questions it asks: which known prefixes lie inside a block (to match `except`s and to find
the policies a new prefix concerns), and which prefix an address falls in (longest match,
as the datapath's per-family LPM tries answer it). Both families live in one sorted list,
ordered by family first, so a range query never crosses into the other family."""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass, field

from identity.allocator import Identity

_BITS = {4: 32, 6: 128}


@dataclass(frozen=True, order=True)
class Net:
    """An IPv4 or IPv6 prefix as integers, for containment without ipaddress objects.
    Ordered by family first, so one sorted list holds both families apart."""

    version: int
    net: int
    plen: int

    @classmethod
    def of(cls, prefix: str) -> "Net":
        n = ipaddress.ip_network(prefix, strict=False)
        return cls(n.version, int(n.network_address), n.prefixlen)

    @property
    def last(self) -> int:
        return self.net | ((1 << (_BITS[self.version] - self.plen)) - 1)

    def covers(self, other: "Net") -> bool:
        return (other.version == self.version and other.plen >= self.plen
                and self.net <= other.net <= self.last)


@dataclass
class Prefixes:
    """The ipBlock prefixes of every policy, each with its CIDR identity."""

    ids: dict[str, Identity] = field(default_factory=dict)
    _sorted: list[tuple[Net, str]] = field(default_factory=list)
    # family -> prefix length -> network -> CIDR identity
    _by_len: dict[int, dict[int, dict[int, int]]] = field(default_factory=dict)

    def reindex(self) -> None:
        self._sorted = sorted((Net.of(p), p) for p in self.ids)
        self._by_len = {4: {}, 6: {}}
        for net, prefix in self._sorted:
            self._by_len[net.version].setdefault(net.plen, {})[net.net] = self.ids[prefix].id

    def inside(self, cidr: Net) -> list[tuple[Net, str]]:
        """Prefixes contained in cidr (cidr included), of its family."""
        start = bisect.bisect_left(self._sorted, (Net(cidr.version, cidr.net, 0), ""))
        out = []
        for net, prefix in self._sorted[start:]:
            if net.version != cidr.version or net.net > cidr.last:
                break
            if cidr.covers(net):
                out.append((net, prefix))
        return out

    def lpm(self, address: str) -> int:
        """The CIDR identity of an address (0: none), as the datapath's LPM finds it in
        the trie of the address's family."""
        ip = ipaddress.ip_address(address)
        value, bits = int(ip), _BITS[ip.version]
        by_len = self._by_len.get(ip.version, {})
        for plen in sorted(by_len, reverse=True):
            key = (value >> (bits - plen)) << (bits - plen) if plen else 0
            found = by_len[plen].get(key)
            if found is not None:
                return found
        return 0
