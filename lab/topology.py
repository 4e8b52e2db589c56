"""The wires: an underlay bridge joining node namespaces and an external host, and a
veth pair per pod. No link ever touches the machine's root namespace.

    [pod netns] eth0 ==veth== lxcXXXXXXXXXXX [node netns] eth0 ==veth== nodeN [underlay: br0]
                                                                       ext0 ==veth== eth0 [external]

Routing is Cilium's: a pod's /32 on eth0, a default route via 169.254.1.1 (onlink), the
node routes each local pod by a /32 on its lxc link and other nodes' pod CIDRs via their
node IP. Neighbours are static both ways, so no ARP crosses the datapath and the first
packet of a probe is not delayed by resolution.
"""

from __future__ import annotations

import ipaddress

from lab.names import EXTERNAL_IP, EXTERNAL_NET, POD_GATEWAY, UNDERLAY_ETCD_IP, UNDERLAY_NET
from lab.netns import add_netns, delete_netns, ip, ip_batch, sysctl
from lab.state import LabState, NodeState, PodState

PREFIXLEN = UNDERLAY_NET.prefixlen

NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
ROUTER = {
    **NO_IPV6,
    "net.ipv4.ip_forward": "1",
    # The datapath checks sources itself; reverse-path filtering would drop pod traffic
    # arriving on an lxc link that has no route back the same way for some peers.
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}


def create_underlay(state: LabState, netns: str, with_etcd_ip: bool) -> None:
    state.underlay_netns = netns
    state.record_netns(netns)
    add_netns(netns)
    sysctl(netns, NO_IPV6)
    cmds = ["link set lo up", "link add br0 type bridge", "link set br0 up"]
    if with_etcd_ip:
        cmds.append(f"addr add {UNDERLAY_ETCD_IP}/{PREFIXLEN} dev br0")
    ip_batch(netns, cmds)


def _uplink(state: LabState, netns: str, bridge_port: str) -> None:
    """A veth from a namespace's eth0 to a port of the underlay bridge."""
    ip("link", "add", bridge_port, "type", "veth", "peer", "name", "eth0", "netns", netns,
       netns=state.underlay_netns)
    ip_batch(state.underlay_netns, [f"link set {bridge_port} master br0", f"link set {bridge_port} up"])


def create_node(state: LabState, node: NodeState) -> None:
    state.nodes[node.name] = node
    state.record_netns(node.netns)
    add_netns(node.netns)
    # Before any link exists: links copy the "default" settings when they are created.
    sysctl(node.netns, ROUTER)
    _uplink(state, node.netns, node.name)
    ip_batch(node.netns, ["link set lo up",
                          f"addr add {node.ip}/{PREFIXLEN} dev eth0",
                          "link set eth0 up",
                          f"route add {EXTERNAL_NET} dev eth0 scope link"])


def route_pod_cidrs(state: LabState) -> None:
    """Every node (and the external host) reaches every other node's pod CIDR."""
    for node in state.nodes.values():
        cmds = [f"route replace {other.pod_cidr} via {other.ip} dev eth0"
                for other in state.nodes.values() if other.name != node.name]
        if cmds:
            ip_batch(node.netns, cmds)
    if state.external_netns:
        ip_batch(state.external_netns,
                 [f"route replace {n.pod_cidr} via {n.ip} dev eth0 onlink"
                  for n in state.nodes.values()])


def create_external(state: LabState, netns: str) -> None:
    state.external_netns = netns
    state.external_ip = EXTERNAL_IP
    state.record_netns(netns)
    add_netns(netns)
    sysctl(netns, NO_IPV6)
    _uplink(state, netns, "ext0")
    ip_batch(netns, ["link set lo up",
                     f"addr add {EXTERNAL_IP}/{EXTERNAL_NET.prefixlen} dev eth0",
                     "link set eth0 up",
                     f"route add {UNDERLAY_NET} dev eth0 scope link"])


def create_pod_link(state: LabState, pod: PodState, macs: tuple[str, str]) -> None:
    """netns + veth + addresses + routes + neighbours for one pod (not hostNetwork)."""
    node = state.nodes[pod.node]
    host_mac, pod_mac = macs
    state.record_netns(pod.netns)
    add_netns(pod.netns)
    # IPv6 off before eth0 exists, so no router solicitation or DAD ever leaves the pod.
    sysctl(pod.netns, NO_IPV6)
    ip("link", "add", pod.host_ifname, "address", host_mac, "type", "veth", "peer", "name",
       "eth0", "address", pod_mac, "netns", pod.netns, netns=node.netns)
    ip_batch(pod.netns, ["link set lo up",
                         f"addr add {pod.ip}/32 dev eth0",
                         "link set eth0 up",
                         f"neigh add {POD_GATEWAY} lladdr {host_mac} dev eth0 nud permanent",
                         f"route add default via {POD_GATEWAY} dev eth0 onlink"])
    cmds = [f"link set {pod.host_ifname} up",
            f"route add {pod.ip}/32 dev {pod.host_ifname}",
            f"neigh add {pod.ip} lladdr {pod_mac} dev {pod.host_ifname} nud permanent"]
    ip_batch(node.netns, cmds)
    _route_foreign_ip(state, pod, add=True)


def _route_foreign_ip(state: LabState, pod: PodState, add: bool) -> None:
    """A pod whose status.podIP lies outside its node's CIDR needs a /32 elsewhere."""
    node = state.nodes[pod.node]
    if ipaddress.ip_address(pod.ip) in ipaddress.ip_network(node.pod_cidr):
        return
    verb = "replace" if add else "del"
    for other in state.nodes.values():
        if other.name != node.name:
            ip("route", verb, f"{pod.ip}/32", "via", node.ip, "dev", "eth0",
               netns=other.netns, check=add)
    if state.external_netns:
        ip("route", verb, f"{pod.ip}/32", "via", node.ip, "dev", "eth0", "onlink",
           netns=state.external_netns, check=add)


def remove_pod_link(state: LabState, pod: PodState) -> None:
    """Deleting the pod's netns deletes its veth pair and, with the link, the node's /32."""
    _route_foreign_ip(state, pod, add=False)
    delete_netns(pod.netns)
    if pod.netns in state.netns:
        state.netns.remove(pod.netns)
