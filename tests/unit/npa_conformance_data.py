"""The Network Policy API conformance suite's cases, as data: policies and steps.

Transcribed from kubernetes-sigs/network-policy-api (Apache-2.0): the manifests of
conformance/base/{admin_tier,baseline_tier,api_integration} at main (ClusterNetworkPolicy,
policy.networking.k8s.io/v1alpha2) and of conformance/base/{admin_network_policy,
baseline_admin_network_policy,api_integration} at v0.1.7 (AdminNetworkPolicy and
BaselineAdminNetworkPolicy, v1alpha1), comments left out; and the steps of every
`t.Run` of conformance/tests/*.go at both versions, in order (a case's subtests share
one cluster: a mutation stays for the subtests after it, as upstream's do):

    ("poke", client, protocol, server, port, connects)   kubernetes.PokeServer
    ("swap", policy, direction, i, j)                    two rules exchanged
    ("action", policy, direction, i, action)             a rule's action changed
    ("priority", policy, priority)                       spec.priority changed
    ("named_port", policy, direction, i, name)           a rule's ports replaced by a
                                                         named port
    ("prepend_egress_networks", policy, name, [pods])    an Accept/Allow rule to those
                                                         pods' addresses (/32) first
    ("namespace_labels", namespace, labels)              a namespace's labels replaced
    ("delete", "NetworkPolicy", "namespace/name")

Namespaces are written without upstream's "network-policy-conformance-" prefix ({NS}
in the manifests). The host-network ports upstream picks at run time
(`HostNetworkPorts`) are fixed here at the numbers the v0.1.7 manifests used: 36363,
36364 (TCP), 34345, 34347 (UDP), 34346, 34348 (UDP), 9003, 9005 (SCTP).
tests/unit/test_npa_conformance_model.py replays them against the policy engine;
tests/lab/test_npa_conformance_e2e.py a subset with real packets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Step = tuple[Any, ...]


@dataclass(frozen=True)
class Case:
    name: str                                   # upstream's ShortName
    version: str                                # v1alpha2 (main) or v1alpha1 (v0.1.7)
    manifest: str                               # a MANIFESTS key
    subtests: list[tuple[str, list[Step]]]      # (t.Run title, steps)


MANIFESTS: dict[str, str] = {
    "admin_network_policy/experimental-egress-selector-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: node-and-cidr-as-peers-example}
spec:
  priority: 75
  subject:
    pods:
      namespaceSelector:
        matchLabels: {conformance-house: gryffindor}
      podSelector:
        matchLabels: {conformance-house: gryffindor}
  egress:
  - name: allow-egress-to-36363-on-nodes
    action: Allow
    to:
    - nodes:
        matchLabels: {kubernetes.io/os: linux}
    ports:
    - portNumber: {protocol: TCP, port: 36363}
  - name: pass-egress-to-5353-on-nodes
    action: Pass
    to:
    - nodes:
        matchLabels: {kubernetes.io/os: linux}
    ports:
    - portNumber: {protocol: UDP, port: 34345}
  - name: deny-egress-to-slytherin-and-nodes-and-internet
    action: Deny
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
    - nodes:
        matchLabels: {kubernetes.io/os: linux}
    - networks: [0.0.0.0/0, '::/0']
""",
    "admin_network_policy/standard-egress-inline-cidr-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: inline-cidr-as-peers-example}
spec:
  priority: 85
  subject:
    pods:
      namespaceSelector:
        matchLabels: {conformance-house: gryffindor}
      podSelector:
        matchLabels: {conformance-house: gryffindor}
  egress:
  - name: allow-egress-to-slytherin
    action: Allow
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
  - name: deny-egress-to-internet
    action: Deny
    to:
    - networks: [0.0.0.0/0, '::/0']
""",
    "admin_network_policy/standard-egress-sctp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: egress-sctp}
spec:
  priority: 8
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  egress:
  - name: allow-to-gryffindor-everything
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-to-gryffindor-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: pass-to-gryffindor-everything
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-to-slytherin-at-port-9003
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: SCTP, port: 9003}
  - name: pass-to-slytherin-at-port-9003
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: SCTP, port: 9003}
  - name: allow-to-hufflepuff-at-port-9003
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: SCTP, port: 9003}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "admin_network_policy/standard-egress-tcp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: egress-tcp}
spec:
  priority: 6
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-to-ravenclaw-everything
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-port-80
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
  - name: pass-to-slytherin-at-port-80
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
  - name: allow-to-hufflepuff-at-port-8080
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: TCP, port: 8080}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "admin_network_policy/standard-egress-udp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: egress-udp}
spec:
  priority: 7
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-to-ravenclaw-everything
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-port-5353
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: UDP, port: 5353}
  - name: pass-to-slytherin-at-port-5353
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: UDP, port: 5353}
  - name: allow-to-gryffindor-at-port-53
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
    ports:
    - portNumber: {protocol: UDP, port: 53}
  - name: deny-to-gryffindor-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
""",
    "admin_network_policy/standard-gress-rules-combined": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: gress-rules}
spec:
  priority: 15
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-to-ravenclaw-everything
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-ports-80-53-9003
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
    - portNumber: {protocol: UDP, port: 53}
    - portNumber: {protocol: SCTP, port: 9003}
  - name: pass-to-slytherin-at-port-80-53-9003
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
    - portNumber: {protocol: UDP, port: 53}
    - portNumber: {protocol: SCTP, port: 9003}
  - name: allow-to-hufflepuff-at-ports-8080-5353-9003
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: TCP, port: 8080}
    - portNumber: {protocol: UDP, port: 5353}
    - portNumber: {protocol: SCTP, port: 9003}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-from-ravenclaw-everything
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-80-53-9003
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
    - portNumber: {protocol: UDP, port: 53}
    - portNumber: {protocol: SCTP, port: 9003}
  - name: pass-from-slytherin-at-port-80-53-9003
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
    - portNumber: {protocol: UDP, port: 53}
    - portNumber: {protocol: SCTP, port: 9003}
  - name: allow-from-hufflepuff-at-port-80-5353-9003
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: TCP, port: 80}
    - portNumber: {protocol: UDP, port: 5353}
    - portNumber: {protocol: SCTP, port: 9003}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "admin_network_policy/standard-ingress-sctp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: ingress-sctp}
spec:
  priority: 5
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  ingress:
  - name: allow-from-gryffindor-everything
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-from-gryffindor-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: pass-from-gryffindor-everything
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-from-slytherin-at-port-9003
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: SCTP, port: 9003}
  - name: pass-from-slytherin-at-port-9003
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: SCTP, port: 9003}
  - name: allow-from-hufflepuff-at-port-9003
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: SCTP, port: 9003}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "admin_network_policy/standard-ingress-tcp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: ingress-tcp}
spec:
  priority: 3
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-from-ravenclaw-everything
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-80
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
  - name: pass-from-slytherin-at-port-80
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
  - name: allow-from-hufflepuff-at-port-80
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: TCP, port: 80}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "admin_network_policy/standard-ingress-udp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: ingress-udp}
spec:
  priority: 4
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-from-ravenclaw-everything
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-5353
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: UDP, port: 5353}
  - name: pass-from-slytherin-at-port-5353
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: UDP, port: 5353}
  - name: allow-from-gryffindor-at-port-53
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
    ports:
    - portNumber: {protocol: UDP, port: 53}
  - name: deny-from-gryffindor-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
""",
    "admin_network_policy/standard-priority-field": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: priority-50-example}
spec:
  priority: 50
  subject:
    pods:
      namespaceSelector:
        matchLabels: {conformance-house: gryffindor}
      podSelector:
        matchLabels: {conformance-house: gryffindor}
  ingress:
  - name: deny-all-ingress-from-slytherin
    action: Deny
    from:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
  egress:
  - name: deny-all-egress-to-slytherin
    action: Deny
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: old-priority-60-new-priority-40-example}
spec:
  priority: 60
  subject:
    pods:
      namespaceSelector:
        matchLabels: {conformance-house: gryffindor}
      podSelector:
        matchLabels: {conformance-house: gryffindor}
  ingress:
  - name: pass-all-ingress-from-slytherin
    action: Pass
    from:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
  egress:
  - name: pass-all-egress-to-slytherin
    action: Pass
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    pods:
      namespaceSelector:
        matchLabels: {conformance-house: gryffindor}
      podSelector:
        matchLabels: {conformance-house: gryffindor}
  ingress:
  - name: allow-all-ingress-from-slytherin
    action: Allow
    from:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
  egress:
  - name: allow-all-egress-to-slytherin
    action: Allow
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
""",
    "admin_tier/experimental-egress-selector-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: node-and-cidr-as-peers-example}
spec:
  tier: Admin
  priority: 75
  subject:
    pods:
      namespaceSelector:
        matchLabels: {conformance-house: gryffindor}
      podSelector:
        matchLabels: {conformance-house: gryffindor}
  egress:
  - name: allow-egress-to-36363-on-nodes
    action: Accept
    to:
    - nodes:
        matchLabels: {kubernetes.io/os: linux}
    protocols:
    - tcp:
        destinationPort: {number: 36363}
  - name: pass-egress-to-34345-on-nodes
    action: Pass
    to:
    - nodes:
        matchLabels: {kubernetes.io/os: linux}
    protocols:
    - udp:
        destinationPort: {number: 34345}
  - name: deny-egress-to-slytherin-and-nodes-and-internet
    action: Deny
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
    - nodes:
        matchLabels: {kubernetes.io/os: linux}
    - networks: [0.0.0.0/0, '::/0']
""",
    "admin_tier/standard-egress-inline-cidr-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: inline-cidr-as-peers-example}
spec:
  tier: Admin
  priority: 85
  subject:
    pods:
      namespaceSelector:
        matchLabels: {conformance-house: gryffindor}
      podSelector:
        matchLabels: {conformance-house: gryffindor}
  egress:
  - name: allow-egress-to-slytherin
    action: Accept
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
  - name: deny-egress-to-internet
    action: Deny
    to:
    - networks: [0.0.0.0/0, '::/0']
""",
    "admin_tier/standard-egress-sctp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: egress-sctp}
spec:
  tier: Admin
  priority: 8
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  egress:
  - name: allow-to-gryffindor-everything
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-to-gryffindor-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: pass-to-gryffindor-everything
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-to-slytherin-at-port-9003
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - sctp:
        destinationPort: {number: 9003}
  - name: pass-to-slytherin-at-port-9003
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - sctp:
        destinationPort: {number: 9003}
  - name: allow-to-hufflepuff-at-port-9003
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - sctp:
        destinationPort: {number: 9003}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "admin_tier/standard-egress-tcp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: egress-tcp}
spec:
  tier: Admin
  priority: 6
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-to-ravenclaw-everything
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-port-80
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
  - name: pass-to-slytherin-at-port-80
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
  - name: allow-to-hufflepuff-at-port-8080
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - tcp:
        destinationPort: {number: 8080}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "admin_tier/standard-egress-udp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: egress-udp}
spec:
  tier: Admin
  priority: 7
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-to-ravenclaw-everything
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-port-5353
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - udp:
        destinationPort: {number: 5353}
  - name: pass-to-slytherin-at-port-5353
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - udp:
        destinationPort: {number: 5353}
  - name: allow-to-gryffindor-at-port-53
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
    protocols:
    - udp:
        destinationPort: {number: 53}
  - name: deny-to-gryffindor-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
""",
    "admin_tier/standard-gress-rules-combined": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: gress-rules}
spec:
  tier: Admin
  priority: 15
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-to-ravenclaw-everything
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-ports-80-53-9003
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
    - udp:
        destinationPort: {number: 53}
    - sctp:
        destinationPort: {number: 9003}
  - name: pass-to-slytherin-at-port-80-53-9003
    action: Pass
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
    - udp:
        destinationPort: {number: 53}
    - sctp:
        destinationPort: {number: 9003}
  - name: allow-to-hufflepuff-at-ports-8080-5353-9003
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - tcp:
        destinationPort: {number: 8080}
    - udp:
        destinationPort: {number: 5353}
    - sctp:
        destinationPort: {number: 9003}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-from-ravenclaw-everything
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-80-53-9003
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
    - udp:
        destinationPort: {number: 53}
    - sctp:
        destinationPort: {number: 9003}
  - name: pass-from-slytherin-at-port-80-53-9003
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
    - udp:
        destinationPort: {number: 53}
    - sctp:
        destinationPort: {number: 9003}
  - name: allow-from-hufflepuff-at-port-80-5353-9003
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - tcp:
        destinationPort: {number: 80}
    - udp:
        destinationPort: {number: 5353}
    - sctp:
        destinationPort: {number: 9003}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "admin_tier/standard-ingress-sctp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: ingress-sctp}
spec:
  tier: Admin
  priority: 5
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  ingress:
  - name: allow-from-gryffindor-everything
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-from-gryffindor-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: pass-from-gryffindor-everything
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-from-slytherin-at-port-9003
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - sctp:
        destinationPort: {number: 9003}
  - name: pass-from-slytherin-at-port-9003
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - sctp:
        destinationPort: {number: 9003}
  - name: allow-from-hufflepuff-at-port-9003
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - sctp:
        destinationPort: {number: 9003}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "admin_tier/standard-ingress-tcp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: ingress-tcp}
spec:
  tier: Admin
  priority: 3
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-from-ravenclaw-everything
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-80
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
  - name: pass-from-slytherin-at-port-80
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
  - name: allow-from-hufflepuff-at-port-80
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - tcp:
        destinationPort: {number: 80}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "admin_tier/standard-ingress-udp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: ingress-udp}
spec:
  tier: Admin
  priority: 4
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: pass-from-ravenclaw-everything
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-5353
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - udp:
        destinationPort: {number: 5353}
  - name: pass-from-slytherin-at-port-5353
    action: Pass
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - udp:
        destinationPort: {number: 5353}
  - name: allow-from-gryffindor-at-port-53
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
    protocols:
    - udp:
        destinationPort: {number: 53}
  - name: deny-from-gryffindor-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
""",
    "admin_tier/standard-priority-field": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: priority-50-example}
spec:
  tier: Admin
  priority: 50
  subject:
    pods:
      namespaceSelector:
        matchLabels: {conformance-house: gryffindor}
      podSelector:
        matchLabels: {conformance-house: gryffindor}
  ingress:
  - name: deny-all-ingress-from-slytherin
    action: Deny
    from:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
  egress:
  - name: deny-all-egress-to-slytherin
    action: Deny
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: old-priority-60-new-priority-40-example}
spec:
  tier: Admin
  priority: 60
  subject:
    pods:
      namespaceSelector:
        matchLabels: {conformance-house: gryffindor}
      podSelector:
        matchLabels: {conformance-house: gryffindor}
  ingress:
  - name: pass-all-ingress-from-slytherin
    action: Pass
    from:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
  egress:
  - name: pass-all-egress-to-slytherin
    action: Pass
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    pods:
      namespaceSelector:
        matchLabels: {conformance-house: gryffindor}
      podSelector:
        matchLabels: {conformance-house: gryffindor}
  ingress:
  - name: allow-all-ingress-from-slytherin
    action: Accept
    from:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
  egress:
  - name: allow-all-egress-to-slytherin
    action: Accept
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
""",
    "api_integration/standard-anp-np-banp": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: pass-example}
spec:
  tier: Admin
  priority: 10
  subject:
    namespaces:
      matchLabels: {conformance-house: gryffindor}
  ingress:
  - name: deny-all-ingress-from-slytherin
    action: Deny
    from:
    - namespaces:
        matchLabels: {conformance-house: slytherin}
  egress:
  - name: deny-all-egress-to-slytherin
    action: Deny
    to:
    - namespaces:
        matchLabels: {conformance-house: slytherin}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-gress-from-to-slytherin-to-gryffindor, namespace: {NS}gryffindor}
spec:
  podSelector: null
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {conformance-house: slytherin}
  egress:
  - to:
    - namespaceSelector:
        matchLabels: {conformance-house: slytherin}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces:
      matchLabels: {conformance-house: gryffindor}
  ingress:
  - name: deny-all-ingress-from-slytherin
    action: Deny
    from:
    - namespaces:
        matchLabels: {conformance-house: slytherin}
  egress:
  - name: deny-all-egress-to-slytherin
    action: Deny
    to:
    - namespaces:
        matchLabels: {conformance-house: slytherin}
""",
    "baseline_admin_network_policy/experimental-egress-selector-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-egress-to-36363-on-nodes
    action: Allow
    to:
    - nodes:
        matchLabels: {kubernetes.io/os: linux}
    ports:
    - portRange: {protocol: TCP, start: 36363, end: 36364}
  - name: deny-egress-to-nodes-and-internet
    action: Deny
    to:
    - nodes:
        matchLabels: {kubernetes.io/os: linux}
    - networks: [0.0.0.0/0, '::/0']
""",
    "baseline_admin_network_policy/standard-egress-inline-cidr-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-egress-to-slytherin
    action: Allow
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
  - name: deny-egress-to-internet
    action: Deny
    to:
    - networks: [0.0.0.0/0, '::/0']
""",
    "baseline_admin_network_policy/standard-egress-sctp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  egress:
  - name: allow-to-gryffindor-everything
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-to-gryffindor-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-to-slytherin-at-port-9003
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: SCTP, port: 9003}
  - name: allow-to-hufflepuff-at-port-9003
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: SCTP, port: 9003}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "baseline_admin_network_policy/standard-egress-tcp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-port-80
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
  - name: allow-to-hufflepuff-at-port-8080
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: TCP, port: 8080}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "baseline_admin_network_policy/standard-egress-udp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-port-5353
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: UDP, port: 5353}
  - name: allow-to-gryffindor-at-port-53
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
    ports:
    - portNumber: {protocol: UDP, port: 53}
  - name: deny-to-gryffindor-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
""",
    "baseline_admin_network_policy/standard-gress-rules-combined": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-ports-80-53-9003
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
    - portNumber: {protocol: UDP, port: 53}
    - portNumber: {protocol: SCTP, port: 9003}
  - name: allow-to-hufflepuff-at-ports-8080-5353
    action: Allow
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: TCP, port: 8080}
    - portNumber: {protocol: UDP, port: 5353}
    - portNumber: {protocol: SCTP, port: 9003}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-80-53-9003
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
    - portNumber: {protocol: UDP, port: 53}
    - portNumber: {protocol: SCTP, port: 9003}
  - name: allow-from-hufflepuff-at-port-80-5353-9003
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: TCP, port: 80}
    - portNumber: {protocol: UDP, port: 5353}
    - portNumber: {protocol: SCTP, port: 9003}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "baseline_admin_network_policy/standard-ingress-sctp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  ingress:
  - name: allow-from-gryffindor-everything
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-from-gryffindor-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-from-slytherin-at-port-9003
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: SCTP, port: 9003}
  - name: allow-from-hufflepuff-at-port-9003
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: SCTP, port: 9003}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "baseline_admin_network_policy/standard-ingress-tcp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-80
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: TCP, port: 80}
  - name: allow-from-hufflepuff-at-port-80
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    ports:
    - portNumber: {protocol: TCP, port: 80}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "baseline_admin_network_policy/standard-ingress-udp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-5353
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    ports:
    - portNumber: {protocol: UDP, port: 5353}
  - name: allow-from-gryffindor-at-port-53
    action: Allow
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
    ports:
    - portNumber: {protocol: UDP, port: 53}
  - name: deny-from-gryffindor-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
""",
    "baseline_tier/experimental-egress-selector-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-egress-to-36363-on-nodes
    action: Accept
    to:
    - nodes:
        matchLabels: {kubernetes.io/os: linux}
    protocols:
    - tcp:
        destinationPort:
          range: {start: 36363, end: 36364}
  - name: deny-egress-to-nodes-and-internet
    action: Deny
    to:
    - nodes:
        matchLabels: {kubernetes.io/os: linux}
    - networks: [0.0.0.0/0, '::/0']
""",
    "baseline_tier/standard-egress-inline-cidr-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-egress-to-slytherin
    action: Accept
    to:
    - pods:
        namespaceSelector:
          matchLabels: {conformance-house: slytherin}
        podSelector:
          matchLabels: {conformance-house: slytherin}
  - name: deny-egress-to-internet
    action: Deny
    to:
    - networks: [0.0.0.0/0, '::/0']
""",
    "baseline_tier/standard-egress-sctp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  egress:
  - name: allow-to-gryffindor-everything
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-to-gryffindor-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-to-slytherin-at-port-9003
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - sctp:
        destinationPort: {number: 9003}
  - name: allow-to-hufflepuff-at-port-9003
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - sctp:
        destinationPort: {number: 9003}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "baseline_tier/standard-egress-tcp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-port-80
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
  - name: allow-to-hufflepuff-at-port-8080
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - tcp:
        destinationPort: {number: 8080}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "baseline_tier/standard-egress-udp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-port-5353
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - udp:
        destinationPort: {number: 5353}
  - name: allow-to-gryffindor-at-port-53
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
    protocols:
    - udp:
        destinationPort: {number: 53}
  - name: deny-to-gryffindor-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
""",
    "baseline_tier/standard-gress-rules-combined": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  egress:
  - name: allow-to-ravenclaw-everything
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-ravenclaw-everything
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-to-slytherin-at-ports-80-53-9003
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
    - udp:
        destinationPort: {number: 53}
    - sctp:
        destinationPort: {number: 9003}
  - name: allow-to-hufflepuff-at-ports-8080-5353
    action: Accept
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - tcp:
        destinationPort: {number: 8080}
    - udp:
        destinationPort: {number: 5353}
    - sctp:
        destinationPort: {number: 9003}
  - name: deny-to-hufflepuff-everything-else
    action: Deny
    to:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-80-53-9003
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
    - udp:
        destinationPort: {number: 53}
    - sctp:
        destinationPort: {number: 9003}
  - name: allow-from-hufflepuff-at-port-80-5353-9003
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - tcp:
        destinationPort: {number: 80}
    - udp:
        destinationPort: {number: 5353}
    - sctp:
        destinationPort: {number: 9003}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "baseline_tier/standard-ingress-sctp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  ingress:
  - name: allow-from-gryffindor-everything
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-from-gryffindor-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  - name: deny-from-slytherin-at-port-9003
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - sctp:
        destinationPort: {number: 9003}
  - name: allow-from-hufflepuff-at-port-9003
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - sctp:
        destinationPort: {number: 9003}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "baseline_tier/standard-ingress-tcp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-80
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - tcp:
        destinationPort: {number: 80}
  - name: allow-from-hufflepuff-at-port-80
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
    protocols:
    - tcp:
        destinationPort: {number: 80}
  - name: deny-from-hufflepuff-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
""",
    "baseline_tier/standard-ingress-udp-rules": """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces:
      matchLabels: {kubernetes.io/metadata.name: {NS}hufflepuff}
  ingress:
  - name: allow-from-ravenclaw-everything
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-ravenclaw-everything
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}ravenclaw}
  - name: deny-from-slytherin-at-port-5353
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}slytherin}
    protocols:
    - udp:
        destinationPort: {number: 5353}
  - name: allow-from-gryffindor-at-port-53
    action: Accept
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
    protocols:
    - udp:
        destinationPort: {number: 53}
  - name: deny-from-gryffindor-everything-else
    action: Deny
    from:
    - namespaces:
        matchLabels: {kubernetes.io/metadata.name: {NS}gryffindor}
""",
    "v1alpha1/api_integration/standard-anp-np-banp": """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: pass-example}
spec:
  priority: 10
  subject:
    namespaces:
      matchLabels: {conformance-house: gryffindor}
  ingress:
  - name: deny-all-ingress-from-slytherin
    action: Deny
    from:
    - namespaces:
        matchLabels: {conformance-house: slytherin}
  egress:
  - name: deny-all-egress-to-slytherin
    action: Deny
    to:
    - namespaces:
        matchLabels: {conformance-house: slytherin}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-gress-from-to-slytherin-to-gryffindor, namespace: {NS}gryffindor}
spec:
  podSelector: null
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {conformance-house: slytherin}
  egress:
  - to:
    - namespaceSelector:
        matchLabels: {conformance-house: slytherin}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject:
    namespaces:
      matchLabels: {conformance-house: gryffindor}
  ingress:
  - name: deny-all-ingress-from-slytherin
    action: Deny
    from:
    - namespaces:
        matchLabels: {conformance-house: slytherin}
  egress:
  - name: deny-all-egress-to-slytherin
    action: Deny
    to:
    - namespaces:
        matchLabels: {conformance-house: slytherin}
""",
}

CASES: list[Case] = [
    Case('CNPAdminTierEgressNamedPort', 'v1alpha2', 'admin_tier/standard-egress-tcp-rules', [
        ("Should support an 'allow-egress' policy for named port", [
            ('named_port', 'ClusterNetworkPolicy/egress-tcp', 'egress', 5, 'web'),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'hufflepuff/cedric-diggory-1', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 8080, False),
        ]),
    ]),
    Case('CNPAdminTierEgressNodePeers', 'v1alpha2', 'admin_tier/experimental-egress-selector-rules', [
        ("Should support an 'allow-egress' rule policy for egress-node-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'forbidden-forrest/centaur-1', 36363, True),
        ]),
        ("Should support a 'pass-egress' rule policy for egress-node-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'forbidden-forrest/centaur-1', 34345, True),
        ]),
        ("Should support a 'deny-egress' rule policy for egress-node-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'forbidden-forrest/centaur-1', 36364, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'forbidden-forrest/centaur-1', 34346, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'forbidden-forrest/centaur-1', 9003, False),
        ]),
    ]),
    Case('CNPAdminTierIngressNamedPort', 'v1alpha2', 'admin_tier/standard-ingress-udp-rules', [
        ("Should support an 'allow-ingress' policy for named port", [
            ('named_port', 'ClusterNetworkPolicy/ingress-udp', 'ingress', 5, 'dns'),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'hufflepuff/cedric-diggory-1', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, False),
        ]),
    ]),
    Case('CNPAdminTierEgressInlineCIDRPeers', 'v1alpha2', 'admin_tier/standard-egress-inline-cidr-rules', [
        ("Should support a 'deny-egress' rule policy for egress-cidr-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9003, True),
            ('namespace_labels', 'slytherin', {'conformance-house': 'denied-namespace-label'}),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9003, False),
            ('namespace_labels', 'slytherin', {'conformance-house': 'slytherin'}),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9003, True),
        ]),
        ("Should support an 'allow-egress' rule policy for egress-cidr-peer", [
            ('prepend_egress_networks', 'ClusterNetworkPolicy/inline-cidr-as-peers-example', 'allow-egress-to-specific-podIPs', ['ravenclaw/luna-lovegood-0', 'hufflepuff/cedric-diggory-0']),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, False),
        ]),
    ]),
    Case('CNPAdminTierEgressSCTP', 'v1alpha2', 'admin_tier/standard-egress-sctp-rules', [
        ("Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-0', 9005, True),
        ]),
        ("Should support an 'allow-egress' policy for SCTP protocol at the specified port", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9005, False),
        ]),
        ("Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/egress-sctp', 'egress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'gryffindor/harry-potter-1', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-1', 9005, False),
        ]),
        ("Should support a 'deny-egress' policy for SCTP protocol at the specified port", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
        ]),
        ("Should support an 'pass-egress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/egress-sctp', 'egress', 0, 2),
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'gryffindor/harry-potter-1', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-1', 9005, True),
        ]),
        ("Should support a 'pass-egress' policy for SCTP protocol at the specified port", [
            ('swap', 'ClusterNetworkPolicy/egress-sctp', 'egress', 3, 4),
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
        ]),
    ]),
    Case('CNPAdminTierEgressTCP', 'v1alpha2', 'admin_tier/standard-egress-tcp-rules', [
        ("Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 8080, True),
        ]),
        ("Should support an 'allow-egress' policy for TCP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'hufflepuff/cedric-diggory-1', 8080, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
        ]),
        ("Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/egress-tcp', 'egress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-1', 8080, False),
        ]),
        ("Should support a 'deny-egress' policy for TCP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
        ]),
        ("Should support an 'pass-egress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/egress-tcp', 'egress', 0, 2),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 8080, True),
        ]),
        ("Should support a 'pass-egress' policy for TCP protocol at the specified port", [
            ('swap', 'ClusterNetworkPolicy/egress-tcp', 'egress', 3, 4),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
        ]),
    ]),
    Case('CNPAdminTierEgressUDP', 'v1alpha2', 'admin_tier/standard-egress-udp-rules', [
        ("Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'ravenclaw/luna-lovegood-0', 5353, True),
        ]),
        ("Should support an 'allow-egress' policy for UDP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'gryffindor/harry-potter-1', 53, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'gryffindor/harry-potter-1', 5353, False),
        ]),
        ("Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/egress-udp', 'egress', 0, 1),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'ravenclaw/luna-lovegood-1', 5353, False),
        ]),
        ("Should support a 'deny-egress' policy for UDP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'slytherin/draco-malfoy-0', 5353, False),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
        ]),
        ("Should support an 'pass-egress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/egress-udp', 'egress', 0, 2),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'ravenclaw/luna-lovegood-1', 5353, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'ravenclaw/luna-lovegood-1', 53, True),
        ]),
        ("Should support a 'pass-egress' policy for UDP protocol at the specified port", [
            ('swap', 'ClusterNetworkPolicy/egress-udp', 'egress', 3, 4),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'slytherin/draco-malfoy-0', 5353, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
        ]),
    ]),
    Case('CNPAdminTierGress', 'v1alpha2', 'admin_tier/standard-gress-rules-combined', [
        ("Should support an 'allow-gress' policy across different protocols", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'gryffindor/harry-potter-0', 53, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
        ]),
        ("Should support an 'allow-gress' policy across different protocols at the specified ports", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'hufflepuff/cedric-diggory-1', 8080, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9005, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'TCP', 'gryffindor/harry-potter-1', 80, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'gryffindor/harry-potter-1', 5353, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'gryffindor/harry-potter-1', 53, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'SCTP', 'gryffindor/harry-potter-1', 9003, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'SCTP', 'gryffindor/harry-potter-1', 9005, False),
        ]),
        ("Should support an 'deny-gress' policy across different protocols", [
            ('swap', 'ClusterNetworkPolicy/gress-rules', 'egress', 0, 1),
            ('swap', 'ClusterNetworkPolicy/gress-rules', 'ingress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-1', 80, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'gryffindor/harry-potter-1', 53, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-1', 9003, False),
        ]),
        ("Should support a 'deny-gress' policy across different protocols at the specified ports", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'slytherin/draco-malfoy-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 5353, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'gryffindor/harry-potter-0', 53, False),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'gryffindor/harry-potter-0', 5353, True),
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'gryffindor/harry-potter-0', 9003, False),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'gryffindor/harry-potter-0', 9005, True),
        ]),
        ("Should support an 'pass-gress' policy across different protocols", [
            ('swap', 'ClusterNetworkPolicy/gress-rules', 'egress', 0, 2),
            ('swap', 'ClusterNetworkPolicy/gress-rules', 'ingress', 0, 2),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'ravenclaw/luna-lovegood-0', 5353, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'gryffindor/harry-potter-0', 53, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
        ]),
        ("Should support a 'pass-gress' policy across different protocols at the specified ports", [
            ('swap', 'ClusterNetworkPolicy/gress-rules', 'egress', 3, 4),
            ('swap', 'ClusterNetworkPolicy/gress-rules', 'ingress', 3, 4),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 5353, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'gryffindor/harry-potter-0', 53, True),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'gryffindor/harry-potter-0', 5353, True),
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'gryffindor/harry-potter-0', 9005, True),
        ]),
    ]),
    Case('CNPAdminTierIngressSCTP', 'v1alpha2', 'admin_tier/standard-ingress-sctp-rules', [
        ("Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9005, True),
        ]),
        ("Should support an 'allow-ingress' policy for SCTP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9005, False),
        ]),
        ("Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/ingress-sctp', 'ingress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9005, False),
        ]),
        ("Should support a 'deny-ingress' policy for SCTP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, False),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9005, True),
        ]),
        ("Should support an 'pass-ingress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/ingress-sctp', 'ingress', 0, 2),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9005, True),
        ]),
        ("Should support a 'pass-ingress' policy for SCTP protocol at the specified port", [
            ('swap', 'ClusterNetworkPolicy/ingress-sctp', 'ingress', 3, 4),
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9005, True),
        ]),
    ]),
    Case('CNPAdminTierIngressTCP', 'v1alpha2', 'admin_tier/standard-ingress-tcp-rules', [
        ("Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
        ("Should support an 'allow-ingress' policy for TCP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'TCP', 'gryffindor/harry-potter-1', 80, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
        ]),
        ("Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/ingress-tcp', 'ingress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-1', 80, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
        ]),
        ("Should support a 'deny-ingress' policy for TCP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
        ("Should support an 'pass-ingress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/ingress-tcp', 'ingress', 0, 2),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
        ("Should support a 'pass-ingress' policy for TCP protocol at the specified port", [
            ('swap', 'ClusterNetworkPolicy/ingress-tcp', 'ingress', 3, 4),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
    ]),
    Case('CNPAdminTierIngressUDP', 'v1alpha2', 'admin_tier/standard-ingress-udp-rules', [
        ("Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'hufflepuff/cedric-diggory-0', 5353, True),
        ]),
        ("Should support an 'allow-ingress' policy for UDP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'hufflepuff/cedric-diggory-1', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, False),
        ]),
        ("Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/ingress-udp', 'ingress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, False),
        ]),
        ("Should support a 'deny-ingress' policy for UDP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'hufflepuff/cedric-diggory-0', 5353, False),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
        ]),
        ("Should support an 'pass-ingress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/ingress-udp', 'ingress', 0, 2),
            ('poke', 'ravenclaw/luna-lovegood-0', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'hufflepuff/cedric-diggory-1', 53, True),
        ]),
        ("Should support a 'pass-ingress' policy for UDP protocol at the specified port", [
            ('swap', 'ClusterNetworkPolicy/ingress-udp', 'ingress', 3, 4),
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'hufflepuff/cedric-diggory-0', 5353, True),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
        ]),
    ]),
    Case('CNPAdminTierIntegration', 'v1alpha2', 'api_integration/standard-anp-np-banp', [
        ('Should Deny traffic from slytherin to gryffindor respecting admin CNP', [
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, False),
        ]),
        ('Should Deny traffic to slytherin from gryffindor respecting admin CNP', [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, False),
        ]),
        ("Should support a 'pass-ingress' policy for admin CNP and respect the match for network policy", [
            ('action', 'ClusterNetworkPolicy/pass-example', 'ingress', 0, 'Pass'),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
        ("Should support a 'pass-egress' policy for admin CNP and respect the match for network policy", [
            ('action', 'ClusterNetworkPolicy/pass-example', 'egress', 0, 'Pass'),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
        ]),
        ("Should support a 'pass-ingress' policy for admin CNP and respect the match for baseline cluster network policy", [
            ('delete', 'NetworkPolicy', 'gryffindor/allow-gress-from-to-slytherin-to-gryffindor'),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, False),
        ]),
        ("Should support a 'pass-egress' policy for admin CNP and respect the match for baseline cluster network policy", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, False),
        ]),
    ]),
    Case('CNPAdminTierPriorityField', 'v1alpha2', 'admin_tier/standard-priority-field', [
        ('Should Deny traffic from slytherin to gryffindor respecting admin CNP', [
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, False),
        ]),
        ('Should Deny traffic to slytherin from gryffindor respecting admin CNP', [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, False),
        ]),
        ('Should respect admin CNP priority field; thus passing both ingress and egress traffic over to baseline CNP', [
            ('priority', 'ClusterNetworkPolicy/old-priority-60-new-priority-40-example', 40),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
        ]),
    ]),
    Case('CNPBaselineTierEgressNamedPort', 'v1alpha2', 'baseline_tier/standard-egress-udp-rules', [
        ("Should support an 'allow-egress' policy for named port", [
            ('named_port', 'ClusterNetworkPolicy/default', 'egress', 3, 'dns'),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'gryffindor/harry-potter-1', 53, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'gryffindor/harry-potter-1', 5353, False),
        ]),
    ]),
    Case('CNPBaselineTierEgressNodePeers', 'v1alpha2', 'baseline_tier/experimental-egress-selector-rules', [
        ("Should support an 'allow-egress' rule policy for egress-node-peer", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'forbidden-forrest/centaur-1', 36363, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'forbidden-forrest/centaur-1', 36364, True),
        ]),
        ("Should support a 'deny-egress' rule policy for egress-node-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'forbidden-forrest/centaur-1', 34346, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'forbidden-forrest/centaur-1', 9003, False),
        ]),
    ]),
    Case('CNPBaselineTierIngressNamedPort', 'v1alpha2', 'baseline_tier/standard-ingress-tcp-rules', [
        ("Should support an 'allow-ingress' policy for named port", [
            ('named_port', 'ClusterNetworkPolicy/default', 'ingress', 3, 'web'),
            ('poke', 'hufflepuff/cedric-diggory-0', 'TCP', 'gryffindor/harry-potter-1', 80, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
        ]),
    ]),
    Case('CNPBaselineTierEgressInlineCIDRPeers', 'v1alpha2', 'baseline_tier/standard-egress-inline-cidr-rules', [
        ("Should support a 'deny-egress' rule policy for egress-cidr-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9003, True),
            ('namespace_labels', 'slytherin', {'conformance-house': 'denied-namespace-label'}),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9003, False),
            ('namespace_labels', 'slytherin', {'conformance-house': 'slytherin'}),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9003, True),
        ]),
        ("Should support an 'allow-egress' rule policy for egress-cidr-peer", [
            ('prepend_egress_networks', 'ClusterNetworkPolicy/default', 'allow-egress-to-specific-podIPs', ['ravenclaw/luna-lovegood-0', 'hufflepuff/cedric-diggory-0']),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, False),
        ]),
    ]),
    Case('CNPBaselineTierEgressSCTP', 'v1alpha2', 'baseline_tier/standard-egress-sctp-rules', [
        ("Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-0', 9005, True),
        ]),
        ("Should support an 'allow-egress' policy for SCTP protocol at the specified port", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9005, False),
        ]),
        ("Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/default', 'egress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'gryffindor/harry-potter-1', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-1', 9005, False),
        ]),
        ("Should support a 'deny-egress' policy for SCTP protocol at the specified port", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
        ]),
    ]),
    Case('CNPBaselineTierEgressTCP', 'v1alpha2', 'baseline_tier/standard-egress-tcp-rules', [
        ("Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 8080, True),
        ]),
        ("Should support an 'allow-egress' policy for TCP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'hufflepuff/cedric-diggory-1', 8080, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
        ]),
        ("Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/default', 'egress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-1', 8080, False),
        ]),
        ("Should support a 'deny-egress' policy for TCP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
        ]),
    ]),
    Case('CNPBaselineTierEgressUDP', 'v1alpha2', 'baseline_tier/standard-egress-udp-rules', [
        ("Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'ravenclaw/luna-lovegood-0', 5353, True),
        ]),
        ("Should support an 'allow-egress' policy for UDP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'gryffindor/harry-potter-1', 53, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'gryffindor/harry-potter-1', 5353, False),
        ]),
        ("Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/default', 'egress', 0, 1),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'ravenclaw/luna-lovegood-1', 5353, False),
        ]),
        ("Should support a 'deny-egress' policy for UDP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'slytherin/draco-malfoy-0', 5353, False),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
        ]),
    ]),
    Case('CNPBaselineTierGress', 'v1alpha2', 'baseline_tier/standard-gress-rules-combined', [
        ("Should support an 'allow-gress' policy across different protocols", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'gryffindor/harry-potter-0', 53, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
        ]),
        ("Should support an 'allow-gress' policy across different protocols at the specified ports", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'hufflepuff/cedric-diggory-1', 8080, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9005, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'TCP', 'gryffindor/harry-potter-1', 80, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'gryffindor/harry-potter-1', 5353, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'gryffindor/harry-potter-1', 53, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'SCTP', 'gryffindor/harry-potter-1', 9003, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'SCTP', 'gryffindor/harry-potter-1', 9005, False),
        ]),
        ("Should support an 'deny-gress' policy across different protocols", [
            ('swap', 'ClusterNetworkPolicy/default', 'egress', 0, 1),
            ('swap', 'ClusterNetworkPolicy/default', 'ingress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-1', 80, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'gryffindor/harry-potter-1', 53, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-1', 9003, False),
        ]),
        ("Should support a 'deny-gress' policy across different protocols at the specified ports", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'slytherin/draco-malfoy-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 5353, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'gryffindor/harry-potter-0', 53, False),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'gryffindor/harry-potter-0', 5353, True),
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'gryffindor/harry-potter-0', 9003, False),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'gryffindor/harry-potter-0', 9005, True),
        ]),
    ]),
    Case('CNPBaselineTierIngressSCTP', 'v1alpha2', 'baseline_tier/standard-ingress-sctp-rules', [
        ("Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9005, True),
        ]),
        ("Should support an 'allow-ingress' policy for SCTP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9005, False),
        ]),
        ("Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/default', 'ingress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9005, False),
        ]),
        ("Should support a 'deny-ingress' policy for SCTP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, False),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9005, True),
        ]),
    ]),
    Case('CNPBaselineTierIngressTCP', 'v1alpha2', 'baseline_tier/standard-ingress-tcp-rules', [
        ("Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
        ("Should support an 'allow-ingress' policy for TCP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'TCP', 'gryffindor/harry-potter-1', 80, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
        ]),
        ("Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/default', 'ingress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-1', 80, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
        ]),
        ("Should support a 'deny-ingress' policy for TCP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
    ]),
    Case('CNPBaselineTierIngressUDP', 'v1alpha2', 'baseline_tier/standard-ingress-udp-rules', [
        ("Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'hufflepuff/cedric-diggory-0', 5353, True),
        ]),
        ("Should support an 'allow-ingress' policy for UDP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'hufflepuff/cedric-diggory-1', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, False),
        ]),
        ("Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'ClusterNetworkPolicy/default', 'ingress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, False),
        ]),
        ("Should support a 'deny-ingress' policy for UDP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'hufflepuff/cedric-diggory-0', 5353, False),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
        ]),
    ]),
    Case('AdminNetworkPolicyEgressNamedPort', 'v1alpha1', 'admin_network_policy/standard-egress-tcp-rules', [
        ("Should support an 'allow-egress' policy for named port", [
            ('named_port', 'AdminNetworkPolicy/egress-tcp', 'egress', 5, 'web'),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'hufflepuff/cedric-diggory-1', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 8080, False),
        ]),
    ]),
    Case('AdminNetworkPolicyEgressNodePeers', 'v1alpha1', 'admin_network_policy/experimental-egress-selector-rules', [
        ("Should support an 'allow-egress' rule policy for egress-node-peer", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'forbidden-forrest/centaur-1', 36363, True),
        ]),
        ("Should support a 'pass-egress' rule policy for egress-node-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'forbidden-forrest/centaur-1', 34345, True),
        ]),
        ("Should support a 'deny-egress' rule policy for egress-node-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'forbidden-forrest/centaur-1', 36364, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'forbidden-forrest/centaur-1', 34346, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'forbidden-forrest/centaur-1', 9003, False),
        ]),
    ]),
    Case('AdminNetworkPolicyIngressNamedPort', 'v1alpha1', 'admin_network_policy/standard-ingress-udp-rules', [
        ("Should support an 'allow-ingress' policy for named port", [
            ('named_port', 'AdminNetworkPolicy/ingress-udp', 'ingress', 5, 'dns'),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'hufflepuff/cedric-diggory-1', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, False),
        ]),
    ]),
    Case('AdminNetworkPolicyEgressInlineCIDRPeers', 'v1alpha1', 'admin_network_policy/standard-egress-inline-cidr-rules', [
        ("Should support a 'deny-egress' rule policy for egress-cidr-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9003, True),
        ]),
        ("Should support an 'allow-egress' rule policy for egress-cidr-peer", [
            ('prepend_egress_networks', 'AdminNetworkPolicy/inline-cidr-as-peers-example', 'allow-egress-to-specific-podIPs', ['ravenclaw/luna-lovegood-0', 'hufflepuff/cedric-diggory-0']),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, False),
        ]),
    ]),
    Case('AdminNetworkPolicyEgressSCTP', 'v1alpha1', 'admin_network_policy/standard-egress-sctp-rules', [
        ("Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-0', 9005, True),
        ]),
        ("Should support an 'allow-egress' policy for SCTP protocol at the specified port", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9005, False),
        ]),
        ("Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/egress-sctp', 'egress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'gryffindor/harry-potter-1', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-1', 9005, False),
        ]),
        ("Should support a 'deny-egress' policy for SCTP protocol at the specified port", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
        ]),
        ("Should support an 'pass-egress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/egress-sctp', 'egress', 0, 2),
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'gryffindor/harry-potter-1', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-1', 9005, True),
        ]),
        ("Should support a 'pass-egress' policy for SCTP protocol at the specified port", [
            ('swap', 'AdminNetworkPolicy/egress-sctp', 'egress', 3, 4),
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
        ]),
    ]),
    Case('AdminNetworkPolicyEgressTCP', 'v1alpha1', 'admin_network_policy/standard-egress-tcp-rules', [
        ("Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 8080, True),
        ]),
        ("Should support an 'allow-egress' policy for TCP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'hufflepuff/cedric-diggory-1', 8080, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
        ]),
        ("Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/egress-tcp', 'egress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-1', 8080, False),
        ]),
        ("Should support a 'deny-egress' policy for TCP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
        ]),
        ("Should support an 'pass-egress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/egress-tcp', 'egress', 0, 2),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 8080, True),
        ]),
        ("Should support a 'pass-egress' policy for TCP protocol at the specified port", [
            ('swap', 'AdminNetworkPolicy/egress-tcp', 'egress', 3, 4),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
        ]),
    ]),
    Case('AdminNetworkPolicyEgressUDP', 'v1alpha1', 'admin_network_policy/standard-egress-udp-rules', [
        ("Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'ravenclaw/luna-lovegood-0', 5353, True),
        ]),
        ("Should support an 'allow-egress' policy for UDP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'gryffindor/harry-potter-1', 53, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'gryffindor/harry-potter-1', 5353, False),
        ]),
        ("Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/egress-udp', 'egress', 0, 1),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'ravenclaw/luna-lovegood-1', 5353, False),
        ]),
        ("Should support a 'deny-egress' policy for UDP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'slytherin/draco-malfoy-0', 5353, False),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
        ]),
        ("Should support an 'pass-egress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/egress-udp', 'egress', 0, 2),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'ravenclaw/luna-lovegood-1', 5353, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'ravenclaw/luna-lovegood-1', 53, True),
        ]),
        ("Should support a 'pass-egress' policy for UDP protocol at the specified port", [
            ('swap', 'AdminNetworkPolicy/egress-udp', 'egress', 3, 4),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'slytherin/draco-malfoy-0', 5353, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
        ]),
    ]),
    Case('AdminNetworkPolicyGress', 'v1alpha1', 'admin_network_policy/standard-gress-rules-combined', [
        ("Should support an 'allow-gress' policy across different protocols", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'gryffindor/harry-potter-0', 53, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
        ]),
        ("Should support an 'allow-gress' policy across different protocols at the specified ports", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'hufflepuff/cedric-diggory-1', 8080, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9005, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'TCP', 'gryffindor/harry-potter-1', 80, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'gryffindor/harry-potter-1', 5353, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'gryffindor/harry-potter-1', 53, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'SCTP', 'gryffindor/harry-potter-1', 9003, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'SCTP', 'gryffindor/harry-potter-1', 9005, False),
        ]),
        ("Should support an 'deny-gress' policy across different protocols", [
            ('swap', 'AdminNetworkPolicy/gress-rules', 'egress', 0, 1),
            ('swap', 'AdminNetworkPolicy/gress-rules', 'ingress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-1', 80, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'gryffindor/harry-potter-1', 53, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-1', 9003, False),
        ]),
        ("Should support a 'deny-gress' policy across different protocols at the specified ports", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'slytherin/draco-malfoy-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 5353, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'gryffindor/harry-potter-0', 53, False),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'gryffindor/harry-potter-0', 5353, True),
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'gryffindor/harry-potter-0', 9003, False),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'gryffindor/harry-potter-0', 9005, True),
        ]),
        ("Should support an 'pass-gress' policy across different protocols", [
            ('swap', 'AdminNetworkPolicy/gress-rules', 'egress', 0, 2),
            ('swap', 'AdminNetworkPolicy/gress-rules', 'ingress', 0, 2),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'ravenclaw/luna-lovegood-0', 5353, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'gryffindor/harry-potter-0', 53, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
        ]),
        ("Should support a 'pass-gress' policy across different protocols at the specified ports", [
            ('swap', 'AdminNetworkPolicy/gress-rules', 'egress', 3, 4),
            ('swap', 'AdminNetworkPolicy/gress-rules', 'ingress', 3, 4),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 5353, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'gryffindor/harry-potter-0', 53, True),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'gryffindor/harry-potter-0', 5353, True),
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'gryffindor/harry-potter-0', 9005, True),
        ]),
    ]),
    Case('AdminNetworkPolicyIngressSCTP', 'v1alpha1', 'admin_network_policy/standard-ingress-sctp-rules', [
        ("Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9005, True),
        ]),
        ("Should support an 'allow-ingress' policy for SCTP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9005, False),
        ]),
        ("Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/ingress-sctp', 'ingress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9005, False),
        ]),
        ("Should support a 'deny-ingress' policy for SCTP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, False),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9005, True),
        ]),
        ("Should support an 'pass-ingress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/ingress-sctp', 'ingress', 0, 2),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9005, True),
        ]),
        ("Should support a 'pass-ingress' policy for SCTP protocol at the specified port", [
            ('swap', 'AdminNetworkPolicy/ingress-sctp', 'ingress', 3, 4),
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9005, True),
        ]),
    ]),
    Case('AdminNetworkPolicyIngressTCP', 'v1alpha1', 'admin_network_policy/standard-ingress-tcp-rules', [
        ("Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
        ("Should support an 'allow-ingress' policy for TCP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'TCP', 'gryffindor/harry-potter-1', 80, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
        ]),
        ("Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/ingress-tcp', 'ingress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-1', 80, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
        ]),
        ("Should support a 'deny-ingress' policy for TCP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
        ("Should support an 'pass-ingress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/ingress-tcp', 'ingress', 0, 2),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
        ("Should support a 'pass-ingress' policy for TCP protocol at the specified port", [
            ('swap', 'AdminNetworkPolicy/ingress-tcp', 'ingress', 3, 4),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
    ]),
    Case('AdminNetworkPolicyIngressUDP', 'v1alpha1', 'admin_network_policy/standard-ingress-udp-rules', [
        ("Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'hufflepuff/cedric-diggory-0', 5353, True),
        ]),
        ("Should support an 'allow-ingress' policy for UDP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'hufflepuff/cedric-diggory-1', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, False),
        ]),
        ("Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/ingress-udp', 'ingress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, False),
        ]),
        ("Should support a 'deny-ingress' policy for UDP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'hufflepuff/cedric-diggory-0', 5353, False),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
        ]),
        ("Should support an 'pass-ingress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'AdminNetworkPolicy/ingress-udp', 'ingress', 0, 2),
            ('poke', 'ravenclaw/luna-lovegood-0', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'hufflepuff/cedric-diggory-1', 53, True),
        ]),
        ("Should support a 'pass-ingress' policy for UDP protocol at the specified port", [
            ('swap', 'AdminNetworkPolicy/ingress-udp', 'ingress', 3, 4),
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'hufflepuff/cedric-diggory-0', 5353, True),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
        ]),
    ]),
    Case('AdminNetworkPolicyIntegration', 'v1alpha1', 'v1alpha1/api_integration/standard-anp-np-banp', [
        ('Should Deny traffic from slytherin to gryffindor respecting ANP', [
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, False),
        ]),
        ('Should Deny traffic to slytherin from gryffindor respecting ANP', [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, False),
        ]),
        ("Should support a 'pass-ingress' policy for ANP and respect the match for network policy", [
            ('action', 'AdminNetworkPolicy/pass-example', 'ingress', 0, 'Pass'),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
        ("Should support a 'pass-egress' policy for ANP and respect the match for network policy", [
            ('action', 'AdminNetworkPolicy/pass-example', 'egress', 0, 'Pass'),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
        ]),
        ("Should support a 'pass-ingress' policy for ANP and respect the match for baseline admin network policy", [
            ('delete', 'NetworkPolicy', 'gryffindor/allow-gress-from-to-slytherin-to-gryffindor'),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, False),
        ]),
        ("Should support a 'pass-egress' policy for ANP and respect the match for baseline admin network policy", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, False),
        ]),
    ]),
    Case('AdminNetworkPolicyPriorityField', 'v1alpha1', 'admin_network_policy/standard-priority-field', [
        ('Should Deny traffic from slytherin to gryffindor respecting ANP', [
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, False),
        ]),
        ('Should Deny traffic to slytherin from gryffindor respecting ANP', [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, False),
        ]),
        ('Should respect ANP priority field; thus passing both ingress and egress traffic over to BANP', [
            ('priority', 'AdminNetworkPolicy/old-priority-60-new-priority-40-example', 40),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyEgressNamedPort', 'v1alpha1', 'baseline_admin_network_policy/standard-egress-udp-rules', [
        ("Should support an 'allow-egress' policy for named port", [
            ('named_port', 'BaselineAdminNetworkPolicy/default', 'egress', 3, 'dns'),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'gryffindor/harry-potter-1', 53, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'gryffindor/harry-potter-1', 5353, False),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyEgressNodePeers', 'v1alpha1', 'baseline_admin_network_policy/experimental-egress-selector-rules', [
        ("Should support an 'allow-egress' rule policy for egress-node-peer", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'forbidden-forrest/centaur-1', 36363, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'forbidden-forrest/centaur-1', 36364, True),
        ]),
        ("Should support a 'deny-egress' rule policy for egress-node-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'forbidden-forrest/centaur-1', 34346, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'forbidden-forrest/centaur-1', 9003, False),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyIngressNamedPort', 'v1alpha1', 'baseline_admin_network_policy/standard-ingress-tcp-rules', [
        ("Should support an 'allow-ingress' policy for named port", [
            ('named_port', 'BaselineAdminNetworkPolicy/default', 'ingress', 3, 'web'),
            ('poke', 'hufflepuff/cedric-diggory-0', 'TCP', 'gryffindor/harry-potter-1', 80, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyEgressInlineCIDRPeers', 'v1alpha1', 'baseline_admin_network_policy/standard-egress-inline-cidr-rules', [
        ("Should support a 'deny-egress' rule policy for egress-cidr-peer", [
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9003, True),
        ]),
        ("Should support an 'allow-egress' rule policy for egress-cidr-peer", [
            ('prepend_egress_networks', 'BaselineAdminNetworkPolicy/default', 'allow-egress-to-specific-podIPs', ['ravenclaw/luna-lovegood-0', 'hufflepuff/cedric-diggory-0']),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, False),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyEgressSCTP', 'v1alpha1', 'baseline_admin_network_policy/standard-egress-sctp-rules', [
        ("Should support an 'allow-egress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-0', 9005, True),
        ]),
        ("Should support an 'allow-egress' policy for SCTP protocol at the specified port", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9005, False),
        ]),
        ("Should support an 'deny-egress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'BaselineAdminNetworkPolicy/default', 'egress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'gryffindor/harry-potter-1', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-1', 9005, False),
        ]),
        ("Should support a 'deny-egress' policy for SCTP protocol at the specified port", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyEgressTCP', 'v1alpha1', 'baseline_admin_network_policy/standard-egress-tcp-rules', [
        ("Should support an 'allow-egress' policy for TCP protocol; ensure rule ordering is respected", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-0', 8080, True),
        ]),
        ("Should support an 'allow-egress' policy for TCP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'hufflepuff/cedric-diggory-1', 8080, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
        ]),
        ("Should support an 'deny-egress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'BaselineAdminNetworkPolicy/default', 'egress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'ravenclaw/luna-lovegood-1', 8080, False),
        ]),
        ("Should support a 'deny-egress' policy for TCP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyEgressUDP', 'v1alpha1', 'baseline_admin_network_policy/standard-egress-udp-rules', [
        ("Should support an 'allow-egress' policy for UDP protocol; ensure rule ordering is respected", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'ravenclaw/luna-lovegood-0', 5353, True),
        ]),
        ("Should support an 'allow-egress' policy for UDP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'gryffindor/harry-potter-1', 53, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'gryffindor/harry-potter-1', 5353, False),
        ]),
        ("Should support an 'deny-egress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'BaselineAdminNetworkPolicy/default', 'egress', 0, 1),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'ravenclaw/luna-lovegood-1', 5353, False),
        ]),
        ("Should support a 'deny-egress' policy for UDP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'slytherin/draco-malfoy-0', 5353, False),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'slytherin/draco-malfoy-0', 53, True),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyGress', 'v1alpha1', 'baseline_admin_network_policy/standard-gress-rules-combined', [
        ("Should support an 'allow-gress' policy across different protocols", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-0', 80, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-0', 53, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'gryffindor/harry-potter-0', 53, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-0', 9003, True),
        ]),
        ("Should support an 'allow-gress' policy across different protocols at the specified ports", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'hufflepuff/cedric-diggory-1', 8080, True),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'hufflepuff/cedric-diggory-1', 80, False),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'hufflepuff/cedric-diggory-1', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'hufflepuff/cedric-diggory-1', 9005, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'TCP', 'gryffindor/harry-potter-1', 80, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'UDP', 'gryffindor/harry-potter-1', 5353, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'UDP', 'gryffindor/harry-potter-1', 53, False),
            ('poke', 'hufflepuff/cedric-diggory-0', 'SCTP', 'gryffindor/harry-potter-1', 9003, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'SCTP', 'gryffindor/harry-potter-1', 9005, False),
        ]),
        ("Should support an 'deny-gress' policy across different protocols", [
            ('swap', 'BaselineAdminNetworkPolicy/default', 'egress', 0, 1),
            ('swap', 'BaselineAdminNetworkPolicy/default', 'ingress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'ravenclaw/luna-lovegood-1', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'ravenclaw/luna-lovegood-1', 53, False),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-1', 80, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'gryffindor/harry-potter-1', 53, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'SCTP', 'gryffindor/harry-potter-1', 9003, False),
        ]),
        ("Should support a 'deny-gress' policy across different protocols at the specified ports", [
            ('poke', 'gryffindor/harry-potter-0', 'TCP', 'slytherin/draco-malfoy-0', 80, False),
            ('poke', 'gryffindor/harry-potter-1', 'TCP', 'slytherin/draco-malfoy-0', 8080, True),
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'slytherin/draco-malfoy-0', 53, False),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'slytherin/draco-malfoy-0', 5353, True),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'slytherin/draco-malfoy-0', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'slytherin/draco-malfoy-0', 9005, True),
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'gryffindor/harry-potter-0', 53, False),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'gryffindor/harry-potter-0', 5353, True),
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'gryffindor/harry-potter-0', 9003, False),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'gryffindor/harry-potter-0', 9005, True),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyIngressSCTP', 'v1alpha1', 'baseline_admin_network_policy/standard-ingress-sctp-rules', [
        ("Should support an 'allow-ingress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, True),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9005, True),
        ]),
        ("Should support an 'allow-ingress' policy for SCTP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9005, False),
        ]),
        ("Should support an 'deny-ingress' policy for SCTP protocol; ensure rule ordering is respected", [
            ('swap', 'BaselineAdminNetworkPolicy/default', 'ingress', 0, 1),
            ('poke', 'gryffindor/harry-potter-0', 'SCTP', 'ravenclaw/luna-lovegood-1', 9003, False),
            ('poke', 'gryffindor/harry-potter-1', 'SCTP', 'ravenclaw/luna-lovegood-1', 9005, False),
        ]),
        ("Should support a 'deny-ingress' policy for SCTP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'SCTP', 'ravenclaw/luna-lovegood-0', 9003, False),
            ('poke', 'slytherin/draco-malfoy-1', 'SCTP', 'ravenclaw/luna-lovegood-0', 9005, True),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyIngressTCP', 'v1alpha1', 'baseline_admin_network_policy/standard-ingress-tcp-rules', [
        ("Should support an 'allow-ingress' policy for TCP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-0', 80, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
        ("Should support an 'allow-ingress' policy for TCP protocol at the specified port", [
            ('poke', 'hufflepuff/cedric-diggory-0', 'TCP', 'gryffindor/harry-potter-1', 80, True),
            ('poke', 'hufflepuff/cedric-diggory-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
        ]),
        ("Should support an 'deny-ingress' policy for TCP protocol; ensure rule ordering is respected", [
            ('swap', 'BaselineAdminNetworkPolicy/default', 'ingress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'TCP', 'gryffindor/harry-potter-1', 80, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'TCP', 'gryffindor/harry-potter-1', 8080, False),
        ]),
        ("Should support a 'deny-ingress' policy for TCP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'TCP', 'gryffindor/harry-potter-0', 80, False),
            ('poke', 'slytherin/draco-malfoy-1', 'TCP', 'gryffindor/harry-potter-0', 8080, True),
        ]),
    ]),
    Case('BaselineAdminNetworkPolicyIngressUDP', 'v1alpha1', 'baseline_admin_network_policy/standard-ingress-udp-rules', [
        ("Should support an 'allow-ingress' policy for UDP protocol; ensure rule ordering is respected", [
            ('poke', 'ravenclaw/luna-lovegood-0', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'hufflepuff/cedric-diggory-0', 5353, True),
        ]),
        ("Should support an 'allow-ingress' policy for UDP protocol at the specified port", [
            ('poke', 'gryffindor/harry-potter-0', 'UDP', 'hufflepuff/cedric-diggory-1', 53, True),
            ('poke', 'gryffindor/harry-potter-1', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, False),
        ]),
        ("Should support an 'deny-ingress' policy for UDP protocol; ensure rule ordering is respected", [
            ('swap', 'BaselineAdminNetworkPolicy/default', 'ingress', 0, 1),
            ('poke', 'ravenclaw/luna-lovegood-0', 'UDP', 'hufflepuff/cedric-diggory-1', 53, False),
            ('poke', 'ravenclaw/luna-lovegood-1', 'UDP', 'hufflepuff/cedric-diggory-1', 5353, False),
        ]),
        ("Should support a 'deny-ingress' policy for UDP protocol at the specified port", [
            ('poke', 'slytherin/draco-malfoy-0', 'UDP', 'hufflepuff/cedric-diggory-0', 5353, False),
            ('poke', 'slytherin/draco-malfoy-1', 'UDP', 'hufflepuff/cedric-diggory-0', 53, True),
        ]),
    ]),
]
