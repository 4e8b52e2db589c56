"""The Observer gRPC service (Hubble's observer.Observer) over a FlowObserver's ring.

The agent creates the grpc.server (unix socket, mode 0600, shared with the Agent
service) and calls `add_observer_to_server(server, observer)`. A TCP listener exists only
with mutual TLS: observe.tls.serve_tcp_with_tls.

GetFlows sends each entry's bytes as the ring holds them (observe.encoder.Wire): the
method is registered with a pass-through serializer, so a flow is serialized once for
every follower and never rebuilt per stream. GetAgentEvents and GetDebugEvents are not
served (Membrane has no agent or debug events): clients get UNIMPLEMENTED.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
from google.protobuf.wrappers_pb2 import UInt32Value

from observe.gen.observer import observer_pb2 as opb
from observe.gen.relay import relay_pb2 as rpb
from observe.ring import FlowObserver
from observe.stream import FlowStream, InvalidRequest

log = logging.getLogger(__name__)

SERVICE = "observer.Observer"

def passthrough(data: bytes) -> bytes:
    """The response serializer of GetFlows: entries are serialized already."""
    return data


class ObserverServicer:
    """One node's Observer. `address` is what GetNodes reports as the node's API
    address (empty when the agent did not say)."""

    def __init__(self, observer: FlowObserver, address: str = "") -> None:
        self.observer = observer
        self.address = address

    def GetFlows(self, request: opb.GetFlowsRequest,
                 context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            stream = FlowStream(self.observer, request)
        except InvalidRequest as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        # A cancelled client should not wait for the next poll: wake the ring.
        context.add_callback(self.observer.ring.wake)
        for wire in stream.entries(context.is_active):
            yield wire.data

    def ServerStatus(self, request: opb.ServerStatusRequest,
                     context: grpc.ServicerContext) -> opb.ServerStatusResponse:
        return status_message(self.observer)

    def GetNodes(self, request: opb.GetNodesRequest,
                 context: grpc.ServicerContext) -> opb.GetNodesResponse:
        st = self.observer.status()
        return opb.GetNodesResponse(nodes=[opb.Node(
            name=st.node, version=st.version, address=self.address,
            state=rpb.NODE_CONNECTED, uptime_ns=st.uptime_ns, num_flows=st.num_flows,
            max_flows=st.max_flows, seen_flows=st.seen_flows)])

    def GetNamespaces(self, request: opb.GetNamespacesRequest,
                      context: grpc.ServicerContext) -> opb.GetNamespacesResponse:
        return opb.GetNamespacesResponse(namespaces=[
            opb.Namespace(namespace=ns) for ns in self.observer.namespaces.names()])


def status_message(observer: FlowObserver) -> opb.ServerStatusResponse:
    """One node's status, as Hubble's agents answer it: one connected node (itself)."""
    st = observer.status()
    return opb.ServerStatusResponse(
        num_flows=st.num_flows, max_flows=st.max_flows, seen_flows=st.seen_flows,
        uptime_ns=st.uptime_ns, version=st.version,
        num_connected_nodes=UInt32Value(value=1), num_unavailable_nodes=UInt32Value(value=0))


def observer_handler(servicer: ObserverServicer) -> grpc.GenericRpcHandler:
    """The gRPC handler of the Observer methods Membrane serves."""
    return grpc.method_handlers_generic_handler(SERVICE, {
        "GetFlows": grpc.unary_stream_rpc_method_handler(
            servicer.GetFlows, request_deserializer=opb.GetFlowsRequest.FromString,
            response_serializer=passthrough),
        "GetNodes": grpc.unary_unary_rpc_method_handler(
            servicer.GetNodes, request_deserializer=opb.GetNodesRequest.FromString,
            response_serializer=opb.GetNodesResponse.SerializeToString),
        "GetNamespaces": grpc.unary_unary_rpc_method_handler(
            servicer.GetNamespaces, request_deserializer=opb.GetNamespacesRequest.FromString,
            response_serializer=opb.GetNamespacesResponse.SerializeToString),
        "ServerStatus": grpc.unary_unary_rpc_method_handler(
            servicer.ServerStatus, request_deserializer=opb.ServerStatusRequest.FromString,
            response_serializer=opb.ServerStatusResponse.SerializeToString),
    })


def add_observer_to_server(server: grpc.Server, observer: FlowObserver,
                           address: str = "") -> ObserverServicer:
    servicer = ObserverServicer(observer, address)
    server.add_generic_rpc_handlers((observer_handler(servicer),))
    return servicer
