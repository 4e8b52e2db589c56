"""NetworkPolicy semantics, end to end through the engine and the datapath's lookup.

Each case is a set of policies over one small cluster and the verdicts it must give,
checked with the same evaluation `policy matrix` and the BPF datapath use.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from policy_helpers import (block, cluster, engine_for, ns, peer, pod, policy, port,
                                       rule, sel, verdict)

# The cluster every case runs on.
BASE = [
    ns("default"),
    ns("other", team="other"),
    ns("kube-system", contains="coredns"),
    pod("default/client", {"app": "client"}, "10.1.0.1", [("http", 8080, "TCP")]),
    pod("default/server", {"app": "server", "tier": "web"}, "10.1.0.2",
        [("http", 8080, "TCP"), ("dns", 53, "UDP"), ("assoc", 9000, "SCTP")]),
    pod("default/db", {"app": "db"}, "10.1.0.3"),
    pod("other/client", {"app": "client"}, "10.2.0.1"),
    pod("other/server", {"app": "server"}, "10.2.0.2", [("http", 9090, "TCP")]),
    pod("kube-system/dns", {"k8s-app": "kube-dns"}, "10.3.0.1", [("dns", 53, "UDP")]),
]

SERVER = sel({"app": "server", "tier": "web"})


@dataclass(frozen=True)
class Expect:
    src: str
    dst: str
    allowed: bool
    port: int = 80
    protocol: str = "TCP"


def allow(src: str, dst: str, port: int = 80, protocol: str = "TCP") -> Expect:
    return Expect(src, dst, True, port, protocol)


def deny(src: str, dst: str, port: int = 80, protocol: str = "TCP") -> Expect:
    return Expect(src, dst, False, port, protocol)


def ingress_to_server(*rules: object) -> object:
    return policy("default/to-server", SERVER, ingress=rules)  # type: ignore[arg-type]


def egress_from_client(*rules: object) -> object:
    return policy("default/from-client", sel({"app": "client"}),
                  egress=rules, types=["Egress"])  # type: ignore[arg-type]


CASES = [
    pytest.param([], [allow("default/client", "default/server"),
                      allow("other/client", "default/db", 5432, "UDP")],
                 id="without policies every pod reaches every pod"),
    pytest.param([policy("default/deny", SERVER, types=["Ingress"])],
                 [deny("default/client", "default/server"),
                  deny("default/client", "default/server", 53, "UDP"),
                  allow("default/server", "default/client"),
                  allow("default/client", "default/db")],
                 id="a policy without ingress rules isolates the pods it selects and only them"),
    pytest.param([policy("other/deny", sel({"app": "server"}), types=["Ingress"])],
                 [allow("default/client", "default/server"),
                  deny("default/client", "other/server")],
                 id="a policy applies only to pods of its own namespace"),
    pytest.param([policy("default/deny", SERVER, types=["Ingress"]),
                  policy("default/allow", SERVER, ingress=[rule([peer(sel({"app": "client"}))])])],
                 [allow("default/client", "default/server")],
                 id="policies are additive so an allow wins over a deny-all"),
    pytest.param([ingress_to_server(rule([peer(sel({"app": "client"}))]))],
                 [allow("default/client", "default/server"),
                  deny("other/client", "default/server"),
                  deny("default/db", "default/server")],
                 id="a podSelector peer matches pods of the policy's namespace only"),
    pytest.param([ingress_to_server(rule([peer(sel())]))],
                 [allow("default/db", "default/server"),
                  deny("other/client", "default/server")],
                 id="an empty podSelector peer matches every pod of the policy's namespace"),
    pytest.param([ingress_to_server(rule([peer(namespaces=sel({"team": "other"}))]))],
                 [allow("other/client", "default/server"),
                  allow("other/server", "default/server"),
                  deny("default/client", "default/server")],
                 id="a namespaceSelector peer matches every pod of matching namespaces"),
    pytest.param([ingress_to_server(rule([peer(namespaces=sel())]))],
                 [allow("other/client", "default/server"),
                  allow("kube-system/dns", "default/server"),
                  allow("default/db", "default/server")],
                 id="an empty namespaceSelector matches pods in every namespace"),
    pytest.param([ingress_to_server(rule([peer(sel({"app": "client"}), sel({"team": "other"}))]))],
                 [allow("other/client", "default/server"),
                  deny("other/server", "default/server"),
                  deny("default/client", "default/server")],
                 id="podSelector and namespaceSelector in one peer are ANDed"),
    pytest.param([ingress_to_server(rule([peer(namespaces=sel({"team": "other"})),
                                          peer(sel({"app": "client"}))]))],
                 [allow("other/server", "default/server"),
                  allow("default/client", "default/server"),
                  deny("default/db", "default/server")],
                 id="two peers in one rule are ORed"),
    pytest.param([ingress_to_server(rule())],
                 [allow("other/client", "default/server", 1234, "UDP"),
                  allow("kube-system/dns", "default/server")],
                 id="a rule with no from and no ports (- {}) allows everything"),
    pytest.param([ingress_to_server(rule(ports=[port(8080)]))],
                 [allow("other/client", "default/server", 8080),
                  deny("other/client", "default/server", 80),
                  deny("other/client", "default/server", 8080, "UDP")],
                 id="a rule with no from allows every peer on its ports"),
    pytest.param([ingress_to_server(rule(ports=[port()]))],
                 [allow("default/client", "default/server", 1),
                  allow("default/client", "default/server", 65535),
                  deny("default/client", "default/server", 53, "UDP"),
                  deny("default/client", "default/server", 9000, "SCTP")],
                 id="ports with one empty entry allow any TCP port and nothing else"),
    pytest.param([ingress_to_server(rule(ports=[port(8000, end=8100)]))],
                 [allow("default/client", "default/server", 8000),
                  allow("default/client", "default/server", 8050),
                  allow("default/client", "default/server", 8100),
                  deny("default/client", "default/server", 7999),
                  deny("default/client", "default/server", 8101)],
                 id="endPort allows the whole inclusive range and nothing around it"),
    pytest.param([ingress_to_server(rule(ports=[port(9000, "SCTP")]))],
                 [allow("default/client", "default/server", 9000, "SCTP"),
                  deny("default/client", "default/server", 9000, "TCP"),
                  deny("default/client", "default/server", 9000, "UDP")],
                 id="an SCTP-only allow allows no TCP and still isolates"),
    pytest.param([ingress_to_server(rule(ports=[port(53, "UDP"), port(8080)]))],
                 [allow("default/client", "default/server", 53, "UDP"),
                  allow("default/client", "default/server", 8080, "TCP"),
                  deny("default/client", "default/server", 53, "TCP"),
                  deny("default/client", "default/server", 8080, "UDP")],
                 id="each port entry keeps its own protocol"),
    pytest.param([ingress_to_server(rule(ports=[port("http")]))],
                 [allow("default/client", "default/server", 8080),
                  deny("default/client", "default/server", 80)],
                 id="an ingress named port resolves on the selected pod itself"),
    pytest.param([ingress_to_server(rule(ports=[port("http", "UDP")]))],
                 [deny("default/client", "default/server", 8080, "TCP"),
                  deny("default/client", "default/server", 8080, "UDP"),
                  deny("default/client", "default/server", 80)],
                 id="a named port whose protocol differs from the rule's matches nothing"),
    pytest.param([ingress_to_server(rule(ports=[port("missing")]))],
                 [deny("default/client", "default/server", 8080),
                  deny("default/client", "default/server", 80)],
                 id="a named port no pod declares allows nothing but still isolates"),
    pytest.param([egress_from_client(rule([peer(namespaces=sel())], [port("http")]))],
                 [allow("default/client", "other/server", 9090),
                  deny("default/client", "other/server", 8080),
                  allow("default/client", "default/server", 8080),
                  deny("default/client", "default/server", 9090),
                  deny("default/client", "default/db", 8080)],
                 id="an egress named port resolves on each destination pod"),
    pytest.param([egress_from_client(rule(ports=[port("http")]))],
                 [allow("default/client", "other/server", 9090),
                  allow("default/client", "default/server", 8080),
                  deny("default/client", "other/server", 8080),
                  deny("default/client", "kube-system/dns", 53, "UDP")],
                 id="an egress named port without peers resolves per destination identity"),
    pytest.param([egress_from_client(rule([block("10.2.0.0/16")], [port("http")]))],
                 [allow("default/client", "other/server", 9090),
                  deny("default/client", "other/server", 8080),
                  deny("default/client", "default/server", 8080)],
                 id="an egress named port to an ipBlock resolves on pods inside the block"),
    pytest.param([egress_from_client(rule([peer(sel({"app": "server"}))], [port("dns", "UDP")]))],
                 [allow("default/client", "default/server", 53, "UDP"),
                  deny("default/client", "default/server", 53, "TCP")],
                 id="an egress named port matches name and protocol on the destination"),
    pytest.param([egress_from_client(rule([peer(sel({"app": "server"}))], [port("http", "UDP")]))],
                 [deny("default/client", "default/server", 8080, "TCP"),
                  deny("default/client", "default/server", 8080, "UDP"),
                  deny("default/client", "kube-system/dns", 53, "UDP")],
                 id="an egress named port whose protocol differs on the destination allows nothing"),
    pytest.param([egress_from_client()],
                 [deny("default/client", "default/server"),
                  deny("default/client", "kube-system/dns", 53, "UDP"),
                  allow("default/server", "default/client")],
                 id="an egress policy without rules denies all egress and no ingress"),
    pytest.param([policy("default/mixed", sel({"app": "client"}), ingress=[],
                         egress=[rule([peer(sel({"app": "db"}))])], types=["Egress"])],
                 [allow("default/server", "default/client"),
                  deny("default/client", "default/server"),
                  allow("default/client", "default/db")],
                 id="a policy with only Egress in policyTypes leaves ingress open"),
    pytest.param([policy("default/in-only", sel({"app": "client"}),
                         egress=[rule([peer(sel({"app": "db"}))])], types=["Ingress"])],
                 [allow("default/client", "default/server"),
                  deny("default/server", "default/client")],
                 id="egress rules of a policy whose policyTypes lack Egress are ignored"),
    pytest.param([ingress_to_server(rule([peer(sel({"app": "client"}))])),
                  egress_from_client(rule([peer(sel({"app": "server"}))]))],
                 [allow("default/client", "default/server"),
                  deny("default/client", "other/server")],
                 id="egress and ingress must both allow"),
    pytest.param([egress_from_client(rule([peer(sel({"app": "db"}))])),
                  ingress_to_server(rule([peer(sel({"app": "client"}))]))],
                 [deny("default/client", "default/server")],
                 id="an ingress allow does not override an egress deny"),
    pytest.param([policy("default/deny-all", sel(), types=["Ingress", "Egress"])],
                 [allow("default/client", "default/client"),
                  deny("default/client", "default/server")],
                 id="a pod always reaches itself even when isolated both ways"),
    pytest.param([ingress_to_server(rule([block("10.2.0.0/16")]))],
                 [allow("other/client", "default/server"),
                  deny("default/client", "default/server")],
                 id="an ipBlock matches pod IPs in its range"),
    pytest.param([ingress_to_server(rule([block("10.2.0.0/16", "10.2.0.1/32")]))],
                 [deny("other/client", "default/server"),
                  allow("other/server", "default/server")],
                 id="an ipBlock except carves out an address"),
    pytest.param([ingress_to_server(rule([block("10.0.0.0/8", "10.2.0.0/16")])),
                  policy("default/narrow", SERVER, ingress=[rule([block("10.2.0.0/24",
                                                                        "10.2.0.2/32")])])],
                 [allow("other/client", "default/server"),
                  deny("other/server", "default/server"),
                  allow("default/client", "default/server")],
                 id="nested blocks and excepts of two policies combine exactly"),
    pytest.param([ingress_to_server(rule([block("10.2.0.0/16", "10.2.0.1/32"),
                                          peer(sel({"app": "client"}), sel())]))],
                 [allow("other/client", "default/server")],
                 id="an excepted address allowed by another peer is allowed"),
    pytest.param([ingress_to_server(rule([block("10.2.0.0/16", "10.2.0.0/24")])),
                  policy("default/exact", SERVER, ingress=[rule([block("10.2.0.1/32")])])],
                 [allow("other/client", "default/server"),
                  deny("other/server", "default/server")],
                 id="an excepted address allowed by another policy is allowed"),
    pytest.param([ingress_to_server(rule([block("10.2.0.0/16", "10.2.0.1/32")]),
                                    rule([block("10.2.0.0/24")], [port(8080)]))],
                 [deny("other/client", "default/server", 80),
                  allow("other/client", "default/server", 8080),
                  allow("other/server", "default/server", 80)],
                 id="an excepted address re-allowed on one port only is allowed only there"),
    pytest.param([ingress_to_server(rule([block("::/0")]), rule([block("fd00::/8", "fd00::1/128"),
                                                                 peer(sel({"app": "client"}))]))],
                 [deny("other/client", "default/server"),
                  allow("default/client", "default/server"),
                  deny("default/db", "default/server")],
                 id="an IPv6 ipBlock matches no pod and leaves the other peers of its rule working"),
    pytest.param([egress_from_client(rule([block("10.3.0.0/16")], [port(53, "UDP")]))],
                 [allow("default/client", "kube-system/dns", 53, "UDP"),
                  deny("default/client", "other/server", 53, "UDP")],
                 id="an egress ipBlock matches destination pod IPs"),
    pytest.param([policy("default/untiered", sel(None, ("tier", "NotIn", ("web",))),
                         types=["Ingress"])],
                 [deny("default/server", "default/client"),
                  deny("default/server", "default/db"),
                  allow("default/client", "default/server")],
                 id="NotIn selects pods that lack the key"),
    pytest.param([policy("default/untiered", sel(None, ("tier", "DoesNotExist", ())),
                         types=["Ingress"])],
                 [deny("default/server", "default/db"),
                  allow("default/client", "default/server")],
                 id="DoesNotExist selects pods that lack the key"),
    pytest.param([policy("default/tiered", sel(None, ("tier", "In", ("web", "db"))),
                         types=["Ingress"])],
                 [allow("default/server", "default/db"),
                  deny("default/client", "default/server")],
                 id="In does not select pods that lack the key"),
    pytest.param([policy("default/tiered", sel(None, ("tier", "Exists", ())),
                         types=["Ingress"])],
                 [allow("default/server", "default/db"),
                  deny("default/client", "default/server")],
                 id="Exists does not select pods that lack the key"),
    pytest.param([ingress_to_server(rule([peer(sel(None, ("tier", "NotIn", ("web",))),
                                               sel(None, ("team", "NotIn", ("x",))))]))],
                 [allow("default/client", "default/server"),
                  allow("other/client", "default/server"),
                  allow("kube-system/dns", "default/server")],
                 id="NotIn in peer selectors matches pods and namespaces without the key"),
]


@pytest.mark.parametrize(("policies", "expectations"), CASES)
def test_policy_semantics(policies: list[object], expectations: list[Expect]) -> None:
    engine = engine_for(cluster(*BASE, *policies))
    wrong = [e for e in expectations
             if verdict(engine, e.src, e.dst, e.port, e.protocol) is not e.allowed]
    assert not wrong, "verdicts differ from expected: " + "; ".join(
        f"{e.src} -> {e.dst} {e.protocol}/{e.port} should be "
        f"{'allowed' if e.allowed else 'denied'}" for e in wrong)


def test_a_pod_cannot_label_its_way_into_another_namespaces_selector() -> None:
    from identity.security import NAMESPACE_LABELS_PREFIX, POD_NAMESPACE

    payments_only = policy("prod/db", sel({"app": "db"}), ingress=[
        rule([peer(namespaces=sel({"team": "payments"}))])])
    objects = cluster(ns("prod"), ns("payments", team="payments"), ns("evil"),
                      pod("prod/db", {"app": "db"}, "10.9.0.1"),
                      pod("payments/api", {"app": "api"}, "10.9.0.2"),
                      pod("evil/claims-label", {"app": "api",
                                                NAMESPACE_LABELS_PREFIX + "team": "payments"},
                          "10.9.0.3"),
                      pod("evil/claims-namespace", {"app": "api", POD_NAMESPACE: "payments"},
                          "10.9.0.4"),
                      payments_only)
    engine = engine_for(objects)
    assert verdict(engine, "payments/api", "prod/db")
    assert not verdict(engine, "evil/claims-label", "prod/db")
    assert not verdict(engine, "evil/claims-namespace", "prod/db")
