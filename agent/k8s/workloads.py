"""Workloads (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController)
turned into the Pods their controllers would create (agent.k8s.validation.workload
validates the documents).

Names and labels look like the real controllers' so that what the lab shows matches a
cluster (`backend-7c9f5b6d8x-q2kzt`, `web-0`, `pod-template-hash`, ...), but every random
part is derived from a hash of namespace, name and replica index: loading the same files
twice gives the same pods. Pods get no IP here; the lab assigns them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Sequence

from agent.k8s.objects import Deployment, Pod

API_VERSIONS: dict[str, str] = {
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "ReplicationController": "v1",
}
WORKLOAD_KINDS = frozenset(API_VERSIONS)

# The alphabet of k8s.io/apimachinery's rand.SafeEncodeString: no vowels (no words) and no
# look-alike characters, so generated names read like the real ones.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
TEMPLATE_HASH_LENGTH = 10
NAME_SUFFIX_LENGTH = 5
# The API server truncates generateName so the generated name is a DNS label (<= 63).
MAX_GENERATE_NAME_BASE = 63 - NAME_SUFFIX_LENGTH
MAX_LABEL_VALUE = 63

POD_TEMPLATE_HASH = "pod-template-hash"
CONTROLLER_REVISION_HASH = "controller-revision-hash"
STATEFULSET_POD_NAME = "statefulset.kubernetes.io/pod-name"
POD_INDEX = "apps.kubernetes.io/pod-index"
POD_TEMPLATE_GENERATION = "pod-template-generation"
JOB_CONTROLLER_UID_LEGACY = "controller-uid"
JOB_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME_LEGACY = "job-name"
JOB_NAME = "batch.kubernetes.io/job-name"


# --- Deployment -> Pods ---------------------------------------------------------------------------

def expand(workload: Deployment, node_names: Sequence[str] = ()) -> list[Pod]:
    """The pods the workload's controller would create. A DaemonSet gets one pod on each
    node in node_names (node selectors and taints are not modelled), or one pod if none."""
    if workload.kind == "Deployment":
        return deployment_pods(workload)
    if workload.kind == "StatefulSet":
        return statefulset_pods(workload)
    if workload.kind == "DaemonSet":
        return daemonset_pods(workload, node_names)
    if workload.kind == "Job":
        return job_pods(workload)
    return [replica(workload, generated_name(workload.name, workload, str(i)), {})
            for i in range(workload.replicas)]


def deployment_pods(workload: Deployment) -> list[Pod]:
    template_hash = template_hash_of(workload.template)
    replica_set = f"{workload.name}-{template_hash}"
    extra = {POD_TEMPLATE_HASH: template_hash}
    return [replica(workload, generated_name(replica_set, workload, str(i)), extra)
            for i in range(workload.replicas)]


def statefulset_pods(workload: Deployment) -> list[Pod]:
    revision = f"{workload.name[:MAX_LABEL_VALUE - TEMPLATE_HASH_LENGTH - 1]}-" \
               f"{template_hash_of(workload.template)}"
    pods = []
    for ordinal in range(workload.replicas):
        name = f"{workload.name}-{ordinal}"
        extra = {CONTROLLER_REVISION_HASH: revision, POD_INDEX: str(ordinal)}
        if len(name) <= MAX_LABEL_VALUE:
            # Longer names cannot be a label value; the real controller fails those pods.
            extra[STATEFULSET_POD_NAME] = name
        pods.append(replica(workload, name, extra))
    return pods


def daemonset_pods(workload: Deployment, node_names: Sequence[str]) -> list[Pod]:
    extra = {CONTROLLER_REVISION_HASH: template_hash_of(workload.template),
             POD_TEMPLATE_GENERATION: "1"}
    if not node_names:
        return [replica(workload, generated_name(workload.name, workload, "0"), extra)]
    return [replica(workload, generated_name(workload.name, workload, node), extra, node)
            for node in sorted(node_names)]


def job_pods(workload: Deployment) -> list[Pod]:
    controller_uid = deterministic_uid("job", workload.namespace, workload.name)
    extra = {JOB_CONTROLLER_UID_LEGACY: controller_uid, JOB_CONTROLLER_UID: controller_uid,
             JOB_NAME_LEGACY: workload.name, JOB_NAME: workload.name}
    return [replica(workload, generated_name(workload.name, workload, str(i)), extra)
            for i in range(workload.replicas)]


def replica(workload: Deployment, name: str, extra_labels: dict[str, str],
            node_name: str | None = None) -> Pod:
    template = workload.template
    return Pod(
        namespace=workload.namespace,
        name=name,
        labels={**template.labels, **extra_labels},
        ip=None,
        node_name=node_name or template.node_name,
        service_account=template.service_account,
        ports=template.ports,
        host_network=template.host_network,
        uid=deterministic_uid("pod", workload.namespace, name),
    )


# --- deterministic "random" parts -------------------------------------------------------------

def safe_encode(seed: str, length: int) -> str:
    """length characters of SAFE_ALPHABET derived from seed."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(SAFE_ALPHABET))
        chars.append(SAFE_ALPHABET[digit])
    return "".join(chars)


def template_hash_of(template: Pod) -> str:
    """Changes when the pod template changes, like pod-template-hash does."""
    canonical = json.dumps({
        "labels": sorted(template.labels.items()),
        "ports": [(p.port, p.protocol.value, p.name) for p in template.ports],
        "serviceAccount": template.service_account,
        "hostNetwork": template.host_network,
        "nodeName": template.node_name,
    }, sort_keys=True)
    return safe_encode(canonical, TEMPLATE_HASH_LENGTH)


def generated_name(base: str, workload: Deployment, discriminator: str) -> str:
    """`<base>-<5 chars>` as generateName gives, the suffix a hash of the replica's
    identity; base is truncated as the API server does."""
    prefix = f"{base}-"[:MAX_GENERATE_NAME_BASE]
    seed = f"{workload.kind}/{workload.namespace}/{workload.name}/{discriminator}"
    return prefix + safe_encode(seed, NAME_SUFFIX_LENGTH)


def deterministic_uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "membrane:" + "/".join(parts)))

