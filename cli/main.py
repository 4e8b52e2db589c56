"""`membrane`: one front door, thin wiring. Each area registers its own subcommands.

This is the only entry point (`membrane`, `python -m cli.main`), and the one place that
turns what went wrong into an exit code:

    0    done
    1    a MembraneError, printed as `ErrorName: message` on stderr (no traceback);
         also a command's own "not healthy" (`membrane status`) or a failed check (`demo`)
    2    a usage error: a bad flag or value (argparse), or a command without its verb
    130  interrupted (Ctrl-C), including ending `membrane observe --follow`

A closed stdout (`membrane ... | head`) ends quietly with 0.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from cli.command import usage
from core.errors import MembraneError

# Each module defines `register(subparsers) -> None`; every parser it adds sets
# `func=callable(args) -> int` with set_defaults.
COMMAND_MODULES = (
    "cli.daemon",     # membrane agent
    "cli.policy",     # membrane policy matrix|trace|get
    "cli.identity",   # membrane identity list|get
    "cli.debug",      # membrane endpoint ..., bpf ..., status
    "cli.lab",        # membrane lab ...
    "cli.demo",       # membrane demo
    "cli.observe",    # membrane observe [status]
    "cli.relay",      # membrane relay
    "cli.ui",         # membrane ui
)

EXAMPLES = """\
examples:
  membrane lab up -f demo/tutorial/demo-app.yaml
  membrane policy matrix -f demo/tutorial -o table
  membrane observe --lab membrane --from-label app=frontend --verdict DROPPED
  membrane endpoint list --lab membrane --node node2 -o json
"""

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="membrane",
        description="Kubernetes NetworkPolicy enforcement with eBPF, and flow observability. "
                    "Client commands find the agent with --server ADDRESS or --lab NAME "
                    "[--node N] (an explicit --server wins) and print with -o.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)   # usage errors exit 2 here (argparse)
    func = getattr(args, "func", None)
    if func is None:
        return usage(parser)
    try:
        return int(func(args) or 0)
    except MembraneError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left: nothing more to say, and no error when Python flushes stdout
        # at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
