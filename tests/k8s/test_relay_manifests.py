"""deploy/components/relay on the kind overlay: valid objects, the agents' TLS listener
and secret, the relay reaching them through the Peer Service, no API credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.test_manifests import DEPLOY, K8S_VERSIONS, agent_ds, by_kind, render_python

kubernetes_validate = pytest.importorskip("kubernetes_validate")


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    kdir = tmp_path_factory.mktemp("relay-overlay")
    (kdir / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [str(DEPLOY / "overlays" / "kind")],
        "components": [str(DEPLOY / "components" / "relay")]}))
    return render_python(Path(kdir))


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid(docs: list[dict[str, Any]], version: str) -> None:
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_agents_serve_observer_and_peer_on_4244_with_mutual_tls(
        docs: list[dict[str, Any]]) -> None:
    pod = agent_ds(docs)["spec"]["template"]["spec"]
    agent = pod["containers"][0]
    assert "--observer-listen=0.0.0.0:4244" in agent["args"]
    assert "--tls-client-ca=/etc/membrane/tls/ca.crt" in agent["args"]
    assert "--tls-client-name=membrane-relay" in agent["args"]
    assert {"name": "agent-tls", "secret": {"secretName": "membrane-agent-tls",
                                            "defaultMode": 0o400}} in pod["volumes"]
    assert any(p["containerPort"] == 4244 for p in agent["ports"])


def test_the_relay_finds_the_agents_through_the_peer_service_and_has_no_token(
        docs: list[dict[str, Any]]) -> None:
    (relay,) = [d for d in by_kind(docs, "Deployment")
                if d["metadata"]["name"] == "membrane-relay"]
    pod = relay["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    args = pod["containers"][0]["args"]
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    peer = services["membrane-peer"]
    assert f"--peer-service=membrane-peer.{peer['metadata']['namespace']}.svc:4244" in args
    assert peer["spec"]["selector"] == agent_ds(docs)["spec"]["selector"]["matchLabels"]
    assert services["membrane-relay"]["spec"]["ports"][0]["port"] == 4245
    assert "--tls-client-ca=/etc/membrane/tls/ca.crt" in args
    assert "--tls-client-name=membrane-client" in args
