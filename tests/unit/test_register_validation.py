"""RegisterEndpoint takes only what can be an endpoint: an IPv4 unicast address, a Linux
interface name, Kubernetes names for the namespace and the pod. Anything else is
INVALID_ARGUMENT naming every bad field, and nothing is persisted (an IPv6 string in
`ipv4` once reached endpoints.json and broke every regeneration and every restart)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from agent.api.client import AgentClient
from agent.api.gen import agent_pb2 as pb
from agent.api.services import InvalidRegistration
from agent.endpoints import registration_problems
from tests.unit.test_agent import StaticSource, cluster, make_agent

GOOD = dict(namespace="default", pod="backend", ifname="lo", ipv4="10.244.1.3")


@pytest.mark.parametrize("field,value,says", [
    ("ipv4", "fd00::3", "an IPv4 address"),
    ("ipv4", "10.244.1.0/24", "an IPv4 address"),
    ("ipv4", "10.244.1.300", "an IPv4 address"),
    ("ipv4", "", "Required"),
    ("ipv4", "0.0.0.0", "unicast"),
    ("ipv4", "224.0.0.1", "unicast"),
    ("ipv4", "255.255.255.255", "unicast"),
    ("ipv4", "127.0.0.1", "unicast"),
    ("ifname", "", "Required"),
    ("ifname", "lxc0123456789abc", "at most 15 bytes"),
    ("ifname", "eth0/1", "'/'"),
    ("ifname", "eth:0", "':'"),
    ("ifname", "a b", "whitespace"),
    ("ifname", "..", '"." or ".."'),
    ("ifname", "lxc\x1b", "printable"),
    ("namespace", "Bad_NS", "RFC 1123"),
    ("namespace", "", "Required"),
    ("pod", "a" * 254, "253"),
    ("pod", "web\n", "RFC 1123"),
], ids=lambda v: repr(v)[:30] if isinstance(v, str) else str(v))
def test_a_bad_field_is_named_with_what_it_must_be(field: str, value: str, says: str) -> None:
    problems = registration_problems(**{**GOOD, field: value})
    assert len(problems) == 1 and problems[0].startswith(f"{field}: ")
    assert says in problems[0]
    assert all(ch.isprintable() for ch in problems[0])


def test_a_good_request_has_no_problem() -> None:
    assert registration_problems(**GOOD) == []
    assert registration_problems(**{**GOOD, "ifname": "lxc0123456789ab"}) == []


def test_every_bad_field_is_named_at_once() -> None:
    problems = registration_problems(namespace="", pod="", ifname="", ipv4="")
    assert [p.split(":")[0] for p in problems] == ["namespace", "pod", "ifname", "ipv4"]


def test_the_api_answers_invalid_argument_and_persists_nothing(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, StaticSource(cluster()))
    agent.start()
    try:
        with AgentClient(agent.config.socket) as client:
            with pytest.raises(grpc.RpcError) as raised:
                client.stub.RegisterEndpoint(pb.RegisterEndpointRequest(
                    namespace="default", pod="backend", ifname="lo", ipv4="fd00::3",
                    timeout_seconds=2), timeout=5)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "ipv4: invalid value \"fd00::3\": must be an IPv4 address" in str(raised.value.details())
            with pytest.raises(InvalidRegistration):
                agent.register_endpoint("default", "backend", "lo", "fd00::3", timeout=2)
            state = tmp_path / "state" / "endpoints.json"
            assert not state.exists() or json.loads(state.read_text()) == []
            # The agent goes on: a good registration works.
            ep = client.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
            assert ep.state == "ready"
    finally:
        agent.stop()
