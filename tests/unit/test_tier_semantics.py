"""The tiers' semantics, one sentence per case (as kube-network-policies names its tests):
the Admin tier, NetworkPolicy, the Baseline tier and the default, per direction, and
what `explain` (the engine-side lookup flows and trace use) says decided.

The cluster: namespaces a (team=a) and b (team=b); pods a/web (app=web, port http
8080/TCP), a/db (app=db, port pg 5432/TCP) and b/cli (app=cli); nodes node1 and node2
(kubernetes.io/hostname); an outside address 203.0.113.7.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from agent.k8s.loader import objects_from_documents
from agent.k8s.objects import ClusterObjects, Protocol
from agent.policy.engine import PolicyEngine
from agent.policy.explain import explain
from agent.policy.mapstate import DecidedBy, Direction
from agent.policy.matrix import allowed, peer_identities
from agent.policy.modes import Enforcement, PolicyModes
from policy_helpers import MemoryAllocator
from identity.reserved import MIN_CIDR_IDENTITY

BASE = """\
apiVersion: v1
kind: Namespace
metadata: {name: a, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: b, labels: {team: b}}
---
apiVersion: v1
kind: Node
metadata: {name: node1, labels: {kubernetes.io/hostname: node1}}
status: {addresses: [{type: InternalIP, address: 172.18.0.11}]}
---
apiVersion: v1
kind: Node
metadata: {name: node2, labels: {kubernetes.io/hostname: node2}}
status: {addresses: [{type: InternalIP, address: 172.18.0.12}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: a, labels: {app: web}}
spec: {nodeName: node1, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: a, labels: {app: db}}
spec: {nodeName: node1, containers: [{name: c, ports: [{name: pg, containerPort: 5432}]}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: cli, namespace: b, labels: {app: cli}}
spec: {nodeName: node2, containers: [{name: c}]}
status: {podIP: 10.0.1.1}
"""


def cnp(name: str, tier: str, priority: int, subject: str, rules: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: policy.networking.k8s.io/v1alpha2
        kind: ClusterNetworkPolicy
        metadata: {{name: {name}}}
        spec:
          tier: {tier}
          priority: {priority}
          subject: {subject}
        """) + textwrap.indent(textwrap.dedent(rules), "  ")


def anp(name: str, priority: int, subject: str, rules: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: policy.networking.k8s.io/v1alpha1
        kind: AdminNetworkPolicy
        metadata: {{name: {name}}}
        spec:
          priority: {priority}
          subject: {subject}
        """) + textwrap.indent(textwrap.dedent(rules), "  ")


def banp(subject: str, rules: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: policy.networking.k8s.io/v1alpha1
        kind: BaselineAdminNetworkPolicy
        metadata: {{name: default}}
        spec:
          subject: {subject}
        """) + textwrap.indent(textwrap.dedent(rules), "  ")


def np(name: str, ns: str, selector: str, rules: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {{name: {name}, namespace: {ns}}}
        spec:
          podSelector: {selector}
        """) + textwrap.indent(textwrap.dedent(rules), "  ")


DB = "{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}"
ALL = "{namespaces: {}}"
TEAM_A = "{namespaces: {matchLabels: {team: a}}}"
NP_DENY_ALL_DB = np("deny", "a", "{matchLabels: {app: db}}", "policyTypes: [Ingress]\n")
NP_ALLOW_WEB_TO_DB = np("allow-web", "a", "{matchLabels: {app: db}}", """\
    ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]
    """)


def cluster(*docs: str) -> ClusterObjects:
    loaded = objects_from_documents(
        [d for text in (BASE, *docs) for d in yaml.safe_load_all(text) if d], "test")
    assert not loaded.errors, [str(e) for e in loaded.errors]
    return loaded.objects


def engine(*docs: str, modes: PolicyModes = PolicyModes()) -> PolicyEngine:
    e = PolicyEngine(MemoryAllocator(), MemoryAllocator(first=MIN_CIDR_IDENTITY), modes=modes)
    e.update(cluster(*docs))
    return e


CASES: list[Any] = [
    pytest.param([NP_DENY_ALL_DB, cnp("x", "Admin", 10, DB, """\
        ingress: [{action: Accept, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}]}]
        """)], "a/web", "a/db", 5432, True, DecidedBy.ADMIN,
        id="an Admin Accept allows what NetworkPolicy denies"),
    pytest.param([NP_ALLOW_WEB_TO_DB, anp("x", 10, DB, """\
        ingress: [{action: Deny, from: [{namespaces: {}}]}]
        """)], "a/web", "a/db", 5432, False, DecidedBy.ADMIN,
        id="an Admin Deny denies what NetworkPolicy allows"),
    pytest.param([NP_ALLOW_WEB_TO_DB, cnp("x", "Admin", 10, DB, """\
        ingress: [{action: Pass, from: [{namespaces: {}}]}, {action: Deny, from: [{namespaces: {}}]}]
        """)], "a/web", "a/db", 5432, True, DecidedBy.NETWORK_POLICY,
        id="a Pass skips the Admin tier's later rules and NetworkPolicy decides"),
    pytest.param([cnp("x", "Admin", 10, DB, """\
        ingress: [{action: Pass, from: [{namespaces: {}}]}]
        """), banp(DB, """\
        ingress: [{action: Deny, from: [{namespaces: {matchLabels: {team: b}}}]}]
        """)], "b/cli", "a/db", 5432, False, DecidedBy.BASELINE,
        id="a Pass with no NetworkPolicy selecting the pod goes to the Baseline tier"),
    pytest.param([NP_ALLOW_WEB_TO_DB, banp(DB, """\
        ingress: [{action: Deny, from: [{namespaces: {}}]}]
        """)], "a/web", "a/db", 5432, True, DecidedBy.NETWORK_POLICY,
        id="NetworkPolicy overrides the Baseline tier"),
    pytest.param([NP_ALLOW_WEB_TO_DB], "b/cli", "a/db", 5432, False,
                 DecidedBy.NETWORK_POLICY,
                 id="what NetworkPolicy isolates and does not allow is denied before Baseline"),
    pytest.param([cnp("x", "Baseline", 10, DB, """\
        ingress: [{action: Pass, from: [{namespaces: {}}]}]
        """), banp(DB, """\
        ingress: [{action: Deny, from: [{namespaces: {}}]}]
        """)], "a/web", "a/db", 5432, True, DecidedBy.DEFAULT,
        id="a Baseline Pass skips the rest of the Baseline tier: allowed by default"),
    pytest.param([cnp("low", "Admin", 20, DB, """\
        ingress: [{action: Accept, from: [{namespaces: {}}]}]
        """), cnp("high", "Admin", 5, DB, """\
        ingress: [{action: Deny, from: [{namespaces: {}}]}]
        """)], "a/web", "a/db", 5432, False, DecidedBy.ADMIN,
        id="a lower priority number decides first"),
    pytest.param([anp("zz", 10, DB, """\
        ingress: [{action: Accept, from: [{namespaces: {}}]}]
        """.replace("Accept", "Allow")), cnp("zz", "Admin", 10, DB, """\
        ingress: [{action: Deny, from: [{namespaces: {}}]}]
        """)], "a/web", "a/db", 5432, False, DecidedBy.ADMIN,
        id="at a shared priority a ClusterNetworkPolicy comes before an AdminNetworkPolicy"),
    pytest.param([cnp("b-allow", "Admin", 10, DB, """\
        ingress: [{action: Accept, from: [{namespaces: {}}]}]
        """), cnp("a-deny", "Admin", 10, DB, """\
        ingress: [{action: Deny, from: [{namespaces: {}}]}]
        """)], "a/web", "a/db", 5432, False, DecidedBy.ADMIN,
        id="at a shared priority and API, policies go by name"),
    pytest.param([cnp("x", "Baseline", 1000, DB, """\
        ingress: [{action: Accept, from: [{namespaces: {}}]}]
        """), banp(DB, """\
        ingress: [{action: Deny, from: [{namespaces: {}}]}]
        """)], "a/web", "a/db", 5432, True, DecidedBy.BASELINE,
        id="the BaselineAdminNetworkPolicy comes after every Baseline ClusterNetworkPolicy"),
    pytest.param([cnp("x", "Admin", 10, DB, """\
        ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {range: {start: 5000, end: 6000}}}}]}]
        """)], "a/web", "a/db", 5432, False, DecidedBy.ADMIN,
        id="a port range matches the ports inside it"),
    pytest.param([cnp("x", "Admin", 10, DB, """\
        ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{udp: {destinationPort: {number: 5432}}}]}]
        """)], "a/web", "a/db", 5432, True, DecidedBy.DEFAULT,
        id="a rule of another protocol does not match: allowed by default"),
    pytest.param([cnp("x", "Admin", 10, DB, """\
        ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{destinationNamedPort: pg}]}]
        """)], "a/web", "a/db", 5432, False, DecidedBy.ADMIN,
        id="an ingress named port resolves on the pod itself"),
    pytest.param([cnp("x", "Admin", 10, TEAM_A, """\
        egress: [{action: Deny, to: [{namespaces: {}}], protocols: [{destinationNamedPort: http}]}]
        """)], "a/db", "a/web", 8080, False, DecidedBy.ADMIN,
        id="an egress named port resolves on the destination pod"),
    pytest.param([cnp("x", "Admin", 10, TEAM_A, """\
        egress: [{action: Deny, to: [{networks: [10.0.1.0/24]}]}]
        """)], "a/web", "b/cli", 80, False, DecidedBy.ADMIN,
        id="a networks peer matches pod addresses too"),
    pytest.param([cnp("x", "Admin", 10, TEAM_A, """\
        egress: [{action: Deny, to: [{networks: ['fd00::/8']}]}]
        """)], "a/web", "b/cli", 80, True, DecidedBy.DEFAULT,
        id="an IPv6 network matches no IPv4 peer (the default decides)"),
    pytest.param([cnp("x", "Admin", 10, TEAM_A, """\
        egress: [{action: Accept, to: [{domainNames: [example.com]}]}, {action: Deny, to: [{namespaces: {matchLabels: {team: b}}}]}]
        """)], "a/web", "b/cli", 80, False, DecidedBy.ADMIN,
        id="a domainNames peer matches nothing (not enforced yet)"),
    pytest.param([cnp("x", "Admin", 10, TEAM_A, """\
        egress: [{action: Deny, to: [{namespaces: {}}]}]
        """)], "b/cli", "a/web", 80, True, DecidedBy.NOT_ENFORCED,
        id="a policy without ingress rules does not affect ingress"),
]


@pytest.mark.parametrize(("docs", "src", "dst", "port", "expected", "by"), CASES)
def test_the_tiers_decide(docs: list[str], src: str, dst: str, port: int, expected: bool,
                          by: DecidedBy) -> None:
    e = engine(*docs)
    assert allowed(e, src, dst, Protocol.TCP, port) is expected
    # The side the cases' tier rules are written for says why.
    egress = any("egress:" in d for d in docs)
    direction, pod, peer = ((Direction.EGRESS, src, dst) if egress
                            else (Direction.INGRESS, dst, src))
    found = explain(e, pod, direction, peer_identities(e, peer), Protocol.TCP.number, port)
    assert found.decision.by is by and found.decision.allowed is expected
    if by in (DecidedBy.ADMIN, DecidedBy.BASELINE):
        assert found.rules and found.rules[0].policy and found.rules[0].tier == (
            "Admin" if by is DecidedBy.ADMIN else "Baseline")


DUAL_STACK = """\
apiVersion: v1
kind: Pod
metadata: {name: cli, namespace: b, labels: {app: cli}}
spec: {nodeName: node2, containers: [{name: c}]}
status: {podIP: 10.0.1.1, podIPs: [{ip: 10.0.1.1}, {ip: "fd00:10:1::1"}]}
---
apiVersion: v1
kind: Node
metadata: {name: node2, labels: {kubernetes.io/hostname: node2}}
status: {addresses: [{type: InternalIP, address: 172.18.0.12},
                     {type: InternalIP, address: "fd00:172:18::12"}]}
"""


def dual_stack_engine(*docs: str) -> PolicyEngine:
    """BASE with b/cli and node2 dual-stack (the later documents replace the earlier)."""
    return engine(DUAL_STACK, *docs)


def test_ipv6_networks_and_node_addresses_match_peers_of_their_family_only() -> None:
    e = dual_stack_engine(cnp("x", "Admin", 10, TEAM_A, """\
        egress: [{action: Deny, to: [{networks: ['fd00:10::/32']}]}]
        """))
    assert allowed(e, "a/web", "b/cli", Protocol.TCP, 80, family=4)
    assert not allowed(e, "a/web", "b/cli", Protocol.TCP, 80, family=6)
    e = dual_stack_engine(cnp("x", "Admin", 10, TEAM_A, """\
        egress: [{action: Deny, to: [{nodes: {matchLabels: {kubernetes.io/hostname: node2}}}]}]
        """))
    maps, policy = e.cluster_maps("node1"), e.endpoint_policy("a/web")
    for ip in ("172.18.0.12", "fd00:172:18::12"):
        assert not policy.decide(Direction.EGRESS, set(maps.identities_of(ip)) - {0},
                                 Protocol.TCP.number, 10250).allowed, ip


def test_node_peers_match_the_selected_nodes_addresses_only() -> None:
    e = engine(cnp("x", "Admin", 10, TEAM_A, """\
        egress: [{action: Deny, to: [{nodes: {matchLabels: {kubernetes.io/hostname: node2}}}]}]
        """))
    maps = e.cluster_maps("node1")
    policy = e.endpoint_policy("a/web")
    for ip, denied in (("172.18.0.12", True), ("172.18.0.11", False)):
        assert policy.decide(Direction.EGRESS, set(maps.identities_of(ip)) - {0},
                             Protocol.TCP.number, 10250).allowed is not denied


def test_a_node_relabelled_into_a_nodes_peer_is_matched_after_the_update() -> None:
    rule = cnp("x", "Admin", 10, TEAM_A, """\
        egress: [{action: Deny, to: [{nodes: {matchLabels: {role: infra}}}]}]
        """)
    e = engine(rule)
    peers = set(e.cluster_maps("node1").identities_of("172.18.0.12")) - {0}
    assert e.endpoint_policy("a/web").decide(Direction.EGRESS, peers, 6, 80).allowed
    objects = cluster(rule)
    objects.nodes["node2"] = type(objects.nodes["node2"])(
        "node2", "172.18.0.12", labels={"role": "infra"})
    delta = e.update(objects)
    assert "a/web" in delta.changed_endpoints
    peers = set(e.cluster_maps("node1").identities_of("172.18.0.12")) - {0}
    assert not e.endpoint_policy("a/web").decide(Direction.EGRESS, peers, 6, 80).allowed


def test_enforcement_always_denies_what_no_step_decides_but_the_node_reaches_its_pods() -> None:
    e = engine(banp(TEAM_A, """\
        ingress: [{action: Allow, from: [{namespaces: {matchLabels: {team: b}}}]}]
        """), modes=PolicyModes(Enforcement.ALWAYS))
    assert not allowed(e, "a/web", "a/db", Protocol.TCP, 5432)       # nothing allows it
    assert allowed(e, "b/cli", "a/db", Protocol.TCP, 5432) is False   # cli's egress: denied
    db = e.endpoint_policy("a/db")
    assert db.decide(Direction.INGRESS, {1}, 6, 10250).allowed        # the host (kubelet)
    assert db.decide(Direction.INGRESS, peer_identities(e, "b/cli"), 6, 1).allowed  # BANP


def test_enforcement_never_enforces_nothing() -> None:
    e = engine(NP_DENY_ALL_DB, anp("x", 1, DB, "ingress: [{action: Deny, from: [{namespaces: {}}]}]\n"),
               modes=PolicyModes(Enforcement.NEVER))
    assert allowed(e, "a/web", "a/db", Protocol.TCP, 5432)


AUDIT_NS = """\
apiVersion: v1
kind: Namespace
metadata: {name: a, labels: {team: a}, annotations: {policy.membrane.io/audit-mode: "true"}}
"""


@pytest.mark.parametrize(("docs", "modes"), [
    pytest.param([NP_DENY_ALL_DB], PolicyModes(audit=True), id="agent-wide"),
    pytest.param([NP_DENY_ALL_DB, AUDIT_NS], PolicyModes(), id="by a namespace annotation"),
    pytest.param([cnp("x", "Admin", 10, DB, "ingress: [{action: Deny, from: [{namespaces: {}}]}]\n")
                  .replace("metadata: {name: x}",
                           'metadata: {name: x, annotations: {policy.membrane.io/audit-mode: "true"}}')],
                 PolicyModes(), id="by a tier policy's annotation"),
])
def test_audit_mode_lets_a_denial_pass_and_says_what_denied_it(docs: list[str],
                                                               modes: PolicyModes) -> None:
    e = engine(*docs, modes=modes)
    assert not allowed(e, "a/web", "a/db", Protocol.TCP, 5432)   # the policies' verdict
    found = explain(e, "a/db", Direction.INGRESS, peer_identities(e, "a/web"), 6, 5432)
    assert found.decision.audited and found.decision.passes and not found.decision.allowed
    assert "AUDIT" in found.summary


def test_audit_by_policy_does_not_audit_other_policies_denials() -> None:
    e = engine(NP_DENY_ALL_DB, cnp("x", "Admin", 10, DB, "ingress: [{action: Pass, from: [{namespaces: {}}]}]\n")
               .replace("metadata: {name: x}",
                        'metadata: {name: x, annotations: {policy.membrane.io/audit-mode: "true"}}'))
    found = explain(e, "a/db", Direction.INGRESS, peer_identities(e, "a/web"), 6, 5432)
    assert found.decision.by is DecidedBy.NETWORK_POLICY and not found.decision.passes
    assert found.passed_by is not None and found.passed_by.action == "Pass"


def test_annotating_a_namespace_for_audit_changes_its_pods_policies_incrementally() -> None:
    e = engine(NP_DENY_ALL_DB)
    assert not e.endpoint_policy("a/db").audit
    delta = e.update(cluster(NP_DENY_ALL_DB, AUDIT_NS))
    assert {"a/db", "a/web"} <= delta.changed_endpoints and "b/cli" not in delta.changed_endpoints
    assert e.endpoint_policy("a/db").audit
    delta = e.update(cluster(NP_DENY_ALL_DB))
    assert "a/db" in delta.changed_endpoints and not e.endpoint_policy("a/db").audit
