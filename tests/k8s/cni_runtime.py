"""Drive a CNI chain exactly as a container runtime (libcni in containerd/CRI-O) does.

For each plugin of a conflist, in order on ADD and reverse order on DEL: exec the binary
found on CNI_PATH by its `type`, with the CNI_* environment and, on stdin, that plugin's
own config plus the list's `name` and `cniVersion` and the previous plugin's result as
`prevResult`. ADD's final result is cached and handed to CHECK and DEL as `prevResult`,
and a failed ADD is followed by a DEL of the whole chain, as the kubelet's runtime does
before it gives up on the sandbox.

Optionally every exec runs under `ip netns exec HOST_NS`, so the "node" the plugins
configure is a network namespace of the test's, never the machine's own.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class CniFailure(Exception):
    def __init__(self, plugin: str, command: str, status: int, error: dict[str, Any],
                 stderr: str) -> None:
        self.plugin = plugin
        self.command = command
        self.status = status
        self.error = error
        self.stderr = stderr
        super().__init__(f"{plugin} {command} exited {status}: {error} {stderr.strip()}")

    @property
    def code(self) -> int | None:
        return self.error.get("code")


class CheckUnsupported(Exception):
    pass


@dataclass
class Attachment:
    container_id: str
    netns: str
    ifname: str
    args: dict[str, str]
    result: dict[str, Any] | None = None  # libcni's cache of the ADD result


@dataclass
class CniRuntime:
    conflist: dict[str, Any]
    cni_path: list[str]
    host_netns: str | None = None          # run plugins inside this netns (`ip netns exec`)
    base_env: dict[str, str] = field(default_factory=lambda: {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")})
    calls: list[tuple[str, str]] = field(default_factory=list)  # (command, type) log
    timeout: float = 60.0

    def _find(self, plugin_type: str) -> str:
        for directory in self.cni_path:
            candidate = Path(directory) / plugin_type
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        raise FileNotFoundError(f"plugin {plugin_type!r} not on CNI_PATH {self.cni_path}")

    def _stdin(self, plugin: dict[str, Any], prev: dict[str, Any] | None) -> bytes:
        conf = dict(plugin)
        conf["name"] = self.conflist["name"]
        conf["cniVersion"] = self.conflist["cniVersion"]
        if prev is not None:
            conf["prevResult"] = prev
        return json.dumps(conf).encode()

    def exec_plugin(self, command: str, plugin: dict[str, Any], att: Attachment,
                    prev: dict[str, Any] | None) -> dict[str, Any] | None:
        env = dict(self.base_env)
        env.update({
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": att.container_id,
            "CNI_NETNS": att.netns,
            "CNI_IFNAME": att.ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in att.args.items()),
            "CNI_PATH": os.pathsep.join(self.cni_path),
        })
        argv = [self._find(plugin["type"])]
        if self.host_netns:
            argv = ["ip", "netns", "exec", self.host_netns, *argv]
        self.calls.append((command, plugin["type"]))
        proc = subprocess.run(argv, input=self._stdin(plugin, prev), env=env,
                              capture_output=True, timeout=self.timeout)
        out = proc.stdout.decode().strip()
        if proc.returncode != 0:
            try:
                error = json.loads(out) if out else {}
            except json.JSONDecodeError:
                error = {"msg": out}
            raise CniFailure(plugin["type"], command, proc.returncode, error,
                             proc.stderr.decode())
        return json.loads(out) if out else None

    def add(self, att: Attachment) -> dict[str, Any]:
        prev: dict[str, Any] | None = None
        try:
            for plugin in self.conflist["plugins"]:
                prev = self.exec_plugin("ADD", plugin, att, prev)
        except CniFailure:
            # The runtime cleans up a half-made sandbox network before reporting the error.
            self.delete(att, prev_result=prev)
            raise
        assert prev is not None
        att.result = prev
        return prev

    def supports_check(self) -> bool:
        major, minor, *_ = (int(x) for x in self.conflist["cniVersion"].split("."))
        return (major, minor) >= (0, 4)

    def check(self, att: Attachment) -> None:
        if not self.supports_check():
            # libcni refuses CHECK below 0.4.0 before executing anything
            raise CheckUnsupported(f"cniVersion {self.conflist['cniVersion']} has no CHECK")
        for plugin in self.conflist["plugins"]:
            self.exec_plugin("CHECK", plugin, att, att.result)

    def delete(self, att: Attachment, prev_result: dict[str, Any] | None = None) -> None:
        prev = prev_result if prev_result is not None else att.result
        for plugin in reversed(self.conflist["plugins"]):
            self.exec_plugin("DEL", plugin, att, prev)
        att.result = None

    def version(self, plugin_type: str) -> dict[str, Any]:
        att = Attachment("", "", "", {})
        reply = self.exec_plugin("VERSION", {"type": plugin_type}, att, None)
        assert reply is not None
        return reply
