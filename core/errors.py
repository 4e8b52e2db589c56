"""Membrane's exceptions, one tree:

    MembraneError
    ├── InvalidObject        a document that is not a valid object (names object and field)
    ├── LoadError            a file or directory that cannot be read or parsed
    ├── AllocationError      an identity could not be allocated (store unreachable, space full)
    ├── DatapathError        compiling, loading, attaching or writing the BPF side failed
    │   └── MapFullError     a BPF map has no room for an entry: never a silent allow
    ├── LabError             building or driving a lab failed
    └── AgentUnreachable     a client could not reach the agent's socket

Each message says what failed, on which object, and what to do when that is not obvious.
The CLI prints them as `ErrorName: message` on stderr and exits non-zero.
"""

from __future__ import annotations


class MembraneError(Exception):
    """Base of every error Membrane raises on purpose."""


class InvalidObject(MembraneError):
    """`<kind> <ns>/<name>: <field path>: <problem>`, as the API server words it."""

    def __init__(self, kind: str, name: str, path: str, problem: str, source: str = "") -> None:
        self.kind = kind
        self.name = name
        self.path = path
        self.problem = problem
        self.source = source  # file (and document index) it came from, when known
        where = f" ({source})" if source else ""
        super().__init__(f"{kind.lower()} {name}: {path}: {problem}{where}")


class LoadError(MembraneError):
    pass


class AllocationError(MembraneError):
    pass


class DatapathError(MembraneError):
    pass


class MapFullError(DatapathError):
    pass


class LabError(MembraneError):
    pass


class AgentUnreachable(MembraneError):
    pass
