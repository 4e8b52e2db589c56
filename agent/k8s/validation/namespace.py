"""Namespaces, as pkg/apis/core/validation `ValidateNamespace` checks them
(ValidateNamespaceName: a DNS-1123 label) and the API server labels them. The annotation
`policy.membrane.io/audit-mode: "true"` puts the namespace's pods in policy audit mode
(agent.k8s.clusterpolicy.AUDIT_ANNOTATION)."""

from __future__ import annotations

from typing import Any

from agent.k8s.clusterpolicy import AUDIT_ANNOTATION, AUDIT_TRUE
from agent.k8s.objects import NAMESPACE_NAME_LABEL, Namespace
from agent.k8s.validation.fields import Field, ValidationWarning
from agent.k8s.validation.meta import object_meta, object_ref
from agent.k8s.validation.names import dns1123_label_problem


def namespace_from_document(doc: dict[str, Any], source: str = "",
              warnings: list[ValidationWarning] | None = None) -> Namespace:
    ref = object_ref(doc, "Namespace", namespaced=False, source=source, warnings=warnings)
    root = Field(ref, "", doc)
    meta = object_meta(root, dns1123_label_problem, namespaced=False)
    namespace_labels = dict(meta.labels)
    # The API server sets this label on every namespace (since 1.21) and does not let it
    # be changed: a manifest's own value is replaced, as it would be there.
    namespace_labels[NAMESPACE_NAME_LABEL] = meta.name
    # Annotations were validated with the rest of the metadata above.
    audit = root.get("metadata").get("annotations").get(AUDIT_ANNOTATION).value
    return Namespace(name=meta.name, labels=namespace_labels,
                     audit=isinstance(audit, str) and audit.lower() in AUDIT_TRUE)
