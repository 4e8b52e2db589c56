"""ClusterNetworkPolicy (v1alpha2) and AdminNetworkPolicy / BaselineAdminNetworkPolicy
(v1alpha1) validation, rule by rule, as their CRDs do it: the schema's types, enums,
bounds and "exactly one of", the CEL rules, and what the schema lets through but
Membrane cannot use (a warning, and a value that matches nothing)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.k8s.clusterpolicy import (AUDIT_ANNOTATION, describe_same_priority,
                                     same_priority_groups)
from agent.k8s.loader import parse_document
from agent.k8s.objects import (LabelSelector, Protocol, RuleAction, Tier, TieredPolicy,
                               TierPeer, TierPort, TierSelector)
from agent.k8s.serialize import to_document
from agent.k8s.validation.fields import ValidationWarning
from agent.k8s.validation.tierfields import NOTHING
from core.errors import InvalidObject

Doc = dict[str, Any]


def cnp(**spec: Any) -> Doc:
    base: Doc = {"tier": "Admin", "priority": 10, "subject": {"namespaces": {}}}
    base.update(spec)
    return {"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
            "metadata": {"name": "p"}, "spec": base}


def anp(**spec: Any) -> Doc:
    base: Doc = {"priority": 10, "subject": {"namespaces": {}}}
    base.update(spec)
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
            "metadata": {"name": "p"}, "spec": base}


def banp(name: str = "default", **spec: Any) -> Doc:
    base: Doc = {"subject": {"namespaces": {}}}
    base.update(spec)
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1",
            "kind": "BaselineAdminNetworkPolicy", "metadata": {"name": name}, "spec": base}


def egress(action: str = "Deny", to: Any = None, **rule: Any) -> list[Doc]:
    return [{"action": action, "to": to if to is not None else [{"namespaces": {}}], **rule}]


def ingress(action: str = "Deny", frm: Any = None, **rule: Any) -> list[Doc]:
    return [{"action": action, "from": frm if frm is not None else [{"namespaces": {}}],
             **rule}]


def parse(doc: Doc, warnings: list[ValidationWarning] | None = None) -> TieredPolicy:
    [policy] = parse_document(doc, "test.yaml#1", warnings if warnings is not None else [])
    assert isinstance(policy, TieredPolicy)
    return policy


REJECTED = [
    (cnp(tier="Middle"), "spec.tier", 'Unsupported value: "Middle"'),
    (cnp(priority=1001), "spec.priority", "between 0 and 1000"),
    (cnp(priority="10"), "spec.priority", "must be an integer"),
    (cnp(subject={}), "spec.subject", "exactly one of namespaces, pods"),
    (cnp(subject={"namespaces": {}, "pods": {"podSelector": {}}}), "spec.subject",
     "not 2"),
    (cnp(subject={"pods": {"namespaceSelector": {}}}), "spec.subject.pods.podSelector",
     "Required value"),
    (cnp(ingress=ingress("Allow")), "spec.ingress[0].action",
     'supported values: "Accept", "Deny", "Pass"'),
    (cnp(ingress=ingress(frm=[])), "spec.ingress[0].from", "at least 1 item"),
    (cnp(ingress=ingress(frm=[{"networks": ["10.0.0.0/8"]}])),
     "spec.ingress[0].from[0].networks", "unknown field \"networks\""),
    (cnp(egress=egress(to=[{"networks": ["10.0.0.0/33"]}])),
     "spec.egress[0].to[0].networks[0]", "Invalid CIDR format provided"),
    (cnp(egress=egress(to=[{"networks": ["10.0.0.1"]}])), "spec.egress[0].to[0].networks[0]",
     "Invalid CIDR format provided"),
    (cnp(egress=egress(to=[{"networks": ["::ffff:10.0.0.0/104"]}])),
     "spec.egress[0].to[0].networks[0]", "Invalid CIDR format provided"),
    (cnp(egress=egress(to=[{"networks": ["10.0.0.0/8", "10.0.0.0/8"]}])),
     "spec.egress[0].to[0].networks[1]", "Duplicate value"),
    (cnp(egress=egress(to=[{"networks": [f"10.{i}.0.0/16" for i in range(26)]}])),
     "spec.egress[0].to[0].networks", "at most 25"),
    (cnp(egress=egress(protocols=[{"tcp": {"destinationPort": {"range": {"start": 9,
                                                                         "end": 9}}}}])),
     "spec.egress[0].protocols[0].tcp.destinationPort.range",
     "Start port must be less than End port"),
    (cnp(egress=egress(protocols=[{"tcp": {}}])), "spec.egress[0].protocols[0].tcp",
     "at least 1 properties"),
    (cnp(egress=egress(protocols=[{"udp": {"destinationPort": {"number": 0}}}])),
     "spec.egress[0].protocols[0].udp.destinationPort.number", "between 1 and 65535"),
    (cnp(egress=egress(protocols=[{"tcp": {"destinationPort": {"number": 1}},
                                   "udp": {"destinationPort": {"number": 1}}}])),
     "spec.egress[0].protocols[0]", "exactly one of"),
    (cnp(egress=egress(to=[{"nodes": {}}], protocols=[{"destinationNamedPort": "web"}])),
     "spec.egress[0]", "cannot be set with namedPorts"),
    (cnp(egress=egress(name="x" * 101)), "spec.egress[0].name", "longer than 100"),
    (cnp(ingress=ingress() * 26), "spec.ingress", "at most 25"),
    (cnp(ingress=[{"action": "Deny", "from": [{"namespaces": {"matchExpressions": [
        {"operator": "Exists"}]}}]}]),
     "spec.ingress[0].from[0].namespaces.matchExpressions[0].key", "Required value"),
    (anp(ingress=ingress("Accept")), "spec.ingress[0].action",
     'supported values: "Allow", "Deny", "Pass"'),
    (anp(subject={"pods": {"podSelector": {}}}), "spec.subject.pods.namespaceSelector",
     "Required value"),
    (anp(egress=egress(to=[{"networks": ["10.0.0.0/8"]}], ports=[{"namedPort": "web"}])),
     "spec.egress[0]", "cannot be set with namedPorts"),
    (anp(egress=egress(ports=[])), "spec.egress[0].ports", "at least 1 item"),
    (anp(egress=egress(ports=[{"portNumber": {"protocol": "TCP"}}])),
     "spec.egress[0].ports[0].portNumber.port", "Required value"),
    (anp(ingress=ingress() * 101), "spec.ingress", "at most 100"),
    (banp(name="mine"), "metadata.name", 'metadata.name="default"'),
    (banp(ingress=ingress("Pass")), "spec.ingress[0].action",
     'supported values: "Allow", "Deny"'),
    (banp(priority=5), "spec.priority", "unknown field"),
    (banp(egress=egress(to=[{"domainNames": ["example.com"]}], action="Allow")),
     "spec.egress[0].to[0].domainNames", "unknown field \"domainNames\""),
]


@pytest.mark.parametrize(("doc", "path", "problem"), REJECTED,
                         ids=[f"{d['kind']} {p}: {m}" for d, p, m in REJECTED])
def test_what_the_crd_refuses_is_rejected_naming_the_field(doc: Doc, path: str,
                                                           problem: str) -> None:
    with pytest.raises(InvalidObject) as err:
        parse(doc)
    assert err.value.path == path and problem in str(err.value), str(err.value)


def test_a_cluster_network_policy_reads_into_the_tiered_model() -> None:
    policy = parse(cnp(tier="Baseline", priority=3,
                       subject={"pods": {"podSelector": {"matchLabels": {"app": "db"}}}},
                       ingress=[{"name": "web", "action": "Accept",
                                 "from": [{"pods": {"namespaceSelector": {},
                                                    "podSelector": {}}}],
                                 "protocols": [{"tcp": {"destinationPort": {"number": 5432}}},
                                               {"destinationNamedPort": "metrics"}]}],
                       egress=[{"action": "Pass", "to": [{"networks": ["10.1.2.3/8"]},
                                                         {"nodes": {}}],
                                "protocols": [{"udp": {"destinationPort": {
                                    "range": {"start": 53, "end": 54}}}}]}]))
    assert (policy.key, policy.tier, policy.priority) == ("ClusterNetworkPolicy/p",
                                                          Tier.BASELINE, 3)
    assert policy.subject == TierSelector(LabelSelector(), LabelSelector.of({"app": "db"}))
    rule = policy.ingress[0]
    assert rule.action is RuleAction.ALLOW and rule.name == "web"
    assert rule.ports == (TierPort(Protocol.TCP, 5432, 5432), TierPort(name="metrics"))
    assert policy.egress[0].peers == (TierPeer(networks=("10.0.0.0/8",)),
                                      TierPeer(nodes=LabelSelector()))
    assert policy.egress[0].ports == (TierPort(Protocol.UDP, 53, 54),)


def test_admin_and_baseline_admin_network_policies_read_into_the_same_model() -> None:
    a = parse(anp(egress=egress("Allow", ports=[{"portRange": {"start": 80, "end": 90}},
                                                {"namedPort": "dns"}])))
    assert a.tier is Tier.ADMIN and a.egress[0].action is RuleAction.ALLOW
    assert a.egress[0].ports == (TierPort(Protocol.TCP, 80, 90), TierPort(name="dns"))
    b = parse(banp(ingress=ingress()))
    assert (b.key, b.tier, b.shown_priority) == ("BaselineAdminNetworkPolicy/default",
                                                 Tier.BASELINE, "-")


WARNED = [
    (cnp(egress=egress(to=[{"networks": ["10.1.2.3/8"]}])), "host bits set", None),
    (cnp(egress=egress("Accept", to=[{"domainNames": ["*.example.com"]}])),
     "not enforced", None),
    (cnp(ingress=ingress(frm=[{"namespaces": {"matchExpressions": [
        {"key": "env", "operator": "Among", "values": ["x"]}]}}])),
     "unknown operator", "selects nothing"),
    (cnp(egress=egress(to=[{"networks": ["10.0.0.0/8"]}],
                       protocols=[{"destinationNamedPort": "web"}])),
     "matches only pod addresses", None),
    (anp(egress=egress(ports=[{"portNumber": {"protocol": "ICMP", "port": 1}}])),
     "matches nothing", None),
    (anp(egress=egress(ports=[{"portRange": {"start": 90, "end": 80}}])),
     "matches no port", None),
]


@pytest.mark.parametrize(("doc", "words", "more"), WARNED,
                         ids=[w for _, w, _ in WARNED])
def test_what_the_crd_accepts_but_cannot_be_enforced_is_a_warning(
        doc: Doc, words: str, more: str | None) -> None:
    warnings: list[ValidationWarning] = []
    parse(doc, warnings)
    text = " ".join(str(w) for w in warnings)
    assert words in text and (more is None or more in text), text


def test_a_selector_the_schema_accepts_but_no_one_can_evaluate_selects_nothing() -> None:
    policy = parse(cnp(subject={"namespaces": {"matchLabels": {"bad key!": "x"}}}))
    assert policy.subject.namespace_selector == NOTHING
    assert not NOTHING.matches({"membrane.invalid/selector": ""})


def test_the_audit_annotation_puts_one_policy_in_audit_mode() -> None:
    doc = cnp()
    doc["metadata"]["annotations"] = {AUDIT_ANNOTATION: "true"}
    assert parse(doc).audit and not parse(cnp()).audit
    [ns] = parse_document({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "a", "annotations": {AUDIT_ANNOTATION: "true"}}})
    assert getattr(ns, "audit")


def test_every_upstream_conformance_manifest_round_trips_through_the_serializer() -> None:
    from npa_conformance_data import MANIFESTS
    import yaml
    count = 0
    for text in MANIFESTS.values():
        for doc in yaml.safe_load_all(text.replace("{NS}", "ns-")):
            if doc and doc["kind"] != "NetworkPolicy":
                policy = parse(doc)
                assert parse(to_document(policy)) == policy
                count += 1
    assert count == 46   # the tier policies of the 40 manifests


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([0, 5, 10]), st.sampled_from([0, 5, 10]),
       st.sampled_from(["a", "b"]))
def test_same_priority_groups_name_every_policy_sharing_a_slot_in_evaluation_order(
        p1: int, p2: int, name: str) -> None:
    one = parse(cnp(priority=p1))
    other = copy.deepcopy(anp(priority=p2))
    other["metadata"]["name"] = name
    two = parse(other)
    groups = same_priority_groups([two, one])
    if p1 == p2:
        assert groups == [[one, two]]       # ClusterNetworkPolicy first, whatever the name
        assert "Membrane evaluates them in this order" in describe_same_priority(groups[0])
    else:
        assert groups == []


def test_same_priority_policies_of_disjoint_subjects_are_not_called_ambiguous() -> None:
    a, b = parse(cnp()), parse(anp())
    overlapping = {a.key: {"x/p1", "x/p2"}, b.key: {"x/p2"}}
    disjoint = {a.key: {"x/p1"}, b.key: {"y/p1"}}
    assert same_priority_groups([a, b], lambda p: overlapping[p.key]) == [[a, b]]
    assert same_priority_groups([a, b], lambda p: disjoint[p.key]) == []
