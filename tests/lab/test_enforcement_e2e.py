"""End to end on a lab with agents: the real datapath deciding real packets.

One lab per module (two nodes, so pod pairs cross the underlay too); policies are
applied and removed through the lab's verbs, exactly as a person walks the tutorial.
`lab probe` (real connections) must agree with `policy matrix` (the engine) everywhere.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from lab.controller import Lab
from lab.netbuilder import pod_command
from tests.lab.agentlab import (ECHO_CLIENT, ECHO_SERVER, differences, dump, expect_line,
                                in_pod, ping, pod_ip, probe_and_matrix, restart_agent,
                                state_of, stop, write)
from tests.lab.conftest import needs_root, unique_lab_name

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ops, labels: {team: ops}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web, tier: front}}
spec: {nodeName: node1, containers: [{name: c, image: x, ports: [{containerPort: 80, name: http}, {containerPort: 9000, name: echo}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api, tier: back}}
spec: {nodeName: node2, containers: [{name: c, image: x, ports: [{containerPort: 8080, name: http}, {containerPort: 5353, protocol: UDP, name: dns}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db, tier: back}}
spec: {nodeName: node1, containers: [{name: c, image: x, ports: [{containerPort: 5432, name: pg}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: prom, namespace: ops, labels: {app: prom}}
spec: {nodeName: node2, containers: [{name: c, image: x}]}
"""

PORTS = [80, 8080, 5432]
PROTOCOLS = ["TCP"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    needs_root()
    tmp = tmp_path_factory.mktemp("e2e")
    lab = Lab(unique_lab_name("e2e"))
    try:
        assert lab.up(2, [write(tmp, "pods.yaml", PODS)])
        yield lab
    finally:
        lab.down()


@pytest.fixture
def policies(lab: Lab, tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """apply(text) -> applies a policy set; everything applied is deleted afterwards."""
    applied: list[str] = []

    def apply(text: str, name: str = "p.yaml") -> None:
        path = write(tmp_path, f"{len(applied)}-{name}", text)
        assert lab.apply([path]), f"applying {name} failed"
        applied.append(path)

    yield apply
    if applied:
        lab.delete(applied)


def assert_probe_matches_matrix(lab: Lab, ports: list[int] = PORTS,
                                protocols: list[str] = PROTOCOLS) -> dict:  # type: ignore[type-arg]
    probed, expected = probe_and_matrix(lab, ports, protocols)
    diff = differences(probed, expected)
    assert not diff, "probe and matrix disagree:\n" + "\n".join(diff)
    return probed


def verdict(result: dict, src: str, dst: str, port: int, proto: str = "TCP") -> bool:  # type: ignore[type-arg]
    for v in result["verdicts"]:
        if (v["from"], v["to"], v["port"], v["protocol"]) == (src, dst, port, proto):
            return bool(v["allowed"])
    raise KeyError((src, dst, port, proto))


def test_with_no_policy_every_pod_reaches_every_pod_across_nodes(lab: Lab) -> None:
    result = assert_probe_matches_matrix(lab)
    assert verdict(result, "ops/prom", "shop/api", 8080)
    assert verdict(result, "shop/web", "shop/db", 5432)


def test_ingress_isolation_with_and_vs_or_peers(lab: Lab, policies) -> None:  # type: ignore[no-untyped-def]
    policies("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-and, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: ops}}
      podSelector: {matchLabels: {app: web}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-or, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: ops}}
    - podSelector: {matchLabels: {app: web}}
""")
    result = assert_probe_matches_matrix(lab)
    assert not verdict(result, "shop/web", "shop/db", 5432)    # AND: web is not in ops
    assert not verdict(result, "ops/prom", "shop/db", 5432)
    assert verdict(result, "shop/web", "shop/api", 8080)       # OR: either peer
    assert verdict(result, "ops/prom", "shop/api", 8080)
    assert not verdict(result, "shop/db", "shop/api", 8080)


def test_named_ports_end_port_and_udp(lab: Lab, policies) -> None:  # type: ignore[no-untyped-def]
    policies("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-ports, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - ports: [{port: http}, {port: dns, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-range, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - ports: [{port: 5000, endPort: 5500}]
""")
    result = assert_probe_matches_matrix(lab, [80, 8080, 5432, 5353], ["TCP", "UDP"])
    assert verdict(result, "shop/web", "shop/api", 8080)
    assert not verdict(result, "shop/web", "shop/api", 80)
    assert verdict(result, "shop/web", "shop/api", 5353, "UDP")
    assert not verdict(result, "shop/web", "shop/api", 5353, "TCP")
    assert verdict(result, "ops/prom", "shop/db", 5432)


def test_ip_block_with_except_decides_pods_and_the_external_host(lab: Lab, policies) -> None:  # type: ignore[no-untyped-def]
    state = state_of(lab)
    ext = state.external_ip
    api_ip = pod_ip(lab, "shop/api")
    policies(f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web-egress, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {{cidr: 10.244.0.0/16, except: ["{api_ip}/32"]}}
""")
    result = assert_probe_matches_matrix(lab)
    assert verdict(result, "shop/web", "shop/db", 5432)
    assert not verdict(result, "shop/web", "shop/api", 8080)   # excepted
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--connect-timeout", "1",
            f"http://{ext}/"]
    denied = lab_exec(lab, "shop/web", curl)
    assert denied.returncode != 0
    policies(f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web-egress-ext, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {{cidr: "{ext}/32"}}
    - ipBlock: {{cidr: "{api_ip}/32"}}
""", "ext.yaml")
    result = assert_probe_matches_matrix(lab)
    assert verdict(result, "shop/web", "shop/api", 8080)      # excepted, allowed again
    allowed = lab_exec(lab, "shop/web", curl)
    assert allowed.returncode == 0 and allowed.stdout.strip() == "301"


def lab_exec(lab: Lab, key: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    netns = state_of(lab).pods[key].netns
    return subprocess.run(pod_command(netns, argv), capture_output=True, text=True, timeout=20)


def test_icmp_echo_follows_policy_and_replies_pass(lab: Lab, policies) -> None:  # type: ignore[no-untyped-def]
    db = pod_ip(lab, "shop/db")
    ping_cmd = ["ping", "-c", "1", "-W", "1", db]
    assert lab_exec(lab, "shop/web", ping_cmd).returncode == 0
    policies("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-deny, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}
""")
    assert lab_exec(lab, "shop/web", ping_cmd).returncode != 0
    # The isolated pod still pings out: the echo reply is a reply of its own connection.
    web = pod_ip(lab, "shop/web")
    assert lab_exec(lab, "shop/db", ["ping", "-c", "1", "-W", "1", web]).returncode == 0


def test_the_node_reaches_an_isolated_pod(lab: Lab, policies) -> None:  # type: ignore[no-untyped-def]
    policies("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-deny, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}
""")
    state = state_of(lab)
    node = state.nodes[state.pods["shop/db"].node]
    probe = subprocess.run(pod_command(node.netns, [
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--connect-timeout", "2",
        f"http://{pod_ip(lab, 'shop/db')}:5432/"]), capture_output=True, text=True, timeout=20)
    assert probe.stdout.strip() == "200"


def test_a_label_change_moves_a_pod_into_and_out_of_a_policy(lab: Lab, policies) -> None:  # type: ignore[no-untyped-def]
    policies("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-from-trusted, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {matchLabels: {trusted: "yes"}}}]}]
""")
    assert not verdict(assert_probe_matches_matrix(lab), "shop/db", "shop/api", 8080)
    lab.label("Pod", "shop/db", ["trusted=yes"])
    try:
        assert verdict(assert_probe_matches_matrix(lab), "shop/db", "shop/api", 8080)
    finally:
        lab.label("Pod", "shop/db", ["trusted-"])
    assert not verdict(assert_probe_matches_matrix(lab), "shop/db", "shop/api", 8080)


ALLOW_ECHO = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-echo, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 9100}]}]
"""


@pytest.fixture
def echo(lab: Lab) -> Iterator:  # type: ignore[type-arg]
    """An echo server on db:9100 and a connected client in web (when allowed)."""
    server = in_pod(lab, "shop/db", ECHO_SERVER, "9100")
    expect_line(server, "listening")
    clients: list[subprocess.Popen[str]] = []

    def connect() -> subprocess.Popen[str]:
        client = in_pod(lab, "shop/web", ECHO_CLIENT, pod_ip(lab, "shop/db"), "9100")
        clients.append(client)
        expect_line(client, "connected")
        return client

    yield connect
    for proc in clients + [server]:
        stop(proc)


def test_revoking_the_allow_cuts_an_established_connection_within_a_second(lab: Lab, policies, echo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policies("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-deny, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}
""")
    allow = write(tmp_path, "allow.yaml", ALLOW_ECHO)
    assert lab.apply([allow])
    client = echo()
    assert ping(client) == "ok"
    t0 = time.monotonic()
    assert lab.delete([allow])
    assert ping(client) == "timeout"   # the next packet after the delete is dropped
    assert time.monotonic() - t0 < 5   # (delete waits for the agents; the cut is at once)


def test_an_agent_restart_keeps_enforcing_and_keeps_an_open_connection(lab: Lab, policies, echo) -> None:  # type: ignore[no-untyped-def]
    policies("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-deny, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}
""" + "---" + ALLOW_ECHO)
    client = echo()
    assert ping(client) == "ok"
    node = state_of(lab).pods["shop/db"].node

    def while_down() -> None:
        assert ping(client) == "ok"                              # nothing cut
        result = lab_exec(lab, "ops/prom", ["curl", "-s", "--connect-timeout", "1",
                                            f"http://{pod_ip(lab, 'shop/db')}:5432/"])
        assert result.returncode != 0                            # nothing opened

    restart_agent(lab, node, while_down)
    assert ping(client) == "ok"
    assert_probe_matches_matrix(lab)
    # The restarted agent sees new verdicts: its programs, writing to its ring buffer.
    observed = subprocess.run([sys.executable, "-m", "cli.main", "observe", "--lab",
                               lab.name, "--node", node, "--last", "50", "--verdict", "DROPPED",
                               "--to-port", "5432"], capture_output=True, text=True, timeout=30)
    assert "ops/prom" in observed.stdout, observed.stdout + observed.stderr


def test_a_pod_cannot_send_with_a_source_address_not_its_own(lab: Lab) -> None:
    netns = state_of(lab).pods["shop/web"].netns
    db = pod_ip(lab, "shop/db")
    spoof = "10.244.1.250"
    subprocess.run(pod_command(netns, ["ip", "addr", "add", f"{spoof}/32", "dev", "eth0"]),
                   check=True)
    try:
        honest = lab_exec(lab, "shop/web", ["curl", "-s", "--connect-timeout", "1", f"http://{db}:5432/"])
        spoofed = lab_exec(lab, "shop/web", ["curl", "-s", "--interface", spoof,
                                             "--connect-timeout", "1", f"http://{db}:5432/"])
        assert honest.returncode == 0 and spoofed.returncode != 0
    finally:
        subprocess.run(pod_command(netns, ["ip", "addr", "del", f"{spoof}/32", "dev", "eth0"]))


SELECTORS = [
    "{}", "{matchLabels: {app: web}}", "{matchLabels: {tier: back}}",
    "{matchExpressions: [{key: app, operator: In, values: [api, db]}]}",
    "{matchExpressions: [{key: tier, operator: NotIn, values: [front]}]}",
    "{matchExpressions: [{key: missing, operator: DoesNotExist}]}",
    "{matchExpressions: [{key: missing, operator: Exists}]}",
]
NS_SELECTORS = ["{}", "{matchLabels: {team: ops}}", "{matchLabels: {team: shop}}"]
PORT_SETS = ["", "ports: [{port: 8080}]", "ports: [{port: http}]", "ports: [{}]",
             "ports: [{port: 5000, endPort: 6000}]", "ports: [{port: 80}, {port: pg}]",
             "ports: [{protocol: UDP}]"]


def random_policy(rng: random.Random, n: int, lab: Lab) -> str:
    ns = rng.choice(["shop", "ops"])
    kinds = rng.choice([["Ingress"], ["Egress"], ["Ingress", "Egress"]])
    text = (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            f"metadata: {{name: gen{n}, namespace: {ns}}}\nspec:\n"
            f"  podSelector: {rng.choice(SELECTORS)}\n  policyTypes: [{', '.join(kinds)}]\n")
    for kind in kinds:
        key, peer_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
        rules = []
        for _ in range(rng.randint(0, 2)):
            peers = []
            for _ in range(rng.randint(0, 2)):
                choice = rng.random()
                if choice < 0.4:
                    peers.append(f"{{podSelector: {rng.choice(SELECTORS)}}}")
                elif choice < 0.6:
                    peers.append(f"{{namespaceSelector: {rng.choice(NS_SELECTORS)}}}")
                elif choice < 0.8:
                    peers.append(f"{{namespaceSelector: {rng.choice(NS_SELECTORS)}, "
                                 f"podSelector: {rng.choice(SELECTORS)}}}")
                else:
                    victim = pod_ip(lab, rng.choice(["shop/web", "shop/api", "shop/db", "ops/prom"]))
                    peers.append(f"{{ipBlock: {{cidr: 10.244.0.0/16, except: [\"{victim}/32\"]}}}}")
            ports = rng.choice(PORT_SETS)
            rule = "  - " + (f"{peer_key}: [{', '.join(peers)}]" if peers else "{}")
            if ports:
                rule = rule.replace("{}", "") if rule.endswith("{}") else rule
                rule = (rule + "\n    " + ports) if peers else f"  - {ports}"
            rules.append(rule)
        text += f"  {key}:\n" + "\n".join(rules) + "\n" if rules else f"  {key}: []\n"
    return text


@pytest.mark.parametrize("seed", range(6))
def test_generated_scenarios_probe_agrees_with_matrix(lab: Lab, policies, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    docs = "\n---\n".join(random_policy(rng, n, lab) for n in range(rng.randint(1, 4)))
    policies(docs, f"gen{seed}.yaml")
    probed, expected = probe_and_matrix(lab, [80, 8080, 5432, 5353], ["TCP", "UDP"])
    diff = differences(probed, expected)
    assert not diff, f"policies:\n{docs}\ndisagreements:\n" + "\n".join(diff) + dump(expected)
