"""`membrane identity list|get`: from manifests, and from a (fake) live agent."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.api.client import lab_socket
from cli import identity as cli
from core.errors import MembraneError

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: payments}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {serviceAccountName: db, containers: [{name: c, image: x}]}
"""

BROKEN = """
apiVersion: v1
kind: Pod
metadata: {name: "Not_A_Name", namespace: shop}
spec: {containers: [{name: c, image: x}]}
"""


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="membrane")
    cli.register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return int(args.func(args))


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    (tmp_path / "app.yaml").write_text(APP)
    return tmp_path


def test_list_from_files_shows_one_identity_per_label_set_with_its_pods(
        manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("identity", "list", "-f", str(manifests), "-o", "json") == 0
    rows = json.loads(capsys.readouterr().out)["identities"]
    assert [r["id"] for r in rows] == [256, 257]
    web = next(r for r in rows if "k8s:app=web" in r["labels"])
    assert len(web["pods"]) == 2 and all(p.startswith("shop/web-") for p in web["pods"])
    db = next(r for r in rows if "k8s:app=db" in r["labels"])
    assert "k8s:io.cilium.k8s.policy.serviceaccount=db" in db["labels"]
    assert "k8s:io.cilium.k8s.namespace.labels.team=payments" in db["labels"]


def test_the_table_has_a_header_one_label_per_line_and_fits_80_columns(
        manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run("identity", "list", "-f", str(manifests))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "LABELS"]
    assert any(line.split() == ["256", "k8s:app=db"] for line in lines)
    assert any(line.strip().startswith("pods: shop/web-") for line in lines)
    assert max(len(line) for line in lines) <= 80


def test_the_cluster_name_and_extra_exclusions_are_options(
        manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run("identity", "list", "-f", str(manifests), "--cluster", "east",
        "--exclude-label", "app", "-o", "json")
    rows = json.loads(capsys.readouterr().out)["identities"]
    assert all("k8s:io.cilium.k8s.policy.cluster=east" in r["labels"] for r in rows)
    assert not any("k8s:app=web" in r["labels"] for r in rows)


def test_a_bad_document_goes_to_stderr_and_the_rest_still_prints(
        manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (manifests / "broken.yaml").write_text(BROKEN)
    assert run("identity", "list", "-f", str(manifests), "-o", "json") == 0
    out, err = capsys.readouterr()
    assert err.startswith("InvalidObject: ")
    assert "Not_A_Name" in err
    assert len(json.loads(out)["identities"]) == 2


def test_get_from_files_finds_a_pod_identity_or_a_reserved_one(
        manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run("identity", "get", "257", "-f", str(manifests), "-o", "json")
    assert "k8s:app=web" in json.loads(capsys.readouterr().out)["labels"]
    run("identity", "get", "6", "-f", str(manifests), "-o", "json")
    assert json.loads(capsys.readouterr().out)["labels"] == ["reserved:remote-node"]
    with pytest.raises(MembraneError, match="identity 999: no pod"):
        run("identity", "get", "999", "-f", str(manifests))


@pytest.mark.parametrize("text", ["0", "-1", "abc", str(1 << 32)],
                         ids=["zero", "negative", "not a number", "too large"])
def test_get_rejects_what_cannot_be_an_identity(text: str) -> None:
    with pytest.raises(SystemExit):
        run("identity", "get", text)


# -- the live agent, faked at the client --------------------------------------------------

@dataclass
class Info:
    id: int
    labels: list[str]
    references: int


@dataclass
class FakeClient:
    address: str
    calls: list[str] = field(default_factory=list)
    infos: tuple[Info, ...] = (Info(300, ["k8s:app=b"], 1), Info(256, ["k8s:app=a"], 2))

    def list_identities(self) -> list[Info]:
        return list(self.infos)

    def get_identity(self, number: int) -> Info:
        return next(i for i in self.infos if i.id == number)

    def __enter__(self) -> "FakeClient":
        made.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        pass


made: list[FakeClient] = []


@pytest.fixture
def fake_agent(monkeypatch: pytest.MonkeyPatch) -> list[FakeClient]:
    made.clear()
    monkeypatch.setattr("cli.connection.AgentClient", FakeClient)
    return made


@pytest.mark.parametrize("options, address", [
    ((), "/run/membrane/agent.sock"),
    (("--server", "/tmp/a.sock"), "/tmp/a.sock"),
    (("--lab", "demo", "--node", "node2"), lab_socket("demo", "node2")),
    (("--lab", "demo"), lab_socket("demo", "node1")),
    (("--lab", "demo", "--server", "/tmp/a.sock"), "/tmp/a.sock"),
], ids=["the default socket", "an explicit server", "a lab node", "a lab's first node",
        "an explicit server wins over a lab"])
def test_list_without_files_asks_the_agent(
        fake_agent: list[FakeClient], capsys: pytest.CaptureFixture[str],
        options: tuple[str, ...], address: str) -> None:
    assert run("identity", "list", *options, "-o", "json") == 0
    assert fake_agent[0].address == address
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)["identities"]
    assert rows == [{"id": 256, "labels": ["k8s:app=a"], "references": 2},
                    {"id": 300, "labels": ["k8s:app=b"], "references": 1}]


def test_get_without_files_asks_the_agent_and_prints_a_table(
        fake_agent: list[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    run("identity", "get", "300")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "LABELS"]
    assert lines[1].split() == ["300", "k8s:app=b"]
    assert lines[2].strip() == "references: 1"


@pytest.mark.parametrize("text, width, expected", [
    ("k8s:app=web", 40, ["k8s:app=web"]),
    ("k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=kube-system", 70,
     ["k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=",
      "  kube-system"]),
    ("abcdefghij", 4, ["abcd", "  ef", "  gh", "  ij"]),
], ids=["a short label stays whole", "a long label breaks after a separator",
        "a label without separators breaks hard"])
def test_wrap_keeps_every_line_within_the_width(text: str, width: int,
                                                expected: list[str]) -> None:
    assert cli.wrap(text, width) == expected
    assert "".join(line.strip() for line in expected) == text
