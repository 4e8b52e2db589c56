"""Random small clusters with random NetworkPolicies, for differential tests (hypothesis).

A scenario is a list of Kubernetes documents, as a user would apply them:

  namespaces  2-3 of alpha/beta/gamma, labelled from env in {prod, dev}, team in {a, b}
              (plus kubernetes.io/metadata.name, which the loader adds);
  nodes       node-1 (the local node: its IPs are the host identity) and node-2, each
              with an IPv4 and an IPv6 InternalIP;
  pods        3-6, with 1-2 labels from app in {web, db, api}, tier in {front, back},
              half of them one more with a key identities leave out (StatefulSet
              pod-name, job-name, pod-template-hash) or one the agent reserves for its
              own identity labels (io.kubernetes.pod.namespace,
              io.cilium.k8s.namespace.labels.*: a pod claiming another namespace),
              distinct IPs from 10.0.{0,1,2}.{5,6,130,131}, each with its IPv6 twin
              fd00:0:0:{0,1,2}::{5,6,130,131} (dual-stack: podIPs lists both), and 0-3
              named container ports (one name may mean different numbers, or protocols,
              on different pods);
  policies    1-4 NetworkPolicies over the whole v1 spec: podSelector (matchLabels and
              matchExpressions In/NotIn/Exists/DoesNotExist over every pod label key
              above, values sometimes repeated, or empty), policyTypes
              absent (defaulted) / Ingress / Egress / both, 0-2 rules per direction
              (none: deny-all), a rule's peers absent (every peer) or podSelector,
              namespaceSelector, both (ANDed), ipBlock with 0-2 excepts; its ports absent
              (every port) or numbers, named ports (one no pod declares), endPort
              ranges, TCP/UDP/SCTP (or no protocol: TCP);
  huge        an eighth of the scenarios add one policy far beyond the agent's default
              limits, next to the small ones: 1025 or 4100 /32 ipBlocks (more prefixes
              than a policy may have), or 170 ipBlocks x 170 port ranges (more entries
              than an endpoint may have). The agent enforces it fail-closed (it isolates
              and allows nothing); everything else keeps the spec's verdicts.

Selectors are empty a quarter of the time, and half of the others take their
matchLabels from an existing pod or namespace, so that most policies select something.
ipBlocks are drawn from prefixes of both families that cut through the pod IPs, the
nodes and the "world" addresses (WORLD_IPS: two inside 203.0.113.0/24, one that only
0.0.0.0/0 holds; WORLD_IPS6 their IPv6 twins in 2001:db8:113::/64), with excepts
strictly inside them, so CIDR identities of pods, nodes and world peers, and excepts,
all get exercised in both families (and blocks of one family next to traffic of the
other).

With `tiers=True` (`scenarios(tiers=True)`) a scenario also has 1-4 cluster-wide tier
policies of either API version: ClusterNetworkPolicy (v1alpha2, tier Admin or Baseline)
or AdminNetworkPolicy / the BaselineAdminNetworkPolicy "default" (v1alpha1), priorities
drawn from a few values (so some collide: Membrane's order then decides), subjects
`namespaces` or `pods`, 0-3 rules per direction with Accept/Allow, Deny or Pass (the
BANP has no Pass), peers `namespaces`, `pods`, egress `networks` (the PREFIXES and
host /32s and /128s, both families) and `nodes` (by the hostname label; each node has
an InternalIP of each family), ports by number, range or name. Some namespaces and
tier policies carry the audit annotation, so audited verdicts appear too, and a fifth
of them run under the enforcement mode `always` (some agent-wide audit).

Every scenario goes through the agent's loader (`objects_from_documents`: the API
server's validation and defaulting), so only what an API server accepts is generated,
read exactly as the agent reads it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

import yaml
from hypothesis import strategies as st

from agent.k8s.loader import objects_from_documents
from agent.k8s.objects import NAMESPACE_NAME_LABEL, ClusterObjects
from agent.policy.modes import Enforcement, PolicyModes

Document = dict[str, Any]

NAMESPACES = ("alpha", "beta", "gamma")
NS_LABELS = {"env": ("prod", "dev"), "team": ("a", "b")}
POD_LABELS = {"app": ("web", "db", "api"), "tier": ("front", "back")}
# Keys identity/filter.py leaves out of identities (one value per replica, revision or run)
# and keys the agent writes into identities itself, as pods' own labels: selectors on
# them must select as the spec says, and none may pass for another namespace.
LEFT_OUT_LABELS = {"statefulset.kubernetes.io/pod-name": ("p-0", "p-1"),
                   "job-name": ("backup-1", "backup-2"), "pod-template-hash": ("7c9f", "5d8f")}
RESERVED_KEY_LABELS = {
    "io.kubernetes.pod.namespace": ("alpha", "beta"),
    "io.cilium.k8s.namespace.labels.env": ("prod",),
    "io.cilium.k8s.namespace.labels." + NAMESPACE_NAME_LABEL: ("alpha", "beta"),
}
EXTRA_POD_LABELS = {**LEFT_OUT_LABELS, **RESERVED_KEY_LABELS}
SELECTABLE_POD_LABELS = {**POD_LABELS, **EXTRA_POD_LABELS}

LOCAL_NODE, LOCAL_NODE_IP, LOCAL_NODE_IP6 = "node-1", "172.18.0.11", "fd00:172:18::11"
REMOTE_NODE, REMOTE_NODE_IP, REMOTE_NODE_IP6 = "node-2", "172.18.0.12", "fd00:172:18::12"
POD_IPS = tuple(f"10.0.{a}.{b}" for a in (0, 1, 2) for b in (5, 6, 130, 131))
POD_IP6 = {ip: "fd00:0:0:{}::{}".format(*ip.split(".")[2:]) for ip in POD_IPS}
WORLD_IPS = ("203.0.113.7", "203.0.113.200", "198.51.100.9")
WORLD_IPS6 = ("2001:db8:113::7", "2001:db8:113::c8", "2001:db8:100::9")
# ipBlock cidrs and excepts: nested prefixes through the pod, node and world addresses,
# in each family (the IPv6 ones cut the IPv6 twins the way the IPv4 ones cut IPv4).
PREFIXES = ("0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/16", "10.0.0.0/23", "10.0.1.0/24",
            "10.0.1.128/25", "10.0.2.0/24", "10.0.2.0/25", "172.18.0.0/16",
            "203.0.113.0/24", "203.0.113.128/25",
            "::/0", "fd00::/16", "fd00::/48", "fd00::/63", "fd00:0:0:1::/64",
            "fd00:0:0:1::100/120", "fd00:0:0:2::/64", "fd00:0:0:2::/121", "fd00:172:18::/48",
            "2001:db8:113::/64", "2001:db8:113::80/121")
HOSTS = (POD_IPS + tuple(POD_IP6.values()) + WORLD_IPS + WORLD_IPS6
         + (LOCAL_NODE_IP, REMOTE_NODE_IP, LOCAL_NODE_IP6, REMOTE_NODE_IP6))

# (name, number, protocol): "http" and "dns" differ between pods that declare them.
CONTAINER_PORTS = (("http", 80, "TCP"), ("http", 8080, "TCP"), ("dns", 53, "UDP"),
                   ("dns", 53, "TCP"), ("assoc", 9000, "SCTP"), ("metrics", 9090, "TCP"))
PORT_NAMES = ("http", "dns", "assoc", "metrics", "nobody")
PORT_NUMBERS = (53, 80, 443, 8080, 9000, 9090)
PROTOCOLS = ("TCP", "UDP", "SCTP")
EXTRA_PORTS = (1, 7, 12345, 65535)   # probed though no scenario mentions them


@dataclass
class Scenario:
    documents: list[Document]
    objects: ClusterObjects
    modes: PolicyModes = PolicyModes()     # the agent's: enforcement and audit

    def yaml(self) -> str:
        """A YAML stream, one flow-style document per line (`kubectl apply -f` reads it)."""
        return "\n".join("--- " + yaml.safe_dump(doc, default_flow_style=True, sort_keys=False,
                                                 width=1 << 20).strip()
                         for doc in self.documents)

    def __repr__(self) -> str:   # what hypothesis prints for a falsifying example
        return f"Scenario({self.modes}; documents below)\n" + self.yaml()


def _labels(draw: st.DrawFn, vocabulary: Mapping[str, tuple[str, ...]], min_size: int = 0
            ) -> dict[str, str]:
    keys = draw(st.lists(st.sampled_from(sorted(vocabulary)), unique=True,
                         min_size=min_size, max_size=2))
    return {k: draw(st.sampled_from(vocabulary[k])) for k in sorted(keys)}


def _selector(draw: st.DrawFn, vocabulary: Mapping[str, tuple[str, ...]],
              existing: list[dict[str, str]]) -> Document:
    """A label selector: often empty; else matchLabels (half the time a subset of some
    object's labels, so that it selects something) and/or matchExpressions."""
    doc: Document = {}
    if draw(st.integers(0, 3)) == 0:
        return doc
    if len(existing) > 0 and draw(st.booleans()):
        labels = draw(st.sampled_from(existing))
        keys = draw(st.lists(st.sampled_from(sorted(labels)), unique=True, max_size=2)
                    ) if labels else []
        match_labels = {k: labels[k] for k in sorted(keys)}
    else:
        match_labels = _labels(draw, vocabulary)
    if match_labels:
        doc["matchLabels"] = match_labels
    expressions = []
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(vocabulary)))
        op = draw(st.sampled_from(("In", "NotIn", "Exists", "DoesNotExist")))
        expr: Document = {"key": key, "operator": op}
        if op in ("In", "NotIn"):
            # Repeats are what the API server accepts too.
            expr["values"] = draw(st.lists(st.sampled_from(vocabulary[key]),
                                           min_size=1, max_size=3))
        expressions.append(expr)
    if expressions:
        doc["matchExpressions"] = expressions
    return doc


def _inside(inner: str, outer: str) -> bool:
    a, b = ipaddress.ip_network(inner), ipaddress.ip_network(outer)
    return (a.version == b.version and a.prefixlen > b.prefixlen
            and a.supernet(new_prefix=b.prefixlen) == b)


def host_prefix(ip: str) -> str:
    return f"{ip}/128" if ":" in ip else f"{ip}/32"


@dataclass
class _Cluster:
    """What policies are drawn against: the namespaces and pods drawn so far."""

    namespaces: list[str]
    namespace_labels: list[dict[str, str]]   # with kubernetes.io/metadata.name
    pod_labels: list[dict[str, str]]
    pod_namespaces: list[str]
    pod_ips: list[str]


def _ip_block(draw: st.DrawFn, cluster: _Cluster) -> Document:
    hosts = [host_prefix(ip) for ip in cluster.pod_ips + [POD_IP6[ip] for ip in cluster.pod_ips]
             + list(WORLD_IPS + WORLD_IPS6) + [LOCAL_NODE_IP, LOCAL_NODE_IP6]]
    cidr = draw(st.sampled_from(PREFIXES + tuple(hosts)))
    block: Document = {"cidr": cidr}
    candidates = [p for p in PREFIXES + tuple(host_prefix(ip) for ip in HOSTS)
                  if _inside(p, cidr)]
    if len(candidates) > 0 and draw(st.booleans()):
        block["except"] = draw(st.lists(st.sampled_from(candidates), unique=True,
                                        min_size=1, max_size=2))
    return block


def _peer(draw: st.DrawFn, cluster: _Cluster) -> Document:
    kind = draw(st.sampled_from(("ipBlock", "pod", "ipBlock", "namespace", "both")))
    if kind == "ipBlock":
        return {"ipBlock": _ip_block(draw, cluster)}
    namespaces = {**NS_LABELS, NAMESPACE_NAME_LABEL: NAMESPACES}
    peer: Document = {}
    if kind in ("pod", "both"):
        peer["podSelector"] = _selector(draw, SELECTABLE_POD_LABELS, cluster.pod_labels)
    if kind in ("namespace", "both"):
        peer["namespaceSelector"] = _selector(draw, namespaces, cluster.namespace_labels)
    return peer


def _port(draw: st.DrawFn) -> Document:
    doc: Document = {}
    protocol = draw(st.sampled_from(PROTOCOLS + (None,)))
    if protocol is not None:
        doc["protocol"] = protocol
    kind = draw(st.sampled_from(("none", "number", "named", "range")))
    if kind == "number":
        doc["port"] = draw(st.one_of(st.sampled_from(PORT_NUMBERS), st.integers(1, 65535)))
    elif kind == "named":
        doc["port"] = draw(st.sampled_from(PORT_NAMES))
    elif kind == "range":
        low = draw(st.one_of(st.sampled_from(PORT_NUMBERS), st.integers(1, 65535)))
        width = draw(st.sampled_from((0, 1, 9, 1000, 65535)))
        doc["port"] = low
        doc["endPort"] = min(65535, low + width)
    return doc


def _rule(draw: st.DrawFn, peers_key: str, cluster: _Cluster) -> Document:
    rule: Document = {}
    if draw(st.integers(0, 2)):   # two thirds of the rules name peers
        rule[peers_key] = [_peer(draw, cluster) for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        rule["ports"] = [_port(draw) for _ in range(draw(st.integers(1, 2)))]
    return rule


def _policy(draw: st.DrawFn, name: str, cluster: _Cluster) -> Document:
    # Mostly in a namespace that has pods, so that it may select some.
    namespace = draw(st.sampled_from(cluster.pod_namespaces if draw(st.integers(0, 3))
                                     else cluster.namespaces))
    spec: Document = {"podSelector": _selector(draw, SELECTABLE_POD_LABELS, cluster.pod_labels)}
    types = draw(st.sampled_from((None, ["Ingress"], ["Egress"], ["Ingress", "Egress"])))
    if types is not None:
        spec["policyTypes"] = types
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        rules = [_rule(draw, peers_key, cluster) for _ in range(draw(st.integers(0, 2)))]
        if rules:
            spec[direction] = rules
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _huge_policy(draw: st.DrawFn, name: str, cluster: _Cluster) -> Document:
    """A policy the agent cannot enforce within its default limits; one of its blocks
    covers every pod, so the spec would allow what the agent's fail-closed denies."""
    direction, peers_key = draw(st.sampled_from((("ingress", "from"), ("egress", "to"))))
    many = draw(st.sampled_from((170, 1025, 4100)))
    hosts = [{"ipBlock": {"cidr": f"198.18.{i // 250}.{i % 250 + 1}/32"}} for i in range(many)]
    rule: Document = {peers_key: hosts + [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}
    if many == 170:   # enforceable prefixes, but ipBlocks x port ranges do not fit
        rule["ports"] = ([{"port": 1000 + 300 * i, "endPort": 1100 + 300 * i}
                          for i in range(170)] + [{"port": 80}])
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": draw(st.sampled_from(cluster.pod_namespaces))},
            "spec": {"podSelector": _selector(draw, SELECTABLE_POD_LABELS, cluster.pod_labels),
                     "policyTypes": [direction.capitalize()], direction: [rule]}}


def _pod(draw: st.DrawFn, name: str, namespaces: list[str], ip: str) -> Document:
    ports: list[Document] = []
    for pname, number, protocol in draw(st.lists(st.sampled_from(CONTAINER_PORTS),
                                                 max_size=3)):
        if all(p["name"] != pname and p["containerPort"] != number for p in ports):
            ports.append({"name": pname, "containerPort": number, "protocol": protocol})
    container: Document = {"name": "main", "image": "app"}
    if ports:
        container["ports"] = ports
    labels = _labels(draw, POD_LABELS, min_size=1)
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(EXTRA_POD_LABELS)))
        labels[key] = draw(st.sampled_from(EXTRA_POD_LABELS[key]))
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": draw(st.sampled_from(namespaces)),
                         "labels": labels},
            "spec": {"nodeName": draw(st.sampled_from((LOCAL_NODE, REMOTE_NODE))),
                     "containers": [container]},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}, {"ip": POD_IP6[ip]}]}}


def _node(name: str, ip: str, ip6: str) -> Document:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                     {"type": "InternalIP", "address": ip6}]}}


# --- cluster-wide tiers ------------------------------------------------------------------

AUDIT = {"policy.membrane.io/audit-mode": "true"}
PRIORITIES = (0, 5, 10, 10, 50, 1000)


def _tier_selection(draw: st.DrawFn, cluster: _Cluster, v2: bool) -> Document:
    namespaces = {**NS_LABELS, NAMESPACE_NAME_LABEL: NAMESPACES}
    ns_selector = _selector(draw, namespaces, cluster.namespace_labels)
    if draw(st.booleans()):
        return {"namespaces": ns_selector}
    pods: Document = {"podSelector": _selector(draw, POD_LABELS, cluster.pod_labels)}
    if not v2 or draw(st.booleans()):
        pods["namespaceSelector"] = ns_selector
    return {"pods": pods}


def _tier_peer(draw: st.DrawFn, cluster: _Cluster, egress: bool, v2: bool) -> Document:
    kinds = ("pods", "pods", "networks", "nodes") if egress else ("pods",)
    kind = draw(st.sampled_from(kinds))
    if kind == "pods":
        return _tier_selection(draw, cluster, v2)
    if kind == "nodes":
        names = draw(st.lists(st.sampled_from((LOCAL_NODE, REMOTE_NODE)), unique=True,
                              max_size=2))
        if not names:
            return {"nodes": {}}
        return {"nodes": {"matchExpressions": [{"key": "kubernetes.io/hostname",
                                                "operator": "In", "values": names}]}}
    hosts = tuple(f"{ip}/128" if ":" in ip else f"{ip}/32" for ip in HOSTS)
    return {"networks": draw(st.lists(st.sampled_from(PREFIXES + hosts), unique=True,
                                      min_size=1, max_size=2))}


def _tier_port(draw: st.DrawFn, v2: bool, named_ok: bool) -> Document:
    kind = draw(st.sampled_from(("number", "range", "named") if named_ok
                                else ("number", "range")))
    protocol = draw(st.sampled_from(PROTOCOLS))
    low = draw(st.one_of(st.sampled_from(PORT_NUMBERS), st.integers(1, 65534)))
    high = min(65535, low + draw(st.sampled_from((1, 9, 1000, 65535))))
    if kind == "named":
        name = draw(st.sampled_from(PORT_NAMES))
        return {"destinationNamedPort": name} if v2 else {"namedPort": name}
    if v2:
        number = {"number": low} if kind == "number" else {"range": {"start": low,
                                                                     "end": high}}
        return {protocol.lower(): {"destinationPort": number}}
    if kind == "number":
        return {"portNumber": {"protocol": protocol, "port": low}}
    return {"portRange": {"protocol": protocol, "start": low, "end": high}}


def _tier_rule(draw: st.DrawFn, cluster: _Cluster, egress: bool, v2: bool,
               actions: tuple[str, ...], index: int) -> Document:
    peers = [_tier_peer(draw, cluster, egress, v2) for _ in range(draw(st.integers(1, 2)))]
    rule: Document = {"name": f"r{index}", "action": draw(st.sampled_from(actions)),
                      "to" if egress else "from": peers}
    # Named ports only beside pod peers (the CRDs' CEL rule).
    named_ok = all("networks" not in p and "nodes" not in p for p in peers)
    if draw(st.booleans()):
        key = "protocols" if v2 else "ports"
        rule[key] = [_tier_port(draw, v2, named_ok) for _ in range(draw(st.integers(1, 2)))]
    return rule


def _tier_policy(draw: st.DrawFn, index: int, cluster: _Cluster, banp_taken: bool
                 ) -> Document:
    kinds = ["cnp", "cnp", "anp"] + ([] if banp_taken else ["banp"])
    kind = draw(st.sampled_from(kinds))
    v2 = kind == "cnp"
    if kind == "banp":
        actions: tuple[str, ...] = ("Allow", "Deny")
    else:
        actions = ("Accept", "Deny", "Pass") if v2 else ("Allow", "Deny", "Pass")
    spec: Document = {}
    if v2:
        spec["tier"] = draw(st.sampled_from(("Admin", "Baseline")))
    if kind != "banp":
        spec["priority"] = draw(st.sampled_from(PRIORITIES))
    spec["subject"] = _tier_selection(draw, cluster, v2)
    for direction, egress in (("ingress", False), ("egress", True)):
        rules = [_tier_rule(draw, cluster, egress, v2, actions, i)
                 for i in range(draw(st.integers(0, 3)))]
        if rules:
            spec[direction] = rules
    meta: Document = {"name": "default" if kind == "banp" else f"t{index}"}
    if draw(st.integers(0, 4)) == 0:
        meta["annotations"] = dict(AUDIT)
    api = "policy.networking.k8s.io/v1alpha2" if v2 else "policy.networking.k8s.io/v1alpha1"
    kind_name = {"cnp": "ClusterNetworkPolicy", "anp": "AdminNetworkPolicy",
                 "banp": "BaselineAdminNetworkPolicy"}[kind]
    return {"apiVersion": api, "kind": kind_name, "metadata": meta, "spec": spec}


@st.composite
def scenarios(draw: st.DrawFn, tiers: bool = False) -> Scenario:
    namespaces = draw(st.lists(st.sampled_from(NAMESPACES), unique=True, min_size=2,
                               max_size=3))
    docs: list[Document] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": n, "labels": _labels(draw, NS_LABELS)}} for n in namespaces]
    if tiers:
        for doc in docs:
            if draw(st.integers(0, 3)) == 0:
                doc["metadata"]["annotations"] = dict(AUDIT)
    docs += [_node(LOCAL_NODE, LOCAL_NODE_IP, LOCAL_NODE_IP6),
             _node(REMOTE_NODE, REMOTE_NODE_IP, REMOTE_NODE_IP6)]
    pod_ips = draw(st.lists(st.sampled_from(POD_IPS), unique=True, min_size=3, max_size=6))
    pods = [_pod(draw, f"p{i}", namespaces, ip) for i, ip in enumerate(pod_ips)]
    cluster = _Cluster(
        namespaces,
        [{**d["metadata"]["labels"], NAMESPACE_NAME_LABEL: d["metadata"]["name"]}
         for d in docs[:len(namespaces)]],
        [p["metadata"]["labels"] for p in pods],
        sorted({p["metadata"]["namespace"] for p in pods}), pod_ips)
    docs += pods
    docs += [_policy(draw, f"np{i}", cluster)
             for i in range(draw(st.integers(0 if tiers else 1, 4 if not tiers else 2)))]
    if not tiers and draw(st.integers(0, 7)) == 0:
        docs.append(_huge_policy(draw, "huge", cluster))
    if tiers:
        for i in range(draw(st.integers(1, 4))):
            docs.append(_tier_policy(draw, i, cluster, banp_taken=any(
                d["kind"] == "BaselineAdminNetworkPolicy" for d in docs)))
    loaded = objects_from_documents(docs, "scenario")
    assert not loaded.errors, "the generator made an invalid object: " + "; ".join(
        str(e) for e in loaded.errors)
    modes = PolicyModes()
    if tiers and draw(st.integers(0, 4)) == 0:
        modes = PolicyModes(Enforcement.ALWAYS, audit=draw(st.integers(0, 3)) == 0)
    return Scenario(docs, loaded.objects, modes)


def probed_ports(scenario: Scenario) -> list[int]:
    """Ports the scenario mentions, the neighbours of each range bound, a few others (of
    the huge policy's 170 ranges, the first two and its last port)."""
    ports = set(EXTRA_PORTS)
    for policy in scenario.objects.policies.values():
        for rule in policy.ingress + policy.egress:
            mentioned = rule.ports if policy.name != "huge" else rule.ports[:2] + rule.ports[-1:]
            for p in mentioned:
                if isinstance(p.port, int):
                    ports |= {p.port - 1, p.port, p.port + 1}
                if p.end_port is not None:
                    ports |= {p.end_port - 1, p.end_port, p.end_port + 1}
    for tier_policy in scenario.objects.cluster_policies.values():
        for tier_rule in tier_policy.ingress + tier_policy.egress:
            for tp in tier_rule.ports:
                if tp.protocol is not None:
                    ports |= {tp.start - 1, tp.start, tp.end, tp.end + 1}
    for pod in scenario.objects.pods.values():
        ports |= {cp.port for cp in pod.ports}
    return sorted(p for p in ports if 1 <= p <= 65535)
