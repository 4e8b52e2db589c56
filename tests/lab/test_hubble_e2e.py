"""Hubble's API end to end on a two-node lab with agents: Cilium's own client (generated
from the published protos) through the lab's relay, metrics read from a pod, the export
file against `observe`, and `observe --lab` through the relay."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from lab.controller import Lab
from observe.gen.observer import observer_pb2 as opb
from tests.interop.published import PublishedClient
from tests.lab.agentlab import curl, in_pod, pod_key, state_of, tutorial_lab
from tests.lab.conftest import needs_root

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

MEMBRANE = [sys.executable, "-m", "cli.main"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    needs_root()
    with tutorial_lab(tmp_path_factory.mktemp("hubble"), "hub") as lab:
        yield lab


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> PublishedClient:
    return PublishedClient.build(tmp_path_factory.mktemp("published"))


def membrane(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMBRANE, *args], capture_output=True, text=True, timeout=timeout)


def status(lab: Lab) -> dict[str, Any]:
    out = membrane("lab", "status", "--name", lab.name, "-o", "json")
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.fixture(scope="module")
def traffic(lab: Lab) -> None:
    """A denied pair and an allowed one, through the policies 01 and 02."""
    assert curl(lab, "not-frontend", "http://backend:8080/") != 0
    assert curl(lab, "frontend", "http://backend:8080/") == 0
    time.sleep(1)


def test_lab_status_names_the_relay_and_each_nodes_metrics(lab: Lab) -> None:
    st = status(lab)
    assert st["relay"] == f"unix:///run/membrane/labs/{lab.name}/relay.sock"
    assert Path(st["relay"][len("unix://"):]).exists()
    assert [n["metrics"] for n in st["nodes"]] == [
        f"http://{n['ip']}:9965/metrics" for n in st["nodes"]]


def test_hubbles_own_client_through_the_labs_relay(lab: Lab, traffic: None,
                                                   client: PublishedClient) -> None:
    target = status(lab)["relay"]
    server = client.run(target, "status")
    assert server["num_connected_nodes"] == 2 and int(server["num_flows"]) > 0
    nodes = client.run(target, "nodes")["nodes"]
    assert sorted((n["name"], n["state"]) for n in nodes) == [
        ("node1", "NODE_CONNECTED"), ("node2", "NODE_CONNECTED")]
    everything = [r["flow"] for r in client.run(target, "flows", {"number": 500}) if "flow" in r]
    assert {f["node_name"] for f in everything} == {"node1", "node2"}

    denied = [r["flow"] for r in client.run(target, "flows", {"number": 100, "whitelist": [
        {"source_label": ["app=not-frontend"], "destination_label": ["app=backend"],
         "verdict": ["DROPPED"]}]}) if "flow" in r]
    assert denied, "no DROPPED flow from not-frontend to backend"
    assert all(f["verdict"] == "DROPPED" for f in denied)
    drop = next(f for f in denied if f["event_type"]["type"] == 1)
    assert drop["drop_reason_desc"] == "POLICY_DENIED"
    assert "k8s:app=not-frontend" in drop["source"]["labels"]
    backend_node = state_of(lab).pods[pod_key(lab, "backend")].node
    assert drop["node_name"] == backend_node
    # Both policies select backend for ingress; neither allows not-frontend.
    assert sorted(p["name"] for p in drop["ingress_denied_by"]) == [
        "backend-ingress-allow-frontend", "backend-ingress-deny"]

    allowed = [r["flow"] for r in client.run(target, "flows", {"number": 100, "whitelist": [
        {"source_label": ["app=frontend"], "destination_label": ["app=backend"],
         "verdict": ["FORWARDED"], "protocol": ["tcp"]}]}) if "flow" in r]
    assert allowed and all("TCP" in f["l4"] for f in allowed)
    verdict = next(f for f in allowed if f["event_type"]["type"] == 9
                   and f["traffic_direction"] == "INGRESS")
    assert [p["name"] for p in verdict["ingress_allowed_by"]] == [
        "backend-ingress-allow-frontend"]

    follower = client.start_follow(target, {"whitelist": [
        {"source_label": ["app=not-frontend"], "verdict": ["DROPPED"]}]}, count=1, seconds=30)
    time.sleep(1.5)
    curl(lab, "not-frontend", "http://backend:8080/")
    followed = [r["flow"] for r in client.finish(follower) if "flow" in r]
    assert followed and followed[0]["verdict"] == "DROPPED"


METRICS = r"""
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
"""


def test_a_pod_reads_the_nodes_metrics_with_the_drop_and_its_source_pod(
        lab: Lab, traffic: None) -> None:
    backend_node = state_of(lab).pods[pod_key(lab, "backend")].node
    url = next(n["metrics"] for n in status(lab)["nodes"] if n["name"] == backend_node)
    reader = in_pod(lab, pod_key(lab, "frontend"), METRICS, url)
    out, _ = reader.communicate(timeout=30)
    assert reader.returncode == 0, out
    drops = [line for line in out.splitlines() if line.startswith("hubble_drop_total{")]
    source = pod_key(lab, "not-frontend")
    assert any('reason="POLICY_DENIED"' in line and f'source="{source}"' in line
               for line in drops), drops
    assert any(line.startswith("hubble_flows_processed_total{") for line in out.splitlines())


def test_the_export_file_holds_hubble_records_of_what_observe_shows(lab: Lab,
                                                                     traffic: None) -> None:
    node = state_of(lab).pods[pod_key(lab, "backend")].node
    path = Path(state_of(lab).root) / "nodes" / node / "flows.json"
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    records = [json_format.Parse(line, opb.ExportEvent())
               for line in path.read_text().splitlines()]
    exported = {(r.time.ToNanoseconds(), r.flow.IP.source, r.flow.IP.destination)
                for r in records if r.HasField("flow") and r.flow.verdict == 2}
    shown = membrane("observe", "--lab", lab.name, "--node", node, "--all", "-o", "json",
                     "--verdict", "DROPPED")
    assert shown.returncode == 0, shown.stderr
    observed = {(json_format.Parse(line, opb.GetFlowsResponse()).time.ToNanoseconds(),
                 json.loads(line)["flow"]["IP"]["source"],
                 json.loads(line)["flow"]["IP"]["destination"])
                for line in shown.stdout.splitlines() if '"flow"' in line}
    assert observed and observed <= exported
    replay = membrane("observe", "--input-file", str(path), "--verdict", "DROPPED",
                      "--from-label", "app=not-frontend", "-o", "json")
    assert replay.returncode == 0 and replay.stdout.strip()


def test_observe_lab_reads_every_node_through_the_relay_and_node_reads_one(
        lab: Lab, traffic: None) -> None:
    every = membrane("observe", "--lab", lab.name, "--last", "200", "--print-node-name")
    assert every.returncode == 0, every.stderr
    nodes = set(re.findall(r"^\S+ +\d+ [\d:.]+ \[(node\d)\]: ", every.stdout, re.M))
    assert nodes == {"node1", "node2"}, every.stdout[-2000:]
    one = membrane("observe", "--lab", lab.name, "--node", "node2", "--last", "200",
                   "--print-node-name")
    assert set(re.findall(r"\[(node\d)\]: ", one.stdout)) == {"node2"}
    policies = membrane("observe", "--lab", lab.name, "--last", "200", "--print-policy-names",
                        "--from-label", "app=frontend", "--to-label", "app=backend",
                        "--type", "policy-verdict")
    assert "ALLOWED BY default/backend-ingress-allow-frontend" in policies.stdout, \
        policies.stdout
    st = membrane("observe", "status", "--lab", lab.name)
    assert "Connected Nodes: 2/2" in st.stdout, st.stdout + st.stderr
