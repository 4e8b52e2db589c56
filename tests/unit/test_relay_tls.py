"""The relay in a cluster: certificates made by deploy/components/relay/make-certs.sh, the
agent's Observer and Peer services on TCP with mutual TLS, the relay finding the agent
through the Peer service and serving clients over mutual TLS. All on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from core.errors import MembraneError
from observe.gen.observer import observer_pb2 as opb
from observe.gen.observer import observer_pb2_grpc as opb_grpc
from observe.gen.relay import relay_pb2 as rpb
from observe.relay.peers import Peer, PeerService
from observe.relay.pool import ClientTLS, NodePool, channel_factory
from observe.h2server import H2GrpcServer
from observe.relay.server import RelayServicer, relay_methods
from observe.ring import FlowObserver
from observe.tls import serve_tcp_with_tls, tls_context
from tests.unit.test_observe_server import make_flow

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "components" / "relay" / "make-certs.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    out = tmp_path_factory.mktemp("tls")
    done = subprocess.run(["sh", str(SCRIPT), str(out)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "create secret generic membrane-agent-tls" in done.stdout
    assert "create secret generic membrane-relay-tls" in done.stdout
    return out


def test_the_relay_finds_and_reads_an_agent_over_mutual_tls(certs: Path) -> None:
    agent_port = free_port()
    observer = FlowObserver("node1", capacity=16)
    observer.add_flow(make_flow(0))
    peers = [Peer("node1", f"127.0.0.1:{agent_port}", "membrane-agent")]
    agent = serve_tcp_with_tls(observer, f"127.0.0.1:{agent_port}", certs / "agent.crt",
                               certs / "agent.key", certs / "ca.crt", ["membrane-relay"],
                               peers=lambda: peers)
    tls = ClientTLS(str(certs / "ca.crt"), str(certs / "relay.crt"), str(certs / "relay.key"))
    pool = NodePool(channel_factory(tls), tls)
    stop = threading.Event()
    source = PeerService(f"127.0.0.1:{agent_port}", channel_factory(tls), "membrane-agent")
    threading.Thread(target=source.watch, args=(pool.update, stop), daemon=True).start()
    relay = H2GrpcServer(relay_methods(RelayServicer(pool)), allowed_names=["membrane-client"])
    relay.start()
    relay_port = relay.add_tls("127.0.0.1:0", tls_context(certs / "relay.crt",
                                                         certs / "relay.key", certs / "ca.crt"))
    try:
        deadline = time.monotonic() + 10
        while not pool.nodes() and time.monotonic() < deadline:
            time.sleep(0.1)
        client = grpc.ssl_channel_credentials(
            (certs / "ca.crt").read_bytes(), (certs / "client.key").read_bytes(),
            (certs / "client.crt").read_bytes())
        with grpc.secure_channel(f"localhost:{relay_port}", client) as ch:
            stub = opb_grpc.ObserverStub(ch)
            (node,) = stub.GetNodes(opb.GetNodesRequest(), timeout=10).nodes
            assert (node.name, node.state, node.num_flows) == ("node1", rpb.NODE_CONNECTED, 1)
            assert node.tls.enabled and node.tls.server_name == "membrane-agent"
            got = list(stub.GetFlows(opb.GetFlowsRequest(number=5), timeout=10))
            assert [r.flow.node_name for r in got if r.HasField("flow")] == ["node1"]
            # Followed: the relay reads the agent's stream over its own HTTP/2 client,
            # mutual TLS and all (observe.relay.h2client).
            follow = stub.GetFlows(opb.GetFlowsRequest(follow=True), timeout=10)
            time.sleep(1.0)
            observer.add_flow(make_flow(1))
            followed = next(r for r in follow if r.HasField("flow"))
            assert followed.flow.l4.TCP.source_port == 1001
            follow.cancel()
        # The agent's certificate is signed by the same CA, but may not read flows.
        agent_cert = grpc.ssl_channel_credentials(
            (certs / "ca.crt").read_bytes(), (certs / "agent.key").read_bytes(),
            (certs / "agent.crt").read_bytes())
        with grpc.secure_channel(f"localhost:{relay_port}", agent_cert) as ch:
            with pytest.raises(grpc.RpcError) as denied:
                opb_grpc.ObserverStub(ch).ServerStatus(opb.ServerStatusRequest(), timeout=5)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        anonymous = grpc.ssl_channel_credentials((certs / "ca.crt").read_bytes())
        with grpc.secure_channel(f"localhost:{relay_port}", anonymous) as ch:
            with pytest.raises(grpc.RpcError):
                opb_grpc.ObserverStub(ch).ServerStatus(opb.ServerStatusRequest(), timeout=5)
    finally:
        stop.set()
        relay.stop(None)
        agent.stop(None)
        pool.close()
        observer.stop()


def test_a_tcp_peer_without_a_ca_is_refused_with_the_flag_to_give() -> None:
    with pytest.raises(MembraneError, match="--peer-tls-ca"):
        channel_factory(None)("10.0.0.1:4244", "")
