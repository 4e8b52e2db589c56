"""How a `membrane` command module plugs in: `register(subparsers)`, and help with examples.

Every module in cli.main.COMMAND_MODULES defines `register(subparsers: Subparsers)` and
adds its parsers with `add_command` (a command or verb that runs `func(args) -> int`) or
`add_group` (a noun whose verbs follow; alone it prints its help and exits 2, a usage
error). Both end `--help` with the examples given, so every command shows how to use it.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_command(subparsers: Subparsers, name: str, *, help: str, examples: str,
                description: str | None = None) -> argparse.ArgumentParser:
    """A parser whose `--help` ends with `examples` (lines of `membrane ...`)."""
    return subparsers.add_parser(
        name, help=help, description=textwrap.fill(description or _sentence(help), 79),
        epilog="examples:\n" + _indent(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter)


def add_group(subparsers: Subparsers, name: str, *, help: str, examples: str,
              metavar: str = "VERB") -> Subparsers:
    """A noun (`membrane policy`) and the subparsers for its verbs."""
    group = add_command(subparsers, name, help=help, examples=examples)
    group.set_defaults(func=lambda args: usage(group))
    return group.add_subparsers(dest=f"{name}_verb", metavar=metavar)


def usage(parser: argparse.ArgumentParser) -> int:
    """A command given without what it needs: its help, and the usage-error exit code."""
    parser.print_help()
    return 2


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _indent(examples: str) -> str:
    return "".join(f"  {line}\n" if line else "\n"
                   for line in examples.strip("\n").splitlines())
