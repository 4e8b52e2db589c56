"""The CNI plugin's link to the agent: AgentClient calls with gRPC outcomes mapped to CNI's.

Its own module so that `membrane-cni VERSION` (plugin.py) never loads gRPC.
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from agent.api.client import AgentClient
from agent.api.gen import agent_pb2 as pb
from agent.cni import endpoint as ep
from agent.cni.spec import ERR_AGENT_REFUSED, ERR_TRY_AGAIN_LATER, CniError, Invocation, Outcome
from core.errors import AgentUnreachable, MembraneError

_OUTCOMES = {grpc.StatusCode.NOT_FOUND: Outcome.NOT_FOUND,
             grpc.StatusCode.UNAVAILABLE: Outcome.UNAVAILABLE}


class AgentLink:
    """The three calls the plugin makes, with gRPC status codes mapped to CNI outcomes."""

    def __init__(self, socket: str, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                self.client = AgentClient(socket)
                return
            except AgentUnreachable as err:
                if time.monotonic() >= deadline:
                    raise CniError(ERR_TRY_AGAIN_LATER, str(err)) from None
                time.sleep(0.2)

    def close(self) -> None:
        self.client.close()

    def register(self, inv: Invocation, iface: ep.PodInterface, timeout: float) -> Any:
        namespace, pod = inv.pod
        try:
            return self.client.register_endpoint(namespace, pod, iface.host_ifname, iface.ipv4,
                                                 timeout=timeout, container_id=inv.container_id,
                                                 ipv6=iface.ipv6)
        except AgentUnreachable as err:
            raise CniError(ERR_TRY_AGAIN_LATER, str(err)) from None
        except MembraneError as err:
            raise CniError(ERR_AGENT_REFUSED, f"agent did not enforce {namespace}/{pod}: {err}")\
                from None

    def _raw(self, method: str, request: Any) -> tuple[Any, Outcome]:
        """(reply, OK) or (None, what failed): DEL and CHECK branch on NOT_FOUND, which
        AgentClient folds into a plain MembraneError."""
        try:
            return getattr(self.client.stub, method)(request, timeout=self.client.timeout), \
                Outcome.OK
        except grpc.RpcError as err:
            return None, _OUTCOMES.get(err.code(), Outcome.FAILED)

    def deregister(self, namespace: str, pod: str) -> Outcome:
        return self._raw("DeregisterEndpoint", pb.EndpointRef(namespace=namespace, pod=pod))[1]

    def get(self, namespace: str, pod: str) -> tuple[Any, Outcome]:
        return self._raw("GetEndpoint", pb.EndpointRef(namespace=namespace, pod=pod))
