"""deploy/: every manifest valid against the Kubernetes schemas, RBAC least privilege, the
identity CRDs sound (structural schemas that accept exactly what identity/crd.py writes),
and the DaemonSet carrying what the datapath and the CNI chaining need -- and nothing from
the node's /lib/modules or /usr/src, so a default kind cluster runs it.

Overlays are rendered with `kubectl kustomize` when kubectl is installed, otherwise with the
small renderer below, which does exactly what deploy/ uses of kustomize (resources,
components, namespace, labels, images, strategic-merge and JSON6902 patches); when both are
available a test checks that they agree, so the fallback cannot drift.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from identity import crd_objects as crd
from identity.labels import LabelSet

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TARGETS = ["base", "overlays/kind", "overlays/kind-dual-stack", "overlays/minikube",
           "overlays/kind-etcd", "uninstall"]
# The one cluster config deploy/ ships: kind's, to make a cluster dual-stack (not a
# Kubernetes object; kustomize never reads it).
KIND_DUAL_STACK = DEPLOY / "overlays" / "kind-dual-stack" / "kind-cluster.yaml"
# kind's node images run 1.29 and newer; validate against the oldest and the newest we know.
K8S_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
                  "CustomResourceDefinition"}
NOT_KUBERNETES = {"kustomization.yaml"}


# -- a small kustomize -----------------------------------------------------------------------

def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _smp(base: Any, patch: Any) -> Any:
    """Strategic merge as deploy/ needs it: maps merge, lists of named maps merge by name,
    other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _smp(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and patch
            and all(isinstance(i, dict) and "name" in i for i in base + patch)):
        # as kustomize orders them: the patch's items first, then the base's others
        olds = {b["name"]: b for b in base}
        merged = [_smp(olds[i["name"]], i) if i["name"] in olds else copy.deepcopy(i)
                  for i in patch]
        patched = {i["name"] for i in patch}
        return merged + [copy.deepcopy(b) for b in base if b["name"] not in patched]
    return copy.deepcopy(patch)


def _json6902(doc: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    for op in ops:
        *parents, last = [p for p in op["path"].split("/")[1:]]
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "add" and isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), op["value"])
        elif op["op"] in ("add", "replace"):
            node[int(last) if isinstance(node, list) else last] = op["value"]
        else:
            raise NotImplementedError(op["op"])


def _matches(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    return (doc["kind"] == target.get("kind", doc["kind"])
            and doc["metadata"]["name"] == target.get("name", doc["metadata"]["name"]))


def _apply(docs: list[dict[str, Any]], kdir: Path, kust: dict[str, Any]) -> list[dict[str, Any]]:
    for patch in kust.get("patches", []):
        body = yaml.safe_load((kdir / patch["path"]).read_text())
        if isinstance(body, list):  # JSON6902
            for doc in docs:
                if _matches(doc, patch["target"]):
                    _json6902(doc, body)
        else:
            docs = [_smp(d, body) if _matches(d, {"kind": body["kind"],
                                                  "name": body["metadata"]["name"]}) else d
                    for d in docs]
    if "namespace" in kust:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kust["namespace"]
        for doc in docs:
            for subject in doc.get("subjects", []):
                if subject.get("kind") == "ServiceAccount":
                    subject["namespace"] = kust["namespace"]
    for label in kust.get("labels", []):
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in kust.get("images", []):
        for doc in docs:
            pod = doc.get("spec", {}).get("template", {}).get("spec", {})
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                if c["image"].split(":")[0] == image["name"]:
                    c["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return docs


def render_python(kdir: Path) -> list[dict[str, Any]]:
    kust = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for res in kust.get("resources", []):
        path = kdir / res
        docs += render_python(path) if path.is_dir() else _docs(path)
    for comp in kust.get("components", []):
        ckust = yaml.safe_load((kdir / comp / "kustomization.yaml").read_text())
        for res in ckust.get("resources", []):
            docs += _docs(kdir / comp / res)
        docs = _apply(docs, kdir / comp, ckust)
    return _apply(docs, kdir, kust)


def render_kubectl(kdir: Path) -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(kdir)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def render(target: str) -> list[dict[str, Any]]:
    kdir = DEPLOY / target
    return render_kubectl(kdir) if shutil.which("kubectl") else render_python(kdir)


def _key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def agent_ds(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (ds,) = [d for d in by_kind(docs, "DaemonSet") if d["metadata"]["name"] == "membrane-agent"]
    return ds


# -- schemas ---------------------------------------------------------------------------------

def _resource_files() -> list[Path]:
    """Every file kustomize reads as a whole object (patches are checked once applied)."""
    files = []
    for kfile in DEPLOY.rglob("kustomization.yaml"):
        for res in yaml.safe_load(kfile.read_text()).get("resources", []):
            if (kfile.parent / res).is_file():
                files.append((kfile.parent / res).resolve())
    files += DEPLOY.glob("tutorial/*.yaml")  # the tutorial's app for real clusters
    return sorted(set(files))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schema(target: str,
                                                                     version: str) -> None:
    docs = render(target)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("path", _resource_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_resource_file_is_valid_on_its_own(path: Path) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("target", TARGETS)
def test_the_fallback_renderer_agrees_with_kustomize(target: str) -> None:
    ours = sorted(render_python(DEPLOY / target), key=_key)
    theirs = sorted(render_kubectl(DEPLOY / target), key=_key)
    assert ours == theirs


# -- RBAC ------------------------------------------------------------------------------------

def _grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, checking no rule is broader than a list of names."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "*" not in rule["resources"] + rule["apiGroups"] + rule["verbs"], rule
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


# What the agent may do: read what policy depends on; write its identities (crd.py).
CLUSTER_GRANTS = {
    ("", "pods"): {"get", "list", "watch"},
    ("", "namespaces"): {"get", "list", "watch"},
    ("", "nodes"): {"get", "list", "watch"},
    ("networking.k8s.io", "networkpolicies"): {"get", "list", "watch"},
    # The Network Policy API's cluster-wide tiers (docs/cluster-policies.md).
    ("policy.networking.k8s.io", "clusternetworkpolicies"): {"get", "list", "watch"},
    ("policy.networking.k8s.io", "adminnetworkpolicies"): {"get", "list", "watch"},
    ("policy.networking.k8s.io", "baselineadminnetworkpolicies"): {"get", "list", "watch"},
    ("membrane.io", "membraneidentities"): {"get", "list", "create", "update", "delete"},
    ("membrane.io", "membraneidentityclaims"): {"get", "create", "delete"},
}
NAMESPACE_GRANTS = {("coordination.k8s.io", "leases"): {"get", "list", "create", "update",
                                                         "delete"}}


def test_the_agent_reads_what_policy_needs_and_writes_only_its_identities() -> None:
    docs = render("overlays/kind")
    (role,) = by_kind(docs, "ClusterRole")
    assert _grants(role) == CLUSTER_GRANTS
    (ns_role,) = by_kind(docs, "Role")
    assert ns_role["metadata"]["namespace"] == "membrane-system"
    assert _grants(ns_role) == NAMESPACE_GRANTS
    (sa,) = by_kind(docs, "ServiceAccount")
    subject = {"kind": "ServiceAccount", "name": sa["metadata"]["name"],
               "namespace": "membrane-system"}
    for binding_kind, role_doc in (("ClusterRoleBinding", role), ("RoleBinding", ns_role)):
        (binding,) = by_kind(docs, binding_kind)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                      "kind": role_doc["kind"],
                                      "name": role_doc["metadata"]["name"]}
        assert binding["subjects"] == [subject]
    assert binding["metadata"]["namespace"] == "membrane-system"
    assert agent_ds(docs)["spec"]["template"]["spec"]["serviceAccountName"] == \
        sa["metadata"]["name"]


def test_nothing_else_gets_api_credentials() -> None:
    for target in ("overlays/kind-etcd", "uninstall"):
        for doc in render(target):
            if doc["kind"] in ("StatefulSet",) or doc["metadata"]["name"] == \
                    "membrane-cni-uninstall":
                assert doc["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


# -- the DaemonSet ---------------------------------------------------------------------------

def _mounts(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """host path -> the volumeMount of it in this container."""
    host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    return {host[m["name"]]: m for m in container.get("volumeMounts", []) if m["name"] in host}


@pytest.mark.parametrize("target", ["overlays/kind", "overlays/kind-dual-stack",
                                    "overlays/minikube", "overlays/kind-etcd"])
def test_the_daemonset_has_what_the_datapath_needs(target: str) -> None:
    docs = render(target)
    ds = agent_ds(docs)
    pod = ds["spec"]["template"]["spec"]
    (agent,) = [c for c in pod["containers"] if c["name"] == "agent"]
    assert pod["hostNetwork"] is True and pod.get("hostPID", False) is False
    assert pod["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists"} in pod["tolerations"]
    assert ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"

    caps = set(agent["securityContext"].get("capabilities", {}).get("add", []))
    assert agent["securityContext"].get("privileged") or \
        {"BPF", "NET_ADMIN", "SYS_ADMIN", "PERFMON"} <= caps

    mounts = _mounts(agent, pod)
    assert mounts["/sys/fs/bpf"]["mountPropagation"] == "Bidirectional"
    assert mounts["/run/membrane"]["mountPath"] == "/run/membrane"
    assert "/etc/cni/net.d" not in mounts, "only the installer touches the CNI config"
    # The kernel headers come with the image: nothing of the node's.
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert not {p for p in host_paths if p.startswith(("/lib/modules", "/usr/src"))}
    # Every host path is one any node has or may be created: no cluster config needed.
    assert all(v["hostPath"].get("type") in ("Directory", "DirectoryOrCreate")
               for v in pod["volumes"] if "hostPath" in v)
    assert host_paths <= {"/sys/fs/bpf", "/run/membrane", "/var/lib/membrane",
                          "/etc/cni/net.d", "/opt/cni/bin"}
    assert "BCC_KERNEL_SOURCE" not in {e["name"] for e in agent["env"]}, \
        "the agent points bcc at its headers itself"

    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert "--node=$(NODE_NAME)" in agent["args"] and "--source=kubernetes" in agent["args"]
    assert "--socket=/run/membrane/agent.sock" in agent["args"]

    (config,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] ==
                 "membrane-config"]
    health = int(config["data"]["health-port"])
    assert "--health-port=$(HEALTH_PORT)" in agent["args"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/healthz")):
        assert agent[probe]["httpGet"]["path"] == path
        assert agent[probe]["httpGet"]["port"] == health

    (install,) = [c for c in pod["initContainers"] if c["name"] == "install-cni"]
    imounts = _mounts(install, pod)
    assert {"/etc/cni/net.d", "/opt/cni/bin"} <= set(imounts)
    assert install["command"][-3:] == ["-m", "agent.cni.installer", "install"]


@pytest.mark.parametrize("target", TARGETS + ["overlays/kind-etcd"])
def test_every_config_key_the_pods_read_exists(target: str) -> None:
    docs = render(target)
    data = {c["metadata"]["name"]: c["data"] for c in by_kind(docs, "ConfigMap")}
    for workload in by_kind(docs, "DaemonSet") + by_kind(docs, "StatefulSet"):
        pod = workload["spec"]["template"]["spec"]
        for c in pod["containers"] + pod.get("initContainers", []):
            assert ":" in c["image"] and not c["image"].startswith("membrane-agent"), c["image"]
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    assert ref["key"] in data[ref["name"]], (c["name"], ref)
            used = set(re.findall(r"\$\((\w+)\)", " ".join(c.get("args", []) +
                                                             c.get("command", []))))
            assert used <= {e["name"] for e in c.get("env", [])}, (c["name"], used)


@pytest.mark.parametrize("target, conflist", [("overlays/kind", "10-kindnet.conflist"),
                                              ("overlays/kind-dual-stack", "10-kindnet.conflist"),
                                              ("overlays/minikube", "1-k8s.conflist")])
def test_overlays_chain_into_their_cluster_cni(target: str, conflist: str) -> None:
    (config,) = by_kind(render(target), "ConfigMap")
    assert config["data"]["cni-source-conf"] == conflist
    assert config["data"]["cni-bin-dir"] == "/opt/cni/bin"


@pytest.mark.parametrize("target, backend", [("base", "crd"), ("overlays/kind", "crd"),
                                             ("overlays/kind-dual-stack", "crd"),
                                             ("overlays/minikube", "crd"),
                                             ("overlays/kind-etcd", "etcd")])
def test_identities_live_in_the_api_server_unless_etcd_is_chosen(target: str,
                                                                 backend: str) -> None:
    docs = render(target)
    (config,) = by_kind(docs, "ConfigMap")
    assert config["data"]["identity-backend"] == backend
    assert "--identity-backend=$(IDENTITY_BACKEND)" in agent_ds(docs)["spec"]["template"][
        "spec"]["containers"][0]["args"]
    crds = {d["metadata"]["name"] for d in by_kind(docs, "CustomResourceDefinition")}
    assert crds == {f"{crd.IDENTITIES}.{crd.GROUP}", f"{crd.CLAIMS}.{crd.GROUP}"}


def test_no_overlay_needs_a_special_cluster() -> None:
    """A default `kind create cluster` (and any minikube driver) runs the overlays: no
    cluster config with extraMounts ships, and no manifest names the node's headers. The
    one kind config there is makes a cluster dual-stack, nothing else."""
    for path in DEPLOY.rglob("*.yaml"):
        text = path.read_text()
        assert "extraMounts" not in text, path
        assert "kind.x-k8s.io" not in text or path == KIND_DUAL_STACK, path
        for doc in _docs(path):
            assert "/usr/src" not in str(doc) and "/lib/modules" not in str(doc), path


def _flags(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args if "=" in a)


def test_the_etcd_component_keeps_etcd_off_the_pod_network_behind_mutual_tls() -> None:
    docs = render("overlays/kind-etcd")
    assert not [s for s in by_kind(docs, "Service") if "etcd" in s["metadata"]["name"]], \
        "a ClusterIP is an address pods are meant to use"
    (etcd,) = by_kind(docs, "StatefulSet")
    pod = etcd["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    (container,) = pod["containers"]
    flags = _flags(container["command"])
    # clients: https on the node's own IP only, certificates of this etcd's CA required
    assert flags["--listen-client-urls"] == "https://$(NODE_IP):12379"
    assert "--client-cert-auth" in container["command"]
    assert flags["--trusted-ca-file"].startswith("/etc/membrane-etcd/tls/")
    # everything else on loopback: peers, and health for the probes
    for name in ("--listen-peer-urls", "--initial-advertise-peer-urls",
                 "--listen-metrics-urls"):
        assert flags[name].startswith("http://127.0.0.1:"), name
    metrics_port = int(flags["--listen-metrics-urls"].rsplit(":", 1)[1])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["host"] == "127.0.0.1"
        assert container[probe]["httpGet"]["port"] == metrics_port
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"tls": "membrane-etcd-server"}


def test_the_etcd_overlay_gives_agents_the_client_certificate_and_tls_options() -> None:
    docs = render("overlays/kind-etcd")
    (config,) = by_kind(docs, "ConfigMap")
    data = config["data"]
    assert data["identity-backend"] == "etcd"
    pod = agent_ds(docs)["spec"]["template"]["spec"]
    agent = pod["containers"][0]
    env = {e["name"]: e["valueFrom"] for e in agent["env"] if "valueFrom" in e}
    expected = {"--etcd": "ETCD_CLIENT_ENDPOINTS", "--etcd-ca": "ETCD_CA_FILE",
                "--etcd-cert": "ETCD_CERT_FILE", "--etcd-key": "ETCD_KEY_FILE",
                "--etcd-user": "ETCD_USER", "--etcd-password-file": "ETCD_PASSWORD_FILE"}
    assert {k: v for k, v in _flags(agent["args"]).items() if k.startswith("--etcd")} == \
        {flag: f"$({var})" for flag, var in expected.items()}
    # the address comes with the certificates it is valid for; the files are options
    assert env["ETCD_CLIENT_ENDPOINTS"] == {
        "secretKeyRef": {"name": "membrane-etcd-client", "key": "endpoints"}}
    mount = next(m for m in agent["volumeMounts"] if m["name"] == "etcd-client")
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == "etcd-client")
    assert volume["secret"] == {"secretName": "membrane-etcd-client", "defaultMode": 0o400}
    for key in ("etcd-ca-file", "etcd-cert-file", "etcd-key-file"):
        assert data[key].startswith(mount["mountPath"] + "/"), key
    assert data["etcd-user"] == data["etcd-password-file"] == ""
    assert not [a for a in agent_ds(render("overlays/kind"))["spec"]["template"]["spec"][
        "containers"][0]["args"] if a.startswith("--etcd")]


def test_the_image_provides_what_the_manifests_run() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:", dockerfile, re.M)
    assert "python3-bpfcc" in dockerfile and "--system-site-packages" in dockerfile
    # The kernel headers bcc compiles against ship in the image (Debian's, every arch).
    assert '"linux-headers-$(dpkg --print-architecture)"' in dockerfile
    assert re.search(r"^COPY --from=headers /usr/src/ /usr/src/$", dockerfile, re.M)
    assert "ARG " in dockerfile
    plugin = next(a.split("=", 1)[1] for a in next(
        c for c in agent_ds(render("overlays/kind"))["spec"]["template"]["spec"][
            "initContainers"] if c["name"] == "install-cni")["args"] if a.startswith("--plugin="))
    assert plugin in dockerfile


# -- the identity CRDs ------------------------------------------------------------------------

def _crds() -> dict[str, dict[str, Any]]:
    """kind -> CustomResourceDefinition, from the file the base ships."""
    return {d["spec"]["names"]["kind"]: d for d in _docs(DEPLOY / "base" / "crds.yaml")}


def _schema(kind: str) -> dict[str, Any]:
    (version,) = _crds()[kind]["spec"]["versions"]
    assert version["name"] == crd.VERSION and version["served"] and version["storage"]
    return dict(version["schema"]["openAPIV3Schema"])


def _structural_errors(node: dict[str, Any], path: str = "") -> list[str]:
    """What makes a CRD schema non-structural (apiextensions' rules, the ones we can
    meet): a type on every node, no properties and additionalProperties together, and
    metadata restricted to being an object."""
    errors = []
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        errors.append(f"{path or '/'}: no type")
    if "properties" in node and "additionalProperties" in node:
        errors.append(f"{path}: properties and additionalProperties together")
    for key in ("allOf", "anyOf", "oneOf", "not", "$ref"):
        if key in node:
            errors.append(f"{path}: {key} needs care in a structural schema")
    for name, child in node.get("properties", {}).items():
        if path == "" and name == "metadata" and set(child) - {"type", "description"}:
            errors.append("metadata: only type object is allowed at the root")
        errors += _structural_errors(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            errors += _structural_errors(node[key], f"{path}[{key}]")
    return errors


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema refusing unknown fields, where the API server would prune them."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for child in list(node.get("properties", {}).values()) + [
                    node.get("items"), node.get("additionalProperties")]:
                walk(child)
    walk(out)
    return out


@pytest.mark.parametrize("kind", [crd.IDENTITY_KIND, crd.CLAIM_KIND])
def test_the_crds_are_what_the_allocator_uses(kind: str) -> None:
    definition = _crds()[kind]
    spec = definition["spec"]
    plural = {crd.IDENTITY_KIND: crd.IDENTITIES, crd.CLAIM_KIND: crd.CLAIMS}[kind]
    assert definition["metadata"]["name"] == f"{plural}.{crd.GROUP}"
    assert (spec["group"], spec["scope"], spec["names"]["plural"]) == (crd.GROUP, "Cluster",
                                                                       plural)
    (version,) = spec["versions"]
    assert "subresources" not in version, "status is written with the object, under its guard"


@pytest.mark.parametrize("kind", [crd.IDENTITY_KIND, crd.CLAIM_KIND])
def test_the_crd_schemas_are_structural_and_valid_json_schema(kind: str) -> None:
    schema = _schema(kind)
    assert _structural_errors(schema) == []
    jsonschema.Draft7Validator.check_schema(schema)


WEB = LabelSet.parse(["k8s:io.kubernetes.pod.namespace=shop", "k8s:app=web", "k8s:flag",
                      "k8s:io.cilium.k8s.namespace.labels.team=a=b"])


def _samples() -> list[tuple[str, dict[str, Any]]]:
    """Objects exactly as identity/crd.py writes them, in each state."""
    fresh = crd.identity_object(300, WEB, {"kind-worker": "5c0ffee0-uid"})
    unused = copy.deepcopy(fresh)
    unused["status"] = {"references": {}, "unused": crd.unused_marker(1.7e9, "kind-worker")}
    return [("fresh identity", fresh), ("identity in its grace period", unused),
            ("claim", crd.claim_object(WEB, 300, "5c0ffee0-uid"))]


@pytest.mark.parametrize("name, sample", _samples(), ids=[n for n, _ in _samples()])
def test_what_the_allocator_writes_validates_against_the_crd_schema(
        name: str, sample: dict[str, Any]) -> None:
    schema = _strict(_schema(sample["kind"]))
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(
        sample)


@pytest.mark.parametrize("broken", [
    {"spec": {"labels": []}},                                   # an empty label set
    {"spec": {"labels": ["app=web"]}},                          # no source
    {"spec": {"labels": ["k8s:app=web"], "extra": 1}},          # unknown field
    {"status": {"references": {"n1": 7}}},                      # not a Lease uid
    {"status": {"unused": {"since": "now"}}},                   # marker incomplete
], ids=["empty", "no-source", "unknown-field", "reference-type", "marker-incomplete"])
def test_the_identity_schema_refuses_what_the_allocator_never_writes(
        broken: dict[str, Any]) -> None:
    sample = copy.deepcopy(_samples()[0][1])
    for key, value in broken.items():
        sample[key] = value
    validator = jsonschema.Draft7Validator(_strict(_schema(crd.IDENTITY_KIND)))
    assert list(validator.iter_errors(sample))


def test_the_dual_stack_kind_cluster_gives_pods_and_services_both_families() -> None:
    (config,) = _docs(KIND_DUAL_STACK)
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    networking = config["networking"]
    assert networking["ipFamily"] == "dual"
    for key in ("podSubnet", "serviceSubnet"):
        families = sorted(ipaddress.ip_network(c).version for c in networking[key].split(","))
        assert families == [4, 6], key
    assert set(config) <= {"kind", "apiVersion", "networking", "nodes"}


def test_the_dual_stack_overlay_is_the_kind_overlay_under_its_own_cluster_name() -> None:
    kind, dual = render("overlays/kind"), render("overlays/kind-dual-stack")
    (kind_config,) = by_kind(kind, "ConfigMap")
    (dual_config,) = by_kind(dual, "ConfigMap")
    assert dual_config["data"] == {**kind_config["data"], "cluster-name": "kind-dual-stack"}
    others = [d for d in dual if d["kind"] != "ConfigMap"]
    assert others == [d for d in kind if d["kind"] != "ConfigMap"]
