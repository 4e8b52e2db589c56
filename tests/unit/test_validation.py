"""NetworkPolicy validation and defaulting, rule by rule, as the API server does them."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidObject
from agent.k8s.loader import parse_document
from agent.k8s.objects import (
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Operator,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    PolicyType,
    Protocol,
    Requirement,
)
from agent.k8s.validation.names import (
    label_value_problem,
    port_name_problem,
    qualified_name_problem,
)

INGRESS = PolicyType.INGRESS
EGRESS = PolicyType.EGRESS


def policy_doc(spec: Any = None, name: Any = "web", namespace: Any = None,
               **top: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    doc: dict[str, Any] = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                           "metadata": meta, "spec": {"podSelector": {}} if spec is None else spec}
    doc.update(top)
    return doc


def policy_without_spec() -> dict[str, Any]:
    doc = policy_doc()
    del doc["spec"]
    return doc


def as_document(spec_or_doc: dict[Any, Any]) -> dict[Any, Any]:
    """Tables hold either a whole document or just a spec, whichever reads better."""
    return spec_or_doc if "kind" in spec_or_doc else policy_doc(spec_or_doc)


def parse_policy(doc: dict[str, Any]) -> NetworkPolicy:
    [policy] = parse_document(doc, "test.yaml#1")
    assert isinstance(policy, NetworkPolicy)
    return policy


def ingress_port(port: dict[str, Any]) -> dict[str, Any]:
    return {"podSelector": {}, "ingress": [{"ports": [port]}]}


def ingress_peer(peer: Any) -> dict[str, Any]:
    return {"podSelector": {}, "ingress": [{"from": [peer]}]}


def pod_selector(selector: Any) -> dict[str, Any]:
    return {"podSelector": selector}


# --- accepted policies and what they become ----------------------------------------------------

ACCEPTED: list[tuple[str, dict[str, Any], Any]] = [
    ("policy types default to ingress only",
     {"podSelector": {}}, lambda p: p.policy_types == {INGRESS}),
    ("policy types default to ingress and egress when egress rules exist",
     {"podSelector": {}, "egress": [{}]}, lambda p: p.policy_types == {INGRESS, EGRESS}),
    ("an empty egress list does not add egress to the defaults",
     {"podSelector": {}, "egress": []}, lambda p: p.policy_types == {INGRESS}),
    ("explicit policy types are kept even with egress rules",
     {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}], "ingress": [{}]},
     lambda p: p.policy_types == {EGRESS}),
    ("an empty policy types list is defaulted like a missing one",
     {"podSelector": {}, "policyTypes": []}, lambda p: p.policy_types == {INGRESS}),
    ("a missing spec selects every pod and denies ingress",
     policy_without_spec(), lambda p: p.pod_selector.is_empty and p.policy_types == {INGRESS}),
    ("ingress with one empty rule is one allow-all rule",
     {"podSelector": {}, "ingress": [{}]}, lambda p: p.ingress == (PolicyRule(),)),
    ("a null rule decodes as an empty rule, as in Go",
     {"podSelector": {}, "ingress": [None]}, lambda p: p.ingress == (PolicyRule(),)),
    ("empty from and missing from both mean every peer",
     {"podSelector": {}, "ingress": [{"from": []}, {"from": None}]},
     lambda p: p.ingress == (PolicyRule(), PolicyRule())),
    ("empty ports and missing ports both mean every port",
     {"podSelector": {}, "egress": [{"ports": []}, {}]},
     lambda p: p.egress == (PolicyRule(), PolicyRule())),
    ("a port without protocol is TCP",
     ingress_port({"port": 80}), lambda p: p.ingress[0].ports == (PolicyPort(Protocol.TCP, 80),)),
    ("an empty port entry is every TCP port",
     ingress_port({}), lambda p: p.ingress[0].ports == (PolicyPort(Protocol.TCP, None),)),
    ("udp and sctp protocols are accepted",
     {"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP", "port": 53},
                                                {"protocol": "SCTP"}]}]},
     lambda p: p.ingress[0].ports == (PolicyPort(Protocol.UDP, 53), PolicyPort(Protocol.SCTP))),
    ("a named port is kept as a name",
     ingress_port({"port": "http"}), lambda p: p.ingress[0].ports[0].port == "http"),
    ("an end port equal to the port is a range of one",
     ingress_port({"port": 80, "endPort": 80}), lambda p: p.ingress[0].ports[0].end_port == 80),
    ("an end port up to 65535 is accepted",
     ingress_port({"port": 1, "endPort": 65535}),
     lambda p: p.ingress[0].ports[0] == PolicyPort(Protocol.TCP, 1, 65535)),
    ("a peer with both selectors keeps both",
     ingress_peer({"podSelector": {"matchLabels": {"a": "b"}}, "namespaceSelector": {}}),
     lambda p: p.ingress[0].peers == (PolicyPeer(LabelSelector.of({"a": "b"}),
                                                 LabelSelector()),)),
    ("a peer with only a namespace selector has no pod selector",
     ingress_peer({"namespaceSelector": {}}),
     lambda p: p.ingress[0].peers == (PolicyPeer(namespace_selector=LabelSelector()),)),
    ("an ip block cidr is normalised to its network",
     ingress_peer({"ipBlock": {"cidr": "10.1.2.3/16"}}),
     lambda p: p.ingress[0].peers[0].ip_block == IPBlock("10.1.0.0/16")),
    ("an ip block with excepts inside it is accepted",
     ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.3.4/32"]}}),
     lambda p: p.ingress[0].peers[0].ip_block == IPBlock("10.0.0.0/8",
                                                         ("10.1.0.0/16", "10.2.3.4/32"))),
    ("an ipv6 ip block is accepted",
     ingress_peer({"ipBlock": {"cidr": "fd00::/64", "except": ["fd00::1/128"]}}),
     lambda p: p.ingress[0].peers[0].ip_block == IPBlock("fd00::/64", ("fd00::1/128",))),
    ("match expressions of every operator are accepted and values sorted",
     pod_selector({"matchExpressions": [
         {"key": "a", "operator": "In", "values": ["z", "y"]},
         {"key": "b", "operator": "NotIn", "values": ["x"]},
         {"key": "c", "operator": "Exists"},
         {"key": "d", "operator": "DoesNotExist", "values": []}]}),
     lambda p: p.pod_selector.match_expressions == (
         Requirement("a", Operator.IN, ("y", "z")), Requirement("b", Operator.NOT_IN, ("x",)),
         Requirement("c", Operator.EXISTS), Requirement("d", Operator.DOES_NOT_EXIST))),
    ("label keys with a dns prefix are accepted",
     pod_selector({"matchLabels": {"app.kubernetes.io/name": "web", "k8s-app": ""}}),
     lambda p: dict(p.pod_selector.match_labels) == {"app.kubernetes.io/name": "web",
                                                      "k8s-app": ""}),
    ("the namespace defaults to default",
     policy_doc(), lambda p: p.namespace == "default"),
    ("an explicit namespace is kept",
     policy_doc(namespace="prod"), lambda p: p.key == "prod/web"),
    ("a dotted name is a valid subdomain",
     policy_doc(name="allow.web-1"), lambda p: p.name == "allow.web-1"),
    ("the resource version is kept",
     {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
      "metadata": {"name": "web", "resourceVersion": "42", "uid": "u", "annotations": {}},
      "spec": {}}, lambda p: p.resource_version == "42"),
    ("a status field from 1.24 to 1.27 exports is ignored",
     policy_doc(status={"conditions": []}), lambda p: p.name == "web"),
]


@pytest.mark.parametrize("spec_or_doc, check",
                         [pytest.param(s, c, id=i) for i, s, c in ACCEPTED])
def test_accepted_policy(spec_or_doc: dict[str, Any], check: Any) -> None:
    assert check(parse_policy(as_document(spec_or_doc)))


# --- rejected policies: field path and problem ------------------------------------------------

REJECTED: list[tuple[str, dict[Any, Any], str, str]] = [
    # metadata
    ("a missing name is required", policy_doc(name=None), "metadata.name", "Required value"),
    ("an uppercase name is not a dns subdomain", policy_doc(name="Web"), "metadata.name",
     "RFC 1123 subdomain"),
    ("a name over 253 characters is rejected", policy_doc(name="a" * 254), "metadata.name",
     "RFC 1123 subdomain"),
    ("a name that is a number is a type error", policy_doc(name=7), "metadata.name",
     "must be a string, not an integer"),
    ("a namespace with a dot is not a dns label", policy_doc(namespace="a.b"),
     "metadata.namespace", "RFC 1123 label"),
    ("an unknown metadata field is rejected",
     {**policy_doc(), "metadata": {"name": "web", "lables": {}}}, "metadata.lables",
     "did you mean 'labels'"),
    ("a bad metadata label key is rejected",
     {**policy_doc(), "metadata": {"name": "web", "labels": {"-x": "y"}}},
     "metadata.labels[-x]", "invalid label key"),
    # top level and spec strictness
    ("an unknown top level field is rejected", policy_doc(specs={}), "specs", "unknown field"),
    ("an unknown spec field is rejected",
     {"podSelector": {}, "ingres": []}, "spec.ingres", "did you mean 'ingress'"),
    ("to in an ingress rule is an unknown field",
     {"podSelector": {}, "ingress": [{"to": []}]}, "spec.ingress[0].to", "unknown field"),
    ("from in an egress rule is an unknown field",
     {"podSelector": {}, "egress": [{"from": []}]}, "spec.egress[0].from", "unknown field"),
    ("an unknown peer field is rejected",
     ingress_peer({"podselector": {}}), "spec.ingress[0].from[0].podselector", "unknown field"),
    ("an unknown ip block field is rejected",
     ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "excepts": []}}),
     "spec.ingress[0].from[0].ipBlock.excepts", "did you mean 'except'"),
    ("an unknown port field is rejected",
     ingress_port({"port": 80, "end_port": 90}), "spec.ingress[0].ports[0].end_port",
     "unknown field"),
    ("an unknown selector field is rejected",
     pod_selector({"matchLabel": {"a": "b"}}), "spec.podSelector.matchLabel",
     "did you mean 'matchLabels'"),
    ("an unknown expression field is rejected",
     pod_selector({"matchExpressions": [{"key": "a", "operator": "Exists", "value": []}]}),
     "spec.podSelector.matchExpressions[0].value", "unknown field"),
    # wrong types
    ("a spec that is a list is a type error", policy_doc([]), "spec",
     "must be an object, not a list"),
    ("ingress as an object is a type error", {"podSelector": {}, "ingress": {"from": []}},
     "spec.ingress", "must be a list, not an object"),
    ("from as a string is a type error", {"podSelector": {}, "ingress": [{"from": "x"}]},
     "spec.ingress[0].from", "must be a list, not a string"),
    ("a rule that is a string is a type error", {"podSelector": {}, "egress": ["x"]},
     "spec.egress[0]", "must be an object, not a string"),
    ("match labels as a list is a type error", pod_selector({"matchLabels": ["a"]}),
     "spec.podSelector.matchLabels", "must be an object, not a list"),
    ("a boolean label value is a type error", pod_selector({"matchLabels": {"on": True}}),
     "spec.podSelector.matchLabels[on]", "must be a string, not a boolean"),
    ("a number label value is a type error", pod_selector({"matchLabels": {"v": 1}}),
     "spec.podSelector.matchLabels[v]", "must be a string, not an integer"),
    ("a non string field name is rejected", {"podSelector": {}, 5: 1}, "spec",
     "field names must be strings"),
    ("policy types as a string is a type error", {"podSelector": {}, "policyTypes": "Ingress"},
     "spec.policyTypes", "must be a list"),
    # label selectors
    ("an invalid match labels key is rejected", pod_selector({"matchLabels": {"a b": "c"}}),
     "spec.podSelector.matchLabels[a b]", "invalid label key"),
    ("a label key with two slashes is rejected", pod_selector({"matchLabels": {"a/b/c": "d"}}),
     "spec.podSelector.matchLabels[a/b/c]", "at most one '/'"),
    ("a label key with an uppercase prefix is rejected",
     pod_selector({"matchLabels": {"Example.com/a": "d"}}),
     "spec.podSelector.matchLabels[Example.com/a]", "prefix"),
    ("a label value over 63 characters is rejected",
     pod_selector({"matchLabels": {"a": "b" * 64}}), "spec.podSelector.matchLabels[a]",
     "label value"),
    ("a label value ending in a dash is rejected", pod_selector({"matchLabels": {"a": "b-"}}),
     "spec.podSelector.matchLabels[a]", "label value"),
    ("in without values is rejected",
     pod_selector({"matchExpressions": [{"key": "a", "operator": "In"}]}),
     "spec.podSelector.matchExpressions[0].values", "must be specified"),
    ("not in with empty values is rejected",
     pod_selector({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}),
     "spec.podSelector.matchExpressions[0].values", "must be specified"),
    ("exists with values is rejected",
     pod_selector({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
     "spec.podSelector.matchExpressions[0].values", "may not be specified"),
    ("does not exist with values is rejected",
     pod_selector({"matchExpressions": [{"key": "a", "operator": "DoesNotExist",
                                         "values": ["x"]}]}),
     "spec.podSelector.matchExpressions[0].values", "may not be specified"),
    ("an unknown operator is rejected",
     pod_selector({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
     "spec.podSelector.matchExpressions[0].operator", "Unsupported value"),
    ("a lowercase operator is rejected",
     pod_selector({"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}),
     "spec.podSelector.matchExpressions[0].operator", "Unsupported value"),
    ("a missing expression key is required",
     pod_selector({"matchExpressions": [{"operator": "Exists"}]}),
     "spec.podSelector.matchExpressions[0].key", "Required value"),
    ("an invalid expression key is rejected",
     pod_selector({"matchExpressions": [{"key": "-a", "operator": "Exists"}]}),
     "spec.podSelector.matchExpressions[0].key", "invalid value"),
    ("an invalid expression value is rejected",
     pod_selector({"matchExpressions": [{"key": "a", "operator": "In", "values": ["a b"]}]}),
     "spec.podSelector.matchExpressions[0].values[0]", "label value"),
    ("a null expression is rejected",
     pod_selector({"matchExpressions": [None]}), "spec.podSelector.matchExpressions[0]",
     "not null"),
    # policy types
    ("an unknown policy type is rejected", {"podSelector": {}, "policyTypes": ["Both"]},
     "spec.policyTypes[0]", "Unsupported value"),
    ("a lowercase policy type is rejected", {"podSelector": {}, "policyTypes": ["ingress"]},
     "spec.policyTypes[0]", "Unsupported value"),
    ("more than two policy types are rejected",
     {"podSelector": {}, "policyTypes": ["Ingress", "Egress", "Ingress"]}, "spec.policyTypes",
     "more than two"),
    # ports
    ("icmp is not a supported protocol", ingress_port({"protocol": "ICMP"}),
     "spec.ingress[0].ports[0].protocol", "Unsupported value"),
    ("a lowercase protocol is rejected", ingress_port({"protocol": "tcp"}),
     "spec.ingress[0].ports[0].protocol", "Unsupported value"),
    ("an empty protocol is rejected, not defaulted", ingress_port({"protocol": ""}),
     "spec.ingress[0].ports[0].protocol", "Unsupported value"),
    ("port zero is rejected", ingress_port({"port": 0}), "spec.ingress[0].ports[0].port",
     "between 1 and 65535"),
    ("port 65536 is rejected", ingress_port({"port": 65536}), "spec.ingress[0].ports[0].port",
     "between 1 and 65535"),
    ("a negative port is rejected", ingress_port({"port": -1}), "spec.ingress[0].ports[0].port",
     "between 1 and 65535"),
    ("a quoted number is not a port name", ingress_port({"port": "80"}),
     "spec.ingress[0].ports[0].port", "at least one letter"),
    ("a port name over 15 characters is rejected", ingress_port({"port": "a" * 16}),
     "spec.ingress[0].ports[0].port", "at most 15"),
    ("a port name with uppercase is rejected", ingress_port({"port": "Http"}),
     "spec.ingress[0].ports[0].port", "lowercase"),
    ("a port name with a double hyphen is rejected", ingress_port({"port": "a--b"}),
     "spec.ingress[0].ports[0].port", "'--'"),
    ("a port name starting with a hyphen is rejected", ingress_port({"port": "-ab"}),
     "spec.ingress[0].ports[0].port", "begin or end"),
    ("a port name ending with a hyphen is rejected", ingress_port({"port": "ab-"}),
     "spec.ingress[0].ports[0].port", "begin or end"),
    ("a boolean port is a type error", ingress_port({"port": True}),
     "spec.ingress[0].ports[0].port", "not a boolean"),
    ("a fractional port is a type error", ingress_port({"port": 80.5}),
     "spec.ingress[0].ports[0].port", "not a number"),
    ("end port without port is rejected", ingress_port({"endPort": 90}),
     "spec.ingress[0].ports[0].endPort", "port is not specified"),
    ("end port with a named port is rejected", ingress_port({"port": "http", "endPort": 90}),
     "spec.ingress[0].ports[0].endPort", "named port"),
    ("end port below port is rejected", ingress_port({"port": 90, "endPort": 80}),
     "spec.ingress[0].ports[0].endPort", "must be >= port"),
    ("end port above 65535 is rejected", ingress_port({"port": 90, "endPort": 65536}),
     "spec.ingress[0].ports[0].endPort", "between 1 and 65535"),
    ("end port as a string is a type error", ingress_port({"port": 90, "endPort": "100"}),
     "spec.ingress[0].ports[0].endPort", "must be an integer"),
    # peers
    ("an empty peer is rejected", ingress_peer({}), "spec.ingress[0].from[0]",
     "must specify a peer"),
    ("a peer of nulls is rejected", ingress_peer({"podSelector": None}),
     "spec.ingress[0].from[0]", "must specify a peer"),
    ("ip block with a pod selector is rejected",
     ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}),
     "spec.ingress[0].from[0].ipBlock", "both ipBlock and another peer"),
    ("ip block with a namespace selector is rejected",
     ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}),
     "spec.ingress[0].from[0].ipBlock", "both ipBlock and another peer"),
    ("an ip block without cidr is rejected", ingress_peer({"ipBlock": {"except": []}}),
     "spec.ingress[0].from[0].ipBlock.cidr", "Required value"),
    ("a cidr that is not an address is rejected", ingress_peer({"ipBlock": {"cidr": "x/8"}}),
     "spec.ingress[0].from[0].ipBlock.cidr", "invalid CIDR"),
    ("a cidr without prefix length is rejected", ingress_peer({"ipBlock": {"cidr": "10.0.0.1"}}),
     "spec.ingress[0].from[0].ipBlock.cidr", "prefix length"),
    ("a cidr with prefix length 33 is rejected",
     ingress_peer({"ipBlock": {"cidr": "10.0.0.0/33"}}),
     "spec.ingress[0].from[0].ipBlock.cidr", "invalid CIDR"),
    ("an except outside the cidr is rejected",
     ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}),
     "spec.ingress[0].from[0].ipBlock.except[0]", "strict subset"),
    ("an except equal to the cidr is rejected",
     ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}),
     "spec.ingress[0].from[0].ipBlock.except[0]", "strict subset"),
    ("an except wider than the cidr is rejected",
     ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["0.0.0.0/0"]}}),
     "spec.ingress[0].from[0].ipBlock.except[0]", "strict subset"),
    ("an except of the other address family is rejected",
     ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["fd00::/64"]}}),
     "spec.ingress[0].from[0].ipBlock.except[0]", "strict subset"),
    ("an invalid except is rejected",
     ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.300/32"]}}),
     "spec.ingress[0].from[0].ipBlock.except[0]", "invalid CIDR"),
    ("a namespace selector as a string is a type error",
     ingress_peer({"namespaceSelector": "type=monitoring"}),
     "spec.ingress[0].from[0].namespaceSelector", "must be an object, not a string"),
    ("errors in egress peers name the to path",
     {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "bad"}}]}]},
     "spec.egress[0].to[0].ipBlock.cidr", "invalid CIDR"),
]


@pytest.mark.parametrize("spec_or_doc, path, problem",
                         [pytest.param(s, p, m, id=i) for i, s, p, m in REJECTED])
def test_rejected_policy(spec_or_doc: dict[Any, Any], path: str, problem: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        parse_document(as_document(spec_or_doc), "test.yaml#1")
    assert caught.value.kind == "NetworkPolicy"
    assert caught.value.path == path
    assert problem in caught.value.problem
    assert caught.value.source == "test.yaml#1"


def test_the_message_names_object_path_problem_and_source() -> None:
    doc = policy_doc(ingress_port({"port": 90, "endPort": 80}) | {"podSelector": {}})
    doc["spec"]["ingress"][0]["ports"].insert(0, {"port": 1})
    with pytest.raises(InvalidObject) as caught:
        parse_document(doc, "dir/web.yaml#2")
    assert str(caught.value) == ("networkpolicy default/web: spec.ingress[0].ports[1].endPort: "
                                 "must be >= port (dir/web.yaml#2)")


def test_an_unnamed_object_is_still_named_in_the_message() -> None:
    with pytest.raises(InvalidObject) as caught:
        parse_document(policy_doc(name=None, namespace="prod"))
    assert str(caught.value).startswith("networkpolicy prod/<unnamed>: metadata.name:")


# --- the name and value checks on their own ----------------------------------------------------

@pytest.mark.parametrize("key, valid", [
    ("app", True), ("a", True), ("A_b.c-d", True), ("example.com/app", True),
    ("k8s.io/a", True), ("a" * 63, True), ("a" * 64, False), ("", False), ("/a", False),
    ("a/", False), ("-a", False), ("a-", False), ("a b", False), ("Example.com/a", False),
    ("a/b/c", False), ("é", False),
])
def test_label_key_validity(key: str, valid: bool) -> None:
    assert (qualified_name_problem(key) is None) is valid


@pytest.mark.parametrize("value, valid", [
    ("", True), ("a", True), ("A.b_c-9", True), ("a" * 63, True), ("a" * 64, False),
    ("-a", False), ("a.", False), ("a b", False), ("a\n", False),
])
def test_label_value_validity(value: str, valid: bool) -> None:
    assert (label_value_problem(value) is None) is valid


@pytest.mark.parametrize("name, valid", [
    ("http", True), ("h2c", True), ("dns-tcp", True), ("a" * 15, True), ("a" * 16, False),
    ("80", False), ("a--b", False), ("-a", False), ("a-", False), ("HTTP", False),
    ("a_b", False), ("", False),
])
def test_port_name_validity(name: str, valid: bool) -> None:
    assert (port_name_problem(name) is None) is valid
