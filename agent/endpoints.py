r"""Local endpoints: the pods whose veth this node's agent enforces.

An endpoint comes into being when the CNI plugin (or the lab, playing the runtime)
registers a pod's host-side veth. Its lifecycle follows Cilium's states:

    waiting-for-identity -> regenerating -> ready
                         \-> not-ready (an error: map full, veth gone, ...) -> regenerating
    any -> disconnecting -> (gone)

Registrations are persisted in the state directory so a restarted agent knows which
pinned endpoints are still wanted (reconciliation), and ids stay stable. The file
(endpoints.json) is replaced atomically and fsync'd with its directory; one that cannot
be read (truncated, edited, written by an agent that let an IPv6 string in) stops the
start with EndpointStateError naming the file and what to do. It is not rebuilt from
the pinned maps: they hold no pod names, and guessing them by address could hand one
pod's endpoint to another.

What may be registered (registration_problems) is checked here too, for the API and for
every row read back.

The registry keeps the records; `agent.endpoint_manager` drives their lifecycle and the
regenerator (`agent.regeneration`) their maps. Records are mutated under the agent's
state lock; readers elsewhere (the API) take `Endpoint.view()` copies.
"""

from __future__ import annotations

import ipaddress
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
from agent.k8s.validation.fields import printable, quoted
from agent.k8s.validation.names import dns1123_label_problem, dns1123_subdomain_problem
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
    ipv6: str = ""
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
    labels_left_out: tuple[str, ...] = ()    # the pod's labels its identity does not hold
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
            audit=self.audit, labels_left_out=self.labels_left_out, ipv6=self.ipv6)


def interface_index(ifname: str) -> int:
    """The interface's index in this network namespace, 0 if there is none."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return 0


MAX_ENDPOINT_ID = 65535  # the datapath stores endpoint ids in 16 bits

# Linux's IFNAMSIZ is 16 with the terminating NUL: a name has at most 15 bytes.
MAX_IFNAME_BYTES = 15


def registration_problems(namespace: str, pod: str, ifname: str, ipv4: str,
                          ipv6: str = "") -> list[str]:
    """Every field of a RegisterEndpoint request that can never be an endpoint, as
    "<field>: <problem>" (empty: the request may be tried). A pod needs an address of
    one family at least: ipv4, ipv6 or both."""
    problems = [f"namespace: {p}" for p in _name_problems(namespace, dns1123_label_problem)]
    problems += [f"pod: {p}" for p in _name_problems(pod, dns1123_subdomain_problem)]
    problems += [f"ifname: {p}" for p in ifname_problems(ifname)]
    if ipv4 or not ipv6:
        problems += [f"ipv4: {p}" for p in ipv4_problems(ipv4)]
    if ipv6:
        problems += [f"ipv6: {p}" for p in ipv6_problems(ipv6)]
    return problems


def _name_problems(name: str, rule: Callable[[str], str | None]) -> list[str]:
    if not name:
        return ["Required value"]
    problem = rule(name)
    return [f"invalid value {quoted(name)}: {problem}"] if problem else []


def ifname_problems(ifname: str) -> list[str]:
    """The kernel's dev_valid_name: 1 to 15 bytes, not "." or "..", no '/', ':' or
    whitespace; and printable, since the name goes into logs and tables."""
    if not ifname:
        return ["Required value"]
    shown = quoted(ifname)
    if len(ifname.encode()) > MAX_IFNAME_BYTES:
        return [f"invalid value {shown}: a Linux interface name has at most "
                f"{MAX_IFNAME_BYTES} bytes"]
    if ifname in (".", ".."):
        return [f'invalid value {shown}: may not be "." or ".."']
    for bad, what in (("/", "'/'"), (":", "':'")):
        if bad in ifname:
            return [f"invalid value {shown}: may not contain {what}"]
    if any(ch.isspace() for ch in ifname):
        return [f"invalid value {shown}: may not contain whitespace"]
    if not ifname.isprintable():
        return [f"invalid value {shown}: must be printable"]
    return []


def ipv4_problems(ipv4: str) -> list[str]:
    """An IPv4 unicast address a pod can have: not a network, not IPv6, not the
    unspecified, loopback, multicast or broadcast address."""
    if not ipv4:
        return ["Required value"]
    try:
        address = ipaddress.IPv4Address(ipv4)
    except ValueError:
        return [f"invalid value {quoted(ipv4)}: must be an IPv4 address (a.b.c.d)"]
    if (address.is_unspecified or address.is_loopback or address.is_multicast
            or address == ipaddress.IPv4Address("255.255.255.255")):
        return [f"invalid value {quoted(ipv4)}: must be a unicast address a pod can have"]
    return []


def ipv6_problems(ipv6: str) -> list[str]:
    """An IPv6 unicast address a pod can have: not a network, not IPv4 (nor IPv4-mapped:
    that is the ipv4 field's), not the unspecified, loopback, multicast or link-local
    address (a pod's own address is routed; fe80::/10 never is)."""
    try:
        address = ipaddress.IPv6Address(ipv6)
    except ValueError:
        return [f"invalid value {quoted(ipv6)}: must be an IPv6 address (e.g. fd00::5)"]
    if (address.is_unspecified or address.is_loopback or address.is_multicast
            or address.is_link_local or address.ipv4_mapped is not None):
        return [f"invalid value {quoted(ipv6)}: must be a unicast address a pod can have"]
    return []


def row_problem(row: object) -> str | None:
    """What makes a row of the state file unusable, or None: the fields and types the
    registry writes, an id the datapath can hold, and values a registration could have
    had (an older agent persisted an IPv6 string as ipv4)."""
    if not isinstance(row, dict):
        return "must be an object"
    missing = [name for name in ROW_FIELDS if name not in row]
    if missing:
        return f"missing {', '.join(missing)}"
    for name, kind in ROW_FIELDS.items():
        value = row[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name} must be {'an integer' if kind is int else 'a string'}"
    if not 1 <= row["id"] <= MAX_ENDPOINT_ID:
        return f"id {row['id']} is outside 1-{MAX_ENDPOINT_ID}"
    ipv6 = row.get("ipv6", "")     # absent in files written before dual-stack
    if not isinstance(ipv6, str):
        return "ipv6 must be a string"
    problems = registration_problems(row["namespace"], row["pod"], row["ifname"],
                                     row["ipv4"], ipv6)
    return problems[0] if problems else None


class EndpointStateError(MembraneError):
    """The endpoint state file cannot be read: the agent does not start (its pinned
    programs and maps keep enforcing meanwhile), and the message says what to do."""


# What the operator does about an unreadable state file, said in every such error.
STATE_RECOVERY = (
    "The pinned BPF programs and maps keep enforcing while the agent is down. To "
    "recover, move it aside (mv {path} {path}.corrupt) and restart the agent: pinned "
    "endpoints nobody registered are then removed, and their pods are listed as "
    "unmanaged by `membrane status` and `membrane endpoint list` until they are "
    "restarted (kubectl delete pod), which registers them again.")

ROW_FIELDS: dict[str, type] = {"id": int, "namespace": str, "pod": str, "ifname": str,
                               "ipv4": str}


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
            text = self.path.read_text()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as err:
            raise self._unreadable(f"cannot be read ({err})") from None
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise self._unreadable(f"is not valid JSON ({err.msg} at line {err.lineno} "
                                   f"column {err.colno}; truncated?)") from None
        if not isinstance(rows, list):
            raise self._unreadable("must be a list of endpoint rows")
        for number, row in enumerate(rows, 1):
            problem = row_problem(row)
            if problem is None and row["id"] in self._by_id:
                problem = f"id {row['id']} is also row {self._row_of(row['id'], rows)}'s"
            if problem is not None:
                raise self._unreadable(f"row {number}: {problem}")
            ep = Endpoint(id=row["id"], namespace=row["namespace"], pod=row["pod"],
                          ifname=row["ifname"], ipv4=row["ipv4"],
                          container_id=str(row.get("container_id", "")),
                          ipv6=str(row.get("ipv6", "")))
            self._by_id[ep.id] = ep

    @staticmethod
    def _row_of(endpoint_id: int, rows: list[dict[str, object]]) -> int:
        return next(i for i, row in enumerate(rows, 1) if row.get("id") == endpoint_id)

    def _unreadable(self, why: str) -> EndpointStateError:
        return EndpointStateError(printable(f"endpoint state {self.path} {why}. ")
                                  + STATE_RECOVERY.format(path=self.path))

    def _save(self) -> None:
        """Atomically and durably: a temporary file written and fsync'd, renamed over
        the old one, then the directory fsync'd so the rename itself survives a crash.
        A write that fails half-way leaves the previous file."""
        rows = [{"id": e.id, "namespace": e.namespace, "pod": e.pod, "ifname": e.ifname,
                 "ipv4": e.ipv4, "ipv6": e.ipv6, "container_id": e.container_id}
                for e in self.all()]
        data = json.dumps(sorted(rows, key=lambda r: r["id"]), indent=1).encode()
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

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
                 container_id: str = "", ipv6: str = "") -> Endpoint:
        """A new endpoint, or the existing one for this pod updated (a CNI ADD retried)."""
        existing = self.by_pod(f"{namespace}/{pod}")
        if existing is not None:
            if (existing.ifname, existing.ipv4, existing.ipv6) != (ifname, ipv4, ipv6):
                existing.ifname, existing.ipv4, existing.ipv6 = ifname, ipv4, ipv6
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
            ep = Endpoint(new_id, namespace, pod, ifname, ipv4, container_id, ipv6=ipv6)
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
