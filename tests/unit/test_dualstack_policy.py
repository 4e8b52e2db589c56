"""Dual-stack policy: `policy matrix --family` against the NetworkPolicy spec.

On generated scenarios in the upstream e2e shape with every pod dual-stack and ipBlocks
of both families (dualstack_scenarios.py), the engine's matrix of each family must equal
the spec's answer (tests/datapath/netpol_spec.py, which shares no code with the
engine) for every
ordered pair of the nine pods, on ports 80 and 81 over TCP, UDP and SCTP. Then the parts
that make the two families differ, one at a time, and the CLI around them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, find, given, settings

from agent.k8s.objects import ClusterObjects, Node, Protocol


def spec_allowed(objects: ClusterObjects, src: str, dst: str, protocol: str, port: int,
                 family: int) -> bool:
    return spec_allows(objects, src, dst, Protocol(protocol), port, family=family)
from agent.policy.matrix import reachability
from agent.policy.trace import trace
from cli import policy as policy_cli
from dualstack_scenarios import (FAMILIES, PODS, PORTS, PROTOCOLS, Scenario, cluster_documents,
                                 model_plan, objects_for, scenarios)
from identity.reserved import ReservedIdentity
from tests.datapath.netpol_spec import spec_allows
from policy_helpers import block, cluster, engine_for, ns, peer, pod, policy, port, rule, sel

PLAN = model_plan()


def spec_table(objects: ClusterObjects, family: int) -> dict[tuple[str, str, str, int], bool]:
    return {(s, d, proto, number): spec_allowed(objects, s, d, proto, number, family)
            for s in PODS for d in PODS if s != d for proto in PROTOCOLS for number in PORTS}


def matrix_table(objects: ClusterObjects, family: int) -> dict[tuple[str, str, str, int], bool]:
    verdicts = reachability(objects, list(PORTS), list(PROTOCOLS), family=family)
    return {(v.src, v.dst, v.protocol, v.port): v.allowed for v in verdicts}


def differences(scenario: Scenario, family: int) -> list[str]:
    objects = objects_for(PLAN, scenario)
    spec, matrix = spec_table(objects, family), matrix_table(objects, family)
    assert set(spec) == set(matrix)
    return [f"IPv{family} {s} -> {d} {proto}/{number}: matrix "
            f"{'allows' if matrix[(s, d, proto, number)] else 'denies'}, the spec "
            f"{'allows' if want else 'denies'}"
            for (s, d, proto, number), want in sorted(spec.items())
            if matrix[(s, d, proto, number)] != want]


@settings(max_examples=150, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(PLAN))
def test_the_matrix_of_each_family_is_the_specs_on_generated_dual_stack_scenarios(
        scenario: Scenario) -> None:
    wrong = [line for family in FAMILIES for line in differences(scenario, family)]
    assert not wrong, "\n".join(wrong[:30]) + "\n\n" + yaml.safe_dump_all(scenario.policies)


def test_the_generator_makes_scenarios_whose_families_differ() -> None:
    """Else the property above could pass with the family ignored."""
    def families_differ(scenario: Scenario) -> bool:
        objects = objects_for(PLAN, scenario)
        return matrix_table(objects, 4) != matrix_table(objects, 6)

    found = find(scenarios(PLAN), families_differ,
                 settings=settings(database=None, derandomize=True, max_examples=500,
                                   deadline=None))
    assert differences(found, 4) == differences(found, 6) == []


# --- one family's ipBlock, the other family's traffic ------------------------------------------

def dual_cluster(*policies: object) -> ClusterObjects:
    return cluster(
        ns("a"), ns("b"),
        pod("a/client", {"app": "client"}, "10.1.0.1", [("", 80, "TCP")]),
        pod("b/server", {"app": "server"}, "10.2.0.1", [("http", 8080, "TCP")]),
        *policies)


def with_ipv6(objects: ClusterObjects) -> ClusterObjects:
    from dataclasses import replace
    objects.pods["a/client"] = replace(objects.pods["a/client"], ipv6="fd00:1::1")
    objects.pods["b/server"] = replace(objects.pods["b/server"], ipv6="fd00:2::1")
    return objects


def verdict(objects: ClusterObjects, family: int, number: int = 8080) -> bool:
    [v] = [v for v in reachability(objects, [number], ["TCP"], family=family)
           if (v.src, v.dst) == ("a/client", "b/server")]
    return v.allowed


CLIENT = sel({"app": "client"})


@pytest.mark.parametrize("blocks, ipv4, ipv6", [
    pytest.param([block("10.2.0.0/16")], True, False,
                 id="an IPv4 block holds the server's IPv4 address only"),
    pytest.param([block("fd00:2::/64")], False, True,
                 id="an IPv6 block holds the server's IPv6 address only"),
    pytest.param([block("10.2.0.0/16"), block("fd00:2::/64")], True, True,
                 id="a block of each family holds both"),
    pytest.param([block("0.0.0.0/0"), block("::/0", "fd00:2::1/128")], True, False,
                 id="an IPv6 except cuts the IPv6 address only"),
    pytest.param([block("::/0")], False, True,
                 id="::/0 is the whole IPv6 world and nothing of IPv4"),
])
def test_an_ipblock_holds_the_addresses_of_its_own_family(blocks: list[object], ipv4: bool,
                                                          ipv6: bool) -> None:
    objects = with_ipv6(dual_cluster(policy("a/out", CLIENT, egress=[rule(blocks)],
                                            types=["Egress"])))
    assert (verdict(objects, 4), verdict(objects, 6)) == (ipv4, ipv6)


def test_selectors_and_named_ports_hold_in_both_families() -> None:
    objects = with_ipv6(dual_cluster(
        policy("b/in", sel({"app": "server"}),
               ingress=[rule([peer(CLIENT, sel())], [port("http")])])))
    assert (verdict(objects, 4), verdict(objects, 6)) == (True, True)
    assert (verdict(objects, 4, 80), verdict(objects, 6, 80)) == (False, False)


def test_a_named_port_to_an_ipv6_block_resolves_on_the_pods_inside_it() -> None:
    objects = with_ipv6(dual_cluster(policy("a/out", CLIENT, types=["Egress"], egress=[
        rule([block("fd00:2::/64")], [port("http")])])))
    assert (verdict(objects, 6), verdict(objects, 4)) == (True, False)


def test_a_pod_without_an_address_of_the_family_is_matched_by_identity_alone() -> None:
    objects = dual_cluster(policy("b/in", sel({"app": "server"}), ingress=[
        rule([peer(CLIENT, sel())]), rule([block("fd00::/8")], [port(9090)])]))
    assert (verdict(objects, 4), verdict(objects, 6)) == (True, True)
    assert verdict(objects, 6, 9090) is True     # by the selector, not the IPv6 block


# --- the cluster maps ---------------------------------------------------------------------------

def test_every_address_of_a_pod_and_a_node_is_in_the_ipcache_of_its_family() -> None:
    objects = with_ipv6(dual_cluster(policy("a/out", CLIENT, types=["Egress"],
                                            egress=[rule([block("fd00:2::/64")])])))
    objects.nodes["n1"] = Node("n1", "192.168.0.1", ipv6="fd00:ff::1")
    objects.nodes["n2"] = Node("n2", "192.168.0.2", ipv6="fd00:ff::2")
    engine = engine_for(objects)
    maps = engine.cluster_maps("n1")
    server = engine.identity_of("b/server")
    assert server is not None
    assert maps.ipcache["10.2.0.1/32"] == maps.ipcache["fd00:2::1/128"] == server.id
    assert maps.ipcache["fd00:ff::1/128"] == ReservedIdentity.HOST
    assert maps.ipcache["fd00:ff::2/128"] == ReservedIdentity.REMOTE_NODE
    assert maps.ipcache["::/0"] == maps.ipcache["0.0.0.0/0"] == ReservedIdentity.WORLD
    assert maps.identities_of("fd00:2::7") == (ReservedIdentity.WORLD, maps.cidrs["fd00:2::/64"])
    assert maps.identities_of("10.2.0.7") == (ReservedIdentity.WORLD, 0)
    v6 = maps.family(6)
    assert set(v6.ipcache) == {p for p in maps.ipcache if ":" in p}
    assert set(v6.cidrs) == {"fd00:2::/64"} and maps.family(4).cidrs == {}


def test_changing_only_a_pods_ipv6_address_changes_the_cluster_maps() -> None:
    from dataclasses import replace
    engine, objects = engine_for(with_ipv6(dual_cluster())), with_ipv6(dual_cluster())
    objects.pods["b/server"] = replace(objects.pods["b/server"], ipv6="fd00:2::99")
    delta = engine.update(objects)
    assert delta.cluster_maps_changed
    assert "fd00:2::99/128" in engine.cluster_maps().ipcache
    assert "fd00:2::1/128" not in engine.cluster_maps().ipcache


# --- the CLI ------------------------------------------------------------------------------------

def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    policy_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


@settings(max_examples=8, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=scenarios(PLAN))
def test_policy_matrix_family_prints_the_specs_verdicts_in_the_usual_shape(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scenario: Scenario) -> None:
    manifest = tmp_path / "dual.yaml"
    manifest.write_text(yaml.safe_dump_all(cluster_documents(PLAN) + list(scenario.policies)))
    objects = objects_for(PLAN, scenario)
    for family, flag in ((4, []), (4, ["--family", "ipv4"]), (6, ["--family", "IPv6"])):
        code, out = run(["policy", "matrix", "-f", str(manifest), "--port", "80", "--port",
                         "81", "--protocol", "TCP", "--protocol", "UDP", "-o", "json", *flag],
                        capsys)
        assert code == 0
        verdicts = json.loads(out)["verdicts"]
        assert {tuple(v) for v in verdicts} == {("from", "to", "port", "protocol", "allowed")}
        assert len(verdicts) == 9 * 8 * 2 * 2
        wrong = [v for v in verdicts if v["allowed"] != spec_allowed(
            objects, v["from"], v["to"], v["protocol"], v["port"], family)]
        assert not wrong, (flag, wrong[:5])


def test_policy_trace_family_explains_with_the_familys_addresses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "dual.yaml"
    blocked = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "v4-only", "namespace": "x"},
               "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                        "egress": [{"to": [{"ipBlock": {"cidr": "10.244.2.0/24"}}]}]}}
    manifest.write_text(yaml.safe_dump_all(cluster_documents(PLAN) + [blocked]))
    _, v4 = run(["policy", "trace", "-f", str(manifest), "--from", "x/a", "--to", "y/b"], capsys)
    _, v6 = run(["policy", "trace", "-f", str(manifest), "--from", "x/a", "--to", "y/b",
                 "--family", "ipv6", "-o", "json"], capsys)
    assert "over IPv4" in v4 and "IPv4 10.244.2.11" in v4 and "Verdict: ALLOWED" in v4
    result = json.loads(v6)
    assert result["allowed"] is False
    assert "IPv6 fd00:10:244:2::11" in result["explanation"]
    assert "DENIED by egress" in result["explanation"]


def test_the_offline_trace_takes_a_family() -> None:
    objects = objects_for(PLAN, Scenario(()))
    assert trace(objects, "x/a", "y/b", 80, "UDP", 6).allowed
    assert "over IPv6" in trace(objects, "x/a", "y/b", 80, "UDP", 6).explanation


def test_an_unknown_family_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(["policy", "matrix", "-f", "x.yaml", "--family", "ipv5"], capsys)
    assert exit_.value.code == 2
