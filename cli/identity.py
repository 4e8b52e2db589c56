"""`membrane identity list|get`: the identities manifests give, or the live agent holds.

With -f the files are read, each pod's security-relevant labels computed and numbered by
an in-memory allocator, exactly as an agent starting on them would (from 256, in pod
order). Without -f the running agent is asked over its socket.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Sequence

from agent.api.gen import agent_pb2 as pb
from agent.k8s.loader import load_paths
from agent.policy.identitykeys import SelectedKeys
from cli.command import Subparsers, add_command, add_group
from cli.connection import add_connection_flags, agent_client
from cli.output import add_output_flag, print_json, print_table
from core.errors import MembraneError
from identity.allocator import Identity
from identity.filter import LabelFilter
from identity.local import LocalAllocator
from identity.security import security_labels

WIDTH = 80   # default output fits a terminal
GAP = 3      # print_table's column separator

LIST_EXAMPLES = """\
membrane identity list -f demo/tutorial
membrane identity list -f app.yaml -f namespaces.yaml -o json
membrane identity list --lab demo --node node2
"""

GET_EXAMPLES = """\
membrane identity get 256
membrane identity get 1 -f demo/tutorial     # reserved: host
"""


def register(subparsers: Subparsers) -> None:
    identity = add_group(subparsers, "identity", help="security identities and their labels",
                         examples=LIST_EXAMPLES + GET_EXAMPLES, metavar="COMMAND")

    listing = add_command(identity, "list", help="every identity, its labels and who has it",
                          examples=LIST_EXAMPLES)
    _add_source_args(listing)
    listing.set_defaults(func=run_list)

    get = add_command(identity, "get", help="one identity's labels", examples=GET_EXAMPLES)
    get.add_argument("id", type=_identity_number, metavar="ID")
    _add_source_args(get)
    get.set_defaults(func=run_get)


def _add_source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", dest="files", action="append", metavar="PATH",
                        help="compute from manifest files or directories (repeatable) "
                             "instead of asking the agent")
    parser.add_argument("--cluster", default="default",
                        help="cluster name, part of every identity (with -f; default default)")
    parser.add_argument("--exclude-label", action="append", default=[], metavar="KEY",
                        help="one more pod label key to leave out of identities (with -f; "
                             "a key ending in '/' excludes a prefix)")
    add_connection_flags(parser)
    add_output_flag(parser, "table", "json")


def _identity_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an identity number") from None
    if not 0 < number < 1 << 32:
        raise argparse.ArgumentTypeError(f"identity {number}: must be 1 to 4294967295")
    return number


# -- identities from files ------------------------------------------------------------------

@dataclass
class Row:
    id: int
    labels: list[str]
    pods: list[str] = field(default_factory=list)       # from files
    references: int | None = None                        # from the agent

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "labels": self.labels}
        if self.references is None:
            out["pods"] = self.pods
        else:
            out["references"] = self.references
        return out


def identities_from_files(files: Sequence[str], cluster: str,
                          label_filter: LabelFilter) -> tuple[list[Row], LocalAllocator]:
    """Rows for the pods the files declare; bad documents are reported on stderr."""
    objects, errors = load_paths(files)
    for err in errors:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
    allocator = LocalAllocator(None)
    # Left-out keys the files' policies select on stay in identities, as in the agent.
    selected = SelectedKeys(lambda key: not label_filter.is_relevant(key))
    selected.update(objects.policies)
    rows: dict[int, Row] = {}
    # Pod order decides numbers, as in an agent applying the same files: sort for stability.
    for key in sorted(objects.pods):
        pod = objects.pods[key]
        namespace = objects.namespaces.get(pod.namespace)
        labels = security_labels(pod.labels, namespace=pod.namespace,
                                 namespace_labels=namespace.labels if namespace else {},
                                 service_account=pod.service_account, cluster=cluster,
                                 label_filter=label_filter,
                                 selected_keys=selected.keys_for(pod.namespace))
        identity = allocator.allocate(labels)
        rows.setdefault(identity.id, Row(identity.id, labels.lines())).pods.append(key)
    return [rows[n] for n in sorted(rows)], allocator


def _filter_of(args: argparse.Namespace) -> LabelFilter:
    return LabelFilter.default().with_excluded(*args.exclude_label)


# -- identities from the agent --------------------------------------------------------------

def _row_of(info: pb.IdentityInfo) -> Row:
    return Row(int(info.id), list(info.labels), references=int(info.references))


# -- output --------------------------------------------------------------------------------

def wrap(text: str, width: int) -> list[str]:
    """Splits a long label over lines no wider than width, preferring to break after
    '.', '/' or '=' so the pieces stay readable; continuation lines are indented."""
    lines: list[str] = []
    indent = ""
    while len(indent) + len(text) > width:
        room = max(1, width - len(indent))
        cut = max(text.rfind(sep, 0, room) for sep in "./=")
        cut = cut + 1 if cut > 0 else room
        lines.append(indent + text[:cut])
        text, indent = text[cut:], "  "
    lines.append(indent + text)
    return lines


def render(rows: list[Row], output: str) -> None:
    """JSON, or a table of ID and LABELS (one per line, as the seed prints them) whose last
    line per identity says who has it. Pods go under the labels, not in a third column:
    namespace labels alone are ~70 characters, so side by side nothing would fit 80."""
    if output == "json":
        print_json({"identities": [row.as_json() for row in rows]})
        return
    id_width = max([2] + [len(str(row.id)) for row in rows])
    label_width = WIDTH - id_width - GAP
    table = []
    for row in rows:
        who = (f"pods: {', '.join(row.pods) or '-'}" if row.references is None
               else f"references: {row.references}")
        lines = [piece for text in row.labels + [who] for piece in wrap(text, label_width)]
        table.append([str(row.id), "\n".join(lines)])
    print_table(["ID", "LABELS"], table)


# -- commands ------------------------------------------------------------------------------

def run_list(args: argparse.Namespace) -> int:
    if args.files:
        rows, _ = identities_from_files(args.files, args.cluster, _filter_of(args))
    else:
        with agent_client(args) as client:
            rows = [_row_of(info) for info in sorted(client.list_identities(),
                                                     key=lambda i: int(i.id))]
    render(rows, args.output)
    return 0


def run_get(args: argparse.Namespace) -> int:
    if args.files:
        rows, allocator = identities_from_files(args.files, args.cluster, _filter_of(args))
        found = [row for row in rows if row.id == args.id]
        if not found:
            identity: Identity | None = allocator.lookup(args.id)   # reserved ones
            if identity is None:
                raise MembraneError(f"identity {args.id}: no pod in {', '.join(args.files)} "
                                    "has it, and it is not reserved")
            found = [Row(identity.id, identity.labels.lines())]
    else:
        with agent_client(args) as client:
            found = [_row_of(client.get_identity(args.id))]
    if args.output == "json":
        print_json(found[0].as_json())   # one object: what a script asked for
    else:
        render(found, args.output)
    return 0
