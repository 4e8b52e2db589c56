"""Semantics that live in how a manifest is written, read through the real loader:
policyTypes defaulting, empty vs missing `from`, `- {}`, a missing protocol, `ports: [{}]`.
"""

from __future__ import annotations

import textwrap

import pytest

from agent.k8s.loader import objects_from_sourced_documents, yaml_documents
from agent.k8s.objects import ClusterObjects
from policy_helpers import verdict

PODS = """\
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: default, labels: {app: a}}
spec: {containers: [{name: c, image: x}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: default, labels: {app: b}}
spec: {containers: [{name: c, image: x, ports: [{containerPort: 8080, name: web}]}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: other, labels: {app: c}}
spec: {containers: [{name: c, image: x}]}
status: {podIP: 10.0.1.1}
"""


def load(policy_spec: str) -> ClusterObjects:
    policy = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
              "metadata: {name: p, namespace: default}\nspec:\n"
              + textwrap.indent(textwrap.dedent(policy_spec), "  "))
    docs, err = yaml_documents(PODS + "---\n" + policy, "test.yaml")
    assert err is None
    objects, errors = objects_from_sourced_documents(docs)
    assert not errors, errors
    return objects


# (policy spec for pod b unless it says otherwise, [(src, dst, port, protocol, allowed)])
CASES = [
    pytest.param("""\
        podSelector: {matchLabels: {app: b}}
        """, [("default/a", "default/b", 80, "TCP", False),
              ("default/b", "default/a", 80, "TCP", True)],
        id="policyTypes defaults to Ingress when a policy has no rules"),
    pytest.param("""\
        podSelector: {matchLabels: {app: b}}
        egress:
        - to: [{podSelector: {matchLabels: {app: a}}}]
        """, [("default/a", "default/b", 80, "TCP", False),
              ("default/b", "default/a", 80, "TCP", True),
              ("default/b", "other/c", 80, "TCP", False)],
        id="policyTypes defaults to Ingress and Egress when egress rules exist"),
    pytest.param("""\
        podSelector: {matchLabels: {app: b}}
        policyTypes: [Egress]
        """, [("default/a", "default/b", 80, "TCP", True),
              ("default/b", "default/a", 80, "TCP", False)],
        id="explicit policyTypes Egress alone leaves ingress open"),
    pytest.param("""\
        podSelector: {matchLabels: {app: b}}
        ingress:
        - {}
        """, [("other/c", "default/b", 80, "TCP", True),
              ("default/a", "default/b", 5353, "UDP", True)],
        id="an ingress list with one empty rule allows everything"),
    pytest.param("""\
        podSelector: {matchLabels: {app: b}}
        ingress: []
        """, [("default/a", "default/b", 80, "TCP", False)],
        id="an empty ingress list allows nothing"),
    pytest.param("""\
        podSelector: {matchLabels: {app: b}}
        ingress:
        - ports: [{port: 8080}]
        """, [("other/c", "default/b", 8080, "TCP", True),
              ("other/c", "default/b", 8080, "UDP", False)],
        id="a missing from allows every peer and a missing protocol means TCP"),
    pytest.param("""\
        podSelector: {matchLabels: {app: b}}
        ingress:
        - from: []
          ports: [{port: 8080}]
        """, [("other/c", "default/b", 8080, "TCP", True)],
        id="an empty from list allows every peer like a missing one"),
    pytest.param("""\
        podSelector: {matchLabels: {app: b}}
        ingress:
        - ports: [{}]
        """, [("default/a", "default/b", 22, "TCP", True),
              ("default/a", "default/b", 53, "UDP", False)],
        id="ports with an empty entry allow any TCP port only"),
    pytest.param("""\
        podSelector: {matchLabels: {app: b}}
        ingress:
        - ports: [{port: web}]
        """, [("default/a", "default/b", 8080, "TCP", True),
              ("default/a", "default/b", 80, "TCP", False)],
        id="a named port in a manifest resolves on the pod's containerPort name"),
    pytest.param("""\
        podSelector: {}
        ingress:
        - from: [{namespaceSelector: {}}]
        """, [("other/c", "default/a", 80, "TCP", True)],
        id="namespaceSelector {} in a manifest matches every namespace"),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_manifest_semantics(spec: str, expected: list[tuple[str, str, int, str, bool]]) -> None:
    objects = load(spec)
    wrong = [e for e in expected if verdict(objects, e[0], e[1], e[2], e[3]) is not e[4]]
    assert not wrong


def test_an_empty_peer_object_is_rejected_not_read_as_every_pod() -> None:
    docs, _ = yaml_documents(PODS + "---\n" + textwrap.dedent("""\
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: p, namespace: default}
        spec:
          podSelector: {}
          ingress:
          - from: [{}]
        """), "test.yaml")
    objects, errors = objects_from_sourced_documents(docs)
    assert "must specify a peer" in str(errors[0])
    # Not read as every pod: the rejected policy fails closed for what it covers.
    assert objects.policies["default/p"].fail_closed
    assert not objects.policies["default/p"].ingress
    assert not verdict(objects, "other/c", "default/b")
