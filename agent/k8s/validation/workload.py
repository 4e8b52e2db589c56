"""Workloads (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController):
their name, replica count, selector and pod template, as pkg/apis/apps/validation,
pkg/apis/batch/validation and pkg/apis/core/validation `ValidateReplicationController`
check them. agent.k8s.workloads expands the result into the pods a controller makes."""

from __future__ import annotations

from typing import Any

from agent.k8s.objects import Deployment, LabelSelector, Pod
from agent.k8s.validation.fields import Field, ValidationWarning
from agent.k8s.validation.meta import labels, object_meta, object_ref
from agent.k8s.validation.names import MAX_LABEL_LENGTH, dns1123_subdomain_problem
from agent.k8s.validation.pod import pod_spec
from agent.k8s.validation.selectors import label_selector

# Not an API rule but the lab's capacity: more replicas than any lab can run is a
# mistake in the manifest, and expanding it would only exhaust memory.
MAX_REPLICAS = 1000


def workload_from_document(doc: dict[str, Any], kind: str, source: str = "",
             warnings: list[ValidationWarning] | None = None) -> Deployment:
    """A workload document -> the Deployment record (kind kept) its pods come from."""
    ref = object_ref(doc, kind, namespaced=True, source=source, warnings=warnings)
    root = Field(ref, "", doc)
    meta = object_meta(root, dns1123_subdomain_problem, namespaced=True)
    if kind == "Job" and len(meta.name) > MAX_LABEL_LENGTH:
        # ValidateJob: the name becomes the job-name label's value.
        root.get("metadata").get("name").fail(
            "must be no more than 63 characters: it becomes the job-name label")
    spec = root.get("spec")
    template = spec.get("template")
    pod_labels = labels(template.get("metadata").get("labels"))
    check_selector_matches_template(spec, kind, pod_labels)
    fields = pod_spec(template.get("spec"))
    template_pod = Pod(namespace=meta.namespace, name=meta.name, labels=pod_labels,
                       node_name=fields.node_name, service_account=fields.service_account,
                       ports=fields.ports, host_network=fields.host_network)
    return Deployment(namespace=meta.namespace, name=meta.name, kind=kind,
                      replicas=replica_count(spec, kind), template=template_pod)


def replica_count(spec: Field, kind: str) -> int:
    """spec.replicas (Job: parallelism, capped by completions), defaulted to 1;
    ValidateNonnegativeField."""
    if kind == "DaemonSet":
        return 1  # one per node; expand() uses the nodes when they are known
    field = spec.get("parallelism" if kind == "Job" else "replicas")
    count = field.optional_integer()
    count = 1 if count is None else count
    if count < 0:
        field.fail(f"invalid value {count}: must be greater than or equal to 0")
    if count > MAX_REPLICAS:
        field.fail(f"invalid value {count}: at most {MAX_REPLICAS} replicas are supported")
    if kind == "Job":
        completions = spec.get("completions").optional_integer()
        if completions is not None and completions >= 0:
            count = min(count, completions)
    return count


def check_selector_matches_template(spec: Field, kind: str, pod_labels: dict[str, str]) -> None:
    """apps/v1 workloads need a non-empty selector matching their template's labels
    (ValidateDeploymentSpec and friends: "`selector` does not match template `labels`");
    a Job's is generated and a ReplicationController's defaults to the template's labels."""
    selector_field = spec.get("selector")
    if kind == "Job" or (kind == "ReplicationController" and selector_field.is_absent):
        return
    if kind == "ReplicationController":
        selector = LabelSelector.of(labels(selector_field))
    else:
        selector = label_selector(selector_field, strict=False)
        if selector.is_empty:
            selector_field.fail("Required value: a non-empty selector matching the template")
    if not selector.matches(pod_labels):
        spec.get("template").get("metadata").get("labels").fail(
            f"`selector` does not match template `labels` (selector {selector})")
