"""Which labels make a pod's identity: replicas share one, anything security relevant
(pod labels, namespace name and labels, service account, cluster) splits them."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.k8s.loader import load_paths
from agent.k8s.objects import NAMESPACE_NAME_LABEL, Namespace, Pod
from identity.filter import LabelFilter
from identity.labels import Label, LabelSet
from identity.local import LocalAllocator
from identity.security import (CLUSTER, NAMESPACE_LABELS_PREFIX, POD_NAMESPACE, SERVICE_ACCOUNT,
                               SOURCE_POD_OWN, cidr_labels, namespace_labels_of, namespace_of, pod_labels_of,
                               security_labels)

PROD = Namespace("shop", {NAMESPACE_NAME_LABEL: "shop", "env": "prod"})


def pod(name: str = "web-1", labels: dict[str, str] | None = None, namespace: str = "shop",
        service_account: str = "default") -> Pod:
    return Pod(namespace, name, labels if labels is not None else {"app": "web"},
               service_account=service_account)


def identity_of(p: Pod, ns: Namespace | None = PROD, cluster: str = "default",
                label_filter: LabelFilter | None = None) -> LabelSet:
    return security_labels(p.labels, namespace=p.namespace,
                           namespace_labels=ns.labels if ns else {},
                           service_account=p.service_account, cluster=cluster,
                           label_filter=label_filter)


@pytest.mark.parametrize("varying", [
    pytest.param({"pod-template-hash": ("7c9f5b6d8x", "5d8f7b9c6q")}, id="deployment rollout"),
    pytest.param({"controller-revision-hash": ("web-6b9", "web-7c1")}, id="daemonset revision"),
    pytest.param({"statefulset.kubernetes.io/pod-name": ("web-0", "web-1"),
                  "apps.kubernetes.io/pod-index": ("0", "1")}, id="statefulset ordinals"),
    pytest.param({"batch.kubernetes.io/controller-uid": ("a1", "b2"),
                  "job-name": ("backup-28000", "backup-28001")}, id="cronjob runs"),
])
def test_replicas_differing_only_in_per_replica_labels_share_an_identity(
        varying: dict[str, tuple[str, str]]) -> None:
    first = {"app": "web", **{k: v[0] for k, v in varying.items()}}
    second = {"app": "web", **{k: v[1] for k, v in varying.items()}}
    assert identity_of(pod("web-a", first)) == identity_of(pod("web-b", second))


@pytest.mark.parametrize("change", [
    pytest.param(dict(labels={"app": "web", "tier": "front"}), id="an added pod label"),
    pytest.param(dict(labels={"app": "api"}), id="a changed pod label"),
    pytest.param(dict(labels={}), id="no labels at all"),
    pytest.param(dict(service_account="web-sa"), id="another service account"),
    pytest.param(dict(namespace="other"), id="another namespace"),
])
def test_a_security_relevant_change_gives_another_identity(change: dict[str, object]) -> None:
    changed = pod(**change)  # type: ignore[arg-type]
    ns = PROD if changed.namespace == "shop" else Namespace(changed.namespace)
    assert identity_of(changed, ns) != identity_of(pod())


def test_namespace_labels_are_part_of_the_identity() -> None:
    staging = Namespace("shop", {NAMESPACE_NAME_LABEL: "shop", "env": "staging"})
    assert identity_of(pod(), staging) != identity_of(pod(), PROD)
    assert Label("k8s", NAMESPACE_LABELS_PREFIX + "env", "prod") in identity_of(pod())


def test_the_cluster_name_is_part_of_the_identity() -> None:
    assert identity_of(pod(), cluster="east") != identity_of(pod(), cluster="west")


def test_an_unknown_namespace_still_carries_its_name_label() -> None:
    labels = identity_of(pod(), ns=None)
    assert namespace_labels_of(labels) == {NAMESPACE_NAME_LABEL: "shop"}


def test_identity_labels_read_back_as_pod_namespace_and_meta_labels() -> None:
    labels = identity_of(pod(labels={"app": "web", "pod-template-hash": "x"},
                             service_account="sa"))
    assert pod_labels_of(labels) == {"app": "web"}
    assert namespace_labels_of(labels) == {NAMESPACE_NAME_LABEL: "shop", "env": "prod"}
    assert namespace_of(labels) == "shop"
    assert labels.with_source("k8s")[SERVICE_ACCOUNT] == "sa"
    assert labels.with_source("k8s")[CLUSTER] == "default"
    assert labels.with_source("k8s")[POD_NAMESPACE] == "shop"


def test_labels_print_with_their_source_as_in_the_seed() -> None:
    lines = identity_of(pod(labels={"app": "backend"}, namespace="default"),
                        Namespace("default"), "cluster1").lines()
    assert "k8s:app=backend" in lines
    assert "k8s:io.kubernetes.pod.namespace=default" in lines
    assert lines == sorted(lines)


@pytest.mark.parametrize("label_filter, key, relevant", [
    (LabelFilter.default(), "app", True),
    (LabelFilter.default(), "pod-template-hash", False),
    (LabelFilter.default().with_excluded("version"), "version", False),
    (LabelFilter.default().with_excluded("example.com/"), "example.com/build", False),
    (LabelFilter.default().with_excluded("example.com/"), "example.com", True),
    (LabelFilter(excluded_patterns=(r"build-\d+",)), "build-42", False),
    (LabelFilter(excluded_patterns=(r"build-\d+",)), "build-x", True),
    (LabelFilter(excluded=()), "pod-template-hash", True),
], ids=["an app label is kept", "pod-template-hash is left out by default",
        "an extra excluded key is left out", "an excluded prefix covers its keys",
        "an excluded prefix does not cover the bare word", "a pattern excludes matching keys",
        "a pattern keeps keys it does not match", "an empty list keeps everything"])
def test_the_label_filter_is_configurable(label_filter: LabelFilter, key: str,
                                         relevant: bool) -> None:
    assert label_filter.is_relevant(key) is relevant


def test_a_configured_filter_merges_identities_that_differ_only_in_excluded_keys() -> None:
    a, b = pod(labels={"app": "web", "version": "1"}), pod(labels={"app": "web", "version": "2"})
    assert identity_of(a) != identity_of(b)
    merged = LabelFilter.default().with_excluded("version")
    assert identity_of(a, label_filter=merged) == identity_of(b, label_filter=merged)


@pytest.mark.parametrize("prefix, expected", [
    ("10.0.0.0/24", "cidr:10.0.0.0/24"),
    ("10.0.0.7/24", "cidr:10.0.0.0/24"),
    ("192.168.1.1/32", "cidr:192.168.1.1/32"),
    ("0.0.0.0/0", "cidr:0.0.0.0/0"),
    ("fd00::/8", "cidr:fd00--0/8"),
    ("2001:db8::7/64", "cidr:2001-db8--0/64"),
    ("fd00:10:244:1::a/128", "cidr:fd00-10-244-1--a/128"),
    ("::/0", "cidr:0--0/0"),
])
def test_cidr_labels_are_normalised_networks(prefix: str, expected: str) -> None:
    assert cidr_labels(prefix).lines() == [expected]


WORKLOADS = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {env: prod}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: x}]}
"""


def test_replicas_of_loaded_workloads_share_one_identity_per_workload(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(WORKLOADS)
    objects, errors = load_paths([tmp_path])
    assert not errors
    allocator = LocalAllocator(None)
    by_app: dict[str, set[int]] = {}
    for p in objects.pods.values():
        number = allocator.allocate(identity_of(p, objects.namespaces.get(p.namespace))).id
        by_app.setdefault(p.labels["app"], set()).add(number)
    assert len(objects.pods) == 4
    assert by_app["web"] != by_app["db"]
    assert all(len(numbers) == 1 for numbers in by_app.values())


@pytest.mark.parametrize("spoofed", [
    pytest.param({NAMESPACE_LABELS_PREFIX + "env": "staging"}, id="a namespace label"),
    pytest.param({NAMESPACE_LABELS_PREFIX + NAMESPACE_NAME_LABEL: "kube-system"},
                 id="another namespace's name"),
    pytest.param({POD_NAMESPACE: "kube-system"}, id="the pod namespace key"),
    pytest.param({SERVICE_ACCOUNT: "admin"}, id="the service account key"),
    pytest.param({CLUSTER: "other"}, id="the cluster key"),
])
def test_a_pod_label_in_the_agents_own_key_space_is_kept_as_the_pods_and_claims_nothing(
        spoofed: dict[str, str]) -> None:
    labels = identity_of(pod(labels={"app": "web", **spoofed}))
    [(key, value)] = spoofed.items()
    # The pod's own label: podSelectors match it (the spec reads the pod's labels) ...
    assert Label(SOURCE_POD_OWN, key, value) in labels
    assert pod_labels_of(labels) == {"app": "web", key: value}
    # ... and the agent's labels are untouched: nothing a pod says moves its namespace.
    assert labels - {Label(SOURCE_POD_OWN, key, value)} == identity_of(pod(labels={"app": "web"}))
    assert namespace_labels_of(labels) == {NAMESPACE_NAME_LABEL: "shop", "env": "prod"}
    assert namespace_of(labels) == "shop"
    assert labels.with_source("k8s")[SERVICE_ACCOUNT] == "default"
    assert labels.with_source("k8s")[CLUSTER] == "default"
