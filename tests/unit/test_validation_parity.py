"""Accept exactly what the API server accepts (issue 11, item 1).

Each case is a document whose fate upstream is known from kube-apiserver's validation
(named in the case): what it accepts must load (what Membrane still wants to say about
it comes back as a ValidationWarning beside the object), what it rejects must not. Every
case here was decided the other way before the audit.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from core.errors import InvalidObject
from agent.k8s.loader import load_paths, objects_from_documents, parse_document
from agent.k8s.objects import (
    ContainerPort,
    IPBlock,
    NetworkPolicy,
    Node,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyType,
    Protocol,
    Service,
    ServicePort,
)
from agent.k8s.validation.fields import ValidationWarning
from agent.policy.ports import named_on

Doc = dict[str, Any]


def policy(spec: Doc) -> Doc:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "web", "namespace": "prod"}, "spec": spec}


def ip_block(cidr: str, *excepts: str) -> Doc:
    block: Doc = {"cidr": cidr}
    if excepts:
        block["except"] = list(excepts)
    return policy({"podSelector": {}, "ingress": [{"from": [{"ipBlock": block}]}]})


def pod(spec: Doc | None = None, status: Doc | None = None, **meta: Any) -> Doc:
    doc: Doc = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "prod", **meta},
                "spec": spec or {"containers": [{"name": "c"}]}}
    if status is not None:
        doc["status"] = status
    return doc


def service(spec: Doc) -> Doc:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "prod"}, "spec": spec}


def node(spec: Doc | None = None, addresses: list[Doc] | None = None) -> Doc:
    doc: Doc = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                "spec": spec or {}}
    if addresses is not None:
        doc["status"] = {"addresses": addresses}
    return doc


def load(doc: Doc) -> tuple[Any, list[ValidationWarning]]:
    warnings: list[ValidationWarning] = []
    [obj] = parse_document(doc, "test.yaml#1", warnings)
    return obj, warnings


def only_warning(warnings: list[ValidationWarning]) -> ValidationWarning:
    assert len(warnings) == 1, [str(w) for w in warnings]
    return warnings[0]


def rejected(doc: Doc) -> InvalidObject:
    with pytest.raises(InvalidObject) as caught:
        parse_document(doc, "test.yaml#1", [])
    return caught.value


# --- NetworkPolicy ---------------------------------------------------------------------------

def test_a_repeated_policy_type_is_accepted_with_a_warning() -> None:
    # ValidateNetworkPolicySpec checks the count (<= 2) and each value, not repeats.
    obj, warnings = load(policy({"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]}))
    assert isinstance(obj, NetworkPolicy)
    assert obj.policy_types == frozenset({PolicyType.INGRESS})
    warning = only_warning(warnings)
    assert warning.path == "spec.policyTypes[1]" and "no effect" in warning.message
    assert str(warning).startswith("networkpolicy prod/web: spec.policyTypes[1]: ")


def test_a_repeated_egress_policy_type_still_enforces_egress() -> None:
    obj, _ = load(policy({"podSelector": {}, "policyTypes": ["Egress", "Egress"]}))
    assert obj.policy_types == frozenset({PolicyType.EGRESS})


@pytest.mark.parametrize("cidr, network, warned", [
    pytest.param("010.000.0.0/8", "10.0.0.0/8", "non-standard",
                 id="leading zeros in octets are decimal, as ParseCIDRSloppy reads them"),
    pytest.param("::ffff:10.0.0.0/104", "10.0.0.0/8", "non-standard",
                 id="an ipv4-mapped ipv6 cidr is the ipv4 one, as Go's net.IPNet makes it"),
    pytest.param("10.1.2.3/16", "10.1.0.0/16", "ambiguous",
                 id="host bits are cleared, with the warning GetWarningsForCIDR gives"),
])
def test_sloppy_cidrs_the_api_server_accepts_are_accepted(cidr: str, network: str,
                                                          warned: str) -> None:
    obj, warnings = load(ip_block(cidr))
    assert obj.ingress[0].peers == (PolicyPeer(ip_block=IPBlock(network)),)
    assert warned in only_warning(warnings).message
    assert only_warning(warnings).path == "spec.ingress[0].from[0].ipBlock.cidr"


def test_a_sloppy_except_is_compared_as_the_api_server_reads_it() -> None:
    obj, warnings = load(ip_block("10.0.0.0/8", "010.001.0.0/16"))
    assert obj.ingress[0].peers[0].ip_block == IPBlock("10.0.0.0/8", ("10.1.0.0/16",))
    assert len(warnings) == 1


@pytest.mark.parametrize("cidr", [
    pytest.param("10.0.0.0/255.0.0.0", id="a netmask is not a prefix length"),
    pytest.param("fe80::%eth0/64", id="a zone is not part of a cidr"),
    pytest.param("10.0.0.0/+8", id="a signed prefix length is not decimal digits"),
])
def test_cidrs_the_api_server_rejects_are_rejected(cidr: str) -> None:
    error = rejected(ip_block(cidr))
    assert error.path == "spec.ingress[0].from[0].ipBlock.cidr"
    assert "invalid CIDR" in error.problem


def test_a_canonical_cidr_gives_no_warning() -> None:
    _, warnings = load(ip_block("10.0.0.0/8", "10.1.0.0/16"))
    assert warnings == []


# --- Pod ---------------------------------------------------------------------------------------

def two_containers_named_http() -> Doc:
    return pod({"containers": [
        {"name": "a", "ports": [{"containerPort": 8080, "name": "http"}]},
        {"name": "b", "ports": [{"containerPort": 9090, "name": "http"}]}]})


def test_one_port_name_in_two_containers_is_accepted() -> None:
    # validateContainerPorts checks names per container, not across the pod.
    obj, warnings = load(two_containers_named_http())
    assert isinstance(obj, Pod)
    assert obj.ports == (ContainerPort(8080, name="http"), ContainerPort(9090, name="http"))
    warning = only_warning(warnings)
    assert warning.path == "spec.containers[1].ports[0].name"
    assert "spec.containers[0].ports[0]" in warning.message


def test_a_shared_port_name_resolves_to_the_first_container_as_the_warning_says() -> None:
    obj, _ = load(two_containers_named_http())
    assert named_on(PolicyPort(port="http"), [obj]) == {(6, 8080, 8080)}


def test_an_empty_container_port_protocol_is_defaulted_to_tcp() -> None:
    # SetDefaults_ContainerPort: Protocol "" -> TCP (a plain string, not a pointer).
    obj, warnings = load(pod({"containers": [
        {"name": "c", "ports": [{"containerPort": 80, "protocol": ""}]}]}))
    assert obj.ports == (ContainerPort(80, Protocol.TCP),) and warnings == []


def test_a_repeated_port_definition_is_warned_about_as_upstream_does() -> None:
    _, warnings = load(pod({"containers": [
        {"name": "a", "ports": [{"containerPort": 80}]},
        {"name": "b", "ports": [{"containerPort": 80}]}]}))
    assert "duplicate port definition" in only_warning(warnings).message


def test_an_invalid_host_port_is_rejected() -> None:
    error = rejected(pod({"containers": [
        {"name": "c", "ports": [{"containerPort": 80, "hostPort": 70000}]}]}))
    assert error.path == "spec.containers[0].ports[0].hostPort"


def test_an_ipv6_only_pod_has_its_ipv6_address_and_no_ipv4_one() -> None:
    obj, warnings = load(pod(status={"podIP": "fd00::5", "podIPs": [{"ip": "fd00::5"}]}))
    assert (obj.ip, obj.ipv6, warnings) == (None, "fd00::5", [])


def test_a_dual_stack_pod_listing_ipv6_first_gets_both_addresses() -> None:
    obj, warnings = load(pod(status={"podIP": "fd00::5",
                                     "podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}]}))
    assert (obj.ip, obj.ipv6, warnings) == ("10.0.0.5", "fd00::5", [])


def test_a_second_address_of_one_family_is_ignored_with_a_warning() -> None:
    # validatePodIPs refuses it; a status that has one anyway keeps the first.
    obj, warnings = load(pod(status={"podIP": "10.0.0.5",
                                     "podIPs": [{"ip": "10.0.0.5"}, {"ip": "10.0.0.6"}]}))
    assert obj.ip == "10.0.0.5"
    warning = only_warning(warnings)
    assert warning.path == "status.podIPs[1].ip" and "second IPv4" in warning.message


def test_an_ipv6_pod_address_is_read_in_its_canonical_form() -> None:
    obj, warnings = load(pod(status={"podIP": "fd00:0:0::05"}))
    assert obj.ipv6 == "fd00::5" and "canonical" in only_warning(warnings).message


def test_a_finished_pod_keeps_neither_address() -> None:
    obj, _ = load(pod(status={"phase": "Succeeded", "podIP": "10.0.0.5",
                              "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}))
    assert (obj.ip, obj.ipv6) == (None, None)


def test_a_pod_ip_with_leading_zeros_is_read_as_decimal() -> None:
    obj, warnings = load(pod(status={"podIP": "010.000.000.005"}))
    assert obj.ip == "10.0.0.5"
    assert "non-standard" in only_warning(warnings).message


def test_a_null_label_value_is_the_empty_string_as_go_decodes_it() -> None:
    obj, warnings = load(pod(labels={"app": None}))
    assert obj.labels == {"app": ""}
    assert only_warning(warnings).path == "metadata.labels[app]"


@pytest.mark.parametrize("annotations, path", [
    pytest.param({"bad key!": "x"}, "metadata.annotations[bad key!]",
                 id="an annotation key that is not a qualified name is rejected"),
    pytest.param({"a": "x" * (256 * 1024)}, "metadata.annotations",
                 id="annotations over 256 KiB are rejected"),
])
def test_invalid_annotations_are_rejected(annotations: Doc, path: str) -> None:
    # ValidateAnnotations (ValidateObjectMeta), for every kind.
    assert rejected(pod(annotations=annotations)).path == path


def test_annotation_keys_are_checked_lowercased_as_upstream_does() -> None:
    obj, _ = load(pod(annotations={"Example.COM/Owner": "team"}))
    assert isinstance(obj, Pod)


# --- Service -------------------------------------------------------------------------------------

def test_an_empty_service_protocol_and_target_port_are_defaulted() -> None:
    # SetDefaults_Service: Protocol "" -> TCP, TargetPort "" or 0 -> the port.
    obj, _ = load(service({"ports": [{"port": 80, "protocol": "", "targetPort": ""}]}))
    assert isinstance(obj, Service)
    assert obj.ports == (ServicePort(80, 80, Protocol.TCP),)


@pytest.mark.parametrize("spec, path, problem", [
    pytest.param({"ports": [{"name": "a", "port": 80}, {"port": 81}]}, "spec.ports[1].name",
                 "Required value", id="with several ports every port needs a name"),
    pytest.param({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]},
                 "spec.ports[1].name", "Duplicate value", id="port names are unique"),
    pytest.param({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]},
                 "spec.ports[1]", "Duplicate value", id="port and protocol pairs are unique"),
    pytest.param({"selector": {"app": "web"}}, "spec.ports", "Required value",
                 id="a service that is not headless needs ports"),
])
def test_services_the_api_server_rejects_are_rejected(spec: Doc, path: str,
                                                      problem: str) -> None:
    error = rejected(service(spec))
    assert error.path == path and problem in error.problem


@pytest.mark.parametrize("spec", [
    pytest.param({"clusterIP": "None"}, id="a headless service"),
    pytest.param({"clusterIPs": ["None"]}, id="a headless service by clusterIPs"),
    pytest.param({"type": "ExternalName", "externalName": "example.com"},
                 id="an external name service"),
    pytest.param({"ports": [{"name": "dns-udp", "port": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]},
                 id="one port number for two protocols"),
])
def test_services_the_api_server_accepts_load(spec: Doc) -> None:
    obj, _ = load(service(spec))
    assert isinstance(obj, Service)


# --- Node ------------------------------------------------------------------------------------------

def test_a_node_with_an_invalid_status_address_is_accepted() -> None:
    # ValidateNode validates the spec only: "All status fields are optional".
    obj, warnings = load(node(addresses=[{"type": "InternalIP", "address": "not-an-ip"},
                                         {"type": "InternalIP", "address": "192.168.0.7"}]))
    assert isinstance(obj, Node) and obj.ip == "192.168.0.7"
    assert only_warning(warnings).path == "status.addresses[0].address"


def test_a_node_pod_cidr_is_read_as_the_api_server_reads_it() -> None:
    obj, warnings = load(node(spec={"podCIDR": "010.244.001.000/24"}))
    assert obj.pod_cidr == "10.244.1.0/24" and len(warnings) == 1


# --- the warnings channel -------------------------------------------------------------------------

def test_objects_from_documents_returns_warnings_beside_the_objects() -> None:
    warnings: list[ValidationWarning] = []
    objects, errors = objects_from_documents(
        [policy({"podSelector": {}, "policyTypes": ["Egress", "Egress"]})], "store.json",
        warnings)
    assert errors == [] and list(objects.policies) == ["prod/web"]
    assert [w.source for w in warnings] == ["store.json#1"]


def test_load_paths_returns_warnings_beside_the_objects(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: web}\nspec: {podSelector: {}, policyTypes: [Ingress, Ingress]}\n")
    warnings: list[ValidationWarning] = []
    objects, errors = load_paths([tmp_path], warnings)
    assert errors == [] and list(objects.policies) == ["default/web"]
    assert len(warnings) == 1 and warnings[0].source.endswith("p.yaml#1")


def test_without_a_list_warnings_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.k8s.loader"):
        parse_document(policy({"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]}))
    assert "spec.policyTypes[1]" in caplog.text
