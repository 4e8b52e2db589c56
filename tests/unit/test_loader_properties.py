"""Malformed and random documents thrown at the reader: it never crashes, and every error
names the object and a field path (or, for a file, the file).

Inputs: random JSON-like trees, random objects of every kind, and valid documents mutated
at a random place (wrong types, random field names, out-of-range numbers, bad CIDRs, bad
selectors, deleted fields). Whatever parses must also survive the serialise round trip.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidObject, LoadError, MembraneError
from agent.k8s.loader import objects_from_documents, parse_document, read_documents
from agent.k8s.serialize import to_document

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

KINDS = ["NetworkPolicy", "Pod", "Namespace", "Service", "Node", "Deployment", "ReplicaSet",
         "StatefulSet", "DaemonSet", "Job", "ReplicationController", "List", "PodList",
         "NetworkPolicyList", "ConfigMap", "CiliumNetworkPolicy", "networkpolicy", "Pods"]
FIELD_NAMES = ["podSelector", "namespaceSelector", "ipBlock", "cidr", "except", "ingress",
               "egress", "from", "to", "ports", "port", "endPort", "protocol", "policyTypes",
               "matchLabels", "matchExpressions", "key", "operator", "values", "metadata",
               "name", "namespace", "labels", "spec", "status", "podIP", "containers",
               "containerPort", "replicas", "selector", "template", "items", "kind",
               "apiVersion", "nodeName", "hostNetwork", "addresses", "podCIDR"]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 80, 65535, 65536, 2**31, -(2**31)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "TCP", "UDP", "SCTP", "tcp", "In", "NotIn", "Exists", "DoesNotExist",
                     "Ingress", "Egress", "10.0.0.0/8", "10.0.0.1", "10.0.0.0/33", "::/0",
                     "fd00::/64", "1.2.3.4/32", "x/8", "http", "80", "a--b", "-a", "A" * 70,
                     "default", "kube-system", "app", "a/b/c", "example.com/app", "é"]),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12))

json_trees = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)


@st.composite
def random_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A document of a real kind whose contents are random."""
    doc: dict[Any, Any] = {"kind": draw(st.sampled_from(KINDS))}
    if draw(st.booleans()):
        doc["apiVersion"] = draw(st.sampled_from(
            ["v1", "apps/v1", "batch/v1", "networking.k8s.io/v1", "extensions/v1beta1", 3]))
    doc["metadata"] = draw(st.one_of(
        json_trees,
        st.fixed_dictionaries({"name": scalars}, optional={"namespace": scalars,
                                                           "labels": json_trees})))
    for key in draw(st.lists(st.sampled_from(["spec", "status", "items"]), max_size=3)):
        doc[key] = draw(json_trees)
    return doc


VALID_DOCUMENTS: list[dict[str, Any]] = [
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": "web", "namespace": "prod", "labels": {"a": "b"}},
     "spec": {
         "podSelector": {"matchLabels": {"app": "web"},
                         "matchExpressions": [{"key": "tier", "operator": "In",
                                               "values": ["a", "b"]}]},
         "policyTypes": ["Ingress", "Egress"],
         "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "fe"}}},
                               {"namespaceSelector": {"matchLabels": {"t": "m"}},
                                "podSelector": {}},
                               {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                      "ports": [{"protocol": "TCP", "port": 80},
                                {"port": "http"}, {"port": 8000, "endPort": 9000}]}],
         "egress": [{"to": [{"namespaceSelector": {"matchExpressions": [
             {"key": "env", "operator": "Exists"}]}}], "ports": [{"protocol": "UDP", "port": 53}]},
             {}],
     }},
    {"apiVersion": "v1", "kind": "Pod",
     "metadata": {"name": "web-1", "labels": {"app": "web"}},
     "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": [
         {"name": "c", "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}]}]},
     "status": {"podIP": "10.0.0.5"}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "backend"},
     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "backend"}},
              "template": {"metadata": {"labels": {"app": "backend"}},
                           "spec": {"containers": [{"ports": [{"containerPort": 8080}]}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
     "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": "http"}]}},
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
     "spec": {"podCIDR": "10.244.0.0/24"},
     "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}]}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod",
                                                           "labels": {"type": "x"}}},
]

Path_ = tuple[Any, ...]


def paths_in(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every place in a document: dict keys and list indexes, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(paths_in(child, prefix + (key,)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(paths_in(child, prefix + (index,)))
    return found


def container_at(doc: Any, path: Path_) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


MUTATION_VALUES = st.one_of(
    json_trees,
    st.sampled_from([
        "", "x", "10.0.0.0/33", "300.0.0.0/8", "10.0.0.1", "::1/200", "11.0.0.0/16",
        -1, 0, 65536, 10**9, 1.5, True, [], {}, [None], {"": ""}, "Web_", "a" * 300,
        {"matchLabels": {"a b": "c"}}, {"matchExpressions": [{"key": "a", "operator": "In"}]},
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        {"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]},
        {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]},
        {"port": 90, "endPort": 80}, {"port": "http", "endPort": 90}, {"endPort": 5},
    ]).map(copy.deepcopy),  # a later mutation must not change the shared constant
)


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document changed in one to three places."""
    doc: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(VALID_DOCUMENTS)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths_in(doc)))
        action = draw(st.sampled_from(["replace", "delete", "add-field"]))
        if not path:
            continue
        parent = container_at(doc, path)
        if action == "replace":
            parent[path[-1]] = draw(MUTATION_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(keys)] = draw(MUTATION_VALUES)
    return doc


def assert_names_object_and_path(error: MembraneError) -> None:
    if isinstance(error, InvalidObject):
        assert error.kind and error.name and error.path, error
        assert str(error).startswith(f"{error.kind.lower()} {error.name}: {error.path}: "), error
    else:
        assert isinstance(error, LoadError), error


def check_parse(doc: Any) -> None:
    """parse_document either gives objects that round trip, or a well-formed error."""
    try:
        objects = parse_document(doc, "prop.yaml#1")
    except MembraneError as error:
        assert_names_object_and_path(error)
        return
    for obj in objects:
        assert parse_document(to_document(obj)) == [obj]


@SETTINGS
@given(json_trees)
def test_random_trees_never_crash_the_parser(doc: Any) -> None:
    check_parse(doc)


@SETTINGS
@given(random_objects())
def test_random_objects_of_every_kind_never_crash_the_parser(doc: dict[str, Any]) -> None:
    check_parse(doc)


@SETTINGS
@given(mutated_documents())
def test_mutated_valid_documents_are_rejected_cleanly_or_round_trip(doc: dict[str, Any]) -> None:
    check_parse(doc)


@SETTINGS
@given(st.lists(st.one_of(mutated_documents(), random_objects(), json_trees), max_size=5))
def test_objects_from_documents_reports_every_bad_document_and_keeps_the_rest(
        docs: list[Any]) -> None:
    objects, errors = objects_from_documents(docs, source="store.json")
    for error in errors:
        assert_names_object_and_path(error)
    for pod in objects.pods.values():
        assert pod.namespace in objects.namespaces
    for policy in objects.policies.values():
        assert policy.namespace in objects.namespaces


YAML_FRAGMENTS = st.sampled_from([
    "kind: NetworkPolicy\n", "apiVersion: networking.k8s.io/v1\n", "metadata:\n  name: web\n",
    "spec:\n  podSelector: {}\n", "---\n", "  ingress:\n  - {}\n", "- a\n", "a: [\n", "\t",
    "{", "}", ": :", "&a [*a]\n", "*nope\n", "!!binary x\n", "? [a]\n: b\n", "a: 1\na: 2\n",
    "kind: List\nitems: [1, {kind: Pod}]\n", "%YAML 1.1\n", "\x00", "'\n", "key: \"\\x\"\n",
])


@SETTINGS
@given(st.lists(st.one_of(YAML_FRAGMENTS, st.text(max_size=30)), max_size=8),
       st.sampled_from([".yaml", ".json"]))
def test_random_file_contents_never_crash_the_reader(fragments: list[str], suffix: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        file = Path(directory) / f"manifest{suffix}"
        file.write_text("".join(fragments), encoding="utf-8", errors="surrogatepass")
        docs, errors = read_documents([file])
    for error in errors:
        assert str(file) in str(error) or isinstance(error, InvalidObject), error
        assert_names_object_and_path(error)
    assert all(isinstance(doc, dict) for doc, _ in docs)
