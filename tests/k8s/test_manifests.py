"""deploy/: every manifest valid against the Kubernetes schemas, RBAC least privilege, and
the DaemonSet carrying what the datapath and the CNI chaining need.

Overlays are rendered with `kubectl kustomize` when kubectl is installed, otherwise with the
small renderer below, which does exactly what deploy/ uses of kustomize (resources,
components, namespace, labels, images, strategic-merge and JSON6902 patches); when both are
available a test checks that they agree, so the fallback cannot drift.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TARGETS = ["base", "overlays/kind", "overlays/minikube", "overlays/kind-etcd", "uninstall"]
# kind's node images run 1.29 and newer; validate against the oldest and the newest we know.
K8S_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}
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

def test_the_agent_may_only_read_pods_namespaces_nodes_and_networkpolicies() -> None:
    """... and the Network Policy API's three cluster-wide kinds."""
    docs = render("overlays/kind-etcd")
    (role,) = by_kind(docs, "ClusterRole")
    granted = set()
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert "*" not in rule["resources"] + rule["apiGroups"], rule
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule
        granted |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    npa = "policy.networking.k8s.io"
    assert granted == {("", "pods"), ("", "namespaces"), ("", "nodes"),
                       ("networking.k8s.io", "networkpolicies"),
                       (npa, "clusternetworkpolicies"), (npa, "adminnetworkpolicies"),
                       (npa, "baselineadminnetworkpolicies")}
    assert not by_kind(docs, "Role") and not by_kind(docs, "RoleBinding")
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": role["metadata"]["name"]}
    (sa,) = by_kind(docs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "membrane-system"}]
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


@pytest.mark.parametrize("target", ["overlays/kind", "overlays/minikube", "overlays/kind-etcd"])
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
    assert mounts["/lib/modules"]["readOnly"] is True
    assert mounts["/usr/src"]["readOnly"] is True
    assert mounts["/run/membrane"]["mountPath"] == "/run/membrane"
    assert "/etc/cni/net.d" not in mounts, "only the installer touches the CNI config"

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
                                              ("overlays/minikube", "1-k8s.conflist")])
def test_overlays_chain_into_their_cluster_cni(target: str, conflist: str) -> None:
    (config,) = by_kind(render(target), "ConfigMap")
    assert config["data"]["cni-source-conf"] == conflist
    assert config["data"]["cni-bin-dir"] == "/opt/cni/bin"


def test_the_etcd_overlay_points_agents_at_its_etcd_by_ip() -> None:
    docs = render("overlays/kind-etcd")
    (config,) = by_kind(docs, "ConfigMap")
    (svc,) = by_kind(docs, "Service")
    assert config["data"]["identity-backend"] == "etcd"
    port = svc["spec"]["ports"][0]["port"]
    assert config["data"]["etcd-endpoints"] == f"http://{svc['spec']['clusterIP']}:{port}"
    assert "--etcd=$(ETCD_ENDPOINTS)" in agent_ds(docs)["spec"]["template"]["spec"][
        "containers"][0]["args"]
    (etcd,) = by_kind(docs, "StatefulSet")
    assert etcd["spec"]["template"]["spec"]["hostNetwork"] is True
    assert "--etcd=$(ETCD_ENDPOINTS)" not in agent_ds(render("overlays/kind"))["spec"][
        "template"]["spec"]["containers"][0]["args"]


def test_the_image_provides_what_the_manifests_run() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:", dockerfile, re.M)
    assert "python3-bpfcc" in dockerfile and "--system-site-packages" in dockerfile
    assert "ARG " in dockerfile
    plugin = next(a.split("=", 1)[1] for a in next(
        c for c in agent_ds(render("overlays/kind"))["spec"]["template"]["spec"][
            "initContainers"] if c["name"] == "install-cni")["args"] if a.startswith("--plugin="))
    assert plugin in dockerfile
