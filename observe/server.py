"""The Observer service (Hubble's observer.Observer) over a FlowObserver's ring.

Served by Membrane's own gRPC transport (observe.h2server), not grpcio's: GetFlows hands
each ring read's entries to it as one batch of the bytes the ring holds
(observe.encoder.Wire), so a flow is serialized once for every follower, never rebuilt
per stream, and a batch leaves in a few HTTP/2 writes. The agent serves the Observer
(and the Peer service) on its own unix socket (`observer_socket`, beside the agent's, as
Cilium's hubble.sock is beside cilium.sock) and, with mutual TLS only, on TCP
(observe.tls). GetAgentEvents and GetDebugEvents are not served (Membrane has no agent
or debug events): clients get UNIMPLEMENTED.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import grpc
from google.protobuf.wrappers_pb2 import UInt32Value

from observe.gen.observer import observer_pb2 as opb
from observe.gen.relay import relay_pb2 as rpb
from observe.h2server import H2GrpcServer
from observe.ring import FlowObserver
from observe.rpc import Batch, Call, Method, unary
from observe.stream import FlowStream, InvalidRequest

log = logging.getLogger(__name__)

SERVICE = "observer.Observer"
OBSERVER_SOCKET_SUFFIX = ".observer.sock"


def observer_socket(agent_socket: str | Path) -> str:
    """Where an agent serves its Observer: beside its API socket, with the same stem
    (/run/membrane/agent.sock -> /run/membrane/agent.observer.sock)."""
    path = Path(str(agent_socket).removeprefix("unix://").removeprefix("unix:"))
    return str(path.with_name(path.name.removesuffix(".sock") + OBSERVER_SOCKET_SUFFIX))


def passthrough(data: bytes) -> bytes:
    """A grpcio (de)serializer for bytes that are serialized already."""
    return data


class ObserverServicer:
    """One node's Observer. `address` is what GetNodes reports as the node's API
    address (empty when the agent did not say)."""

    def __init__(self, observer: FlowObserver, address: str = "") -> None:
        self.observer = observer
        self.address = address

    def GetFlows(self, request: opb.GetFlowsRequest, call: Call) -> Iterator[Batch]:
        try:
            stream = FlowStream(self.observer, request)
        except InvalidRequest as err:
            call.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        # A cancelled client should not wait for the next poll: wake the ring.
        call.on_done(self.observer.ring.wake)
        for wires in stream.batches(call.active):
            yield [wire.data for wire in wires]

    def ServerStatus(self, request: opb.ServerStatusRequest,
                     call: Call) -> opb.ServerStatusResponse:
        return status_message(self.observer)

    def GetNodes(self, request: opb.GetNodesRequest, call: Call) -> opb.GetNodesResponse:
        st = self.observer.status()
        return opb.GetNodesResponse(nodes=[opb.Node(
            name=st.node, version=st.version, address=self.address,
            state=rpb.NODE_CONNECTED, uptime_ns=st.uptime_ns, num_flows=st.num_flows,
            max_flows=st.max_flows, seen_flows=st.seen_flows)])

    def GetNamespaces(self, request: opb.GetNamespacesRequest,
                      call: Call) -> opb.GetNamespacesResponse:
        return opb.GetNamespacesResponse(namespaces=[
            opb.Namespace(namespace=ns) for ns in self.observer.namespaces.names()])


def status_message(observer: FlowObserver) -> opb.ServerStatusResponse:
    """One node's status, as Hubble's agents answer it: one connected node (itself)."""
    st = observer.status()
    return opb.ServerStatusResponse(
        num_flows=st.num_flows, max_flows=st.max_flows, seen_flows=st.seen_flows,
        uptime_ns=st.uptime_ns, version=st.version,
        num_connected_nodes=UInt32Value(value=1), num_unavailable_nodes=UInt32Value(value=0))


class ObserverService(Protocol):
    """What serves the Observer methods Membrane implements: one node (ObserverServicer)
    or the relay's merged view (observe.relay.server.RelayServicer)."""

    def GetFlows(self, request: opb.GetFlowsRequest, call: Call) -> Iterator[Batch]: ...

    def ServerStatus(self, request: opb.ServerStatusRequest,
                     call: Call) -> opb.ServerStatusResponse: ...

    def GetNodes(self, request: opb.GetNodesRequest, call: Call) -> opb.GetNodesResponse: ...

    def GetNamespaces(self, request: opb.GetNamespacesRequest,
                      call: Call) -> opb.GetNamespacesResponse: ...


def service_methods(servicer: ObserverService) -> list[Method]:
    """The Observer methods of a servicer, for observe.h2server."""
    return [
        Method(f"/{SERVICE}/GetFlows", opb.GetFlowsRequest.FromString,
               stream=servicer.GetFlows),
        unary(f"/{SERVICE}/GetNodes", opb.GetNodesRequest.FromString, servicer.GetNodes),
        unary(f"/{SERVICE}/GetNamespaces", opb.GetNamespacesRequest.FromString,
              servicer.GetNamespaces),
        unary(f"/{SERVICE}/ServerStatus", opb.ServerStatusRequest.FromString,
              servicer.ServerStatus),
    ]


def observer_methods(observer: FlowObserver, address: str = "") -> list[Method]:
    """The Observer methods Membrane serves for one node, for observe.h2server."""
    return service_methods(ObserverServicer(observer, address))


def serve_unix(methods: Sequence[Method], path: str | Path) -> H2GrpcServer:
    """A started server of `methods` on a unix socket (0600; a stale one is replaced)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).unlink(missing_ok=True)
    server = H2GrpcServer(methods)
    server.start()
    try:
        server.add_unix(str(path))
    except OSError:
        server.stop()
        raise
    return server
