"""Observability end to end: real packets on a lab, seen through `membrane observe`,
`membrane endpoint list` and `membrane status`, as a person uses them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from lab.controller import Lab
from lab.netbuilder import pod_command
from tests.lab.agentlab import in_pod, pod_ip, restart_agent, state_of
from tests.lab.conftest import needs_root, unique_lab_name

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

TUTORIAL = Path(__file__).resolve().parents[2] / "demo" / "tutorial"
MEMBRANE = [sys.executable, "-m", "cli.main"]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    needs_root()
    lab = Lab(unique_lab_name("obs"))
    try:
        assert lab.up(1, [str(TUTORIAL / "demo-app.yaml")])
        yield lab
    finally:
        lab.down()


def membrane(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMBRANE, *args], capture_output=True, text=True, timeout=timeout)


def pod_key(lab: Lab, app: str) -> str:
    for key in state_of(lab).pods:
        if key.split("/")[1].startswith(app + "-"):
            return key
    raise KeyError(app)


def curl(lab: Lab, client: str, target: str) -> int:
    netns = state_of(lab).pods[pod_key(lab, client)].netns
    return subprocess.run(pod_command(netns, ["curl", "-s", "-o", "/dev/null",
                                              "--connect-timeout", "1", target]),
                          timeout=20).returncode


def flows(lab: Lab, *filters: str, last: int = 1000) -> list[dict[str, Any]]:
    out = membrane("observe", "--lab", lab.name, "--last", str(last), "-o", "json", *filters)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [line["flow"] for line in lines if "flow" in line]


def endpoints(lab: Lab) -> dict[str, dict[str, Any]]:
    out = membrane("endpoint", "list", "--lab", lab.name, "-o", "json")
    assert out.returncode == 0, out.stderr
    return {f"{e['namespace']}/{e['pod']}": e for e in json.loads(out.stdout)}


def test_endpoint_list_shows_enforcement_switching_on_and_the_identity_changing(lab: Lab) -> None:
    backend = pod_key(lab, "backend")
    before = endpoints(lab)[backend]
    assert not before.get("ingress_enforced", False)
    table = membrane("endpoint", "list", "--lab", lab.name).stdout
    assert "POLICY (ingress)" in table and "k8s:app=backend" in table
    assert lab.apply([str(TUTORIAL / "01-backend-ingress-deny.yaml")])
    after = endpoints(lab)[backend]
    assert after["ingress_enforced"] and not after.get("egress_enforced", False)
    assert after["state"] == "ready"
    lab.label("Pod", backend, ["this=that"])
    relabelled = endpoints(lab)[backend]
    assert relabelled["identity"] != after["identity"]
    assert "k8s:this=that" in relabelled["labels"]


def test_denied_and_allowed_traffic_appear_with_pods_identities_verdict_and_reason(lab: Lab) -> None:
    assert lab.apply([str(TUTORIAL / "01-backend-ingress-deny.yaml")])   # (idempotent)
    eps = endpoints(lab)
    frontend, backend = pod_key(lab, "frontend"), pod_key(lab, "backend")
    assert curl(lab, "frontend", "http://backend:8080/") != 0          # denied (policy 01)
    assert curl(lab, "backend", "http://kubernetes.io/") == 0          # allowed, to world
    denied = [f for f in flows(lab, "--from-label", "app=frontend", "--to-label", "app=backend")
              if f["verdict"] == "DROPPED"]
    assert denied, "no DROPPED flow from frontend to backend"
    drop = denied[-1]
    assert drop["source"]["pod_name"] == frontend.split("/")[1]
    assert drop["destination"]["pod_name"] == backend.split("/")[1]
    assert drop["source"]["identity"] == eps[frontend]["identity"]
    assert drop["destination"]["identity"] == eps[backend]["identity"]
    assert drop["drop_reason_desc"] == "POLICY_DENIED" and drop["traffic_direction"] == "INGRESS"
    assert drop["l4"]["TCP"]["destination_port"] == 8080 and drop["l4"]["TCP"]["flags"]["SYN"]
    compact = membrane("observe", "--lab", lab.name, "--from-label", "app=frontend",
                       "--to-label", "app=backend", "--verdict", "DROPPED", "--last", "2").stdout
    assert "Policy denied DROPPED (TCP Flags: SYN)" in compact
    assert "policy-verdict:none INGRESS DENIED" in membrane(
        "observe", "--lab", lab.name, "--type", "policy-verdict", "--from-label", "app=frontend",
        "--to-label", "app=backend", "--last", "2").stdout
    world = [f for f in flows(lab, "--from-label", "app=backend", "--verdict", "FORWARDED")
             if f["IP"]["destination"] == state_of(lab).external_ip]
    assert world and world[-1]["destination"]["identity"] == 2   # reserved:world


Predicate = Callable[[dict[str, Any]], bool]


def labels_have(side: str, label: str) -> Predicate:
    return lambda f: label in f.get(side, {}).get("labels", [])


FILTERS: list[tuple[str, list[str], Predicate]] = [
    ("--from-label", ["--from-label", "app=frontend"], labels_have("source", "k8s:app=frontend")),
    ("--to-label", ["--to-label", "app=backend"], labels_have("destination", "k8s:app=backend")),
    ("-l", ["-l", "app=backend"], lambda f: labels_have("source", "k8s:app=backend")(f)
     or labels_have("destination", "k8s:app=backend")(f)),
    ("--verdict", ["--verdict", "DROPPED"], lambda f: f["verdict"] == "DROPPED"),
    ("--protocol", ["--protocol", "udp"], lambda f: "UDP" in f["l4"]),
    ("--to-port", ["--to-port", "53"], lambda f: any(v.get("destination_port") == 53 for v in f["l4"].values())),
    ("--traffic-direction", ["--traffic-direction", "egress"], lambda f: f["traffic_direction"] == "EGRESS"),
    ("-n", ["-n", "kube-system"], lambda f: "kube-system" in (f["source"].get("namespace"), f["destination"].get("namespace"))),
    ("--to-namespace", ["--to-namespace", "kube-system"], lambda f: f["destination"].get("namespace") == "kube-system"),
    ("--not --verdict", ["--not", "--verdict", "DROPPED"], lambda f: f["verdict"] != "DROPPED"),
]


@pytest.fixture(scope="module")
def traffic(lab: Lab) -> None:
    """Some of everything: a denied connection, DNS over UDP, an allowed one to world."""
    assert lab.apply([str(TUTORIAL / "01-backend-ingress-deny.yaml")])
    curl(lab, "frontend", "http://backend:8080/")
    curl(lab, "backend", "http://kubernetes.io/")


@pytest.mark.parametrize("name,args,predicate", FILTERS, ids=[f[0] for f in FILTERS])
def test_each_filter_narrows_the_stream_to_matching_flows(lab: Lab, traffic: None, name: str,
                                                          args: list[str],
                                                          predicate: Predicate) -> None:
    everything = flows(lab)
    matching = flows(lab, *args)
    assert matching, f"{name}: nothing matched (all flows: {len(everything)})"
    assert all(predicate(f) for f in matching), f"{name}: a flow that should not match"
    assert len(matching) == sum(1 for f in everything if predicate(f))
    assert len(matching) < len(everything)


def test_pod_and_identity_filters_match_one_side_or_either(lab: Lab, traffic: None) -> None:
    frontend = pod_key(lab, "frontend")
    ident = endpoints(lab)[frontend]["identity"]
    for f in flows(lab, "--from-pod", frontend):
        assert f["source"]["pod_name"] == frontend.split("/")[1]
    for f in flows(lab, "--identity", str(ident)):
        assert ident in (f["source"].get("identity"), f["destination"].get("identity"))
    assert flows(lab, "--to-pod", frontend.split("/")[0] + "/") != []


def send_udp(lab: Lab, port: int) -> subprocess.Popen[str]:
    return in_pod(lab, pod_key(lab, "frontend"), "import socket,sys;"
                  "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', (sys.argv[1], "
                  f"{port}))", pod_ip(lab, pod_key(lab, "backend")))


def test_follow_delivers_a_new_flow_within_a_second_and_ends_cleanly_on_ctrl_c(lab: Lab) -> None:
    follower = subprocess.Popen([*MEMBRANE, "observe", "--lab", lab.name, "-f", "-o", "json",
                                 "--to-port", "9999"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # connected and following
        sender = send_udp(lab, 9999)
        sent = time.monotonic()
        assert follower.stdout is not None
        line = follower.stdout.readline()
        delay = time.monotonic() - sent
        sender.wait(timeout=10)
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)
    assert json.loads(line)["flow"]["l4"]["UDP"]["destination_port"] == 9999
    assert delay < 1.0, f"followed flow arrived after {delay:.2f}s"
    assert follower.returncode == 130   # Ctrl-C, as for every membrane command


FLOOD = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(b"x", (sys.argv[1], 8080))
"""


def test_a_tiny_ring_flooded_reports_lost_events_never_hides_them(lab: Lab) -> None:
    assert lab.apply([str(TUTORIAL / "01-backend-ingress-deny.yaml")])   # every packet a drop
    node = state_of(lab).pods[pod_key(lab, "backend")].node
    restart_agent(lab, node, extra_args=("--flow-capacity", "16", "--event-queue", "4"))
    try:
        flood = in_pod(lab, pod_key(lab, "frontend"), FLOOD, pod_ip(lab, pod_key(lab, "backend")), "30000")
        flood.wait(timeout=60)
        time.sleep(1)
        status = json.loads(membrane("status", "--lab", lab.name, "-o", "json").stdout)
        lost = {c["name"]: int(c.get("value", 0)) for c in status.get("lost", [])}
        assert sum(lost.values()) > 0, f"nothing counted as lost: {status}"
        stream = membrane("observe", "--lab", lab.name, "--last", "16").stdout
        assert "EVENTS LOST" in stream
        assert int(status["flows_seen"]) + sum(lost.values()) >= 30000, status   # each drop: seen or lost
    finally:
        restart_agent(lab, node)
