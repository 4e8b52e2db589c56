"""What the crd identity backend stores: names, object shapes, and the fields read back.

identity/crd.py has the algorithm and its guards; this module only says what the objects
look like (deploy/base/crds.yaml is their schema, and tests/k8s/test_manifests.py checks
what these functions build against it):

    MembraneIdentity "<n>"        spec.labels; status.references {node: Lease uid};
                                  status.unused {since, node, marker}
    MembraneIdentityClaim "<h>"   spec.labels, spec.identity; ownerReferences: the identity
    Lease "membrane-identities-<node>"   coordination.k8s.io/v1, labelled LEASE_LABEL

Labels are stored as `source:key=value` strings, sorted (LabelSet.lines()): exact both
ways for every label a pod can carry (a source never has ':', a Kubernetes label key never
'='). Times are Kubernetes' MicroTime: RFC 3339 in UTC with microseconds.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from identity.backend import StoreRefused
from identity.labels import Label, LabelSet

Doc = dict[str, Any]

GROUP = "membrane.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
IDENTITY_KIND, IDENTITIES = "MembraneIdentity", "membraneidentities"
CLAIM_KIND, CLAIMS = "MembraneIdentityClaim", "membraneidentityclaims"
LEASE_GROUP, LEASE_VERSION, LEASES = "coordination.k8s.io", "v1", "leases"
LEASE_LABEL = "membrane.io/identity-lease"     # on every node's Lease (a list selects them)
LEASE_PREFIX = "membrane-identities-"
DEFAULT_NAMESPACE = "membrane-system"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def pod_namespace() -> str:
    """The namespace of the pod this runs in (its service account's), else membrane-system."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


def claim_name(labels: LabelSet) -> str:
    return hashlib.sha256(labels.key().encode()).hexdigest()


def lease_name(node: str) -> str:
    name = LEASE_PREFIX + node
    if len(name) <= 253:
        return name
    return LEASE_PREFIX + hashlib.sha256(node.encode()).hexdigest()[:40]


def label_texts(labels: LabelSet) -> list[str]:
    """`source:key=value`, sorted; exact both ways for every label a pod can carry."""
    for label in labels:
        if ":" in label.source or "=" in label.key:
            raise StoreRefused(f"label {label}: a source with ':' or a key with '=' cannot "
                               "be stored as source:key=value")
    return labels.lines()


def parse_label_texts(texts: object) -> LabelSet:
    """The inverse of label_texts; ValueError on anything else."""
    if not isinstance(texts, list) or not texts:
        raise ValueError("labels must be a non-empty list of source:key=value")
    labels = []
    for text in texts:
        source, colon, rest = str(text).partition(":")
        key, _, value = rest.partition("=")
        if not colon or not source or not key:
            raise ValueError(f"label {text!r} is not source:key=value")
        labels.append(Label(source, key, value))
    return LabelSet(labels)


def micro_time(seconds: float) -> str:
    """Kubernetes' MicroTime: RFC 3339, UTC, microseconds."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def identity_object(number: int, labels: LabelSet, references: dict[str, str]) -> Doc:
    return {"apiVersion": API_VERSION, "kind": IDENTITY_KIND,
            "metadata": {"name": str(number)},
            "spec": {"labels": label_texts(labels)},
            "status": {"references": dict(references)}}


def claim_object(labels: LabelSet, number: int, identity_uid: str) -> Doc:
    owner = {"apiVersion": API_VERSION, "kind": IDENTITY_KIND, "name": str(number),
             "uid": identity_uid}
    return {"apiVersion": API_VERSION, "kind": CLAIM_KIND,
            "metadata": {"name": claim_name(labels), "ownerReferences": [owner]},
            "spec": {"labels": label_texts(labels), "identity": number}}


def unused_marker(since: float, node: str) -> Doc:
    return {"since": micro_time(since), "node": node, "marker": uuid.uuid4().hex}


def lease_object(node: str, namespace: str, seconds: int, now: float) -> Doc:
    return {"apiVersion": f"{LEASE_GROUP}/{LEASE_VERSION}", "kind": "Lease",
            "metadata": {"name": lease_name(node), "namespace": namespace,
                         "labels": {LEASE_LABEL: "true"}},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": seconds,
                     "acquireTime": micro_time(now), "renewTime": micro_time(now)}}


def uid_of(doc: Doc) -> str:
    return str(doc.get("metadata", {}).get("uid", ""))


def status_of(doc: Doc) -> Doc:
    status = doc.get("status")
    if not isinstance(status, dict):
        status = doc["status"] = {}
    return status


def references_of(doc: Doc) -> dict[str, str]:
    """The identity's references, node -> Lease uid (made editable in doc)."""
    status = status_of(doc)
    refs = status.get("references")
    if not isinstance(refs, dict):
        refs = status["references"] = {}
    return refs


def marker_id(doc: Doc) -> str | None:
    unused = status_of(doc).get("unused")
    return str(unused.get("marker")) if isinstance(unused, dict) else None


def owner_uid(claim: Doc) -> str:
    for owner in claim.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == IDENTITY_KIND:
            return str(owner.get("uid", ""))
    return ""


def lease_alive(lease: Doc, now: float) -> bool:
    spec = lease.get("spec") or {}
    try:
        return parse_time(spec["renewTime"]) + float(spec["leaseDurationSeconds"]) >= now
    except (KeyError, TypeError, ValueError):
        return False


def counts(doc: Doc, live: dict[str, str]) -> bool:
    """Whether a reference on this identity counts: one naming a live Lease."""
    return any(live.get(node) == lease for node, lease in references_of(doc).items())
