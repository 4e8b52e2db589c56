"""A lab pod's life apart from its wires: placement, address, resolv.conf, workload.

Placement follows spec.nodeName, else the node whose pod CIDR holds status.podIP, else
round-robin. Every pod is dual-stack: each family's address comes from the pod's status
(podIP / podIPs), else from the node's pod CIDR of that family, where the lab gives the
IPv6 address the host digits of the IPv4 one when they are free (10.244.1.12 and
fd00:10:244:1::12), else the first free one.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from agent.k8s.objects import Pod
from core.errors import LabError
from lab.names import CLUSTER_DOMAIN, LabNames
from lab.processes import python_in_pod, spawn, wait_ready
from lab.state import LabState, PodState, Process

DEFAULT_PORT = 80
FIRST_HOST = 2  # .1 is left free, as a gateway address would be on a real node


@dataclass
class PodRequest:
    """A pod to create, as read from a document (or made up by the lab, for DNS)."""

    namespace: str
    name: str
    node: str | None = None
    ip: str | None = None
    ip6: str | None = None
    ports: list[int] = field(default_factory=list)
    host_network: bool = False
    dns: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


DNS_NAMESPACE = "kube-system"
DNS_LABEL = ("k8s-app", "kube-dns")


def is_dns_pod(namespace: str, labels: dict[str, str]) -> bool:
    """CoreDNS as clusters label it: such pods run the lab's DNS server."""
    return namespace == DNS_NAMESPACE and labels.get(DNS_LABEL[0]) == DNS_LABEL[1]


def has_dns_address(state: LabState) -> bool:
    return any(p.ip == LabNames.dns_ip() and p.netns for p in state.pods.values())


def _used(state: LabState, family: int) -> set[str]:
    return {p.address(family) for p in state.pods.values() if p.netns}


def served_ports(obj: Pod) -> list[tuple[int, str]]:
    """What the lab serves for a Pod object: every declared container port (80 when none),
    on TCP and UDP both. SCTP ports are left out: the lab's servers do not speak it."""
    ports = sorted({p.port for p in obj.ports if p.protocol.value != "SCTP"}) or [DEFAULT_PORT]
    return [(p, proto) for p in ports for proto in ("TCP", "UDP")]


def place(state: LabState, names: LabNames, req: PodRequest) -> PodState:
    if req.dns and not has_dns_address(state) and not req.host_network:
        # The first DNS pod takes the address every pod's resolv.conf names.
        req.node, req.ip, req.ip6 = names.node_name(1), LabNames.dns_ip(), LabNames.dns_ip6()
    node = _choose_node(state, req)
    ip = _choose_ip(state, node, req)
    ip6 = _choose_ip6(state, node, req, ip)
    ports = sorted(set(req.ports)) or [DEFAULT_PORT]
    pod = PodState(namespace=req.namespace, name=req.name, node=node, ip=ip, ip6=ip6,
                   ports=[(p, proto) for p in ports for proto in ("TCP", "UDP")],
                   dns=req.dns)
    if not req.host_network:
        pod.netns = names.pod_netns(req.namespace, req.name)
        pod.host_ifname = names.pod_host_ifname(req.namespace, req.name)
    return pod


def _choose_node(state: LabState, req: PodRequest) -> str:
    if req.node:
        if req.node not in state.nodes:
            raise LabError(f"pod {req.key}: spec.nodeName {req.node!r} is not a node of lab "
                           f"{state.name} (nodes: {', '.join(state.nodes)})")
        return req.node
    if not req.host_network:
        for address, family in ((req.ip, 4), (req.ip6, 6)):
            if not address:
                continue
            for node in state.nodes.values():
                cidr = node.pod_cidr if family == 4 else node.pod_cidr6
                if cidr and ipaddress.ip_address(address) in ipaddress.ip_network(cidr):
                    return node.name
    ordered = sorted(state.nodes.values(), key=lambda n: n.index)
    node = ordered[state.next_node % len(ordered)]
    state.next_node += 1
    return node.name


def _choose_ip(state: LabState, node_name: str, req: PodRequest) -> str:
    node = state.nodes[node_name]
    if req.host_network:
        return node.ip
    used = {p.ip for p in state.pods.values() if p.netns}
    if req.ip:
        if req.ip in used:
            raise LabError(f"pod {req.key}: status.podIP {req.ip} is already another lab pod's")
        return req.ip
    reserved = {LabNames.dns_ip()}
    for host in list(ipaddress.ip_network(node.pod_cidr).hosts())[FIRST_HOST - 1:]:
        if str(host) not in used and str(host) not in reserved:
            return str(host)
    raise LabError(f"pod {req.key}: node {node_name}'s pod CIDR {node.pod_cidr} is full")


def _choose_ip6(state: LabState, node_name: str, req: PodRequest, ip: str) -> str:
    node = state.nodes[node_name]
    if req.host_network:
        return node.ip6
    used = _used(state, 6)
    if req.ip6:
        if req.ip6 in used:
            raise LabError(f"pod {req.key}: status.podIPs {req.ip6} is already another lab "
                           "pod's")
        return req.ip6
    if not node.pod_cidr6:
        return ""   # a node of a lab made before labs were dual-stack
    cidr6 = ipaddress.ip_network(node.pod_cidr6)
    reserved = {LabNames.dns_ip6()}
    twin = ""
    if ipaddress.ip_address(ip) in ipaddress.ip_network(node.pod_cidr):
        twin = str(ipaddress.ip_address(f"{cidr6.network_address}{ip.rsplit('.', 1)[1]}"))
    if twin and twin not in used and twin not in reserved:
        return twin
    for offset in range(FIRST_HOST, 1 << 16):
        candidate = str(cidr6.network_address + offset)
        if candidate not in used and candidate not in reserved:
            return candidate
    raise LabError(f"pod {req.key}: node {node_name}'s IPv6 pod CIDR {node.pod_cidr6} has "
                   "no free address among its first 65536")


# -- resolv.conf ---------------------------------------------------------------------
def resolv_dir(pod: PodState) -> Path:
    return Path("/etc/netns") / pod.netns


def write_resolv_conf(state: LabState, pod: PodState) -> None:
    """`ip netns exec` bind-mounts /etc/netns/<netns>/resolv.conf over /etc/resolv.conf.

    timeout:2 makes a blocked lookup outlast `curl --connect-timeout 5`, so curl says
    "Resolving timed out" as in the tutorial, while a denied name still fails in seconds."""
    d = resolv_dir(pod)
    state.record_path(str(d))
    d.mkdir(parents=True, exist_ok=True)
    ns = pod.namespace
    (d / "resolv.conf").write_text(
        f"nameserver {LabNames.dns_ip()}\n"
        f"search {ns}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
        "options ndots:5 timeout:2 attempts:2\n")


def remove_resolv_conf(state: LabState, pod: PodState) -> None:
    d = resolv_dir(pod)
    shutil.rmtree(d, ignore_errors=True)
    if str(d) in state.paths:
        state.paths.remove(str(d))


# -- workloads -----------------------------------------------------------------------
def server_command(state: LabState, pod: PodState) -> tuple[list[str], str]:
    """(command, marker): the generic TCP+UDP servers on the pod's ports, or DNS."""
    if pod.dns:
        return dns_command(state, pod)
    args = ["--lab", state.name, "--name", pod.key]
    for port, proto in pod.ports:
        args += ["--tcp" if proto == "TCP" else "--udp", str(port)]
    return python_in_pod(pod.netns, "lab.servers", args), \
        f"lab.servers --lab {state.name} --name {pod.key} "


def dns_command(state: LabState, pod: PodState) -> tuple[list[str], str]:
    args = ["--store", str(state.store_dir)]
    for address in (state.external_ip, state.external_ip6):
        if address:
            args += ["--external-ip", address]
    return python_in_pod(pod.netns, "lab.dns", args), \
        f"lab.dns --store {state.store_dir} "


def log_path(state: LabState, pod: PodState) -> Path:
    return Path(state.root) / "pods" / f"{pod.namespace}_{pod.name}.log"


def start_workloads(state: LabState, pods: list[tuple[PodState, tuple[list[str], str]]]) -> None:
    """Starts every pod's process at once, then waits until each listens."""
    started: list[tuple[PodState, subprocess.Popen[bytes]]] = []
    for pod, (cmd, marker) in pods:
        proc = spawn(cmd, log_path(state, pod), stdout=subprocess.PIPE)
        pod.server = Process(pid=proc.pid, marker=marker)
        started.append((pod, proc))
    state.save()
    for pod, proc in started:
        wait_ready(proc, f"the workload of pod {pod.key}", log_path(state, pod))
