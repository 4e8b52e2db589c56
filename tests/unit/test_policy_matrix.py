"""`policy matrix` output, `policy trace` explanations, and the CLI around them."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.api.client import lab_socket
from cli import policy as policy_cli
from core.errors import MembraneError
from agent.policy.matrix import Verdict, reachability, to_json, to_table
from agent.policy.trace import trace
from policy_helpers import cluster, ns, peer, pod, policy, port, rule, sel


def shop() -> Any:
    return cluster(
        ns("shop"),
        pod("shop/web", {"app": "web"}, "10.0.0.1"),
        pod("shop/db", {"app": "db"}, "10.0.0.2"),
        pod("shop/job", {"app": "job"}),  # no IP yet: still has an identity
        policy("shop/db-in", sel({"app": "db"}),
               ingress=[rule([peer(sel({"app": "web"}))], [port(5432)])]),
        policy("shop/job-out", sel({"app": "job"}), egress=[], types=["Egress"]),
    )


def test_the_matrix_has_every_ordered_pair_of_distinct_pods_per_port_and_protocol() -> None:
    verdicts = reachability(shop(), [5432, 80], ["UDP", "TCP"])
    assert len(verdicts) == 3 * 2 * 2 * 2
    assert all(v.src != v.dst for v in verdicts)
    assert verdicts == sorted(verdicts, key=lambda v: (v.src, v.dst, v.protocol, v.port))


def test_the_matrix_json_has_exactly_the_documented_shape() -> None:
    verdicts = reachability(shop(), [5432], ["TCP"])
    data = json.loads(to_json(verdicts))
    assert list(data) == ["verdicts"]
    assert data["verdicts"][0] == {"from": "shop/db", "to": "shop/job", "port": 5432,
                                   "protocol": "TCP", "allowed": True}
    by_pair = {(v["from"], v["to"]): v["allowed"] for v in data["verdicts"]}
    assert by_pair[("shop/web", "shop/db")] is True
    assert by_pair[("shop/job", "shop/db")] is False   # job may send nothing
    assert by_pair[("shop/db", "shop/web")] is True


def test_the_table_is_a_grid_per_port_with_a_legend() -> None:
    table = to_table(reachability(shop(), [5432, 80], ["TCP"]))
    assert ". allowed" in table and "X denied" in table
    assert "TCP/80" in table and "TCP/5432" in table
    lines = table.splitlines()
    grid = lines[lines.index(next(line for line in lines if "TCP/5432" in line)):]
    job = next(line for line in grid if line.startswith("2 shop/job"))
    web = next(line for line in grid if line.startswith("3 shop/web"))
    assert job.split()[2:] == ["X", "-", "X"]   # job may send to no one
    assert web.split()[2:] == [".", ".", "-"]   # columns: db, job, web
    assert all(len(line) <= 80 for line in lines)


def test_the_table_says_so_when_there_is_nothing_to_show() -> None:
    assert "fewer than two" in to_table([])


def test_verdicts_sort_by_from_to_protocol_then_port() -> None:
    a = Verdict("a", "b", "TCP", 443, True)
    b = Verdict("a", "b", "UDP", 53, True)
    c = Verdict("a", "b", "TCP", 80, True)
    assert sorted([a, b, c]) == [c, a, b]


TRACES = [
    pytest.param("shop/web", "shop/db", 5432, True,
                 ["Egress from shop/web:", "no policy selects shop/web for egress",
                  "Ingress to shop/db:", "selected for ingress by: shop/db-in",
                  "shop/db-in: spec.ingress[0].from[0] pods app=web in namespace shop, ports[0] TCP/5432",
                  "Verdict: ALLOWED"],
                 id="an allowed connection names the rule, peer and port that allowed it"),
    pytest.param("shop/web", "shop/db", 80, False,
                 ["isolated for ingress, and no rule allows TCP/80 from shop/web",
                  "Verdict: DENIED by ingress policy"],
                 id="a denied connection says the pod is isolated and nothing allowed it"),
    pytest.param("shop/job", "shop/db", 5432, False,
                 ["selected for egress by: shop/job-out", "isolated for egress",
                  "isolated for ingress", "Verdict: DENIED by egress and ingress policy"],
                 id="both directions are explained even when the first denies"),
    pytest.param("shop/db", "shop/web", 80, True,
                 ["selected only for the other direction by shop/db-in",
                  "no policy selects shop/web for ingress"],
                 id="a policy for the other direction does not isolate"),
    pytest.param("shop/db", "shop/db", 80, True, ["loopback"],
                 id="a pod reaches itself"),
]


@pytest.mark.parametrize(("src", "dst", "number", "allowed", "phrases"), TRACES)
def test_trace_explains_the_verdict(src: str, dst: str, number: int, allowed: bool,
                                    phrases: list[str]) -> None:
    result = trace(shop(), src, dst, number, "TCP")
    assert result.allowed is allowed
    for phrase in phrases:
        assert phrase in result.explanation, result.explanation


def test_trace_names_the_pod_it_cannot_find() -> None:
    with pytest.raises(MembraneError, match="shop/nope"):
        trace(shop(), "shop/web", "shop/nope", 80)


MANIFEST = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata: {name: a, namespace: default, labels: {app: a}}
    spec: {containers: [{name: c, image: x}]}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: b, namespace: default, labels: {app: b}}
    spec: {containers: [{name: c, image: x}]}
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: b-in, namespace: default}
    spec:
      podSelector: {matchLabels: {app: b}}
      ingress: [{ports: [{port: 53, protocol: UDP}]}]
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: broken, namespace: default}
    spec:
      podSelector: {}
      ingress: [{ports: [{port: 90, endPort: 80}]}]
    """)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    policy_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_matrix_reports_invalid_objects_and_computes_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.yaml").write_text(MANIFEST)
    code, out, err = run(["policy", "matrix", "-f", str(tmp_path / "m.yaml"), "-o", "json",
                          "--port", "53", "--protocol", "udp"], capsys)
    # Skipped objects make the exit non-zero; "broken" (every pod of default, Ingress)
    # fails closed in its place: a is isolated, and b-in still allows UDP 53 into b.
    assert code == 1
    assert err.startswith("InvalidObject: networkpolicy default/broken")
    assert "in its place: fail closed: every pod of namespace default isolated for Ingress" in err
    assert json.loads(out)["verdicts"] == [
        {"from": "default/a", "to": "default/b", "port": 53, "protocol": "UDP", "allowed": True},
        {"from": "default/b", "to": "default/a", "port": 53, "protocol": "UDP", "allowed": False},
    ]


def test_matrix_defaults_to_tcp_port_80_as_a_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.yaml").write_text(MANIFEST)
    code, out, _ = run(["policy", "matrix", "-f", str(tmp_path)], capsys)
    assert code == 1 and "TCP/80" in out and "UDP" not in out   # 1: "broken" was skipped


def test_trace_with_files_runs_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.yaml").write_text(MANIFEST)
    code, out, err = run(["policy", "trace", "-f", str(tmp_path), "--from", "default/a",
                          "--to", "default/b", "--port", "80"], capsys)
    assert code == 1 and "Verdict: DENIED by ingress policy" in out
    assert "networkpolicy default/broken" in err


class FakeClient:
    """Stands in for AgentClient: records where it was pointed and what it was asked."""

    made: list[tuple[str, ...]] = []

    def __init__(self, address: str) -> None:
        FakeClient.made.append(("server", address))

    def __enter__(self) -> "FakeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def trace(self, src: str, dst: str, port: int, protocol: str, family: int = 4) -> Any:
        return SimpleNamespace(allowed=True,
                               explanation=f"traced {src} {dst} {port} {protocol} v{family}",
                               skipped=[])

    def get_policies(self) -> Any:
        return SimpleNamespace(revision=7, rejected=["networkpolicy x/y: bad"], warnings=[],
                               policies=[SimpleNamespace(
                                   namespace="default", name="db-in", selected_endpoints=[1, 2],
                                   fail_closed="", last_good_resource_version="",
                                   warnings=[])] + self.tier_policies, notes=self.notes)

    tier_policies: list[Any] = []
    notes: list[str] = []


@pytest.fixture()
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    FakeClient.made = []
    monkeypatch.setattr("cli.connection.AgentClient", FakeClient)
    return FakeClient


def test_trace_without_files_asks_the_live_agent(
        fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["policy", "trace", "--server", "/tmp/a.sock", "--from", "x/a",
                        "--to", "x/b", "--port", "53", "--protocol", "udp"], capsys)
    assert code == 0 and out == "traced x/a x/b 53 UDP v4\n"
    assert fake_client.made == [("server", "/tmp/a.sock")]


def test_policy_get_lists_the_agents_policies_and_its_revision(
        fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["policy", "get", "--lab", "demo", "--node", "node2"], capsys)
    assert code == 0
    assert fake_client.made == [("server", lab_socket("demo", "node2"))]
    assert out.splitlines() == ["revision 7",
                                "NAMESPACE   NAME    ENDPOINTS   STATUS",
                                "default     db-in   2           enforced"]
    assert "networkpolicy x/y: bad" in err


def test_policy_get_lists_tier_policies_in_order_and_says_when_their_order_is_undefined(
        fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeClient, "tier_policies", [
        SimpleNamespace(namespace="", name="a", kind="ClusterNetworkPolicy", tier="Admin",
                        priority="10", selected_endpoints=[1]),
        SimpleNamespace(namespace="", name="b", kind="AdminNetworkPolicy", tier="Admin",
                        priority="10", selected_endpoints=[])])
    monkeypatch.setattr(FakeClient, "notes", ["Admin tier priority 10 is shared by ..."])
    code, out, _ = run(["policy", "get", "--lab", "demo"], capsys)
    lines = out.splitlines()
    assert code == 0 and "TIER    PRIORITY   KIND                   NAME   ENDPOINTS" in lines
    assert lines.index("Admin   10         ClusterNetworkPolicy   a      1") < \
        lines.index("Admin   10         AdminNetworkPolicy     b      0")
    assert "note: Admin tier priority 10 is shared by ..." in lines


def test_an_explicit_server_wins_over_lab(
        fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    run(["policy", "trace", "--lab", "demo", "--server", "/tmp/a.sock", "--from", "x/a",
         "--to", "x/b"], capsys)
    assert fake_client.made == [("server", "/tmp/a.sock")]
