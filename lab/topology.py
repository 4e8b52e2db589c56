"""The wires: an underlay bridge joining node namespaces and an external host, and a
veth pair per pod. No link ever touches the machine's root namespace.

    [pod netns] eth0 ==veth== lxcXXXXXXXXXXX [node netns] eth0 ==veth== nodeN [underlay: br0]
                                                                       ext0 ==veth== eth0 [external]

Routing is Cilium's: a pod's /32 on eth0, a default route via 169.254.1.1 (onlink), the
node routes each local pod by a /32 on its lxc link and other nodes' pod CIDRs via their
node IP. Neighbours are static both ways, so no ARP crosses the datapath and the first
packet of a probe is not delayed by resolution.

Dual-stack, the same shape again in IPv6 (lab/names.py has the ranges): a pod's /128 on
eth0 and a default route via fe80::1 (a static neighbour, as 169.254.1.1 is), the node's
/128 per pod and other nodes' IPv6 pod CIDRs via their IPv6 node address. IPv6 runs
without duplicate address detection, so an address works the moment it is added; the
kernel's own link-local chatter (router solicitations, MLD reports) stays on the pod's
link, passed by the datapath as ARP is.

Built with lab/netbuilder.py: every namespace is recorded in the lab's state file before
it is created (`builder`), so `down` removes exactly what `up` and `apply` made.
"""

from __future__ import annotations

import ipaddress

from core.errors import LabError
from lab.names import (EXTERNAL_IP, EXTERNAL_IP6, EXTERNAL_NET, EXTERNAL_NET6, POD_GATEWAY,
                       POD_GATEWAY6, UNDERLAY_ETCD_IP, UNDERLAY_NET, UNDERLAY_NET6)
from lab.netbuilder import NamespaceExists, NetBuilder
from lab.state import LabState, NodeState, PodState

PREFIXLEN = UNDERLAY_NET.prefixlen
PREFIXLEN6 = UNDERLAY_NET6.prefixlen
BRIDGE = "br0"

# The underlay is a bridge: it needs no IP of its own (but for etcd's IPv4).
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
# Hosts with IPv6: no duplicate address detection (addresses are the lab's to give, and
# DAD would hold each one back for a second).
IPV6_NO_DAD = {"net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"}
ROUTER = {
    **IPV6_NO_DAD,
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv4.ip_forward": "1",
    # The datapath checks sources itself; reverse-path filtering would drop pod traffic
    # arriving on an lxc link that has no route back the same way for some peers.
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}


def builder(state: LabState) -> NetBuilder:
    """A builder that records every namespace in the lab's state file before making it."""
    return NetBuilder(record=state.record_netns)


def _create_netns(net: NetBuilder, name: str, sysctls: dict[str, str]) -> None:
    try:
        net.create(name, sysctls)
    except NamespaceExists as err:
        raise NamespaceExists(f"{err}: another lab's leftover? Run `membrane lab down` "
                              "for that lab first") from None


def create_underlay(net: NetBuilder, state: LabState, netns: str, with_etcd_ip: bool) -> None:
    state.underlay_netns = netns
    _create_netns(net, netns, NO_IPV6)
    net.bridge(netns, BRIDGE)
    net.up(netns, BRIDGE)
    if with_etcd_ip:
        net.address(netns, BRIDGE, f"{UNDERLAY_ETCD_IP}/{PREFIXLEN}")


def _uplink(net: NetBuilder, state: LabState, netns: str, bridge_port: str) -> None:
    """A veth from a namespace's eth0 to a port of the underlay bridge."""
    net.veth(state.underlay_netns, bridge_port, "eth0", peer_netns=netns)
    net.attach_to_bridge(state.underlay_netns, bridge_port, BRIDGE)
    net.up(state.underlay_netns, bridge_port)


def create_node(net: NetBuilder, state: LabState, node: NodeState) -> None:
    state.nodes[node.name] = node
    # ROUTER before any link exists: links copy the "default" settings when created.
    _create_netns(net, node.netns, ROUTER)
    _uplink(net, state, node.netns, node.name)
    net.address(node.netns, "eth0", f"{node.ip}/{PREFIXLEN}")
    net.address(node.netns, "eth0", f"{node.ip6}/{PREFIXLEN6}")
    net.up(node.netns, "eth0")
    net.route(node.netns, str(EXTERNAL_NET), dev="eth0")
    net.route(node.netns, str(EXTERNAL_NET6), dev="eth0")


def _pod_cidrs(node: NodeState) -> list[tuple[str, str]]:
    """(pod CIDR, the node address to route it via), per family the node has."""
    pairs = [(node.pod_cidr, node.ip)]
    if node.pod_cidr6 and node.ip6:
        pairs.append((node.pod_cidr6, node.ip6))
    return pairs


def route_pod_cidrs(net: NetBuilder, state: LabState) -> None:
    """Every node (and the external host) reaches every other node's pod CIDRs."""
    for node in state.nodes.values():
        for other in state.nodes.values():
            if other.name != node.name:
                for cidr, via in _pod_cidrs(other):
                    net.route(node.netns, cidr, via=via, dev="eth0", replace=True)
    if state.external_netns:
        for n in state.nodes.values():
            for cidr, via in _pod_cidrs(n):
                net.route(state.external_netns, cidr, via=via, dev="eth0", onlink=True,
                          replace=True)


def create_external(net: NetBuilder, state: LabState, netns: str) -> None:
    state.external_netns = netns
    state.external_ip, state.external_ip6 = EXTERNAL_IP, EXTERNAL_IP6
    _create_netns(net, netns, IPV6_NO_DAD)
    _uplink(net, state, netns, "ext0")
    net.address(netns, "eth0", f"{EXTERNAL_IP}/{EXTERNAL_NET.prefixlen}")
    net.address(netns, "eth0", f"{EXTERNAL_IP6}/{EXTERNAL_NET6.prefixlen}")
    net.up(netns, "eth0")
    net.route(netns, str(UNDERLAY_NET), dev="eth0")
    net.route(netns, str(UNDERLAY_NET6), dev="eth0")


def create_pod_link(net: NetBuilder, state: LabState, pod: PodState,
                    macs: tuple[str, str]) -> None:
    """netns + veth + addresses + routes + neighbours for one pod (not hostNetwork)."""
    node = state.nodes[pod.node]
    host_mac, pod_mac = macs
    # DAD off before eth0 exists: the pod's addresses work at once.
    _create_netns(net, pod.netns, IPV6_NO_DAD)
    net.veth(node.netns, pod.host_ifname, "eth0", peer_netns=pod.netns,
             mac=host_mac, peer_mac=pod_mac)
    net.up(pod.netns, "eth0")
    net.up(node.netns, pod.host_ifname)
    for address, host, gateway in _pod_addresses(pod):
        net.address(pod.netns, "eth0", host)
        net.neighbour(pod.netns, "eth0", gateway, host_mac)
        net.route(pod.netns, "default", via=gateway, dev="eth0", onlink=":" not in gateway)
        net.route(node.netns, host, dev=pod.host_ifname)
        net.neighbour(node.netns, pod.host_ifname, address, pod_mac)
    _route_foreign_ip(net, state, pod, add=True)


def _pod_addresses(pod: PodState) -> list[tuple[str, str, str]]:
    """(address, its host prefix, the pod's default gateway) per family the pod has."""
    out = [(pod.ip, f"{pod.ip}/32", POD_GATEWAY)]
    if pod.ip6:
        out.append((pod.ip6, f"{pod.ip6}/128", POD_GATEWAY6))
    return out


def _route_foreign_ip(net: NetBuilder, state: LabState, pod: PodState, add: bool) -> None:
    """A pod address outside its node's pod CIDR of that family (a status.podIPs the lab
    was given) needs a host route on the other nodes and the external host."""
    node = state.nodes[pod.node]
    hosts = [(o.netns, False) for o in state.nodes.values() if o.name != node.name]
    if state.external_netns:
        hosts.append((state.external_netns, True))
    for (cidr, via), (address, host, _) in zip(_pod_cidrs(node), _pod_addresses(pod)):
        if not via or ipaddress.ip_address(address) in ipaddress.ip_network(cidr):
            continue
        for netns, onlink in hosts:
            if add:
                net.route(netns, host, via=via, dev="eth0", onlink=onlink, replace=True)
            else:
                try:
                    net.delete_route(netns, host, via=via, dev="eth0")
                except LabError:
                    pass  # already gone (a half-built pod): nothing to undo


def remove_pod_link(net: NetBuilder, state: LabState, pod: PodState) -> None:
    """Deleting the pod's netns deletes its veth pair and, with the link, the node's /32."""
    _route_foreign_ip(net, state, pod, add=False)
    net.delete(pod.netns)
    if pod.netns in state.netns:
        state.netns.remove(pod.netns)
