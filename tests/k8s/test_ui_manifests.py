"""deploy/components/ui with the relay component on the kind overlay: valid objects, the
UI dialing the relay's Service with a client certificate, serving its page on a
ClusterIP Service only, with no API credentials; and the image carries its package."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.test_manifests import DEPLOY, K8S_VERSIONS, by_kind, render_python

kubernetes_validate = pytest.importorskip("kubernetes_validate")


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    kdir = tmp_path_factory.mktemp("ui-overlay")
    (kdir / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [str(DEPLOY / "overlays" / "kind")],
        "components": [str(DEPLOY / "components" / "relay"),
                       str(DEPLOY / "components" / "ui")]}))
    return render_python(Path(kdir))


def ui_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (ui,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "membrane-ui"]
    pod: dict[str, Any] = ui["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid(docs: list[dict[str, Any]], version: str) -> None:
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_ui_reads_the_relay_service_with_a_client_certificate(
        docs: list[dict[str, Any]]) -> None:
    pod = ui_pod(docs)
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"] == ["membrane", "ui"]
    relay = next(s for s in by_kind(docs, "Service") if s["metadata"]["name"] ==
                 "membrane-relay")
    port = relay["spec"]["ports"][0]["port"]
    assert f"--server=membrane-relay.{relay['metadata']['namespace']}.svc:{port}" in \
        container["args"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mount = container["volumeMounts"][0]["mountPath"]
    assert all(env[k].startswith(mount + "/") for k in
               ("MEMBRANE_TLS_CA", "MEMBRANE_TLS_CERT", "MEMBRANE_TLS_KEY"))
    assert pod["volumes"][0]["secret"]["secretName"] == "membrane-ui-tls"


def test_the_page_is_served_on_a_cluster_ip_service_only(docs: list[dict[str, Any]]) -> None:
    pod = ui_pod(docs)
    (container,) = pod["containers"]
    listen = next(a for a in container["args"] if a.startswith("--listen="))
    port = int(listen.rsplit(":", 1)[1])
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/status"
    service = next(s for s in by_kind(docs, "Service") if s["metadata"]["name"] ==
                   "membrane-ui")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "membrane-ui"}


def test_the_image_carries_every_package_the_cli_imports() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for package in ("core", "identity", "observe", "agent", "lab", "ui", "cli"):
        assert re.search(rf"^COPY {package}/ {package}/$", dockerfile, re.M), package
