"""ObjectMeta, as k8s.io/apimachinery/pkg/api/validation ValidateObjectMeta checks it:
the name (by the kind's name rule), the namespace, labels and annotations. Fields
Membrane never reads (ownerReferences, finalizers, managedFields) are not checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.k8s.validation.fields import Field, NameRule, ObjectRef, ValidationWarning, quoted
from agent.k8s.validation.names import (
    dns1123_label_problem,
    dns1123_subdomain_problem,
    label_value_problem,
    qualified_name_problem,
)

# ObjectMeta as serialised by the API server: anything else under metadata is unknown.
OBJECT_META_FIELDS = (
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
)

DEFAULT_NAMESPACE = "default"

# apimachinery TotalAnnotationSizeLimitB: keys and values together, in bytes.
MAX_ANNOTATIONS_BYTES = 256 * 1024

@dataclass(frozen=True)
class ObjectMeta:
    """What Membrane reads of metadata. namespace is "" for cluster-scoped kinds."""

    name: str
    namespace: str
    labels: dict[str, str]
    uid: str
    resource_version: str


def display_name(value: object) -> str:
    """A name from an unvalidated document, for messages only."""
    if isinstance(value, str) and value:
        # Escaped when unprintable: a name with a newline must not forge a log line.
        text = value if value.isprintable() else repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return "<unnamed>" if value in (None, "") else "<invalid name>"


def object_ref(doc: dict[str, Any], kind: str, namespaced: bool, source: str,
               warnings: list[ValidationWarning] | None = None) -> ObjectRef:
    """How messages name the object in doc, before anything in it is trusted; its
    warnings go to `warnings` (a fresh list when None)."""
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name = display_name(meta.get("name"))
    if namespaced:
        namespace = meta.get("namespace")
        namespace = DEFAULT_NAMESPACE if namespace in (None, "") else display_name(namespace)
        name = f"{namespace}/{name}"
    return ObjectRef(kind, name, source, [] if warnings is None else warnings)


def object_meta(root: Field, name_rule: NameRule, namespaced: bool,
                strict: bool = False) -> ObjectMeta:
    """ValidateObjectMeta: metadata of the document at root. `strict` rejects unknown
    metadata fields (strict field validation, as for NetworkPolicy)."""
    meta = root.get("metadata")
    if strict:
        meta.fields(OBJECT_META_FIELDS)
    name = object_name(meta, name_rule)
    namespace = object_namespace(meta) if namespaced else ""
    object_labels = labels(meta.get("labels"))
    object_annotations(meta.get("annotations"))
    return ObjectMeta(name=name, namespace=namespace, labels=object_labels,
                      uid=meta.get("uid").optional_string() or "",
                      resource_version=meta.get("resourceVersion").optional_string() or "")


def object_name(meta: Field, name_rule: NameRule = dns1123_subdomain_problem) -> str:
    """metadata.name by the kind's ValidateNameFunc. Required: `kubectl apply` needs a
    name (generateName alone is for create, which Membrane does not emulate)."""
    field = meta.get("name")
    return field.checked_name(field.required_string(), name_rule)


def object_namespace(meta: Field) -> str:
    """metadata.namespace (ValidateNamespaceName, a DNS label); absent means "default",
    as kubectl fills it in from the context."""
    field = meta.get("namespace")
    return field.checked_name(field.optional_string() or DEFAULT_NAMESPACE,
                              dns1123_label_problem)


def labels(field: Field) -> dict[str, str]:
    """ValidateLabels: keys qualified names, values label values."""
    result = field.string_map()
    for key, value in result.items():
        entry = Field(field.ref, f"{field.path}[{key}]", value)
        key_problem = qualified_name_problem(key)
        if key_problem:
            entry.fail(f"invalid label key {quoted(key)}: {key_problem}")
        value_problem = label_value_problem(value)
        if value_problem:
            entry.fail(f"invalid value {quoted(value)}: {value_problem}")
    return result


def object_annotations(field: Field) -> dict[str, str]:
    """ValidateAnnotations: keys qualified names once lowercased, everything together
    at most 256 KiB."""
    result = field.string_map()
    size = 0
    for key, value in result.items():
        problem = qualified_name_problem(key.lower())
        if problem:
            Field(field.ref, f"{field.path}[{key}]", value).fail(
                f"invalid annotation key {quoted(key)}: {problem}")
        size += len(key.encode()) + len(value.encode())
    if size > MAX_ANNOTATIONS_BYTES:
        field.fail(f"Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes, not {size}")
    return result
