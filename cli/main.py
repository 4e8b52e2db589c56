"""`membrane`: one front door, thin wiring. Each area registers its own subcommands.

Errors Membrane raises on purpose print as `ErrorName: message` on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

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
    "cli.observe",          # membrane observe
)

EXAMPLES = """\
examples:
  membrane lab up -f demo/tutorial/demo-app.yaml
  membrane policy matrix -f demo/tutorial -o table
  membrane observe --from-label app=frontend --verdict DROPPED
  membrane endpoint list
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="membrane",
        description="Kubernetes NetworkPolicy enforcement with eBPF, and flow observability.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except MembraneError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `membrane ... | head`: the reader left; nothing more to say, and no traceback.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
