"""TieredPolicy -> its Network Policy API document, the inverse of the two front-ends:
for every policy p, parse_document(tier_policy_document(p)) == [p]. Used by
`agent.k8s.serialize.to_document` (the lab's store, `policy get`) and by tests that
build policies as values.

A ClusterNetworkPolicy is written as v1alpha2, an AdminNetworkPolicy and the
BaselineAdminNetworkPolicy as v1alpha1, each in its own vocabulary (Accept / Allow,
protocols / ports).
"""

from __future__ import annotations

from typing import Any

from agent.k8s.clusterpolicy import AUDIT_ANNOTATION
from agent.k8s.objects import (ANP_API_VERSION, BANP_KIND, CNP_API_VERSION, CNP_KIND,
                               LabelSelector, RuleAction, TieredPolicy, TierPeer, TierPort,
                               TierRule, TierSelector)

Document = dict[str, Any]


def tier_policy_document(policy: TieredPolicy) -> Document:
    v2 = policy.kind == CNP_KIND
    spec: Document = {}
    if v2:
        spec["tier"] = policy.tier.value
    if policy.kind != BANP_KIND:
        spec["priority"] = policy.priority
    spec["subject"] = _selection(policy.subject, v2)
    if policy.ingress:
        spec["ingress"] = [_rule(r, "from", v2) for r in policy.ingress]
    if policy.egress:
        spec["egress"] = [_rule(r, "to", v2) for r in policy.egress]
    metadata: Document = {"name": policy.name}
    if policy.resource_version:
        metadata["resourceVersion"] = policy.resource_version
    if policy.audit:
        metadata["annotations"] = {AUDIT_ANNOTATION: "true"}
    return {"apiVersion": CNP_API_VERSION if v2 else ANP_API_VERSION, "kind": policy.kind,
            "metadata": metadata, "spec": spec}


def _selector(selector: LabelSelector) -> Document:
    out: Document = {}
    if selector.match_labels:
        out["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        out["matchExpressions"] = [
            {"key": r.key, "operator": r.operator.value, **({"values": list(r.values)}
                                                             if r.values else {})}
            for r in selector.match_expressions]
    return out


def _selection(selection: TierSelector, v2: bool) -> Document:
    """`namespaces` when every pod is meant; `pods` otherwise (v1alpha2 may leave an
    all-namespaces selector out, v1alpha1 needs it)."""
    if selection.pod_selector.is_empty:
        return {"namespaces": _selector(selection.namespace_selector)}
    pods: Document = {"podSelector": _selector(selection.pod_selector)}
    if not v2 or not selection.namespace_selector.is_empty:
        pods = {"namespaceSelector": _selector(selection.namespace_selector), **pods}
    return {"pods": pods}


def _peer(peer: TierPeer, v2: bool) -> Document:
    if peer.pods is not None:
        return _selection(peer.pods, v2)
    if peer.nodes is not None:
        return {"nodes": _selector(peer.nodes)}
    if peer.networks:
        return {"networks": list(peer.networks)}
    return {"domainNames": list(peer.domain_names)}


def _port(port: TierPort, v2: bool) -> Document:
    if port.name is not None:
        return {"destinationNamedPort": port.name} if v2 else {"namedPort": port.name}
    if port.protocol is None:
        # Stored by the API server, matched by nothing: an inverted v1alpha1 range.
        return {"portRange": {"protocol": "TCP", "start": 2, "end": 1}}
    if v2:
        number: Document = ({"number": port.start} if port.start == port.end
                            else {"range": {"start": port.start, "end": port.end}})
        return {port.protocol.value.lower(): {"destinationPort": number}}
    if port.start == port.end:
        return {"portNumber": {"protocol": port.protocol.value, "port": port.start}}
    return {"portRange": {"protocol": port.protocol.value, "start": port.start,
                          "end": port.end}}


def _rule(rule: TierRule, peers_key: str, v2: bool) -> Document:
    out: Document = {}
    if rule.name:
        out["name"] = rule.name
    out["action"] = "Accept" if v2 and rule.action is RuleAction.ALLOW else rule.action.value
    out[peers_key] = [_peer(p, v2) for p in rule.peers]
    if rule.ports:
        out["protocols" if v2 else "ports"] = [_port(p, v2) for p in rule.ports]
    return out
