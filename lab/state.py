"""What a lab created, recorded in <root>/lab.json so `down` removes exactly that.

Every resource is recorded *before* it is created (namespaces by lab/netbuilder.py's
`record` hook, see topology.builder; paths and processes by their creators): a lab
interrupted half-way up can still be taken down, since deleting something that was never
created is a no-op.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from agent.api.client import LAB_ROOT
from core.errors import LabError


def lab_root(lab: str) -> Path:
    return LAB_ROOT / lab


@dataclass
class Process:
    pid: int
    # A piece of the command line that must still be there before we signal the pid:
    # pids are recycled, and we only ever kill what we started.
    marker: str


@dataclass
class NodeState:
    name: str
    index: int
    netns: str
    ip: str
    pod_cidr: str
    bpffs: str = ""
    socket: str = ""
    agent: Process | None = None
    ip6: str = ""            # "" in a lab.json written before labs were dual-stack
    pod_cidr6: str = ""


@dataclass
class PodState:
    namespace: str
    name: str
    node: str
    ip: str
    netns: str = ""          # "" for hostNetwork pods: they live in the node's netns
    host_ifname: str = ""
    ports: list[tuple[int, str]] = field(default_factory=list)  # (port, "TCP"|"UDP")
    server: Process | None = None
    registered: bool = False
    dns: bool = False        # runs the lab's DNS server instead of the generic servers
    # "Kind/namespace/name" of the workload whose controller made the pod ("" for a bare
    # Pod): re-applying or deleting the workload removes the pods it no longer has.
    owner: str = ""
    # Why the pod is not running yet ("" once it is): its agent could not enforce it
    # (as a CNI ADD failing, its workload waits). `lab start` tries pending pods again.
    pending: str = ""
    ip6: str = ""            # its IPv6 address (hostNetwork pods: the node's)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def address(self, family: int) -> str:
        """The pod's address of IP family 4 or 6 ("" when it has none)."""
        return self.ip if family == 4 else self.ip6


@dataclass
class LabState:
    name: str
    root: str
    agents: bool = True
    identity_backend: str = "local"
    etcd_url: str = ""
    agent_args: list[str] = field(default_factory=list)  # extra `membrane agent` flags
    underlay_netns: str = ""
    external_netns: str = ""
    external_ip: str = ""
    external_ip6: str = ""
    netns: list[str] = field(default_factory=list)    # every netns created, in order
    paths: list[str] = field(default_factory=list)    # files/dirs created outside root
    processes: list[Process] = field(default_factory=list)  # external server, etcd
    nodes: dict[str, NodeState] = field(default_factory=dict)
    pods: dict[str, PodState] = field(default_factory=dict)
    next_node: int = 0                                 # round-robin placement cursor

    @property
    def store_dir(self) -> Path:
        return Path(self.root) / "store"

    @property
    def file(self) -> Path:
        return Path(self.root) / "lab.json"

    # -- persistence ---------------------------------------------------------------
    def save(self) -> None:
        Path(self.root).mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, self.file)

    @classmethod
    def load(cls, lab: str) -> "LabState | None":
        path = lab_root(lab) / "lab.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise LabError(f"lab {lab}: cannot read {path}: {err}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LabState":
        def proc(d: dict[str, Any] | None) -> Process | None:
            return Process(**d) if d else None

        nodes = {k: NodeState(**{**v, "agent": proc(v.get("agent"))})
                 for k, v in data.pop("nodes", {}).items()}
        pods = {k: PodState(**{**v, "server": proc(v.get("server")),
                               "ports": [tuple(p) for p in v.get("ports", [])]})
                for k, v in data.pop("pods", {}).items()}
        processes = [Process(**p) for p in data.pop("processes", [])]
        return cls(**data, nodes=nodes, pods=pods, processes=processes)

    # -- recording -----------------------------------------------------------------
    def record_netns(self, name: str) -> None:
        if name not in self.netns:
            self.netns.append(name)
            self.save()

    def record_path(self, path: str) -> None:
        if path not in self.paths:
            self.paths.append(path)
            self.save()


@contextmanager
def lab_lock(lab: str) -> Iterator[None]:
    """One lab command at a time per lab: they read-modify-write lab.json."""
    root = LAB_ROOT / lab
    root.parent.mkdir(parents=True, exist_ok=True)
    # The lock lives beside the lab's root, so `down` can remove the root while holding it.
    with open(LAB_ROOT / f".{lab}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def known_labs() -> list[str]:
    if not LAB_ROOT.is_dir():
        return []
    return sorted(p.name for p in LAB_ROOT.iterdir() if (p / "lab.json").is_file())
