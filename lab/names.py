"""Every name and address a lab uses, derived from the lab's name alone.

Two labs never collide because each netns name starts with `mb-<lab>-` and lab names
contain no dash, and every link a lab creates lives inside one of its own namespaces (none
in the machine's root namespace). Addresses repeat between labs, which is harmless:
their namespaces share no link.

Dual-stack: every IPv4 address has an IPv6 twin, from ranges that never leave the lab:
the cluster's own in the unique local range fd00::/8 (RFC 4193; the pod CIDRs are kind's
default fd00:10:244::/56, one /64 per node), the external host in the documentation
prefix 2001:db8::/32 (RFC 3849, as 192.0.2.0/24 is for IPv4). The IPv6 host part repeats
the IPv4 one's digits (172.18.0.11 is fd00:172:18::11, 10.244.1.10 fd00:10:244:1::10),
so the two addresses of one thing read alike.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from core.errors import LabError

LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")

UNDERLAY_NET = ipaddress.ip_network("172.18.0.0/24")
UNDERLAY_ETCD_IP = "172.18.0.2"     # the underlay namespace's bridge, when it hosts etcd
NODE_IP_BASE = 10                   # node n is 172.18.0.(10 + n)
EXTERNAL_NET = ipaddress.ip_network("192.0.2.0/24")  # TEST-NET-1: plainly off-cluster
EXTERNAL_IP = "192.0.2.10"
POD_GATEWAY = "169.254.1.1"         # what every pod's default route points at, as in Cilium
UNDERLAY_NET6 = ipaddress.ip_network("fd00:172:18::/64")
EXTERNAL_NET6 = ipaddress.ip_network("2001:db8::/64")  # documentation prefix: off-cluster
EXTERNAL_IP6 = "2001:db8::10"
POD_GATEWAY6 = "fe80::1"            # the IPv6 default route's link-local gateway
DNS_POD_HOST = 10                   # kube-system/coredns is .10 of node1's pod CIDR
CLUSTER_DOMAIN = "cluster.local"
EXTERNAL_NAMES = ("kubernetes.io", "www.kubernetes.io")


def check_lab_name(lab: str) -> str:
    if not LAB_NAME.match(lab):
        raise LabError(f"lab name {lab!r}: use 1-16 lowercase letters and digits, starting "
                       "with a letter (it prefixes every namespace the lab creates)")
    return lab


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class LabNames:
    def __init__(self, lab: str) -> None:
        self.lab = check_lab_name(lab)
        self.prefix = f"mb-{lab}"

    # -- namespaces --------------------------------------------------------------
    @property
    def underlay_netns(self) -> str:
        return f"{self.prefix}-underlay"

    @property
    def external_netns(self) -> str:
        return f"{self.prefix}-external"

    def node_name(self, index: int) -> str:
        return f"node{index}"

    def node_netns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def pod_netns(self, namespace: str, pod: str) -> str:
        # Hex only, so a pod netns can never look like a node's or the underlay's.
        return f"{self.prefix}-{_digest(self.lab, namespace, pod)[:10]}"

    # -- links (inside the lab's namespaces) --------------------------------------
    def pod_host_ifname(self, namespace: str, pod: str) -> str:
        """`lxc` + 11 hex: 14 characters, under the kernel's 15, like Cilium's names."""
        return "lxc" + _digest("if", self.lab, namespace, pod)[:11]

    def pod_macs(self, namespace: str, pod: str) -> tuple[str, str]:
        """(host side, pod side): fixed MACs so static neighbours need no read-back.
        0x02 in the first octet: locally administered, unicast."""
        d = _digest("mac", self.lab, namespace, pod)
        host = "02:" + ":".join(d[i:i + 2] for i in range(0, 10, 2))
        pod_mac = "02:" + ":".join(d[i:i + 2] for i in range(10, 20, 2))
        return host, pod_mac

    # -- addresses ----------------------------------------------------------------
    @staticmethod
    def node_ip(index: int) -> str:
        return str(UNDERLAY_NET.network_address + NODE_IP_BASE + index)

    @staticmethod
    def node_ip6(index: int) -> str:
        return f"{UNDERLAY_NET6.network_address}{NODE_IP_BASE + index}"

    @staticmethod
    def pod_cidr(index: int) -> str:
        return f"10.244.{index}.0/24"

    @staticmethod
    def pod_cidr6(index: int) -> str:
        return f"fd00:10:244:{index}::/64"

    @staticmethod
    def dns_ip() -> str:
        return f"10.244.1.{DNS_POD_HOST}"

    @staticmethod
    def dns_ip6() -> str:
        return f"fd00:10:244:1::{DNS_POD_HOST}"
