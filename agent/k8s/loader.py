"""Manifests -> cluster objects, as `kubectl apply -f` reads them.

    read_documents(paths)                 files and directories (recursive), multi-document
                                          YAML (aliases within the API server's limit:
                                          agent.k8s.yaml_limits), JSON, `List` kinds
                                          -> [(document, "file.yaml#2")], errors
    parse_document(doc, source, w)        one document -> validated objects (workloads ->
                                          pods)
    objects_from_documents(docs, src, w)  many documents -> ClusterObjects, errors
    load_paths(paths, w)                  both steps

One bad file or document is reported (LoadError, InvalidObject) and skipped; the others
keep applying, as they would against an API server. A rejected NetworkPolicy document
leaves its fail-closed stand-in among the objects (`stand_in_for`, agent.k8s.rejection):
whoever enforces or evaluates the objects isolates the pods it covers. Objects the API server would accept
are never rejected; what Membrane still has to say about one is a ValidationWarning
(agent.k8s.validation), appended to the `warnings` list the caller passes to each
function here, or logged when it passes none.

This module reads files and dispatches on kind; each kind's rules live in
agent.k8s.validation.<kind>.
"""

from __future__ import annotations

import difflib
import json
import logging
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import yaml

from core.errors import InvalidObject, LoadError, MembraneError
from agent.k8s.objects import (
    ANP_API_VERSION,
    ANP_KIND,
    BANP_KIND,
    CNP_API_VERSION,
    CNP_KIND,
    NAMESPACE_NAME_LABEL,
    ClusterObject,
    ClusterObjects,
    Deployment,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    TieredPolicy,
)
from agent.k8s.validation.adminnetworkpolicy import (admin_network_policy_from_document,
                                                     baseline_admin_network_policy_from_document)
from agent.k8s.validation.clusternetworkpolicy import cluster_network_policy_from_document
from agent.k8s.validation.namespace import namespace_from_document
from agent.k8s.validation.networkpolicy import API_VERSION as NETWORK_POLICY_API_VERSION
from agent.k8s.validation.networkpolicy import fail_closed_stand_in, network_policy_from_document
from agent.k8s.validation.node import node_from_document
from agent.k8s.validation.pod import pod_from_document
from agent.k8s.validation.service import service_from_document
from agent.k8s.validation.workload import workload_from_document
from agent.k8s.validation.fields import (Field, ObjectRef, ValidationWarning, describe_type,
                                         printable, quoted)
from agent.k8s.validation.meta import display_name, object_ref
from agent.k8s.workloads import expand
from agent.k8s.yaml_limits import aliasing_problem
from agent.k8s.workloads import API_VERSIONS as WORKLOAD_API_VERSIONS

log = logging.getLogger(__name__)

Document = dict[str, Any]
SourcedDocument = tuple[Document, str]
# Where validation warnings go: a list the caller passes and reads afterwards. A caller
# that passes none gets them in the log.
Warnings = list[ValidationWarning]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_PATH = "-"

API_VERSIONS: dict[str, str] = {
    "Namespace": "v1",
    "Pod": "v1",
    "Service": "v1",
    "Node": "v1",
    "NetworkPolicy": NETWORK_POLICY_API_VERSION,
    CNP_KIND: CNP_API_VERSION,
    ANP_KIND: ANP_API_VERSION,
    BANP_KIND: ANP_API_VERSION,
    **WORKLOAD_API_VERSIONS,
}

# Kinds without a namespace: metadata.namespace means nothing for them.
CLUSTER_SCOPED_KINDS = frozenset({"Namespace", "Node", CNP_KIND, ANP_KIND, BANP_KIND})

# Kinds that express network policy but that Membrane does not enforce. Ignoring them
# silently would let a user believe they are in force, so they are reported.
UNENFORCED_POLICY_KINDS = frozenset({
    "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "GlobalNetworkPolicy",
})

# How close (difflib ratio, case-insensitive) a kind must be to a supported one to be
# reported as a misspelling ("Networkpolicy", "Pods") rather than ignored as unrelated.
MISSPELT_KIND_CUTOFF = 0.85


class LoadResult(NamedTuple):
    objects: ClusterObjects
    errors: list[MembraneError]


# --- files -> documents -------------------------------------------------------------------------

def read_documents(paths: Sequence[str | Path]) -> tuple[list[SourcedDocument], list[MembraneError]]:
    """Every document in paths, each with its source ("dir/file.yaml#2", documents counted
    from 1), `List` items flattened. Unreadable files are reported and skipped."""
    documents: list[SourcedDocument] = []
    errors: list[MembraneError] = []
    for path in paths:
        for file in manifest_files(Path(path), errors):
            raw, error = read_file(file)
            if error is not None:
                errors.append(error)
            for value, source in raw:
                if not isinstance(value, dict):
                    errors.append(LoadError(
                        f"{source}: not a Kubernetes object but {describe_type(value)}; each "
                        "document must be a mapping with apiVersion, kind and metadata"))
                    continue
                try:
                    documents.extend(flatten_lists(value, source))
                except InvalidObject as invalid:
                    errors.append(invalid)
    return documents, errors


def manifest_files(path: Path, errors: list[MembraneError]) -> list[Path]:
    """A file as given (whatever its name), or a directory's manifests, recursively, sorted."""
    if str(path) == STDIN_PATH:
        return [path]
    if path.is_dir():
        try:
            return sorted(p for p in path.rglob("*")
                          if p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file())
        except OSError as error:
            errors.append(LoadError(f"{path}: cannot list directory: {error.strerror or error}"))
            return []
    if not path.exists():
        errors.append(LoadError(f"{path}: no such file or directory"))
        return []
    return [path]


def read_file(file: Path) -> tuple[list[tuple[Any, str]], LoadError | None]:
    """The documents of one file and, if it breaks off, the error. Documents before a
    syntax error are kept, as kubectl applies them before failing."""
    stdin = str(file) == STDIN_PATH
    name = "<stdin>" if stdin else printable(str(file))   # a file name is one line too
    try:
        text = sys.stdin.read() if stdin else file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        return [], LoadError(f"{name}: not UTF-8 text ({error.reason} at byte {error.start})")
    except OSError as error:
        return [], LoadError(f"{name}: cannot read: {error.strerror or error}")
    if file.suffix.lower() == ".json":
        return json_documents(text, name)
    return yaml_documents(text, name)


class _ManifestLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """SafeLoader that rejects duplicate keys (the API server's strict decoding does; a
    second `ingress:` silently replacing the first would change a policy's meaning)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate field {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return,unused-ignore]


def _timestamp_as_string(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    # Kubernetes keeps timestamps as RFC 3339 strings; datetimes would not survive JSON.
    if not isinstance(node, yaml.ScalarNode):   # an explicit !!timestamp on a collection
        raise yaml.constructor.ConstructorError(None, None, "a timestamp must be a scalar",
                                                node.start_mark)
    return str(loader.construct_scalar(node))


_ManifestLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_string)


def yaml_documents(text: str, name: str) -> tuple[list[tuple[Any, str]], LoadError | None]:
    documents: list[tuple[Any, str]] = []
    index = 0
    try:
        # The reader rejects control characters already when it is created.
        loader = _ManifestLoader(text)
    except yaml.YAMLError as error:
        return documents, LoadError(f"{name}: invalid YAML: {error}")
    try:
        while loader.check_node():
            node = loader.get_node()
            index += 1
            problem = aliasing_problem(node) if node is not None else None
            if problem is not None:
                # Before constructing: the expanded tree is what must never be built.
                return documents, LoadError(f"{name}#{index}: invalid YAML: {problem}")
            value = loader.construct_document(node)
            if value is not None:  # empty documents are skipped, as kubectl does
                documents.append((value, f"{name}#{index}"))
    except yaml.MarkedYAMLError as error:
        return documents, LoadError(f"{name}{yaml_error_location(error)}: invalid YAML: "
                                    f"{error.problem or error.context}")
    except yaml.YAMLError as error:
        return documents, LoadError(f"{name}: invalid YAML: {error}")
    except RecursionError:
        return documents, LoadError(f"{name}#{index + 1}: invalid YAML: nested too deeply")
    finally:
        loader.dispose()
    return documents, None


def yaml_error_location(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _reject_duplicate_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"found duplicate field {key!r}")
        result[key] = value
    return result


def json_documents(text: str, name: str) -> tuple[list[tuple[Any, str]], LoadError | None]:
    """One JSON value or several in a row, as kubectl's JSON stream decoder accepts."""
    decoder = json.JSONDecoder(object_pairs_hook=_reject_duplicate_fields)
    documents: list[tuple[Any, str]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return documents, None
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            return documents, LoadError(f"{name}:{error.lineno}:{error.colno}: invalid JSON: "
                                        f"{error.msg}")
        except (ValueError, RecursionError) as error:
            problem = "nested too deeply" if isinstance(error, RecursionError) else str(error)
            return documents, LoadError(f"{name}#{len(documents) + 1}: invalid JSON: {problem}")
        documents.append((value, f"{name}#{len(documents) + 1}"))


def flatten_lists(doc: Document, source: str) -> Iterator[SourcedDocument]:
    """A `List` (or `PodList`, `NetworkPolicyList`, ...) stands for its items. Items of a
    typed list may omit kind and apiVersion, as the API server's list responses do."""
    kind = doc.get("kind")
    if not (isinstance(kind, str) and kind.endswith("List")):
        yield doc, source
        return
    meta = doc.get("metadata")
    ref = ObjectRef(kind, display_name(meta.get("name") if isinstance(meta, dict) else None),
                    source)
    item_kind = kind[: -len("List")]
    for item in Field(ref, "", doc).get("items").items():
        item_source = f"{source} {item.path}".strip()
        if not isinstance(item.value, dict):
            item.fail(f"must be an object, not {describe_type(item.value)}")
        value = dict(item.value)
        if item_kind and "kind" not in value:
            value["kind"] = item_kind
            if "apiVersion" not in value and "apiVersion" in doc:
                value["apiVersion"] = doc["apiVersion"]
        yield from flatten_lists(value, item_source)


# --- documents -> objects ---------------------------------------------------------------------

def parse_document(doc: Document, source: str = "",
                   warnings: Warnings | None = None) -> list[ClusterObject]:
    """The objects one document declares: validated, workloads expanded into their pods,
    `List` items included. Kinds that do not matter to network policy give []."""
    if not isinstance(doc, dict):
        raise not_an_object(doc, source)
    sink: Warnings = [] if warnings is None else warnings
    objects: list[ClusterObject] = []
    for item, item_source in flatten_lists(doc, source):
        parsed = parse_object(item, item_source, sink)
        if isinstance(parsed, Deployment):
            objects.extend(expand(parsed))
        elif parsed is not None:
            objects.append(parsed)
    if warnings is None:
        log_warnings(sink)
    return objects


def parse_object(doc: Document, source: str,
                 warnings: Warnings | None = None) -> ClusterObject | Deployment | None:
    """One object (not a List); a workload is returned unexpanded so that DaemonSets can
    be spread over the nodes once all documents are read."""
    kind = object_kind(doc, source)
    if kind is None:
        return None
    if kind == "NetworkPolicy":
        return network_policy_from_document(doc, source, warnings)
    if kind == CNP_KIND:
        return cluster_network_policy_from_document(doc, source, warnings)
    if kind == ANP_KIND:
        return admin_network_policy_from_document(doc, source, warnings)
    if kind == BANP_KIND:
        return baseline_admin_network_policy_from_document(doc, source, warnings)
    if kind == "Namespace":
        return namespace_from_document(doc, source, warnings)
    if kind == "Pod":
        return pod_from_document(doc, source, warnings)
    if kind == "Service":
        return service_from_document(doc, source, warnings)
    if kind == "Node":
        return node_from_document(doc, source, warnings)
    return workload_from_document(doc, kind, source, warnings)


def log_warnings(warnings: Iterable[ValidationWarning]) -> None:
    """Where warnings go when the caller passes no list for them: the log, never
    nowhere."""
    for warning in warnings:
        log.warning("%s", warning)


def object_kind(doc: Document, source: str) -> str | None:
    """The document's kind if Membrane reads it, None if it does not matter (ConfigMap,
    Secret, CRDs, ...). Missing kinds, misspelt kinds, other NetworkPolicy APIs and
    policy kinds Membrane does not enforce are errors."""
    kind = doc.get("kind")
    namespaced = not (isinstance(kind, str) and kind in CLUSTER_SCOPED_KINDS)
    ref = object_ref(doc, kind if isinstance(kind, str) and kind else "object", namespaced, source)
    field = Field(ref, "kind", kind)
    kind = field.required_string()
    if kind in UNENFORCED_POLICY_KINDS:
        field.fail(f"{kind} is not enforced: Membrane enforces networking.k8s.io/v1 "
                   f"NetworkPolicy, {CNP_API_VERSION} {CNP_KIND} and {ANP_API_VERSION} "
                   f"{ANP_KIND} / {BANP_KIND}")
    expected_api_version = API_VERSIONS.get(kind)
    if expected_api_version is None:
        check_not_misspelt(field, kind)
        return None
    check_api_version(Field(ref, "apiVersion", doc.get("apiVersion")), kind, expected_api_version)
    return kind


def check_not_misspelt(field: Field, kind: str) -> None:
    by_lower = {known.lower(): known for known in API_VERSIONS}
    close = difflib.get_close_matches(kind.lower(), by_lower, n=1, cutoff=MISSPELT_KIND_CUTOFF)
    if close:
        field.fail(f"unknown kind {quoted(kind)}; did you mean {by_lower[close[0]]!r}?")


def check_api_version(field: Field, kind: str, expected: str) -> None:
    # A missing apiVersion is accepted: kubectl would refuse it, but hand-written test
    # fixtures often leave it out and the kind alone is unambiguous.
    if field.is_absent:
        return
    api_version = field.string()
    if api_version == expected:
        return
    if kind == "NetworkPolicy":
        field.fail(f"NetworkPolicy {quoted(api_version)} is not enforced: Membrane enforces "
                   f"{expected} NetworkPolicy only")
    field.fail(f"no {kind} in {quoted(api_version)}; use {expected}")


def not_an_object(value: Any, source: str) -> InvalidObject:
    return InvalidObject("object", "<unnamed>", "(document)",
                         f"must be an object with apiVersion, kind and metadata, not "
                         f"{describe_type(value)}", source)


# --- many documents -> ClusterObjects ---------------------------------------------------------

def objects_from_documents(docs: list[Document], source: str = "",
                           warnings: Warnings | None = None) -> LoadResult:
    """ClusterObjects from documents (e.g. the lab's store). Invalid ones are reported and
    skipped; documents are named "<source>#<n>", counted from 1."""
    return objects_from_sourced_documents(
        ((doc, f"{source}#{i}" if source else f"document {i}")
         for i, doc in enumerate(docs, 1)), warnings)


def objects_from_sourced_documents(docs: Iterable[tuple[Any, str]],
                                   warnings: Warnings | None = None) -> LoadResult:
    sink: Warnings = [] if warnings is None else warnings
    objects = ClusterObjects()
    errors: list[MembraneError] = []
    workloads: list[Deployment] = []
    for doc, source in docs:
        try:
            if not isinstance(doc, dict):
                raise not_an_object(doc, source)
            items = list(flatten_lists(doc, source))
        except InvalidObject as invalid:
            errors.append(invalid)
            continue
        for item, item_source in items:
            try:
                parsed = parse_object(item, item_source, sink)
            except InvalidObject as invalid:
                errors.append(invalid)
                stand_in = stand_in_for(item, item_source, invalid)
                if stand_in is not None:
                    add_object(objects, stand_in)
                continue
            if isinstance(parsed, Deployment):
                workloads.append(parsed)
            elif parsed is not None:
                add_object(objects, parsed)
    # Workloads last: a DaemonSet gets a pod on each node, wherever the nodes were declared.
    for workload in workloads:
        for pod in expand(workload, node_names=list(objects.nodes)):
            add_object(objects, pod)
    add_implicit_namespaces(objects)
    if warnings is None:
        log_warnings(sink)
    return LoadResult(objects, errors)


def stand_in_for(doc: Document, source: str, error: MembraneError) -> ClusterObject | None:
    """What is enforced in place of a document rejected with `error`: a NetworkPolicy's
    fail-closed stand-in (agent.k8s.rejection), nothing for other kinds."""
    if not isinstance(doc, dict) or doc.get("kind") != "NetworkPolicy":
        return None
    return fail_closed_stand_in(doc, source, str(error))


def add_object(objects: ClusterObjects, obj: ClusterObject) -> None:
    """Later documents replace earlier ones with the same key, as repeated applies do."""
    if isinstance(obj, Namespace):
        objects.namespaces[obj.name] = obj
    elif isinstance(obj, Node):
        objects.nodes[obj.name] = obj
    elif isinstance(obj, Pod):
        objects.pods[obj.key] = obj
    elif isinstance(obj, NetworkPolicy):
        objects.policies[obj.key] = obj
    elif isinstance(obj, TieredPolicy):
        objects.cluster_policies[obj.key] = obj
    else:
        objects.services[obj.key] = obj


def add_implicit_namespaces(objects: ClusterObjects) -> None:
    """Namespaces that objects live in but no document declares exist already in the
    cluster (default, kube-system, ...): they carry only their name label."""
    used = {obj.namespace for table in (objects.pods, objects.policies, objects.services)
            for obj in table.values()}
    for name in sorted(used - set(objects.namespaces)):
        objects.namespaces[name] = Namespace(name=name, labels={NAMESPACE_NAME_LABEL: name})


def load_paths(paths: Sequence[str | Path], warnings: Warnings | None = None) -> LoadResult:
    """read_documents + objects_from_documents: read errors first, then invalid objects."""
    documents, errors = read_documents(paths)
    objects, invalid = objects_from_sourced_documents(documents, warnings)
    return LoadResult(objects, errors + invalid)
