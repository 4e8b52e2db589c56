"""`membrane-cni`: a chained CNI plugin (spec 1.0.0) that hands each pod's veth to the agent.

It sits last in the node's conflist, after the plugin that made the network (kindnet's ptp,
minikube's bridge, ...), and plays Cilium's generic-veth role:

    ADD    find the pod's host-side veth and IPv4 in prevResult, RegisterEndpoint with the
           agent (which returns only once the endpoint's programs and maps are in place),
           then print prevResult unchanged. Any failure is a CNI error and a non-zero exit,
           so the runtime tears the sandbox down: a pod never runs unprotected.
    DEL    DeregisterEndpoint; idempotent, and fine when the netns or the endpoint is gone.
    CHECK  the endpoint exists, is ready, and still has the veth and IP of prevResult.
    VERSION

Pods with hostNetwork never reach a CNI plugin (the runtime skips CNI for them), so they are
never endpoints; the agent maps node IPs to the host / remote-node identities instead.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Mapping, Protocol, TextIO

from agent.cni import endpoint as ep
from agent.cni.spec import (ERR_AGENT_REFUSED, ERR_ENDPOINT_NOT_READY, ERR_INVALID_CONFIG,
                            ERR_INVALID_ENV, ERR_IO, ERR_TRY_AGAIN_LATER, CniError, Invocation,
                            Outcome, read_invocation, version_reply)

DEFAULT_SOCKET = "/run/membrane/agent.sock"
DEFAULT_TIMEOUT = 60.0     # seconds the agent may take to enforce; the kubelet allows ~4 min
DEFAULT_AGENT_WAIT = 10.0  # seconds to wait for the socket to appear (agent restarting)


def _socket(inv: Invocation) -> str:
    return str(inv.config.get("socket") or DEFAULT_SOCKET)


def _number(inv: Invocation, key: str, default: float) -> float:
    value = inv.config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise CniError(ERR_INVALID_CONFIG, f"{key}: expected seconds >= 0, got {value!r}")
    return float(value)


def _log(inv: Invocation, message: str) -> None:
    """Runtimes drop a plugin's stderr on success, so an optional file keeps the story."""
    print(f"membrane-cni: {message}", file=sys.stderr)
    path = inv.config.get("logFile")
    if path:
        try:
            with open(str(path), "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {inv.command} "
                         f"{inv.container_id[:12]} {message}\n")
        except OSError:
            pass  # logging must never fail a pod


# -- the agent, behind one small seam so tests can swap it ---------------------------------

class Link(Protocol):
    """What the commands need of the agent (agent/cni/link.py's AgentLink over gRPC)."""

    def close(self) -> None: ...

    def register(self, inv: Invocation, iface: ep.PodInterface, timeout: float) -> Any: ...

    def deregister(self, namespace: str, pod: str) -> Outcome: ...

    def get(self, namespace: str, pod: str) -> tuple[Any, Outcome]: ...


def connect_to_agent(socket: str, wait: float) -> Link:
    # gRPC loads only when a command talks to the agent: VERSION answers without it.
    from agent.cni.link import AgentLink

    return AgentLink(socket, wait)


LinkFactory = Callable[[str, float], Link]


# -- commands --------------------------------------------------------------------------------

def _require_pod(inv: Invocation) -> tuple[str, str]:
    namespace, pod = inv.pod
    if not namespace or not pod:
        raise CniError(ERR_INVALID_ENV, "CNI_ARGS lacks K8S_POD_NAMESPACE/K8S_POD_NAME: "
                       "membrane-cni protects Kubernetes pods and is run by the kubelet's runtime")
    return namespace, pod


def _require_prev(inv: Invocation) -> dict[str, Any]:
    prev = inv.prev_result
    if prev is None:
        raise CniError(ERR_INVALID_CONFIG, "no prevResult: membrane-cni is a chained plugin and "
                       "must come after the plugin that creates the pod's interface")
    return prev


def cmd_add(inv: Invocation, connect: LinkFactory) -> dict[str, Any]:
    namespace, pod = _require_pod(inv)
    prev = _require_prev(inv)
    iface = ep.find_pod_interface(prev, inv.netns, inv.ifname)
    timeout = _number(inv, "timeout", DEFAULT_TIMEOUT)
    link = connect(_socket(inv), _number(inv, "agentWait", DEFAULT_AGENT_WAIT))
    try:
        started = time.monotonic()
        got = link.register(inv, iface, timeout)
    finally:
        link.close()
    state = getattr(got, "state", "ready") or "ready"
    if state != "ready":
        raise CniError(ERR_ENDPOINT_NOT_READY, f"endpoint {namespace}/{pod} is {state}: "
                       f"{getattr(got, 'error', '') or 'not enforced'}")
    _log(inv, f"{namespace}/{pod} {iface.host_ifname} {_addresses(iface.ipv4, iface.ipv6)} "
              "enforced in "
              f"{(time.monotonic() - started) * 1000:.0f} ms")
    return prev  # pass-through: we add no interfaces, IPs or routes


def cmd_del(inv: Invocation, connect: LinkFactory) -> None:
    namespace, pod = inv.pod
    if not namespace or not pod:
        return  # nothing we could ever have registered
    try:
        link = connect(_socket(inv), 0.0)
    except CniError as err:
        # No agent: it reconciles its endpoints against the pods on this node when it starts,
        # so failing here would only wedge the runtime's sandbox teardown.
        _log(inv, f"{namespace}/{pod}: agent unreachable, left to its reconciliation: {err.msg}")
        return
    try:
        code = link.deregister(namespace, pod)
    finally:
        link.close()
    if code in (Outcome.OK, Outcome.NOT_FOUND):
        return
    if code is Outcome.UNAVAILABLE:
        _log(inv, f"{namespace}/{pod}: agent unavailable, left to its reconciliation")
        return
    raise CniError(ERR_TRY_AGAIN_LATER, f"agent failed to deregister {namespace}/{pod}: {code}")


def cmd_check(inv: Invocation, connect: LinkFactory) -> None:
    namespace, pod = _require_pod(inv)
    prev = _require_prev(inv)
    iface = ep.find_pod_interface(prev, inv.netns, inv.ifname)
    link = connect(_socket(inv), 0.0)
    try:
        got, code = link.get(namespace, pod)
    finally:
        link.close()
    if code is Outcome.NOT_FOUND:
        raise CniError(ERR_ENDPOINT_NOT_READY, f"agent has no endpoint for {namespace}/{pod}")
    if code is not Outcome.OK:
        raise CniError(ERR_TRY_AGAIN_LATER, f"agent: GetEndpoint {namespace}/{pod}: {code}")
    if got.state != "ready":
        raise CniError(ERR_ENDPOINT_NOT_READY,
                       f"endpoint {namespace}/{pod} is {got.state}: {got.error or 'not enforced'}")
    if (got.ifname, got.ipv4, got.ipv6) != (iface.host_ifname, iface.ipv4, iface.ipv6):
        raise CniError(ERR_ENDPOINT_NOT_READY,
                       f"endpoint {namespace}/{pod} is on {got.ifname} "
                       f"{_addresses(got.ipv4, got.ipv6)}, the pod on {iface.host_ifname} "
                       f"{_addresses(iface.ipv4, iface.ipv6)}")


def _addresses(ipv4: str, ipv6: str) -> str:
    return " ".join(a for a in (ipv4, ipv6) if a)


def run(environ: Mapping[str, str], stdin: str,
        connect: LinkFactory = connect_to_agent) -> tuple[int, dict[str, Any] | None]:
    """One invocation -> (exit status, JSON for stdout or None). Never raises CniError."""
    version = "1.0.0"
    try:
        inv = read_invocation(environ, stdin)
        version = inv.cni_version
        if inv.command == "VERSION":
            return 0, version_reply()
        if inv.command == "ADD":
            return 0, cmd_add(inv, connect)
        if inv.command == "DEL":
            cmd_del(inv, connect)
        else:
            cmd_check(inv, connect)
        return 0, None
    except CniError as err:
        return 1, err.to_json(version)
    except Exception as err:  # a bug or an OS error must still reach the runtime as CNI JSON
        return 1, CniError(ERR_IO, f"membrane-cni: {type(err).__name__}: {err}").to_json(version)


def main(stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
    status, reply = run(os.environ, (stdin or sys.stdin).read())
    if reply is not None:
        out = stdout or sys.stdout
        out.write(json.dumps(reply))
        out.flush()
    sys.exit(status)


if __name__ == "__main__":
    main()
