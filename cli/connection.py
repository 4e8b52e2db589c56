"""Where a client command finds the agent: one set of flags, one rule, for every command.

    --server ADDRESS   the agent's unix socket (a path, or unix:PATH) or a TLS host:port
    --lab NAME         a lab's agent instead ...
    --node N           ... on this node of the lab (default node1; only with --lab)

An explicit --server wins over --lab; with neither, the default socket
(/run/membrane/agent.sock). The Observer is served on its own socket beside it
(agent.observer.sock, as Cilium's hubble.sock): `membrane observe` resolves the agent's
address the same way as endpoint, bpf, status, policy and identity, then dials the
Observer socket beside it (cli.observe.observer_target).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import grpc

from agent.api.client import DEFAULT_SOCKET, AgentClient, lab_socket, open_channel

DEFAULT_NODE = "node1"


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "connection (an explicit --server wins over --lab)")
    group.add_argument("--server", metavar="ADDRESS", default=None,
                       help=f"agent socket or TLS host:port (default {DEFAULT_SOCKET})")
    group.add_argument("--lab", metavar="NAME", default=None,
                       help="talk to a lab node's agent instead")
    group.add_argument("--node", metavar="N", default=DEFAULT_NODE,
                       help=f"the lab node (with --lab; default {DEFAULT_NODE})")


@dataclass(frozen=True)
class Connection:
    server: str | None = None
    lab: str | None = None
    node: str = DEFAULT_NODE

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Connection:
        return cls(server=args.server, lab=args.lab, node=args.node or DEFAULT_NODE)

    @property
    def address(self) -> str:
        if self.server:
            return self.server
        if self.lab:
            return lab_socket(self.lab, self.node)
        return DEFAULT_SOCKET

    def client(self) -> AgentClient:
        """The agent API (raises AgentUnreachable when there is no socket)."""
        return AgentClient(self.address)

    def channel(self) -> grpc.Channel:
        """A channel to the same address (the agent API)."""
        return open_channel(self.address)


def agent_client(args: argparse.Namespace) -> AgentClient:
    return Connection.from_args(args).client()
