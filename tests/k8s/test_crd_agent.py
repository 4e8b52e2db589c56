"""Two agents with `--identity-backend crd` on one (fake) API server: the identities of the
cluster's pods are MembraneIdentity objects, and both nodes program the same numbers.

The datapath is FakeDatapath (its ipcache is what is compared); the API server is the
fake, serving deploy/'s CRDs, read through a kubeconfig as on a real node.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from agent.config import AgentConfig
from agent.daemon import Agent
from agent.datapath.fake import FakeDatapath
from crd_cluster import claims, crd_server, identities
from fake_apiserver import FakeApiServer

Doc = dict[str, Any]
PODS = {"web": ("n1", "10.244.1.2"), "api": ("n2", "10.244.2.3"), "db": ("n2", "10.244.2.4")}


def pod(name: str, node: str, ip: str) -> Doc:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {"podIP": ip}}


def eventually(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with crd_server() as srv:
        srv.apply({"kind": "Namespace", "apiVersion": "v1",
                   "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name":
                                                           "shop"}}})
        for node in ("n1", "n2"):
            srv.apply({"kind": "Node", "apiVersion": "v1", "metadata": {"name": node}})
        for name, (node, ip) in PODS.items():
            srv.apply(pod(name, node, ip))
        yield srv


@pytest.fixture
def agents(server: FakeApiServer, tmp_path: Path) -> Iterator[dict[str, FakeDatapath]]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{server.url}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: fake, user: u}}}}]
current-context: c
""")
    running: list[Agent] = []
    datapaths = {}
    for node in ("n1", "n2"):
        datapath = FakeDatapath(node=node)
        config = AgentConfig(node=node, source="kubernetes", kubeconfig=str(kubeconfig),
                             identity_backend="crd", state_dir=tmp_path / node,
                             socket=str(tmp_path / f"{node}.sock"),
                             bpffs=str(tmp_path / node / "bpf"), datapath="fake")
        agent = Agent(config, datapath=datapath)
        agent.start()
        running.append(agent)
        datapaths[node] = datapath
    yield datapaths
    for agent in running:
        agent.stop()


def test_both_nodes_program_the_same_numbers_and_they_are_objects_in_the_api(
        server: FakeApiServer, agents: dict[str, FakeDatapath]) -> None:
    def numbers(node: str) -> dict[str, int]:
        ipcache = agents[node].cluster.ipcache
        return {name: ipcache.get(f"{ip}/32", 0) for name, (_, ip) in PODS.items()}

    eventually(lambda: all(n >= 256 for node in agents for n in numbers(node).values()),
               what="every pod's identity in both ipcaches")
    assert numbers("n1") == numbers("n2")
    stored = identities(server)
    for name, number in numbers("n1").items():
        assert f"k8s:app={name}" in stored[number]
    assert sorted(claims(server).values()) == sorted(numbers("n1").values())
    leases = {doc["spec"]["holderIdentity"] for doc in server.objects("Lease")}
    assert leases == {"n1", "n2"}
