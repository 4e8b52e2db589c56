"""The parts of the CNI specification (1.0.0) the plugin speaks: environment, errors, versions.

Kept free of gRPC and netlink so it can be tested, and read, on its own.
https://github.com/containernetworking/cni/blob/main/SPEC.md
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

# Result formats we can pass through untouched. 0.1.0/0.2.0 results have no `interfaces`
# list, so we could not find the pod's veth from them; runtimes of that age are long gone.
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")

# Well-known error codes (SPEC.md, "Error"); 100+ are ours.
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN_LATER = 11
ERR_AGENT_REFUSED = 100        # the agent answered, but would not (or could not) enforce
ERR_ENDPOINT_NOT_READY = 101   # CHECK: the endpoint exists but is not enforced


class Outcome(Enum):
    """How a call to the agent ended, as the DEL and CHECK commands branch on it."""

    OK = "ok"
    NOT_FOUND = "not-found"        # the agent has no such endpoint
    UNAVAILABLE = "unavailable"    # the agent is not answering
    FAILED = "failed"              # any other error


class CniError(Exception):
    """A failure reported to the runtime as a CNI error object on stdout."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class Invocation:
    """One call from the runtime: CNI_* environment plus the decoded network config."""

    command: str
    container_id: str
    netns: str
    ifname: str
    args: Mapping[str, str]
    path: tuple[str, ...]
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cni_version(self) -> str:
        return str(self.config.get("cniVersion", "1.0.0"))

    @property
    def prev_result(self) -> dict[str, Any] | None:
        prev = self.config.get("prevResult")
        return prev if isinstance(prev, dict) else None

    @property
    def pod(self) -> tuple[str, str]:
        """(namespace, name) from the kubelet's CNI_ARGS; empty strings when absent."""
        return self.args.get("K8S_POD_NAMESPACE", ""), self.args.get("K8S_POD_NAME", "")


def parse_cni_args(raw: str) -> dict[str, str]:
    """CNI_ARGS is `K=V;K=V` (the kubelet sends IgnoreUnknown=1 and the K8S_POD_* keys)."""
    out: dict[str, str] = {}
    for part in raw.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: {part!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def read_invocation(environ: Mapping[str, str], stdin: str) -> Invocation:
    command = environ.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(ERR_INVALID_ENV, f"CNI_COMMAND={command!r}: expected one of "
                       + ", ".join(COMMANDS))
    config: dict[str, Any] = {}
    if command != "VERSION" or stdin.strip():
        try:
            decoded = json.loads(stdin)
        except json.JSONDecodeError as err:
            raise CniError(ERR_DECODE, f"network config on stdin is not JSON: {err}") from None
        if not isinstance(decoded, dict):
            raise CniError(ERR_DECODE, "network config on stdin is not a JSON object")
        config = decoded
    version = str(config.get("cniVersion", "1.0.0"))
    if command != "VERSION" and version not in SUPPORTED_VERSIONS:
        raise CniError(ERR_INCOMPATIBLE_VERSION,
                       f"cniVersion {version} is not supported by membrane-cni",
                       "supported: " + ", ".join(SUPPORTED_VERSIONS))
    if command in ("ADD", "CHECK", "DEL"):
        for var in ("CNI_CONTAINERID", "CNI_IFNAME"):
            if not environ.get(var):
                raise CniError(ERR_INVALID_ENV, f"{var} is not set")
    # CNI_NETNS is required for ADD and CHECK only: DEL must succeed once the netns is gone.
    if command in ("ADD", "CHECK") and not environ.get("CNI_NETNS"):
        raise CniError(ERR_INVALID_ENV, "CNI_NETNS is not set")
    return Invocation(
        command=command,
        container_id=environ.get("CNI_CONTAINERID", ""),
        netns=environ.get("CNI_NETNS", ""),
        ifname=environ.get("CNI_IFNAME", ""),
        args=parse_cni_args(environ.get("CNI_ARGS", "")),
        path=tuple(p for p in environ.get("CNI_PATH", "").split(os.pathsep) if p),
        config=config,
    )


def version_reply() -> dict[str, Any]:
    return {"cniVersion": SUPPORTED_VERSIONS[-1], "supportedVersions": list(SUPPORTED_VERSIONS)}
