"""Namespaces, as pkg/apis/core/validation `ValidateNamespace` checks them
(ValidateNamespaceName: a DNS-1123 label) and the API server labels them."""

from __future__ import annotations

from typing import Any

from agent.k8s.objects import NAMESPACE_NAME_LABEL, Namespace
from agent.k8s.validation.fields import Field, ValidationWarning
from agent.k8s.validation.meta import object_meta, object_ref
from agent.k8s.validation.names import dns1123_label_problem


def namespace_from_document(doc: dict[str, Any], source: str = "",
              warnings: list[ValidationWarning] | None = None) -> Namespace:
    ref = object_ref(doc, "Namespace", namespaced=False, source=source, warnings=warnings)
    meta = object_meta(Field(ref, "", doc), dns1123_label_problem, namespaced=False)
    namespace_labels = dict(meta.labels)
    # The API server sets this label on every namespace (since 1.21) and does not let it
    # be changed: a manifest's own value is replaced, as it would be there.
    namespace_labels[NAMESPACE_NAME_LABEL] = meta.name
    return Namespace(name=meta.name, labels=namespace_labels)
