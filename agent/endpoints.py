r"""Local endpoints: the pods whose veth this node's agent enforces.

An endpoint comes into being when the CNI plugin (or the lab, playing the runtime)
registers a pod's host-side veth. Its lifecycle follows Cilium's states:

    waiting-for-identity -> regenerating -> ready
                         \-> not-ready (an error: map full, veth gone, ...) -> regenerating
    any -> disconnecting -> (gone)

Registrations are persisted in the state directory so a restarted agent knows which
pinned endpoints are still wanted (reconciliation), and ids stay stable.

The registry keeps the records; `agent.endpoint_manager` drives their lifecycle and the
regenerator (`agent.regeneration`) their maps. Records are mutated under the agent's
state lock; readers elsewhere (the API) take `Endpoint.view()` copies.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable

from agent.api.services import EndpointView
from core.errors import MembraneError


class EndpointState(str, Enum):
    WAITING_FOR_IDENTITY = "waiting-for-identity"
    REGENERATING = "regenerating"
    READY = "ready"
    NOT_READY = "not-ready"
    DISCONNECTING = "disconnecting"


@dataclass
class Endpoint:
    id: int
    namespace: str
    pod: str
    ifname: str
    ipv4: str
    container_id: str = ""
    ifindex: int = 0
    identity: int = 0
    state: EndpointState = EndpointState.WAITING_FOR_IDENTITY
    error: str = ""
    ingress_enforced: bool = False
    egress_enforced: bool = False
    audit: bool = False          # policy audit mode: denials pass, reported as AUDIT
    policy_revision: int = 0
    policy_entries: int = 0
    last_regeneration_ms: float = 0.0
    attached: bool = False
    created_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}"

    def view(self) -> EndpointView:
        return EndpointView(
            id=self.id, namespace=self.namespace, pod=self.pod, ifname=self.ifname,
            ipv4=self.ipv4, ifindex=self.ifindex, identity=self.identity,
            state=self.state.value, error=self.error, ingress_enforced=self.ingress_enforced,
            egress_enforced=self.egress_enforced, policy_revision=self.policy_revision,
            policy_entries=self.policy_entries, last_regeneration_ms=self.last_regeneration_ms,
            audit=self.audit)


def interface_index(ifname: str) -> int:
    """The interface's index in this network namespace, 0 if there is none."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return 0


MAX_ENDPOINT_ID = 65535  # the datapath stores endpoint ids in 16 bits


class EndpointRegistry:
    """Endpoints by id and by pod key, with stable ids persisted across restarts."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "endpoints.json"
        self._by_id: dict[int, Endpoint] = {}
        self._lock = threading.Lock()            # _by_id: read from API threads too
        self._changed = threading.Condition()
        self._load()

    def _load(self) -> None:
        try:
            rows = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        for row in rows:
            ep = Endpoint(id=int(row["id"]), namespace=row["namespace"], pod=row["pod"],
                          ifname=row["ifname"], ipv4=row["ipv4"],
                          container_id=row.get("container_id", ""))
            self._by_id[ep.id] = ep

    def _save(self) -> None:
        rows = [{"id": e.id, "namespace": e.namespace, "pod": e.pod, "ifname": e.ifname,
                 "ipv4": e.ipv4, "container_id": e.container_id} for e in self.all()]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(rows, key=lambda r: r["id"]), indent=1))
        os.replace(tmp, self.path)

    def all(self) -> list[Endpoint]:
        with self._lock:
            return sorted(self._by_id.values(), key=lambda e: e.id)

    def get(self, endpoint_id: int) -> Endpoint | None:
        with self._lock:
            return self._by_id.get(endpoint_id)

    def by_pod(self, key: str) -> Endpoint | None:
        with self._lock:
            return next((ep for ep in self._by_id.values() if ep.key == key), None)

    def register(self, namespace: str, pod: str, ifname: str, ipv4: str,
                 container_id: str = "") -> Endpoint:
        """A new endpoint, or the existing one for this pod updated (a CNI ADD retried)."""
        existing = self.by_pod(f"{namespace}/{pod}")
        if existing is not None:
            if (existing.ifname, existing.ipv4) != (ifname, ipv4):
                existing.ifname, existing.ipv4 = ifname, ipv4
                existing.attached = False
                existing.state = EndpointState.REGENERATING
            existing.container_id = container_id or existing.container_id
            self._save()
            return existing
        with self._lock:
            used = set(self._by_id)
            new_id = next((i for i in range(1, MAX_ENDPOINT_ID + 1) if i not in used), None)
            if new_id is None:
                raise MembraneError(f"endpoint {namespace}/{pod}: all {MAX_ENDPOINT_ID} "
                                    "endpoint ids in use")
            ep = Endpoint(new_id, namespace, pod, ifname, ipv4, container_id)
            self._by_id[new_id] = ep
        self._save()
        return ep

    def remove(self, endpoint_id: int) -> Endpoint | None:
        with self._lock:
            ep = self._by_id.pop(endpoint_id, None)
        self._save()
        return ep

    def notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Blocks until predicate holds (checked at every notify) or timeout; its value."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)
