"""`policy suggest` on a lab, end to end: pods that each have their own labels, no
policies, a random set of real connections between them; the flows are read through the
lab's relay, the suggestion is written, and `policy matrix` over the pods and the
suggestion must allow every observed connection and deny at least 95% of the pod pairs
that were never seen, on the ports that were. `--diff` and the export file are checked
on the same flows."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.controller import Lab
from lab.netbuilder import pod_command
from tests.lab.agentlab import state_of
from tests.lab.conftest import needs_root, unique_lab_name

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

MEMBRANE = [sys.executable, "-m", "cli.main"]
PORTS = (80, 8080)
PODS = [("default", f"p{i}") for i in range(5)] + [("team", f"q{i}") for i in range(3)]
CONNECTIONS = 14
SEED = 15


def manifests() -> list[dict[str, object]]:
    docs: list[dict[str, object]] = [{"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": "team", "labels": {"team": "q"}}}]
    for ns, name in PODS:
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": name, "namespace": ns,
                                  "labels": {"app": name, "tier": f"tier-{name}"}},
                     "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [
                         {"containerPort": p, "protocol": "TCP"} for p in PORTS]}]}})
    return docs


def membrane(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMBRANE, *args], capture_output=True, text=True, timeout=120,
                          input=stdin)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path]]:
    needs_root()
    root = tmp_path_factory.mktemp("suggest")
    pods = root / "pods.yaml"
    pods.write_text(yaml.safe_dump_all(manifests()))
    lab = Lab(unique_lab_name("sug"))
    try:
        assert lab.up(2, [str(pods)])
        yield lab, pods
    finally:
        lab.down()


@pytest.fixture(scope="module")
def observed(cluster: tuple[Lab, Path]) -> set[tuple[str, str, int]]:
    """The random connections, made for real; every one succeeds (no policies)."""
    lab, _ = cluster
    state = state_of(lab)
    keys = [f"{ns}/{name}" for ns, name in PODS]
    rng = random.Random(SEED)
    wanted: set[tuple[str, str, int]] = set()
    while len(wanted) < CONNECTIONS:
        src, dst = rng.sample(keys, 2)
        wanted.add((src, dst, rng.choice(PORTS)))
    for src, dst, port in sorted(wanted):
        target = f"http://{state.pods[dst].ip}:{port}/"
        done = subprocess.run(pod_command(state.pods[src].netns, [
            "curl", "-s", "-o", "/dev/null", "--connect-timeout", "2", target]), timeout=20)
        assert done.returncode == 0, f"{src} -> {target}"
    time.sleep(2)   # the flows reach the agents' rings and the relay
    return wanted


def test_the_suggestion_allows_what_was_seen_and_denies_the_rest(
        cluster: tuple[Lab, Path], observed: set[tuple[str, str, int]],
        tmp_path: Path) -> None:
    lab, pods = cluster
    out = membrane("policy", "suggest", "--lab", lab.name, "-o", "yaml")
    assert out.returncode == 0, out.stderr
    assert f"all {len(observed)} observed connections stay allowed" in out.stderr
    suggested = list(yaml.safe_load_all(out.stdout))
    # Pods selected by their labels, namespaces by their name label: nothing else.
    keys = set()
    for doc in suggested:
        keys |= set(doc["spec"]["podSelector"]["matchLabels"])
        for rule in doc["spec"].get("ingress", []) + doc["spec"].get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                for selector in ("podSelector", "namespaceSelector"):
                    keys |= set(peer.get(selector, {}).get("matchLabels", {}))
    assert keys == {"app", "tier", "kubernetes.io/metadata.name"}
    policy_file = tmp_path / "suggested.yaml"
    policy_file.write_text(out.stdout)

    matrix = membrane("policy", "matrix", "-f", str(pods), "-f", str(policy_file),
                      *(a for p in PORTS for a in ("--port", str(p))), "-o", "json")
    assert matrix.returncode == 0, matrix.stderr
    verdicts = json.loads(matrix.stdout)["verdicts"]
    ours = {f"{ns}/{name}" for ns, name in PODS}
    verdicts = [v for v in verdicts if v["from"] in ours and v["to"] in ours]
    allowed = {(v["from"], v["to"], v["port"]) for v in verdicts if v["allowed"]}
    assert observed <= allowed, sorted(observed - allowed)
    unobserved = [v for v in verdicts if (v["from"], v["to"], v["port"]) not in observed]
    denied = sum(not v["allowed"] for v in unobserved)
    assert denied >= 0.95 * len(unobserved), (denied, len(unobserved),
                                               sorted(allowed - observed))


def test_diff_against_the_labs_policies_and_the_same_from_an_export(
        cluster: tuple[Lab, Path], observed: set[tuple[str, str, int]]) -> None:
    lab, _ = cluster
    out = membrane("policy", "suggest", "--lab", lab.name, "--diff", "-o", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["dropped_now"] == []           # no policies: nothing is dropped today
    assert result["adds"] == []                  # so the suggestion adds no access
    removed = {(r["from"], r["to"], r["port"]) for r in result["removes"]}
    assert removed and not removed & observed    # only access nobody used goes
    # The same flows through `observe -o json` piped in: the same policies.
    flows = membrane("observe", "--lab", lab.name, "--all", "-o", "json")
    assert flows.returncode == 0, flows.stderr
    piped = membrane("policy", "suggest", "--input-file", "-", stdin=flows.stdout)
    live = membrane("policy", "suggest", "--lab", lab.name)
    assert piped.returncode == 0, piped.stderr
    assert list(yaml.safe_load_all(piped.stdout)) == list(yaml.safe_load_all(live.stdout))
