"""A cluster for the crd identity backend: the fake API server serving deploy/'s CRDs.

    with crd_server() as server:
        api = api_client(server)
        allocator = CrdAllocator(api, "node1", NAMESPACE)
        expire_lease(server, "node1")      # the node's Lease ends, as if it stopped renewing

The CRDs are read from deploy/base/crds.yaml, so every object an agent writes is checked
against the schema that ships (the fake refuses what the real API server would reject or
silently prune).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from fake_apiserver import FakeApiServer
from identity.crd_objects import lease_name

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "deploy" / "base" / "crds.yaml"
NAMESPACE = "membrane-system"


def crd_manifests() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(CRDS.read_text()) if doc]


def crd_server(port: int = 0) -> FakeApiServer:
    """A fake API server (not started) that serves membraneidentities and their claims."""
    server = FakeApiServer(port)
    for crd in crd_manifests():
        server.register_crd(crd)
    return server


def api_client(server: FakeApiServer) -> client.ApiClient:
    configuration = client.Configuration(host=server.url)
    configuration.retries = 0     # an outage is an answer at once, not three retries
    return client.ApiClient(configuration)


def expire_lease(server: FakeApiServer, node: str, namespace: str = NAMESPACE) -> None:
    assert server.delete("Lease", lease_name(node), namespace), f"{node} holds no Lease"


def identities(server: FakeApiServer) -> dict[int, list[str]]:
    """number -> labels of every MembraneIdentity stored."""
    return {int(doc["metadata"]["name"]): doc["spec"]["labels"]
            for doc in server.objects("MembraneIdentity")}


def claims(server: FakeApiServer) -> dict[str, int]:
    """label set (as ';'-joined labels) -> number, for every claim stored."""
    return {";".join(doc["spec"]["labels"]): doc["spec"]["identity"]
            for doc in server.objects("MembraneIdentityClaim")}
