"""The lab's network alone (--no-agent): wires, addresses, DNS, verbs, side-by-side labs,
and a `down` that leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lab.controller import Lab
from lab.netbuilder import pod_command
from lab.names import EXTERNAL_IP
from lab.state import LabState, lab_root
from tests.lab.conftest import MakeLab, run_cli

pytestmark = pytest.mark.privileged

APP = """
apiVersion: v1
kind: Pod
metadata: {name: web1, labels: {app: web}}
spec: {nodeName: node1, containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec: {nodeName: node1, containers: [{name: c, image: x}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      nodeName: node2
      containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 8080}]
"""


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab, manifests) -> Lab:
    return make_lab("topo", nodes=2, files=[manifests("app.yaml", APP)])


def in_pod(lab: Lab, pod: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(pod_command(lab.netns_of(pod), cmd),
                          capture_output=True, text=True, timeout=20)


def pod_ip(lab: Lab, key: str) -> str:
    state = LabState.load(lab.name)
    assert state is not None
    return state.pods[key].ip


def api_pod(lab: Lab) -> str:
    return next(p["pod"] for p in lab.status()["pods"] if p["pod"].startswith("default/api-"))


def status_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.splitlines()[0].strip() if result.stdout else result.stderr


def test_pods_on_one_node_reach_each_other(lab: Lab) -> None:
    r = in_pod(lab, "default/client", "curl", "-sSI", "-m", "10", f"http://{pod_ip(lab, 'default/web1')}")
    assert status_line(r) == "HTTP/1.1 200 OK"


def test_pods_on_two_nodes_reach_each_other_on_declared_ports(lab: Lab) -> None:
    api = api_pod(lab)
    assert lab.status()["pods"] and any(p["node"] == "node2" for p in lab.status()["pods"]
                                        if p["pod"] == api)
    r = in_pod(lab, "default/client", "curl", "-sSI", "-m", "10", f"http://{pod_ip(lab, api)}:8080")
    assert status_line(r) == "HTTP/1.1 200 OK"


def first_address(lab: Lab, pod: str, name: str, database: str = "ahostsv4") -> list[str]:
    r = in_pod(lab, pod, "getent", database, name)
    return r.stdout.split()[:1]


def test_dns_resolves_service_pod_and_short_names(lab: Lab) -> None:
    api_ip = pod_ip(lab, api_pod(lab))
    assert first_address(lab, "default/client", "api") == [api_ip]
    assert first_address(lab, "kube-system/coredns", "api.default") == [api_ip]
    assert first_address(lab, "default/client", "web1.default.svc.cluster.local") == \
        [pod_ip(lab, "default/web1")]
    assert in_pod(lab, "default/client", "getent", "hosts", "nope").returncode != 0


def test_dns_answers_aaaa_with_the_pods_ipv6_address(lab: Lab) -> None:
    """Dual-stack: `getent hosts` prefers the AAAA answer (RFC 6724), as curl does."""
    state = LabState.load(lab.name)
    assert state is not None
    api_ip6 = state.pods[api_pod(lab)].ip6
    assert api_ip6.startswith("fd00:10:244:")
    assert first_address(lab, "default/client", "api", "ahostsv6") == [api_ip6]
    assert first_address(lab, "default/client", "api", "hosts") == [api_ip6]
    assert first_address(lab, "default/web1", "kubernetes.io", "ahostsv6") == \
        [lab.status()["external"]["ip6"]]


def test_pods_reach_each_other_and_the_external_host_over_ipv6(lab: Lab) -> None:
    state = LabState.load(lab.name)
    assert state is not None
    api_ip6 = state.pods[api_pod(lab)].ip6
    r = in_pod(lab, "default/client", "curl", "-sSI", "-m", "10", f"http://[{api_ip6}]:8080")
    assert status_line(r) == "HTTP/1.1 200 OK"
    r = in_pod(lab, "default/web1", "curl", "-6", "-sSI", "-m", "10", "kubernetes.io")
    assert status_line(r) == "HTTP/1.1 301 Moved Permanently"


def test_service_name_reaches_its_pod_as_in_the_tutorial(lab: Lab) -> None:
    r = in_pod(lab, "default/client", "curl", "-sSI", "-m", "10", "api:8080")
    assert status_line(r) == "HTTP/1.1 200 OK"


def test_kubernetes_io_is_the_external_host_and_answers_301(lab: Lab) -> None:
    r = in_pod(lab, "default/web1", "curl", "-sSI", "-m", "10", "kubernetes.io")
    assert status_line(r) == "HTTP/1.1 301 Moved Permanently"
    assert lab.status()["external"]["ip"] == EXTERNAL_IP


def test_node_links_lead_only_to_the_labs_own_namespaces(lab: Lab) -> None:
    state = LabState.load(lab.name)
    assert state is not None
    for node in state.nodes.values():
        lines = subprocess.run(["ip", "-n", node.netns, "-o", "link"],
                               capture_output=True, text=True).stdout.splitlines()
        for line in lines:
            if ": lo:" in line:
                continue
            # "link-netns NAME", or "link-netnsid N" while another process renames
            # namespaces: either way the peer is in another namespace...
            assert " link-netns" in line, line
            if " link-netns " in line:
                assert line.split(" link-netns ")[1].split()[0] in state.netns, line
    # ...and never in the machine's root namespace.
    root = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"link-netns {lab.names.prefix}-" not in root


def test_exec_passes_the_exit_code(lab: Lab) -> None:
    assert run_cli("lab", "exec", "--name", lab.name, "default/client", "--", "sh", "-c", "exit 7") == 7


def test_apply_delete_and_label_change_the_store_and_the_netns(lab: Lab, manifests) -> None:
    path = manifests("extra.yaml", """
apiVersion: v1
kind: Pod
metadata: {name: mon, namespace: monitoring, labels: {app: monitoring}}
spec: {containers: [{name: c, image: x, ports: [{containerPort: 9090, protocol: UDP}]}]}
""")
    assert run_cli("lab", "apply", "--name", lab.name, "-f", str(path)) == 0
    netns = lab.netns_of("monitoring/mon")
    assert Path("/run/netns", netns).exists()
    r = in_pod(lab, "default/client", "curl", "-sSI", "-m", "10",
               f"http://{pod_ip(lab, 'monitoring/mon')}:9090")
    assert status_line(r) == "HTTP/1.1 200 OK"
    assert run_cli("lab", "label", "--name", lab.name, "namespace", "monitoring", "type=monitoring") == 0
    assert run_cli("lab", "label", "--name", lab.name, "pod", "monitoring/mon", "tier=x", "app-") == 0
    docs = json.loads((lab_root(lab.name) / "store" / "objects.json").read_text())["objects"]
    ns = next(d for d in docs if d["kind"] == "Namespace" and d["metadata"]["name"] == "monitoring")
    pod = next(d for d in docs if d["kind"] == "Pod" and d["metadata"]["name"] == "mon")
    assert ns["metadata"]["labels"]["type"] == "monitoring"
    assert pod["metadata"]["labels"] == {"tier": "x"}
    assert run_cli("lab", "delete", "--name", lab.name, "-f", str(path)) == 0
    assert not Path("/run/netns", netns).exists()
    assert not Path("/etc/netns", netns).exists()


def test_bad_documents_are_reported_and_the_others_applied(lab: Lab, manifests, capsys) -> None:
    path = manifests("mixed.yaml", """
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: bad}
spec: {podSelector: {}, policyTypes: [Sideways]}
---
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: good}
spec: {podSelector: {}, policyTypes: [Ingress]}
""")
    assert run_cli("lab", "apply", "--name", lab.name, "-f", str(path)) == 1
    assert "InvalidObject: " in capsys.readouterr().err
    docs = json.loads((lab_root(lab.name) / "store" / "objects.json").read_text())["objects"]
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert names == {"good"}
    run_cli("lab", "delete", "--name", lab.name, "-f", str(path))


def test_two_labs_side_by_side_do_not_collide(lab: Lab, make_lab: MakeLab, manifests) -> None:
    other = make_lab("side", nodes=1, files=[manifests("app.yaml", APP.replace("nodeName: node2", "nodeName: node1"))])
    # Same pod names and addresses, different namespaces: both work, each on its own.
    assert pod_ip(other, "default/web1") == pod_ip(lab, "default/web1")
    assert other.netns_of("default/web1") != lab.netns_of("default/web1")
    for each in (lab, other):
        r = in_pod(each, "default/client", "curl", "-sS", "-m", "10", f"http://{pod_ip(each, 'default/web1')}/")
        assert r.stdout.strip() == "default/web1"
    assert other.down()
    r = in_pod(lab, "default/client", "curl", "-sSI", "-m", "10", f"http://{pod_ip(lab, 'default/web1')}")
    assert status_line(r) == "HTTP/1.1 200 OK"


def test_down_removes_everything_and_is_idempotent(make_lab: MakeLab, manifests) -> None:
    doomed = make_lab("down", nodes=2, files=[manifests("app.yaml", APP)])
    state = LabState.load(doomed.name)
    assert state is not None
    pids = [p.server.pid for p in state.pods.values() if p.server] + [p.pid for p in state.processes]
    assert state.netns and pids
    assert run_cli("lab", "down", "--name", doomed.name) == 0
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [n for n in state.netns if n in netns]
    assert not [p for p in state.paths if Path(p).exists()]
    assert not lab_root(doomed.name).exists()
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not doomed.down()
    assert run_cli("lab", "down", "--name", doomed.name) == 0


def test_pod_ip_and_host_network_are_honoured(lab: Lab, manifests) -> None:
    path = manifests("special.yaml", """
apiVersion: v1
kind: Pod
metadata: {name: pinned}
spec: {nodeName: node2, containers: [{name: c, image: x}]}
status: {podIP: 10.250.0.7}
---
apiVersion: v1
kind: Pod
metadata: {name: hostpod}
spec: {nodeName: node1, hostNetwork: true, containers: [{name: c, image: x}]}
""")
    assert run_cli("lab", "apply", "--name", lab.name, "-f", str(path)) == 0
    try:
        pods = {p["pod"]: p for p in lab.status()["pods"]}
        assert pods["default/pinned"]["ip"] == "10.250.0.7"
        assert pods["default/hostpod"]["hostNetwork"] and pods["default/hostpod"]["ip"] == "172.18.0.11"
        # An address outside every pod CIDR is still routed from the other node.
        r = in_pod(lab, "default/client", "curl", "-sS", "-m", "10", "http://10.250.0.7/")
        assert r.stdout.strip() == "default/pinned"
        r = in_pod(lab, "default/hostpod", "ip", "-o", "addr", "show", "dev", "eth0")
        assert "172.18.0.11/" in r.stdout
    finally:
        assert run_cli("lab", "delete", "--name", lab.name, "-f", str(path)) == 0


def test_exec_finds_a_workloads_only_pod_by_the_workload_name(lab: Lab) -> None:
    assert lab.netns_of("default/api") == lab.netns_of(api_pod(lab))
    assert lab.netns_of("web1") == lab.netns_of("default/web1")


def test_reapplying_a_pod_with_new_ports_serves_them(lab: Lab, manifests) -> None:
    before = manifests("port1.yaml", """
apiVersion: v1
kind: Pod
metadata: {name: moving}
spec: {containers: [{name: c, image: x, ports: [{containerPort: 81}]}]}
""")
    after = manifests("port2.yaml", before.read_text().replace("81", "82"))
    try:
        assert run_cli("lab", "apply", "--name", lab.name, "-f", str(before)) == 0
        assert run_cli("lab", "apply", "--name", lab.name, "-f", str(after)) == 0
        ip = pod_ip(lab, "default/moving")
        r = in_pod(lab, "default/client", "curl", "-sS", "-m", "10", f"http://{ip}:82/")
        assert r.stdout.strip() == "default/moving"
        assert in_pod(lab, "default/client", "curl", "-sS", "-m", "10", f"http://{ip}:81/").returncode == 7
    finally:
        run_cli("lab", "delete", "--name", lab.name, "-f", str(after))


def _pods_of(lab: Lab, prefix: str) -> dict[str, str]:
    """name -> netns of the lab's pods whose name starts with prefix."""
    state = lab.state()
    return {p.name: p.netns for p in state.pods.values() if p.name.startswith(prefix)}


def _stored_pods(lab: Lab, prefix: str) -> set[str]:
    docs = json.loads((lab_root(lab.name) / "store" / "objects.json").read_text())["objects"]
    return {d["metadata"]["name"] for d in docs
            if d["kind"] == "Pod" and d["metadata"]["name"].startswith(prefix)}


def test_reapplying_a_workload_removes_the_pods_it_no_longer_has(lab: Lab, manifests) -> None:
    three = manifests("scale3.yaml", """
apiVersion: apps/v1
kind: Deployment
metadata: {name: scaled}
spec:
  replicas: 3
  selector: {matchLabels: {app: scaled}}
  template:
    metadata: {labels: {app: scaled}}
    spec: {containers: [{name: c, image: x}]}
""")
    one = manifests("scale1.yaml", three.read_text().replace("replicas: 3", "replicas: 1"))
    relabelled = manifests("scale1b.yaml", one.read_text().replace(
        "labels: {app: scaled}", "labels: {app: scaled, v: '2'}"))
    try:
        assert run_cli("lab", "apply", "--name", lab.name, "-f", str(three)) == 0
        first = _pods_of(lab, "scaled-")
        assert len(first) == 3 and _stored_pods(lab, "scaled-") == set(first)

        assert run_cli("lab", "apply", "--name", lab.name, "-f", str(one)) == 0
        kept = _pods_of(lab, "scaled-")
        assert len(kept) == 1 and set(kept) < set(first)
        assert _stored_pods(lab, "scaled-") == set(kept)
        for name, netns in first.items():
            assert Path("/run/netns", netns).exists() == (name in kept)

        # A new template is a new ReplicaSet: its pod replaces the old one.
        assert run_cli("lab", "apply", "--name", lab.name, "-f", str(relabelled)) == 0
        rolled = _pods_of(lab, "scaled-")
        assert len(rolled) == 1 and not set(rolled) & set(kept)
        assert _stored_pods(lab, "scaled-") == set(rolled)
    finally:
        # The first file names three pods; the deployment now has another one: both go.
        assert run_cli("lab", "delete", "--name", lab.name, "-f", str(three)) == 0
    assert _pods_of(lab, "scaled-") == {} and _stored_pods(lab, "scaled-") == set()
