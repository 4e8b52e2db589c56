"""What the plugin learns about the pod from the previous plugins' result (and netlink).

The agent wants the host side of the pod's veth, in the plugin's own network namespace
(the node's, where the runtime executes us and where the hostNetwork agent runs), and the
pod's addresses: its IPv4 one and, on a dual-stack (or IPv6-only) cluster, its IPv6 one. ptp reports [host veth, container if]; bridge reports [bridge, host
veth, container if]: "the interface without a sandbox" is ambiguous for bridge, so netlink
has the last word when the pod's netns is there to ask.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any, Callable

from agent.cni.spec import ERR_INVALID_CONFIG, ERR_UNKNOWN_CONTAINER, CniError


@dataclass(frozen=True)
class PodInterface:
    host_ifname: str
    ipv4: str          # "" for an IPv6-only pod
    ipv6: str = ""     # "" when the runtime gave the pod none


def _interfaces(prev: dict[str, Any]) -> list[dict[str, Any]]:
    ifaces = prev.get("interfaces") or []
    return [i for i in ifaces if isinstance(i, dict)]


def container_index(prev: dict[str, Any], ifname: str) -> int | None:
    """Index in prevResult.interfaces of the container's CNI_IFNAME (the one in a sandbox)."""
    for idx, iface in enumerate(_interfaces(prev)):
        if iface.get("sandbox") and iface.get("name") == ifname:
            return idx
    return None


def pod_address(prev: dict[str, Any], ifname: str, version: int) -> str:
    """The first address of IP `version` of the container interface; of any interface if
    none is tied to it; "" when prevResult has none of that family."""
    cidx = container_index(prev, ifname)
    fallback = ""
    for ip in prev.get("ips") or []:
        if not isinstance(ip, dict) or "address" not in ip:
            continue
        # 0.3.x results carry "version": "4"; 1.0.0 dropped it, so parse the address.
        iface = ipaddress.ip_interface(str(ip["address"]))
        if iface.version != version:
            continue
        addr = str(iface.ip)
        if cidx is not None and ip.get("interface") == cidx:
            return addr
        fallback = fallback or addr
    return fallback


def pod_addresses(prev: dict[str, Any], ifname: str) -> tuple[str, str]:
    """(IPv4, IPv6) of the pod, "" for a family it has none of; at least one is needed."""
    ipv4, ipv6 = pod_address(prev, ifname, 4), pod_address(prev, ifname, 6)
    if not ipv4 and not ipv6:
        raise CniError(ERR_INVALID_CONFIG, "prevResult has no IP address for the pod: "
                       "membrane-cni must come after a plugin that assigns one (ptp, bridge "
                       "+ host-local, ...)")
    return ipv4, ipv6


def host_side_candidates(prev: dict[str, Any]) -> list[str]:
    return [str(i["name"]) for i in _interfaces(prev) if not i.get("sandbox") and i.get("name")]


# (netns path, container ifname) -> host ifname of its veth peer, or None when unknowable.
PeerLookup = Callable[[str, str], "str | None"]
# host ifname -> link kind ("veth", "bridge", ...) or None when there is no such link.
KindLookup = Callable[[str], "str | None"]


def netlink_peer(netns: str, ifname: str) -> str | None:
    """Follow the container interface's IFLA_LINK to the host side, in our own netns."""
    from pyroute2 import IPRoute, NetNS  # lazy: DEL and VERSION never need netlink

    # Never create it: pyroute2 makes a missing netns unless told otherwise (flags=0), and a
    # plugin that conjures namespaces for pods that are gone would leak them on every node.
    if not os.path.exists(netns):
        return None
    try:
        with NetNS(netns, flags=0) as ns:
            idx = ns.link_lookup(ifname=ifname)
            if not idx:
                return None
            link = ns.get_links(idx[0])[0]
            if link.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) != "veth":
                return None
            peer_index = link.get("IFLA_LINK")
    except (OSError, FileNotFoundError):
        return None
    if not peer_index:
        return None
    with IPRoute() as ipr:
        try:
            peer = ipr.get_links(peer_index)[0]
        except Exception:  # pyroute2 raises NetlinkError: no such index here
            return None
        return str(peer.get("IFLA_IFNAME"))


def netlink_kind(ifname: str) -> str | None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            return None
        kind = ipr.get_links(idx[0])[0].get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
        return str(kind) if kind else None


def find_pod_interface(prev: dict[str, Any], netns: str, ifname: str,
                       peer_of: PeerLookup = netlink_peer,
                       kind_of: KindLookup = netlink_kind) -> PodInterface:
    ipv4, ipv6 = pod_addresses(prev, ifname)
    candidates = host_side_candidates(prev)
    peer = peer_of(netns, ifname) if netns else None
    if peer and (not candidates or peer in candidates):
        return PodInterface(peer, ipv4, ipv6)
    if peer and candidates:
        # The previous plugin reported one name and netlink shows another: trust neither.
        raise CniError(ERR_INVALID_CONFIG,
                       f"{ifname} in {netns} is paired with {peer}, but prevResult lists "
                       f"host interfaces {candidates}")
    veths = [c for c in candidates if kind_of(c) == "veth"]
    if len(veths) == 1:
        return PodInterface(veths[0], ipv4, ipv6)
    raise CniError(ERR_UNKNOWN_CONTAINER,
                   f"cannot tell the host side of {ifname}'s veth: prevResult lists "
                   f"{candidates or 'no host interfaces'} and the netns {netns or '(none)'} "
                   "did not say; membrane-cni chains only with veth-based plugins")
