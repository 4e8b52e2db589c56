"""Options every client command shares: where the agent is, and how to print."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent.api.client import DEFAULT_SOCKET, AgentClient, lab_socket


def add_client_args(parser: argparse.ArgumentParser, output: tuple[str, ...] = ("table", "json")) -> None:
    parser.add_argument("--server", default=None, metavar="ADDRESS",
                        help=f"agent socket (default {DEFAULT_SOCKET})")
    parser.add_argument("--lab", default=None, metavar="NAME",
                        help="talk to a lab node's agent instead")
    parser.add_argument("--node", default="node1", help="the lab node (with --lab)")
    parser.add_argument("-o", "--output", choices=output, default=output[0])


def server_address(args: argparse.Namespace) -> str:
    if getattr(args, "server", None):
        return str(args.server)
    if getattr(args, "lab", None):
        return lab_socket(args.lab, args.node)
    return DEFAULT_SOCKET


def client_from(args: argparse.Namespace) -> AgentClient:
    return AgentClient(server_address(args))


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest cell; a cell may hold several lines (the seed prints
    one label per line under the LABELS column)."""
    split_rows = [[str(cell).split("\n") for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in split_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], *(len(line) for line in cell))
    def emit(cells: list[str]) -> None:
        print("   ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    emit(headers)
    for row in split_rows:
        height = max(len(cell) for cell in row)
        for line in range(height):
            emit([cell[line] if line < len(cell) else "" for cell in row])
