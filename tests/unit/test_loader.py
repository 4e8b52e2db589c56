"""Reading manifests as `kubectl apply -f` does, and turning documents into objects."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from core.errors import InvalidObject, LoadError
from agent.k8s.loader import (
    load_paths,
    objects_from_documents,
    parse_document,
    read_documents,
)
from agent.k8s.objects import (
    NAMESPACE_NAME_LABEL,
    ContainerPort,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    Protocol,
    Service,
    ServicePort,
)

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "demo" / "tutorial"

POLICY_YAML = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
spec:
  podSelector: {{}}
"""


def policy(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, **meta}, "spec": {"podSelector": {}}}


def pod(name: str, labels: dict[str, str] | None = None, **spec_status: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": name, "labels": labels or {}},
                           "spec": {"containers": [{"name": "c"}]}}
    doc.update(spec_status)
    return doc


def workload(kind: str, name: str, replicas: int | None = None, namespace: str = "default",
             labels: dict[str, str] | None = None) -> dict[str, Any]:
    labels = labels or {"app": name}
    spec: dict[str, Any] = {
        "selector": labels if kind == "ReplicationController" else {"matchLabels": labels},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "c", "ports": [
                         {"containerPort": 8080, "name": "http"}]}]}},
    }
    if replicas is not None:
        spec["parallelism" if kind == "Job" else "replicas"] = replicas
    api = {"Job": "batch/v1", "ReplicationController": "v1"}.get(kind, "apps/v1")
    return {"apiVersion": api, "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- reading files -----------------------------------------------------------------------------

def test_a_multi_document_file_gives_each_document_with_its_number(tmp_path: Path) -> None:
    file = write(tmp_path / "p.yaml", "---\n" + POLICY_YAML.format(name="a") + "---\n"
                 + POLICY_YAML.format(name="b") + "---\n")
    docs, errors = read_documents([file])
    assert errors == []
    assert [(d["metadata"]["name"], s) for d, s in docs] == [("a", f"{file}#1"), ("b", f"{file}#2")]


def test_empty_documents_are_skipped_but_counted(tmp_path: Path) -> None:
    file = write(tmp_path / "p.yaml", "# nothing\n---\n---\n" + POLICY_YAML.format(name="a"))
    docs, errors = read_documents([file])
    assert errors == [] and [s for _, s in docs] == [f"{file}#2"]


def test_a_directory_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b" / "z.yml", POLICY_YAML.format(name="in-b"))
    write(tmp_path / "a.yaml", POLICY_YAML.format(name="a"))
    write(tmp_path / "c.json", json.dumps(policy("c")))
    write(tmp_path / "notes.txt", "not a manifest")
    docs, errors = read_documents([tmp_path])
    assert errors == []
    assert [d["metadata"]["name"] for d, _ in docs] == ["a", "in-b", "c"]


def test_a_file_named_explicitly_is_read_whatever_its_suffix(tmp_path: Path) -> None:
    docs, errors = read_documents([write(tmp_path / "policy", POLICY_YAML.format(name="a"))])
    assert errors == [] and len(docs) == 1


def test_json_files_may_hold_several_objects_in_a_row(tmp_path: Path) -> None:
    file = write(tmp_path / "p.json", json.dumps(policy("a")) + "\n" + json.dumps(policy("b")))
    docs, errors = read_documents([file])
    assert errors == [] and [s for _, s in docs] == [f"{file}#1", f"{file}#2"]


@pytest.mark.parametrize("list_kind, item_has_kind", [
    pytest.param("List", True, id="a List holds items of any kind"),
    pytest.param("NetworkPolicyList", False, id="a typed list's items may omit their kind"),
])
def test_list_items_are_flattened(tmp_path: Path, list_kind: str, item_has_kind: bool) -> None:
    items = [policy("a"), policy("b")]
    if not item_has_kind:
        for item in items:
            del item["kind"], item["apiVersion"]
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": list_kind, "items": items}
    file = write(tmp_path / "l.json", json.dumps(doc))
    objects, errors = load_paths([file])
    assert errors == []
    assert sorted(objects.policies) == ["default/a", "default/b"]


def test_a_list_item_keeps_its_position_in_its_source(tmp_path: Path) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": [policy("a"), policy("Bad")]}
    file = write(tmp_path / "l.yaml", json.dumps(doc))
    _, errors = load_paths([file])
    [error] = errors
    assert isinstance(error, InvalidObject) and error.source == f"{file}#1 items[1]"


def test_a_missing_path_is_a_load_error(tmp_path: Path) -> None:
    docs, errors = read_documents([tmp_path / "nope.yaml"])
    assert docs == [] and len(errors) == 1 and isinstance(errors[0], LoadError)
    assert "nope.yaml: no such file" in str(errors[0])


@pytest.mark.parametrize("text, location, problem", [
    pytest.param("kind: Pod\n  bad: [\n", r":2:", "invalid YAML", id="a yaml syntax error names the line"),
    pytest.param("a: 1\na: 2\n", r":2:1", "duplicate field 'a'", id="a duplicate field is a parse error"),
    pytest.param("\tkind: Pod\n", r":1:1", "invalid YAML", id="a tab indentation names the line"),
])
def test_unparsable_yaml_is_reported_with_its_line(tmp_path: Path, text: str, location: str,
                                                   problem: str) -> None:
    file = write(tmp_path / "bad.yaml", text)
    _, errors = read_documents([file])
    [error] = errors
    assert isinstance(error, LoadError)
    assert re.search(re.escape(str(file)) + location, str(error)) and problem in str(error)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.json", '{\n "kind": "Pod",\n}')
    _, errors = read_documents([file])
    assert len(errors) == 1 and f"{file}:3:1: invalid JSON" in str(errors[0])


def test_a_file_that_is_not_utf8_is_a_load_error(tmp_path: Path) -> None:
    file = tmp_path / "bin.yaml"
    file.write_bytes(b"\xff\xfe\x00kind")
    _, errors = read_documents([file])
    assert len(errors) == 1 and "not UTF-8" in str(errors[0])


def test_documents_before_a_syntax_error_and_other_files_still_load(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", POLICY_YAML.format(name="first") + "---\nkind: [\n")
    write(tmp_path / "b.yaml", POLICY_YAML.format(name="second"))
    objects, errors = load_paths([tmp_path])
    assert sorted(objects.policies) == ["default/first", "default/second"]
    assert len(errors) == 1 and isinstance(errors[0], LoadError)


@pytest.mark.parametrize("text, problem", [
    pytest.param("- a\n- b\n", "not a Kubernetes object but a list", id="a top level list is not an object"),
    pytest.param("just text\n", "not a Kubernetes object but a string", id="a scalar is not an object"),
])
def test_documents_that_are_not_mappings_are_load_errors(tmp_path: Path, text: str,
                                                         problem: str) -> None:
    file = write(tmp_path / "x.yaml", text)
    docs, errors = read_documents([file])
    assert docs == [] and len(errors) == 1 and problem in str(errors[0])
    assert f"{file}#1" in str(errors[0])


def test_timestamps_stay_strings(tmp_path: Path) -> None:
    text = POLICY_YAML.format(name="a").replace(
        "name: a", "name: a\n  creationTimestamp: 2024-01-02T03:04:05Z")
    docs, _ = read_documents([write(tmp_path / "p.yaml", text)])
    assert docs[0][0]["metadata"]["creationTimestamp"] == "2024-01-02T03:04:05Z"


# --- one bad document among good ones ----------------------------------------------------------

def test_one_invalid_document_is_reported_and_the_others_apply() -> None:
    bad = policy("web")
    bad["spec"]["ingress"] = [{"ports": [{"port": 90, "endPort": 80}]}]
    objects, errors = objects_from_documents([policy("a"), bad, pod("p")], source="store.json")
    assert sorted(objects.pods) == ["default/p"]
    # The bad one leaves only its fail-closed stand-in (agent.k8s.rejection).
    assert sorted(objects.policies) == ["default/a", "default/web"]
    assert not objects.policies["default/a"].fail_closed
    assert objects.policies["default/web"].fail_closed and not objects.policies["default/web"].ingress
    [error] = errors
    assert str(error) == ("networkpolicy default/web: spec.ingress[0].ports[0].endPort: "
                          "must be >= port (store.json#2)")


def test_documents_without_a_source_are_named_by_position() -> None:
    _, errors = objects_from_documents([policy("a"), policy("B")])
    assert len(errors) == 1 and str(errors[0]).endswith("(document 2)")


def test_a_later_document_replaces_an_earlier_one_with_the_same_key() -> None:
    first, second = policy("a"), policy("a")
    second["spec"]["policyTypes"] = ["Egress"]
    objects, _ = objects_from_documents([first, second])
    assert {t.value for t in objects.policies["default/a"].policy_types} == {"Egress"}


def test_a_document_that_is_not_a_mapping_is_an_invalid_object() -> None:
    objects, errors = objects_from_documents([["x"], policy("a")])  # type: ignore[list-item]
    assert list(objects.policies) == ["default/a"]
    assert len(errors) == 1 and isinstance(errors[0], InvalidObject)
    assert "(document): must be an object" in str(errors[0])


# --- kinds --------------------------------------------------------------------------------------

@pytest.mark.parametrize("doc", [
    pytest.param({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
                 id="a configmap is ignored"),
    pytest.param({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
                 id="a secret is ignored"),
    pytest.param({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "s"}},
                 id="a service account is ignored"),
    pytest.param({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {}},
                 id="a custom resource is ignored"),
    pytest.param({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"}},
                 id="a cronjob creates no pods until it runs and is ignored"),
])
def test_kinds_that_do_not_matter_give_nothing(doc: dict[str, Any]) -> None:
    assert parse_document(doc) == []


@pytest.mark.parametrize("doc, path, problem", [
    pytest.param({"metadata": {"name": "x"}}, "kind", "Required value",
                 id="a document without kind is rejected"),
    pytest.param({"kind": 3, "metadata": {"name": "x"}}, "kind", "must be a string",
                 id="a kind that is not a string is rejected"),
    pytest.param({"kind": "Networkpolicy", "metadata": {"name": "x"}}, "kind",
                 "did you mean 'NetworkPolicy'", id="a miscapitalised kind is reported"),
    pytest.param({"kind": "Pods", "metadata": {"name": "x"}}, "kind", "did you mean 'Pod'",
                 id="a plural kind is reported"),
    pytest.param({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                  "metadata": {"name": "x"}}, "kind", "not enforced",
                 id="a cilium policy is reported as not enforced"),
    pytest.param({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                  "metadata": {"name": "x"}}, "apiVersion", "not enforced",
                 id="a calico network policy is reported as not enforced"),
    pytest.param({"apiVersion": "extensions/v1beta1", "kind": "Deployment",
                  "metadata": {"name": "x"}}, "apiVersion", "use apps/v1",
                 id="a removed api version is rejected"),
])
def test_kind_and_api_version_problems(doc: dict[str, Any], path: str, problem: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        parse_document(doc)
    assert caught.value.path == path and problem in caught.value.problem


def test_a_missing_api_version_is_accepted_for_a_known_kind() -> None:
    doc = policy("a")
    del doc["apiVersion"]
    assert [p.name for p in parse_document(doc)] == ["a"]


# --- pods, namespaces, services, nodes ------------------------------------------------------------

def test_a_pod_reads_ip_node_ports_host_network_and_service_account() -> None:
    doc = pod("web", {"app": "web"},
              status={"podIP": "10.0.1.5"},
              spec={"nodeName": "node-1", "hostNetwork": False, "serviceAccountName": "api",
                    "containers": [
                        {"name": "a", "ports": [{"containerPort": 80, "name": "http"}]},
                        {"name": "b", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]})
    doc["metadata"].update(namespace="prod", uid="1234")
    assert parse_document(doc) == [Pod(
        namespace="prod", name="web", labels={"app": "web"}, ip="10.0.1.5", node_name="node-1",
        service_account="api", uid="1234",
        ports=(ContainerPort(80, Protocol.TCP, "http"), ContainerPort(53, Protocol.UDP)))]


def test_a_pod_defaults_namespace_and_service_account() -> None:
    [obj] = parse_document(pod("web"))
    assert isinstance(obj, Pod)
    assert (obj.namespace, obj.service_account, obj.ip, obj.host_network) == \
        ("default", "default", None, False)


@pytest.mark.parametrize("doc, path, problem", [
    pytest.param(pod("web", status={"podIP": "10.0.0.256"}), "status.podIP",
                 "must be a valid IP address", id="a pod ip that is not an ip is rejected"),
    pytest.param(pod("web", status={"podIP": 5}), "status.podIP", "must be a string",
                 id="a pod ip that is a number is a type error"),
    pytest.param(pod("Web"), "metadata.name", "RFC 1123 subdomain",
                 id="an uppercase pod name is rejected"),
    pytest.param(pod("web", {"a": "b c"}), "metadata.labels[a]", "label value",
                 id="a bad pod label value is rejected"),
    pytest.param(pod("web", spec={"containers": [{"ports": [{"containerPort": 70000}]}]}),
                 "spec.containers[0].ports[0].containerPort", "between 1 and 65535",
                 id="a container port out of range is rejected"),
    pytest.param(pod("web", spec={"containers": [{"ports": [{"containerPort": "80"}]}]}),
                 "spec.containers[0].ports[0].containerPort", "must be an integer",
                 id="a quoted container port is a type error"),
    pytest.param(pod("web", spec={"containers": [{"ports": [{"name": "x"}]}]}),
                 "spec.containers[0].ports[0].containerPort", "Required value",
                 id="a container port without number is rejected"),
    pytest.param(pod("web", spec={"containers": [{"ports": [{"containerPort": 1,
                                                             "name": "HTTP"}]}]}),
                 "spec.containers[0].ports[0].name", "lowercase",
                 id="an invalid container port name is rejected"),
    pytest.param(pod("web", spec={"containers": [
        {"ports": [{"containerPort": 1, "name": "p"}, {"containerPort": 2, "name": "p"}]}]}),
        "spec.containers[0].ports[1].name", "Duplicate value",
        id="a port name used twice in one container is rejected"),
    pytest.param(pod("web", spec={"containers": [{"ports": [{"containerPort": 1,
                                                             "protocol": "ICMP"}]}]}),
                 "spec.containers[0].ports[0].protocol", "Unsupported value",
                 id="an unsupported container protocol is rejected"),
    pytest.param(pod("web", spec={"hostNetwork": "yes"}), "spec.hostNetwork",
                 "must be a boolean", id="host network as a string is a type error"),
    pytest.param(pod("web", spec={"containers": "c"}), "spec.containers", "must be a list",
                 id="containers as a string is a type error"),
])
def test_invalid_pods(doc: dict[str, Any], path: str, problem: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        parse_document(doc)
    assert caught.value.kind == "Pod" and caught.value.path == path
    assert problem in caught.value.problem


def test_a_namespace_gets_its_name_label_as_the_api_server_sets_it() -> None:
    doc = {"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": "monitoring", "labels": {"type": "monitoring",
                                                         NAMESPACE_NAME_LABEL: "spoofed"}}}
    assert parse_document(doc) == [Namespace("monitoring", {"type": "monitoring",
                                                            NAMESPACE_NAME_LABEL: "monitoring"})]


def test_a_namespace_name_must_be_a_dns_label() -> None:
    with pytest.raises(InvalidObject) as caught:
        parse_document({"kind": "Namespace", "metadata": {"name": "a.b"}})
    assert caught.value.path == "metadata.name" and "RFC 1123 label" in caught.value.problem


def test_namespaces_used_but_not_declared_exist_with_their_name_label() -> None:
    declared = {"kind": "Namespace", "metadata": {"name": "prod", "labels": {"env": "prod"}}}
    objects, errors = objects_from_documents(
        [declared, pod("p"), policy("a", namespace="staging"), {**pod("q"), "metadata": {
            "name": "q", "namespace": "prod"}}])
    assert errors == []
    assert objects.namespaces == {
        "prod": Namespace("prod", {"env": "prod", NAMESPACE_NAME_LABEL: "prod"}),
        "default": Namespace("default", {NAMESPACE_NAME_LABEL: "default"}),
        "staging": Namespace("staging", {NAMESPACE_NAME_LABEL: "staging"}),
    }


def test_a_service_reads_selector_and_ports() -> None:
    doc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "kube-dns", "namespace": "kube-system"},
           "spec": {"selector": {"k8s-app": "kube-dns"}, "ports": [
               {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
               {"name": "metrics", "port": 8080}]}}
    assert parse_document(doc) == [Service(
        "kube-system", "kube-dns", {"k8s-app": "kube-dns"},
        (ServicePort(53, "dns", Protocol.UDP, "dns"),
         ServicePort(8080, 8080, Protocol.TCP, "metrics")))]


def test_a_service_name_must_start_with_a_letter() -> None:
    with pytest.raises(InvalidObject) as caught:
        parse_document({"kind": "Service", "metadata": {"name": "1web"}})
    assert caught.value.path == "metadata.name" and "RFC 1035" in caught.value.problem


def test_a_node_reads_its_internal_ips_of_both_families_and_pod_cidrs() -> None:
    doc = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": "node-1", "labels": {"zone": "a"}},
           "spec": {"podCIDR": "10.244.1.7/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
           "status": {"addresses": [{"type": "Hostname", "address": "node-1"},
                                    {"type": "InternalIP", "address": "fd00::1"},
                                    {"type": "InternalIP", "address": "192.168.1.10"},
                                    {"type": "InternalIP", "address": "fd00::2"}]}}
    assert parse_document(doc) == [Node("node-1", "192.168.1.10", "10.244.1.0/24", {"zone": "a"},
                                        ipv6="fd00::1",
                                        pod_cidrs=("10.244.1.0/24", "fd00:10:244:1::/64"))]


def test_a_node_with_a_bad_pod_cidr_is_rejected() -> None:
    with pytest.raises(InvalidObject) as caught:
        parse_document({"kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "x"}})
    assert str(caught.value).startswith("node n: spec.podCIDR: invalid CIDR")


# --- workloads ----------------------------------------------------------------------------------

def pods_of(doc: dict[str, Any]) -> list[Pod]:
    pods = parse_document(doc)
    assert all(isinstance(p, Pod) for p in pods)
    return pods  # type: ignore[return-value]


def test_a_deployment_gives_replicas_named_and_labelled_like_the_controller() -> None:
    pods = pods_of(workload("Deployment", "backend", replicas=3))
    assert len(pods) == 3 and len({p.name for p in pods}) == 3
    template_hash = pods[0].labels["pod-template-hash"]
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{10}", template_hash)
    for p in pods:
        assert re.fullmatch(rf"backend-{template_hash}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", p.name)
        assert p.labels == {"app": "backend", "pod-template-hash": template_hash}
        assert p.ports == (ContainerPort(8080, Protocol.TCP, "http"),) and p.ip is None


def test_reloading_a_workload_gives_the_same_pod_names() -> None:
    assert pods_of(workload("Deployment", "web", 2)) == pods_of(workload("Deployment", "web", 2))


def test_changing_the_template_changes_the_pod_template_hash() -> None:
    changed = workload("Deployment", "web", labels={"app": "web", "v": "2"})
    assert pods_of(workload("Deployment", "web"))[0].labels["pod-template-hash"] != \
        pods_of(changed)[0].labels["pod-template-hash"]


def test_a_statefulset_names_pods_by_ordinal() -> None:
    pods = pods_of(workload("StatefulSet", "db", replicas=2))
    assert [p.name for p in pods] == ["db-0", "db-1"]
    assert pods[1].labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert pods[1].labels["apps.kubernetes.io/pod-index"] == "1"
    assert pods[0].labels["controller-revision-hash"].startswith("db-")


def test_a_daemonset_without_nodes_gives_one_pod() -> None:
    [p] = pods_of(workload("DaemonSet", "agent"))
    assert re.fullmatch(r"agent-[a-z0-9]{5}", p.name)
    assert "controller-revision-hash" in p.labels and p.labels["pod-template-generation"] == "1"


def test_a_daemonset_gets_one_pod_on_each_declared_node() -> None:
    nodes = [{"kind": "Node", "metadata": {"name": n}} for n in ("n2", "n1")]
    objects, errors = objects_from_documents([workload("DaemonSet", "agent"), *nodes])
    assert errors == []
    assert sorted(p.node_name or "" for p in objects.pods.values()) == ["n1", "n2"]


def test_a_job_gets_controller_uid_and_job_name_labels() -> None:
    [p] = pods_of(workload("Job", "migrate"))
    uid = p.labels["batch.kubernetes.io/controller-uid"]
    assert p.labels["controller-uid"] == uid and re.fullmatch(r"[0-9a-f-]{36}", uid)
    assert p.labels["job-name"] == p.labels["batch.kubernetes.io/job-name"] == "migrate"
    assert re.fullmatch(r"migrate-[a-z0-9]{5}", p.name)


@pytest.mark.parametrize("kind", ["ReplicaSet", "ReplicationController"])
def test_replica_sets_name_pods_with_a_suffix(kind: str) -> None:
    pods = pods_of(workload(kind, "web", replicas=2))
    assert len(pods) == 2 and all(re.fullmatch(r"web-[a-z0-9]{5}", p.name) for p in pods)


def test_replicas_default_to_one_and_zero_gives_none() -> None:
    assert len(pods_of(workload("Deployment", "web"))) == 1
    assert pods_of(workload("Deployment", "web", replicas=0)) == []


def test_a_long_deployment_name_is_truncated_like_generate_name() -> None:
    [p] = pods_of(workload("Deployment", "a" * 60))
    assert len(p.name) == 63


@pytest.mark.parametrize("mutate, path, problem", [
    pytest.param(lambda d: d["spec"].update(replicas=-1), "spec.replicas", "greater than",
                 id="negative replicas are rejected"),
    pytest.param(lambda d: d["spec"].update(replicas=10**6), "spec.replicas", "at most",
                 id="absurd replica counts are rejected"),
    pytest.param(lambda d: d["spec"].update(replicas="2"), "spec.replicas", "must be an integer",
                 id="quoted replicas are a type error"),
    pytest.param(lambda d: d["spec"].pop("selector"), "spec.selector", "Required value",
                 id="a deployment without selector is rejected"),
    pytest.param(lambda d: d["spec"].update(selector={"matchLabels": {"app": "other"}}),
                 "spec.template.metadata.labels", "does not match",
                 id="a selector that does not match the template is rejected"),
    pytest.param(lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(
        containerPort=0), "spec.template.spec.containers[0].ports[0].containerPort",
        "between 1 and 65535", id="template ports are validated"),
])
def test_invalid_workloads(mutate: Any, path: str, problem: str) -> None:
    doc = workload("Deployment", "web")
    mutate(doc)
    with pytest.raises(InvalidObject) as caught:
        parse_document(doc)
    assert caught.value.kind == "Deployment" and caught.value.path == path
    assert problem in caught.value.problem


# --- the tutorial's manifests ------------------------------------------------------------------

def test_the_tutorial_manifests_load_without_errors() -> None:
    objects, errors = load_paths([TUTORIAL])
    assert errors == []
    assert sorted(p.split("/")[0] + "/" + p.split("/")[1].split("-")[0]
                  for p in objects.pods) == ["default/backend", "default/frontend",
                                             "kube-system/coredns", "monitoring/monitoring"]
    assert len(objects.policies) == 8
    assert objects.namespaces["monitoring"].labels["type"] == "monitoring"
    assert objects.namespaces["kube-system"].labels["contains"] == "coredns"
    assert set(objects.services) == {"default/backend", "kube-system/kube-dns"}


@pytest.mark.parametrize("file, name", [
    ("01-backend-ingress-deny.yaml", "backend-ingress-deny"),
    ("02-backend-ingress-allow-frontend.yaml", "backend-ingress-allow-frontend"),
    ("03-all-pods-allow-within-namespace.yaml", "all-pods-ingress-allow-within-namespace"),
    ("04-backend-ingress-allow-monitoring-namespace.yaml", "backend-ingress-allow-other-namespace"),
    ("05-backend-ingress-allow-monitoring-app.yaml", "backend-ingress-allow-monitoring-namespace"),
    ("06-frontend-egress-deny.yaml", "frontend-egress-deny"),
    ("07-frontend-egress-allow-to-backend.yaml", "frontend-egress-allow-to-backend"),
    ("08-all-pods-egress-allow-dns.yaml", "all-pods-egress-allow-dns"),
])
def test_each_tutorial_step_defines_its_policy(file: str, name: str) -> None:
    objects, errors = load_paths([TUTORIAL / file])
    assert errors == [] and list(objects.policies) == [f"default/{name}"]
    assert isinstance(objects.policies[f"default/{name}"], NetworkPolicy)


def test_the_backend_pod_declares_the_named_http_port() -> None:
    objects, _ = load_paths([TUTORIAL / "demo-app.yaml"])
    [backend] = [p for p in objects.pods.values() if p.labels.get("app") == "backend"]
    assert backend.named_port("http", Protocol.TCP) == 8080


@pytest.mark.parametrize("phase,has_ip", [("Running", True), ("Pending", True),
                                          ("Succeeded", False), ("Failed", False)])
def test_a_finished_pod_keeps_no_ip_because_another_pod_may_have_it(phase: str, has_ip: bool) -> None:
    from agent.k8s.loader import parse_document

    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "job-x", "namespace": "ns"},
           "spec": {"containers": [{"name": "c", "image": "x"}]},
           "status": {"phase": phase, "podIP": "10.0.0.7"}}
    [pod] = parse_document(doc)
    assert (pod.ip == "10.0.0.7") is has_ip
