"""How client commands print: one `-o/--output` flag and the shared JSON and table printers.

Each command names its formats (`add_output_flag(parser, "table", "json")`, the first is
the default); `-o json` is one indented JSON document for scripts (`membrane observe`
prints one object per flow line instead, as `hubble observe` does). A table is a header
row and columns padded to their widest cell, three spaces apart; a cell (header cells
too) may hold several lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


def add_output_flag(parser: argparse._ActionsContainer, *formats: str,
                    help: str | None = None) -> None:
    """`-o/--output` with these formats, the first the default (a parser or a group)."""
    parser.add_argument("-o", "--output", choices=formats, default=formats[0],
                        help=help or f"{', '.join(formats)} (default {formats[0]})")


def message_dict(message: Message, with_defaults: bool = False) -> dict[str, object]:
    """A message as JSON-ready data, with the .proto's field names."""
    return MessageToDict(message, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=with_defaults)


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; a cell holding several lines (the seed prints
    one label per line under LABELS) makes its row that tall."""
    split_headers = [str(h).split("\n") for h in headers]
    split_rows = [[str(cell).split("\n") for cell in row] for row in rows]
    widths = [0] * len(headers)
    for row in [split_headers, *split_rows]:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], *(len(line) for line in cell))

    def emit(cells: list[str]) -> None:
        print("   ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())

    for row in [split_headers, *split_rows]:
        for line in range(max(len(cell) for cell in row)):
            emit([cell[line] if line < len(cell) else "" for cell in row])


def print_messages(output: str, messages: Sequence[M], headers: Sequence[str],
                   row: Callable[[M], list[str]]) -> None:
    """`-o json`: the messages as a JSON list; otherwise a table of row(message)."""
    if output == "json":
        print_json([message_dict(m) for m in messages])
    else:
        print_table(headers, [row(m) for m in messages])
