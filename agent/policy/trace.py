"""Explain one verdict: src -> dst on (protocol, port), egress side and ingress side.

For each direction: which policies select the pod (or that none does, so it is not
isolated), which rule, peer and port allowed the packet, or that the pod is isolated in
that direction and nothing allowed it. Works offline on manifests (`trace`) and inside
the agent on its live engine (`trace_engine`).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import MembraneError
from core.protocols import PORT_PROTOCOLS, Direction
from agent.k8s.objects import ClusterObjects, Protocol
from agent.policy.engine import PolicyEngine
from agent.policy.matrix import offline_engine, peer_identities


@dataclass(frozen=True)
class TraceResult:
    allowed: bool
    explanation: str
    egress_allowed: bool = True
    ingress_allowed: bool = True


def trace(objects: ClusterObjects, src: str, dst: str, port: int,
          protocol: str = "TCP") -> TraceResult:
    return trace_engine(offline_engine(objects), src, dst, port, protocol)


def trace_engine(engine: PolicyEngine, src: str, dst: str, port: int,
                 protocol: str = "TCP") -> TraceResult:
    proto = _protocol(protocol)
    for key in (src, dst):
        if key not in engine.pods():
            raise MembraneError(f"pod {key}: not found; name pods as namespace/name")
    what = f"{proto.value}/{port}"
    lines = [f"Tracing {src} -> {dst} on {what}"]
    if src == dst:
        lines.append("A pod's traffic to itself never leaves it (loopback): allowed.")
        return TraceResult(True, "\n".join(lines) + "\n")
    src_pod, dst_pod = engine.pods()[src], engine.pods()[dst]
    lines += [_describe(engine, src), _describe(engine, dst), ""]
    # A hostNetwork pod is its node: seen from the other pod, it is host or remote-node.
    egress_ok = _side(engine, lines, src, Direction.EGRESS, dst,
                      peer_identities(engine, dst, src_pod.node_name), proto, port)
    lines.append("")
    ingress_ok = _side(engine, lines, dst, Direction.INGRESS, src,
                       peer_identities(engine, src, dst_pod.node_name), proto, port)
    lines.append("")
    allowed = egress_ok and ingress_ok
    if allowed:
        lines.append(f"Verdict: ALLOWED ({src} may send and {dst} may receive {what})")
    else:
        denied = [d for d, ok in (("egress", egress_ok), ("ingress", ingress_ok)) if not ok]
        lines.append(f"Verdict: DENIED by {' and '.join(denied)} policy")
    return TraceResult(allowed, "\n".join(lines) + "\n", egress_ok, ingress_ok)


def _protocol(name: str) -> Protocol:
    try:
        return Protocol(name.upper())
    except ValueError:
        raise MembraneError(f"protocol {name!r}: use {', '.join(PORT_PROTOCOLS)}") from None


def _describe(engine: PolicyEngine, key: str) -> str:
    pod = engine.pods()[key]
    identity = engine.identity_of(key)
    who = f"identity {identity.id}" if identity else "hostNetwork (the node itself)"
    return f"  {key}: {who}, IP {pod.ip or 'none'}"


def _side(engine: PolicyEngine, lines: list[str], pod: str, direction: Direction,
          peer: str, peers: set[int], proto: Protocol, port: int) -> bool:
    word = direction.name.lower()
    towards = "to" if direction is Direction.EGRESS else "from"
    title = "Egress from" if direction is Direction.EGRESS else "Ingress to"
    lines.append(f"{title} {pod}:")
    if engine.identity_of(pod) is None:
        lines.append(f"  {pod} uses the host network: not an endpoint, never isolated.")
        return True
    selecting = engine.selecting_policies(pod)
    relevant = [k for k in selecting if _enforces(engine, k, direction)]
    others = [k for k in selecting if k not in relevant]
    if not relevant:
        also = f" (selected only for the other direction by {', '.join(others)})" if others else ""
        lines.append(f"  no policy selects {pod} for {word}{also}: not isolated, allowed.")
        return True
    lines.append(f"  selected for {word} by: {', '.join(relevant)}")
    # Policies that only isolate here (too large to enforce): the datapath denies what
    # they would allow, and so does this trace.
    lines += [f"  ! {problem}" for problem in engine.endpoint_problems(pod)
              if any(problem.startswith(f"policy {k} ") for k in relevant)]
    policy = engine.endpoint_policy(pod)
    provenance = engine.provenance(pod)
    matched = sorted(
        {why.text for key, whys in provenance.items()
         if key.direction is direction and key.matches(peers, proto.number, port)
         for why in whys})
    ok, match_type = policy.evaluate(direction, peers, proto.number, port)
    ids = ", ".join(str(i) for i in sorted(peers)) or "none"
    if not ok:
        lines.append(f"  isolated for {word}, and no rule allows {proto.value}/{port} "
                     f"{towards} {peer} (identities {ids}): denied.")
        return False
    lines.append(f"  allowed ({match_type.hubble_name}) {towards} {peer} "
                 f"(identities {ids}) by:")
    lines += [f"    - {text}" for text in matched]
    return True


def _enforces(engine: PolicyEngine, policy_key: str, direction: Direction) -> bool:
    compiled = engine.policy(policy_key)
    return compiled is not None and compiled.enforces(direction)
