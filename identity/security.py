"""The security-relevant labels of a pod, and reading them back for selector matching.

A pod's identity is keyed by: its own labels (minus those the filter excludes, unless a
policy selects on them), its namespace's name and labels, its service account and the
cluster name. They come in as plain strings and mappings: this package knows label
sets, not Kubernetes objects (the agent reads them off its Pod and Namespace). Selectors
in policies are evaluated against these identity labels, never against pods directly,
so every pod with the same identity is treated the same.

The encoding keeps two things apart that share a key space in Kubernetes:

  k8s:<key>=<value>    a pod label, or one the agent writes: the namespace
                       (io.kubernetes.pod.namespace), its labels
                       (io.cilium.k8s.namespace.labels.<k>), the service account and
                       the cluster (io.cilium.k8s.policy.*);
  pod:<key>=<value>    a pod's own label whose key is one of those the agent writes.

So a podSelector on `io.kubernetes.pod.namespace` matches the pods that carry that
label, as the spec says, while nothing a pod's labels say is ever read as its namespace
or its namespace's labels: `namespace_of` and `namespace_labels_of` read only `k8s:`
labels with the agent's keys, and a pod's label never becomes one.
"""

from __future__ import annotations

import ipaddress
from typing import Collection, Mapping

from identity.filter import LabelFilter
from identity.labels import SOURCE_CIDR, SOURCE_K8S, Label, LabelSet

# Namespaces carry this label with their own name (the API server sets it since 1.21).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

POD_NAMESPACE = "io.kubernetes.pod.namespace"
NAMESPACE_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."
SERVICE_ACCOUNT = "io.cilium.k8s.policy.serviceaccount"
CLUSTER = "io.cilium.k8s.policy.cluster"

_META_KEYS = (POD_NAMESPACE, SERVICE_ACCOUNT, CLUSTER)

# The source of a pod's own label whose key the agent reserves (see the module docstring).
SOURCE_POD_OWN = "pod"


def is_reserved_key(key: str) -> bool:
    """Keys the agent writes into identities itself. A pod label with such a key is kept
    under SOURCE_POD_OWN, never as the agent's own: anyone who may label a pod could
    otherwise claim another namespace's labels (and pass that namespace's
    namespaceSelector) or another service account."""
    return key in _META_KEYS or key.startswith(NAMESPACE_LABELS_PREFIX)


def pod_label(key: str, value: str) -> Label:
    """A pod's own label as an identity holds it."""
    return Label(SOURCE_POD_OWN if is_reserved_key(key) else SOURCE_K8S, key, value)


def security_labels(pod_labels: Mapping[str, str], *, namespace: str,
                    namespace_labels: Mapping[str, str], service_account: str, cluster: str,
                    label_filter: LabelFilter | None = None,
                    selected_keys: Collection[str] = ()) -> LabelSet:
    """The identity labels of a pod with these labels in `namespace`.

    namespace_labels: the namespace's labels, {} when the namespace is not known (its
    name label is added either way); service_account: "" means "default";
    selected_keys: keys the filter leaves out that are kept anyway because a policy that
    may concern this pod selects on them.
    """
    keep = label_filter or LabelFilter.default()
    labels = [pod_label(k, v) for k, v in pod_labels.items()
              if k in selected_keys or keep.is_relevant(k)]
    ns_labels = dict(namespace_labels)
    ns_labels.setdefault(NAMESPACE_NAME_LABEL, namespace)
    labels += [Label(SOURCE_K8S, NAMESPACE_LABELS_PREFIX + k, v) for k, v in ns_labels.items()]
    labels += [
        Label(SOURCE_K8S, POD_NAMESPACE, namespace),
        Label(SOURCE_K8S, SERVICE_ACCOUNT, service_account or "default"),
        Label(SOURCE_K8S, CLUSTER, cluster),
    ]
    return LabelSet(labels)


def left_out_labels(pod_labels: Mapping[str, str], *, label_filter: LabelFilter | None = None,
                    selected_keys: Collection[str] = ()) -> list[str]:
    """The pod's labels its identity does not hold, each with why (`endpoint get`):
    "k8s:pod-template-hash=7c9f: one value per Deployment revision (ReplicaSet), left
    out by default; no policy that may select this pod selects on it"."""
    keep = label_filter or LabelFilter.default()
    out = []
    for key in sorted(pod_labels):
        why = None if key in selected_keys else keep.why_excluded(key)
        if why is not None:
            out.append(f"{pod_label(key, pod_labels[key])}: {why}; no policy that may "
                       "select this pod selects on it")
    return out


def cidr_labels(prefix: str) -> LabelSet:
    """The label of a CIDR identity: `cidr:<normalised prefix>`. An IPv6 prefix is
    written as Cilium writes it, colons as dashes (":" separates a label's source), and
    a leading or trailing dash padded with 0: fd00::/8 -> `cidr:fd00--0/8`. `prefix` may
    be written either way (a label's own key reads back to the same label)."""
    net = ipaddress.ip_network(prefix.replace("-", ":"), strict=False)
    if net.version == 4:
        return LabelSet([Label(SOURCE_CIDR, str(net))])
    address = str(net.network_address).replace(":", "-")
    address = ("0" if address.startswith("-") else "") + address
    address += "0" if address.endswith("-") else ""
    return LabelSet([Label(SOURCE_CIDR, f"{address}/{net.prefixlen}")])


def pod_labels_of(labels: LabelSet) -> dict[str, str]:
    """The pod's own labels inside an identity: what a podSelector is matched against
    (those with a reserved key included: they come from SOURCE_POD_OWN)."""
    return {
        label.key: label.value
        for label in labels
        if label.source == SOURCE_POD_OWN
        or (label.source == SOURCE_K8S and not is_reserved_key(label.key))
    }


def namespace_labels_of(labels: LabelSet) -> dict[str, str]:
    """The namespace's labels inside an identity: what a namespaceSelector is matched against."""
    n = len(NAMESPACE_LABELS_PREFIX)
    return {
        label.key[n:]: label.value
        for label in labels
        if label.source == SOURCE_K8S and label.key.startswith(NAMESPACE_LABELS_PREFIX)
    }


def namespace_of(labels: LabelSet) -> str | None:
    for label in labels:
        if label.source == SOURCE_K8S and label.key == POD_NAMESPACE:
            return label.value
    return None
