"""Membrane's version: the installed package's metadata (pyproject.toml is the source)."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("membrane")
    except metadata.PackageNotFoundError:   # running from a tree that was never installed
        return "0+unknown"
