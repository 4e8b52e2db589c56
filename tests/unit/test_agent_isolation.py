"""The agent over FakeDatapath when one part of the cluster cannot be enforced as asked:
what `endpoint get` and `status` say, and that nothing else waits for it."""

from __future__ import annotations

from dataclasses import replace

from agent.api.client import AgentClient
from agent.k8s.objects import LabelSelector, NetworkPolicy, PolicyType
from tests.unit.test_agent import cluster, push, running  # noqa: F401 (fixture)

HASH = "pod-template-hash"


def test_endpoint_get_shows_the_labels_left_out_of_the_identity_and_why(running) -> None:
    agent, source, _ = running
    objs = cluster()
    backend = objs.pods["default/backend"]
    objs.pods["default/backend"] = replace(backend, labels={**backend.labels, HASH: "7c9f"})
    push(source, objs, 2)
    assert agent.wait_for_revision(2, 5)
    ep = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    with AgentClient(agent.config.socket) as client:
        got = client.get_endpoint(endpoint_id=ep.id)
    assert f"k8s:{HASH}=7c9f" not in got.labels
    [left_out] = got.labels_left_out
    assert left_out.startswith(f"k8s:{HASH}=7c9f: one value per Deployment revision")
    # A policy selecting on the key puts it back: the spec's verdict needs it.
    objs.policies["default/this-rollout"] = NetworkPolicy(
        "default", "this-rollout", LabelSelector.of({HASH: "7c9f"}),
        frozenset({PolicyType.INGRESS}))
    push(source, objs, 3)
    assert agent.wait_for_revision(3, 5)
    with AgentClient(agent.config.socket) as client:
        got = client.get_endpoint(endpoint_id=ep.id)
    assert f"k8s:{HASH}=7c9f" in got.labels and not got.labels_left_out
    assert got.ingress_enforced
