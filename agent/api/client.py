"""A client of the agent's gRPC API (and the channel observe shares).

Addresses: a unix socket path ("/run/membrane/agent.sock" or "unix:/path"), or
"host:port" for a TLS listener. `for_lab(lab, node)` finds a lab node's agent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import grpc

from core.errors import AgentUnreachable, MembraneError
from agent.api.gen import agent_pb2 as pb
from agent.api.gen import agent_pb2_grpc as pb_grpc

Request = TypeVar("Request")
Reply = TypeVar("Reply")

DEFAULT_SOCKET = "/run/membrane/agent.sock"   # where the agent listens (AgentConfig's too)
# How long a registration, or a wait for a revision, lasts when the caller names no
# timeout: the client's, the server's and the agent's default.
DEFAULT_WAIT_SECONDS = 30.0
LAB_ROOT = Path(os.environ.get("MEMBRANE_LAB_ROOT", "/run/membrane/labs"))


def lab_socket(lab: str, node: str = "node1") -> str:
    return str(LAB_ROOT / lab / "nodes" / node / "agent.sock")


def target_of(address: str) -> str:
    if address.startswith("unix:"):
        return address
    if address.startswith("/") or address.startswith("."):
        return "unix:" + os.path.abspath(address)
    return address


def open_channel(address: str) -> grpc.Channel:
    target = target_of(address)
    if target.startswith("unix:"):
        path = target[len("unix:"):]
        if not os.path.exists(path):
            raise AgentUnreachable(f"no agent socket at {path}: is `membrane agent` running "
                                   "(or the lab up)? Use --server or --lab to point elsewhere.")
        return grpc.insecure_channel(target)
    return _tls_channel(target)


def _tls_channel(target: str) -> grpc.Channel:
    """host:port: the agent's TCP listener, which speaks only mutual TLS. The client's
    files come from MEMBRANE_TLS_CA, MEMBRANE_TLS_CERT and MEMBRANE_TLS_KEY."""
    names = ("MEMBRANE_TLS_CA", "MEMBRANE_TLS_CERT", "MEMBRANE_TLS_KEY")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise AgentUnreachable(f"{target}: a TCP agent address needs mutual TLS; set "
                               f"{', '.join(missing)} to the CA, client certificate and key")
    try:
        ca, cert, key = (Path(os.environ[n]).read_bytes() for n in names)
    except OSError as err:
        raise AgentUnreachable(f"{target}: cannot read TLS file {err.filename}: "
                               f"{err.strerror}") from None
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                         certificate_chain=cert)
    return grpc.secure_channel(target, creds)


class AgentClient:
    def __init__(self, address: str = DEFAULT_SOCKET, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self.channel = open_channel(address)
        self.stub = pb_grpc.AgentStub(self.channel)

    @classmethod
    def for_lab(cls, lab: str, node: str = "node1", timeout: float = 10.0) -> "AgentClient":
        return cls(lab_socket(lab, node), timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "AgentClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, name: str, rpc: grpc.UnaryUnaryMultiCallable[Request, Reply],
              request: Request, timeout: float | None = None) -> Reply:
        try:
            return rpc(request, timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            detail = err.details()
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                raise AgentUnreachable(f"agent at {self.address} is unreachable: {detail}") from None
            raise MembraneError(f"{name}: {detail}") from None

    # -- endpoints -----------------------------------------------------------------
    def register_endpoint(self, namespace: str, pod: str, ifname: str, ipv4: str,
                          timeout: float = DEFAULT_WAIT_SECONDS,
                          container_id: str = "", ipv6: str = "") -> pb.Endpoint:
        """ipv4 and ipv6: the pod's address of each family, "" for one it lacks."""
        req = pb.RegisterEndpointRequest(namespace=namespace, pod=pod, ifname=ifname, ipv4=ipv4,
                                         ipv6=ipv6, container_id=container_id,
                                         timeout_seconds=timeout)
        return self._call("RegisterEndpoint", self.stub.RegisterEndpoint, req, timeout + 5)

    def deregister_endpoint(self, namespace: str, pod: str) -> None:
        self._call("DeregisterEndpoint", self.stub.DeregisterEndpoint,
                   pb.EndpointRef(namespace=namespace, pod=pod))

    def list_endpoints(self) -> list[pb.Endpoint]:
        return list(self._call("ListEndpoints", self.stub.ListEndpoints, pb.Empty()).endpoints)

    def get_endpoint(self, endpoint_id: int = 0, namespace: str = "", pod: str = "") -> pb.Endpoint:
        return self._call("GetEndpoint", self.stub.GetEndpoint,
                          pb.EndpointRef(id=endpoint_id, namespace=namespace, pod=pod))

    # -- identities and policy -----------------------------------------------------
    def list_identities(self) -> list[pb.IdentityInfo]:
        reply = self._call("ListIdentities", self.stub.ListIdentities, pb.Empty())
        return list(reply.identities)

    def get_identity(self, identity: int) -> pb.IdentityInfo:
        return self._call("GetIdentity", self.stub.GetIdentity, pb.IdentityRef(id=identity))

    def get_policies(self) -> pb.PolicyList:
        return self._call("GetPolicies", self.stub.GetPolicies, pb.Empty())

    def trace(self, src: str, dst: str, port: int, protocol: str = "TCP",
              family: int = 4) -> pb.TraceReply:
        request = pb.TraceRequest(**{"from": src}, to=dst, port=port, protocol=protocol,
                                  ip_version=family)
        return self._call("Trace", self.stub.Trace, request)

    # -- maps ----------------------------------------------------------------------
    def bpf_policy(self, endpoint_id: int) -> pb.BpfPolicyReply:
        return self._call("BpfPolicy", self.stub.BpfPolicy, pb.EndpointRef(id=endpoint_id))

    def bpf_conntrack(self) -> list[pb.CtEntry]:
        return list(self._call("BpfConntrack", self.stub.BpfConntrack, pb.Empty()).entries)

    def bpf_ipcache(self) -> list[pb.IpcacheEntry]:
        return list(self._call("BpfIpcache", self.stub.BpfIpcache, pb.Empty()).entries)

    # -- status --------------------------------------------------------------------
    def status(self) -> pb.StatusReply:
        return self._call("Status", self.stub.Status, pb.Empty())

    def wait_for_revision(self, revision: int,
                          timeout: float = DEFAULT_WAIT_SECONDS) -> pb.StatusReply:
        """Blocks until the agent applied this store revision to every endpoint."""
        return self._call("WaitForRevision", self.stub.WaitForRevision,
                          pb.WaitRequest(revision=revision, timeout_seconds=timeout), timeout + 5)

