"""`policy suggest`: observed flows -> least-privilege NetworkPolicies, checked by the engine.

Flows are built as agents write them (identity labels from identity.security, Hubble's
verdicts, drop reasons and workloads); the suggested documents go through the loader's
validation and the engine, as `kubectl apply` and `policy matrix` would take them.
"""

from __future__ import annotations

import io
import json
import random
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format

from agent.k8s.loader import load_paths, objects_from_documents
from agent.k8s.objects import ClusterObjects, Pod
from agent.policy.matrix import reachability as matrix_reachability
from agent.policy.suggest.build import Options, suggest
from agent.policy.suggest.diff import diff
from agent.policy.suggest.observed import connections
from agent.policy.suggest.verify import cluster_of, policies_of, verify
from cli.main import main
from identity.reserved import ReservedIdentity
from identity.security import security_labels
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.reasons import DropReason

WORLD = int(ReservedIdentity.WORLD)


class Cluster:
    """Pods with addresses and identity numbers; flows between them as agents write them."""

    def __init__(self) -> None:
        self.pods: dict[str, tuple[str, dict[str, str], str, int, str]] = {}

    def pod(self, key: str, labels: Mapping[str, str], workload: str = "",
            namespace_labels: Mapping[str, str] | None = None) -> str:
        n = len(self.pods) + 1
        ns = key.split("/")[0]
        ident = security_labels(labels, namespace=ns, namespace_labels=namespace_labels or {},
                                service_account="default", cluster="default")
        self.pods[key] = (f"10.244.1.{n}", dict(labels), workload, 256 + n,
                          ";".join(ident.lines()))
        return key

    def endpoint(self, key: str) -> fpb.Endpoint:
        if key not in self.pods:   # an address outside the cluster
            return fpb.Endpoint(identity=WORLD, labels=["reserved:world"])
        ip, _, workload, ident, labels = self.pods[key]
        ns, name = key.split("/")
        ep = fpb.Endpoint(identity=ident, namespace=ns, pod_name=name,
                          labels=labels.split(";"))
        if workload:
            ep.workloads.add(name=workload, kind="Deployment")
        return ep

    def ip(self, key: str) -> str:
        return self.pods[key][0] if key in self.pods else key

    def flow(self, src: str, dst: str, port: int, protocol: str = "TCP",
             verdict: int = fpb.FORWARDED, direction: int = fpb.EGRESS,
             reply: bool = False, reason: int = 0) -> opb.GetFlowsResponse:
        flow = fpb.Flow(verdict=verdict, source=self.endpoint(src),
                        destination=self.endpoint(dst), traffic_direction=direction,
                        IP=fpb.IP(source=self.ip(src), destination=self.ip(dst),
                                  ipVersion=fpb.IPv4))
        flow.is_reply.value = reply
        if protocol == "TCP":
            flow.l4.TCP.source_port, flow.l4.TCP.destination_port = 40000, port
        elif protocol == "UDP":
            flow.l4.UDP.source_port, flow.l4.UDP.destination_port = 40000, port
        else:
            flow.l4.ICMPv4.type = 8
        if verdict == fpb.DROPPED:
            flow.drop_reason_desc = fpb.DropReason.ValueType(reason or DropReason.POLICY_DENIED)
            flow.event_type.type, flow.event_type.sub_type = 1, flow.drop_reason_desc
        else:
            flow.event_type.type = 9
        return opb.GetFlowsResponse(flow=flow, node_name="node1")

    def objects(self) -> ClusterObjects:
        objects = ClusterObjects()
        for key, (ip, labels, _, _, _) in self.pods.items():
            ns, name = key.split("/")
            objects.pods[key] = Pod(namespace=ns, name=name, labels=labels, ip=ip)
        return objects


def demo() -> Cluster:
    c = Cluster()
    c.pod("default/frontend-7d9-abc", {"app": "frontend"}, workload="frontend")
    c.pod("default/frontend-7d9-def", {"app": "frontend"}, workload="frontend")
    c.pod("default/backend-55f-xyz", {"app": "backend", "tier": "api"}, workload="backend")
    c.pod("kube-system/coredns-1", {"k8s-app": "kube-dns"}, workload="coredns")
    c.pod("monitoring/prometheus-0", {"app": "prometheus"})
    return c


def by_name(documents: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {f"{d['metadata']['namespace']}/{d['metadata']['name']}": d  # type: ignore[index]
            for d in documents}


def test_one_policy_per_workload_and_direction_selected_by_identity_labels() -> None:
    c = demo()
    conns = connections([
        c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 8080),
        c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 8080,
               direction=fpb.INGRESS),                       # the other node's report
        c.flow("default/frontend-7d9-def", "default/backend-55f-xyz", 8080),
        c.flow("default/backend-55f-xyz", "default/frontend-7d9-abc", 8080, reply=True),
    ])
    assert [x.text for x in conns] == [
        "default/frontend-7d9-abc -> default/backend-55f-xyz TCP/8080",
        "default/frontend-7d9-def -> default/backend-55f-xyz TCP/8080"]
    docs = by_name(suggest(conns).documents)
    assert sorted(docs) == ["default/backend-ingress", "default/frontend-egress"]
    ingress = docs["default/backend-ingress"]["spec"]
    assert ingress == {
        "podSelector": {"matchLabels": {"app": "backend", "tier": "api"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                     "ports": [{"protocol": "TCP", "port": 8080}]}]}
    assert "7d9" not in json.dumps(docs) and "55f" not in json.dumps(docs)   # no pod names


def test_peers_in_other_namespaces_are_selected_by_namespace_name_and_dns_is_kept() -> None:
    c = demo()
    conns = connections([
        c.flow("default/backend-55f-xyz", "kube-system/coredns-1", 53, "UDP"),
        c.flow("monitoring/prometheus-0", "default/backend-55f-xyz", 9090),
    ])
    docs = by_name(suggest(conns).documents)
    egress = docs["default/backend-egress"]["spec"]["egress"]   # type: ignore[index]
    assert egress == [{"to": [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                               "namespaceSelector": {"matchLabels": {
                                   "kubernetes.io/metadata.name": "kube-system"}}}],
                       "ports": [{"protocol": "UDP", "port": 53}]}]
    ingress = docs["default/backend-ingress"]["spec"]["ingress"]   # type: ignore[index]
    assert ingress[0]["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    assert "kube-system/coredns-ingress" in docs
    assert "monitoring/prometheus-0-egress" in docs   # a bare pod: its own name
    assert verify(conns, policies_of(list(docs.values()))).ok


@pytest.mark.parametrize("address, prefix, cidr", [
    ("93.184.216.34", 32, "93.184.216.34/32"), ("93.184.216.34", 24, "93.184.216.0/24"),
    ("2001:db8::34", 32, "2001:db8::34/128"), ("2001:db8::134", 24, "2001:db8::100/120")])
def test_addresses_outside_the_cluster_become_ip_blocks(address: str, prefix: int,
                                                        cidr: str) -> None:
    c = demo()
    conns = connections([c.flow("default/frontend-7d9-abc", address, 443)])
    docs = by_name(suggest(conns, Options(cidr_prefix=prefix)).documents)
    rule = docs["default/frontend-egress"]["spec"]["egress"][0]   # type: ignore[index]
    assert rule == {"to": [{"ipBlock": {"cidr": cidr}}],
                    "ports": [{"protocol": "TCP", "port": 443}]}
    assert verify(conns, policies_of(list(docs.values()))).ok


def test_peers_with_the_same_ports_share_a_rule_and_others_do_not() -> None:
    c = demo()
    conns = connections([
        c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 8080),
        c.flow("monitoring/prometheus-0", "default/backend-55f-xyz", 8080),
        c.flow("monitoring/prometheus-0", "default/backend-55f-xyz", 9090),
    ])
    ingress = by_name(suggest(conns).documents)["default/backend-ingress"]["spec"]["ingress"]
    assert [(len(r["from"]), [p["port"] for p in r["ports"]])   # type: ignore[index]
            for r in ingress] == [(1, [8080]), (1, [8080, 9090])]


def test_drops_by_policy_are_connections_and_other_drops_and_replies_are_not() -> None:
    c = demo()
    conns = connections([
        c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 8080,
               verdict=fpb.DROPPED),
        c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 9999,
               verdict=fpb.DROPPED, reason=DropReason.INVALID_SOURCE_IP),
        c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 7777, reply=True),
    ])
    assert [(x.port, x.dropped) for x in conns] == [(8080, True)]


def test_icmp_cannot_be_written_and_is_named_as_not_kept() -> None:
    c = demo()
    conns = connections([c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 0,
                                "ICMP"),
                         c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 80)])
    suggestion = suggest(conns)
    assert any("cannot allow ICMP" in note for note in suggestion.notes)
    checked = verify(conns, policies_of(suggestion.documents))
    assert [(x.text, why) for x, why in checked.not_kept] == [
        ("default/frontend-7d9-abc -> default/backend-55f-xyz ICMP",
         "default/frontend-7d9-abc's egress does not allow it")]


def test_verification_catches_a_policy_that_denies_an_observed_connection() -> None:
    c = demo()
    conns = connections([c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 8080)])
    docs = suggest(conns).documents
    docs[0]["spec"]["ingress"][0]["ports"][0]["port"] = 8081   # a wrong port
    checked = verify(conns, policies_of(docs))
    assert not checked.ok
    assert "backend-55f-xyz's ingress" in checked.not_kept[0][1]


def test_diff_names_what_the_current_policies_drop_and_what_changes() -> None:
    c = demo()
    conns = connections([
        c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 8080),
        c.flow("monitoring/prometheus-0", "default/backend-55f-xyz", 9090,
               verdict=fpb.DROPPED),
    ])
    deny_all, _ = objects_from_documents([{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "backend-ingress", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "backend"}}, "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}]}]}}])
    suggested = policies_of(suggest(conns).documents)
    result = diff(conns, dict(deny_all.policies), suggested)
    assert [x.text for x, _ in result.dropped_now] == [
        "monitoring/prometheus-0 -> default/backend-55f-xyz TCP/9090"]
    assert ("monitoring/prometheus-0", "default/backend-55f-xyz", "TCP", 9090) in result.adds
    # Today frontend reaches backend on every port; the suggestion only on 8080.
    assert ("default/frontend-7d9-abc", "default/backend-55f-xyz", "TCP", 9090) in \
        result.removes
    assert result.replaced_policies == ["default/backend-ingress"]
    assert "default/frontend-egress" in result.new_policies
    assert "observed connections the current policies drop: 1" in result.text()


def test_random_connections_are_allowed_and_every_unobserved_pair_denied() -> None:
    """The issue's check, offline: pods with their own labels, random connections,
    the suggestion applied with the pods in `policy matrix`."""
    rng = random.Random(15)
    c = Cluster()
    keys = [c.pod(f"{'default' if i % 3 else 'other'}/p{i}", {"app": f"p{i}"})
            for i in range(10)]
    ports = [80, 8080]
    seen = {(rng.choice(keys), rng.choice(keys), rng.choice(ports)) for _ in range(25)}
    seen = {s for s in seen if s[0] != s[1]}
    conns = connections([c.flow(s, d, p) for s, d, p in sorted(seen)])
    objects = c.objects()
    objects.policies.update(policies_of(suggest(conns).documents))
    verdicts = matrix_reachability(objects, ports, ["TCP"])
    allowed = {(v.src, v.dst, v.port) for v in verdicts if v.allowed}
    assert allowed == seen


def test_the_cli_reads_an_export_file_and_prints_policies_kubectl_can_apply(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = demo()
    flows = tmp_path / "flows.json"
    flows.write_text("".join(
        json_format.MessageToJson(r, indent=None) + "\n" for r in [
            c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 8080),
            c.flow("default/backend-55f-xyz", "kube-system/coredns-1", 53, "UDP")]))
    assert main(["policy", "suggest", "--input-file", str(flows)]) == 0
    out, err = capsys.readouterr()
    assert "all 2 observed connections stay allowed" in err
    path = tmp_path / "suggested.yaml"
    path.write_text(out)
    loaded, errors = load_paths([path])
    assert not errors and sorted(loaded.policies) == [
        "default/backend-egress", "default/backend-ingress", "default/frontend-egress",
        "kube-system/coredns-ingress"]
    # Also from stdin, as JSON.
    sys_stdin = sys.stdin
    sys.stdin = io.StringIO(flows.read_text())
    try:
        assert main(["policy", "suggest", "--input-file", "-", "-o", "json"]) == 0
    finally:
        sys.stdin = sys_stdin
    assert len(json.loads(capsys.readouterr().out)["items"]) == 4


def test_the_cli_diff_against_manifests(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    c = demo()
    flows = tmp_path / "flows.json"
    flows.write_text(json_format.MessageToJson(
        c.flow("default/frontend-7d9-abc", "default/backend-55f-xyz", 8080), indent=None))
    current = tmp_path / "current.yaml"
    current.write_text(yaml.safe_dump({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny-all", "namespace": "default"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}))
    assert main(["policy", "suggest", "--input-file", str(flows), "--diff", "-f",
                 str(current), "-o", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [d["connection"] for d in result["dropped_now"]] == [
        "default/frontend-7d9-abc -> default/backend-55f-xyz TCP/8080"]
    assert result["policies"]["current_not_suggested"] == ["default/deny-all"]


def test_an_empty_flow_file_is_an_error(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "none.json"
    empty.write_text("")
    assert main(["policy", "suggest", "--input-file", str(empty)]) == 1
    assert "no connections" in capsys.readouterr().err


def test_cluster_of_reads_namespace_labels_back_from_identities() -> None:
    c = Cluster()
    c.pod("team-a/web", {"app": "web"}, namespace_labels={"team": "a"})
    c.pod("team-b/db", {"app": "db"})
    conns = connections([c.flow("team-a/web", "team-b/db", 5432)])
    objects = cluster_of(conns)
    assert objects.namespaces["team-a"].labels == {"team": "a",
                                                   "kubernetes.io/metadata.name": "team-a"}
    assert objects.pods["team-a/web"].labels == {"app": "web"}
