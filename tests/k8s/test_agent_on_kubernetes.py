"""The agent on a (fake) Kubernetes API: pods, namespaces and policies flow from the
real `kubernetes` client's watch through the store and engine into map writes, through
dropped watches and 410 relists, with nothing lost and nothing left stale.

The API server is the only fake (none can run here), and it speaks the real wire
protocol; the agent reads it through a kubeconfig, as `membrane agent --kubeconfig` does.
The datapath is FakeDatapath: the map writes are what is checked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from agent.config import AgentConfig
from agent.daemon import Agent
from agent.datapath.fake import FakeDatapath
from agent.policy.mapstate import Direction
from agent.sources.k8s_watch import WatchSettings
from agent.sources.kubernetes import KubernetesSource
from fake_apiserver import FakeApiServer

Doc = dict[str, Any]


def namespace(name: str, **labels: str) -> Doc:
    return {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name, "labels": labels}}


def pod(name: str, ip: str, ns: str = "shop", **labels: str) -> Doc:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x",
                                                       "ports": [{"containerPort": 8080}]}]},
            "status": {"podIP": ip}}


def deny_ingress(name: str, **selector: str) -> Doc:
    return {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"]}}


def allow_from(name: str, target: str, source: str) -> Doc:
    return {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": target}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": source}}}]}]}}


def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    srv = FakeApiServer(port=0).start()
    srv.apply(namespace("shop"))
    srv.apply({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"},
               "spec": {"podCIDR": "10.244.1.0/24"},
               "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.11"}]}})
    srv.apply(pod("web", "10.244.1.2", app="web"))
    srv.apply(pod("api", "10.244.1.3", app="api"))
    yield srv
    srv.stop()


@pytest.fixture
def agent(server: FakeApiServer, tmp_path: Path) -> Iterator[tuple[Agent, FakeDatapath]]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{server.url}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: fake, user: u}}}}]
current-context: c
""")
    datapath = FakeDatapath(node="n1")
    config = AgentConfig(node="n1", source="kubernetes", kubeconfig=str(kubeconfig),
                         state_dir=tmp_path / "state", socket=str(tmp_path / "agent.sock"),
                         bpffs=str(tmp_path / "bpf"), datapath="fake")
    # As `membrane agent --source kubernetes --kubeconfig` builds it, with short watches
    # so restarts happen within the test.
    source = KubernetesSource(kubeconfig=config.kubeconfig, node_name=config.node,
                              settings=WatchSettings(watch_timeout=2, connect_timeout=2,
                                                     read_grace=3, backoff_initial=0.05,
                                                     backoff_cap=0.4))
    agent = Agent(config, datapath=datapath, source=source)
    agent.start()
    yield agent, datapath
    agent.stop()


def verdict(datapath: FakeDatapath, agent: Agent, dst: str, src_ip: str) -> bool:
    ep = agent.endpoints.by_pod(f"shop/{dst}")
    assert ep is not None
    return datapath.decide(ep.id, Direction.INGRESS, src_ip, 6, 8080)[0]


def test_pods_namespaces_and_policies_flow_through_to_map_writes(server, agent) -> None:  # type: ignore[no-untyped-def]
    agent_, datapath = agent
    api = agent_.register_endpoint("shop", "api", "lo", "10.244.1.3", timeout=10)
    assert api.state.value == "ready" and not api.ingress_enforced
    assert datapath.cluster.ipcache["10.244.1.2/32"] >= 256            # web, from the watch
    assert datapath.cluster.ipcache["172.18.0.11/32"] == 1             # this node: host
    server.apply(deny_ingress("deny-api", app="api"))
    eventually(lambda: api.ingress_enforced, what="deny-api enforced")
    assert not verdict(datapath, agent_, "api", "10.244.1.2")
    server.apply(allow_from("web-to-api", "api", "web"))
    eventually(lambda: verdict(datapath, agent_, "api", "10.244.1.2"), what="web allowed")
    server.apply(pod("intruder", "10.244.1.9", app="intruder"))
    eventually(lambda: "10.244.1.9/32" in datapath.cluster.ipcache, what="new pod in ipcache")
    assert not verdict(datapath, agent_, "api", "10.244.1.9")
    server.delete("NetworkPolicy", "web-to-api", "shop")
    eventually(lambda: not verdict(datapath, agent_, "api", "10.244.1.2"), what="allow removed")


def test_dropped_watches_and_410_relists_lose_nothing_and_leave_nothing_stale(server, agent) -> None:  # type: ignore[no-untyped-def]
    agent_, datapath = agent
    api = agent_.register_endpoint("shop", "api", "lo", "10.244.1.3", timeout=10)
    server.apply(deny_ingress("deny-api", app="api"))
    server.apply(allow_from("web-to-api", "api", "web"))
    eventually(lambda: verdict(datapath, agent_, "api", "10.244.1.2"), what="initial allow")
    # Changes while every watch is cut: they must arrive when the watches resume.
    server.drop_watches()
    server.apply(pod("batch", "10.244.1.7", app="web"))
    eventually(lambda: verdict(datapath, agent_, "api", "10.244.1.7"), what="change after drop")
    # An outage long enough for history to be compacted: the agent must relist (410) and
    # drop what was deleted meanwhile.
    server.stop()
    server.delete("NetworkPolicy", "web-to-api", "shop")
    server.delete("Pod", "batch", "shop")
    server.compact()
    server.start()
    eventually(lambda: not verdict(datapath, agent_, "api", "10.244.1.2"), timeout=20,
               what="deleted policy gone after the relist")
    eventually(lambda: "10.244.1.7/32" not in datapath.cluster.ipcache, what="deleted pod gone")
    assert api.ingress_enforced                                        # deny-api stayed
    assert any("410" in r.path or r.is_watch for r in server.requests)
