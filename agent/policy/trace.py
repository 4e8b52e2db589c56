"""Explain one verdict: src -> dst on (protocol, port), egress side and ingress side.

For each direction, step by step as the datapath decides it (mapstate.EndpointPolicy
.decide): the Admin tier (which policies select the pod, which rule matched first, its
action, and what a Pass passed to), then NetworkPolicy (which policies select the pod,
which rules allow the packet, or that the pod is isolated and nothing allowed it), then
the Baseline tier, then the default; and when audit mode lets a denied packet through,
that too. Works offline on manifests (`trace`) and inside the agent on its live engine
(`trace_engine`), for one IP family (4 by default): the pods' addresses of that
family, and the ipBlocks that hold them.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import MembraneError
from core.protocols import PORT_PROTOCOLS, Direction
from agent.k8s.objects import BANP_KIND, ClusterObjects, Protocol, Tier
from agent.policy.engine import PolicyEngine
from agent.policy.explain import Explanation, RuleRef, explain
from agent.policy.mapstate import DecidedBy
from agent.policy.matrix import offline_engine, peer_identities
from agent.policy.modes import Enforcement


@dataclass(frozen=True)
class TraceResult:
    allowed: bool
    explanation: str
    egress_allowed: bool = True
    ingress_allowed: bool = True
    audited: bool = False          # denied by policy, let through by audit mode


def trace(objects: ClusterObjects, src: str, dst: str, port: int,
          protocol: str = "TCP", family: int = 4) -> TraceResult:
    return trace_engine(offline_engine(objects), src, dst, port, protocol, family)


def trace_engine(engine: PolicyEngine, src: str, dst: str, port: int,
                 protocol: str = "TCP", family: int = 4) -> TraceResult:
    proto = _protocol(protocol)
    if family not in (4, 6):
        raise MembraneError(f"IP family {family}: use 4 or 6")
    for key in (src, dst):
        if key not in engine.pods():
            raise MembraneError(f"pod {key}: not found; name pods as namespace/name")
    what = f"{proto.value}/{port}"
    lines = [f"Tracing {src} -> {dst} on {what} over IPv{family}"]
    if src == dst:
        lines.append("A pod's traffic to itself never leaves it (loopback): allowed.")
        return TraceResult(True, "\n".join(lines) + "\n")
    if engine.modes.enforcement is not Enforcement.DEFAULT or engine.modes.audit:
        lines.append(f"Policy modes: {engine.modes}")
    src_pod, dst_pod = engine.pods()[src], engine.pods()[dst]
    lines += [_describe(engine, src, family), _describe(engine, dst, family), ""]
    # A hostNetwork pod is its node: seen from the other pod, it is host or remote-node.
    egress = _side(engine, lines, src, Direction.EGRESS, dst,
                   peer_identities(engine, dst, src_pod.node_name, family), proto, port)
    lines.append("")
    ingress = _side(engine, lines, dst, Direction.INGRESS, src,
                    peer_identities(engine, src, dst_pod.node_name, family), proto, port)
    lines.append("")
    egress_ok = egress is None or egress.decision.allowed
    ingress_ok = ingress is None or ingress.decision.allowed
    audited = any(e is not None and e.decision.audited for e in (egress, ingress))
    allowed = egress_ok and ingress_ok
    if allowed:
        lines.append(f"Verdict: ALLOWED ({src} may send and {dst} may receive {what})")
    else:
        denied = [d for d, ok in (("egress", egress_ok), ("ingress", ingress_ok)) if not ok]
        lines.append(f"Verdict: DENIED by {' and '.join(denied)} policy")
        if audited and all(e is None or e.decision.passes for e in (egress, ingress)):
            lines.append("  audit mode: the packets pass, reported as AUDIT, not dropped")
    return TraceResult(allowed, "\n".join(lines) + "\n", egress_ok, ingress_ok, audited)


def _protocol(name: str) -> Protocol:
    try:
        return Protocol(name.upper())
    except ValueError:
        raise MembraneError(f"protocol {name!r}: use {', '.join(PORT_PROTOCOLS)}") from None


def _describe(engine: PolicyEngine, key: str, family: int) -> str:
    pod = engine.pods()[key]
    identity = engine.identity_of(key)
    who = f"identity {identity.id}" if identity else "hostNetwork (the node itself)"
    return f"  {key}: {who}, IPv{family} {pod.address(family) or 'none'}"


def _side(engine: PolicyEngine, lines: list[str], pod: str, direction: Direction,
          peer: str, peers: set[int], proto: Protocol, port: int) -> Explanation | None:
    word = direction.name.lower()
    towards = "to" if direction is Direction.EGRESS else "from"
    title = "Egress from" if direction is Direction.EGRESS else "Ingress to"
    lines.append(f"{title} {pod}:")
    if engine.identity_of(pod) is None:
        lines.append(f"  {pod} uses the host network: not an endpoint, never isolated.")
        return None
    found = explain(engine, pod, direction, peers, proto.number, port)
    decision = found.decision
    ids = ", ".join(str(i) for i in sorted(peers)) or "none"
    packet = f"{proto.value}/{port} {towards} {peer} (identities {ids})"
    if engine.modes.enforcement is Enforcement.NEVER:
        lines.append("  enforcement mode never: no policy is enforced, allowed.")
        return found
    if decision.by is DecidedBy.NOT_ENFORCED:
        others = [k for k in engine.selecting_policies(pod) if engine.policy(k) is not None]
        others += _selecting(engine, pod, None)
        also = f" (selected only for the other direction by {', '.join(others)})" if others else ""
        lines.append(f"  no policy selects {pod} for {word}{also}: not isolated, allowed.")
        return found
    _tier_lines(engine, lines, pod, direction, Tier.ADMIN, found)
    if decision.by is DecidedBy.ADMIN:
        return _end(lines, found)
    _np_lines(engine, lines, pod, direction, found, packet)
    if decision.by is DecidedBy.NETWORK_POLICY:
        return _end(lines, found)
    _tier_lines(engine, lines, pod, direction, Tier.BASELINE, found)
    if decision.by is DecidedBy.DEFAULT:
        if decision.allowed:
            lines.append(f"  no rule of any tier decided {packet}: allowed by default.")
        else:
            lines.append(f"  no rule of any tier decided {packet}: denied by default "
                         "(enforcement mode always).")
    return _end(lines, found)


def _end(lines: list[str], found: Explanation) -> Explanation:
    if found.decision.audited:
        lines.append("  audit mode: denied, but the packet passes and is reported as AUDIT.")
    return found


def _selecting(engine: PolicyEngine, pod: str, tier: Tier | None) -> list[str]:
    """Tier policies of `tier` selecting the pod (None: every tier), in evaluation order."""
    found = [engine.tiers.policy(k) for k in engine.selecting_policies(pod)]
    policies = [c.policy for c in found if c is not None
                and (tier is None or c.policy.tier is tier)]
    return [p.key + ("" if p.kind == BANP_KIND else f" (priority {p.priority})")
            for p in sorted(policies, key=lambda p: p.order_key)]


def _rule_line(ref: RuleRef) -> str:
    return ref.text


def _tier_lines(engine: PolicyEngine, lines: list[str], pod: str, direction: Direction,
                tier: Tier, found: Explanation) -> None:
    name = f"{tier.value} tier"
    decision = found.decision
    relevant = [c for c in (engine.tiers.policy(k) for k in engine.selecting_policies(pod))
                if c is not None and c.policy.tier is tier and c.enforces(direction)]
    deciding = (decision.by is DecidedBy.ADMIN and tier is Tier.ADMIN) or (
        decision.by is DecidedBy.BASELINE and tier is Tier.BASELINE)
    builtin = deciding and found.rules and not found.rules[0].policy
    if not relevant and not builtin:
        lines.append(f"  {name}: no policy selects {pod} for {direction.name.lower()}.")
        return
    if relevant:
        lines.append(f"  {name}: selected by {', '.join(_selecting(engine, pod, tier))}")
    if deciding:
        lines.append(f"    first matching rule: {_rule_line(found.rules[0])}")
        return
    if tier is Tier.ADMIN and found.passed_by is not None:
        after = {DecidedBy.NETWORK_POLICY: "NetworkPolicy",
                 DecidedBy.BASELINE: "the Baseline tier",
                 DecidedBy.DEFAULT: "the Baseline tier, then the default"}[decision.by]
        lines.append(f"    first matching rule: {_rule_line(found.passed_by)}: passed to "
                     f"{after}")
        return
    if tier is Tier.BASELINE and decision.by is DecidedBy.DEFAULT and relevant:
        lines.append("    no rule decides (none matches, or a Pass): on to the default")
        return
    lines.append("    no rule matches: on to the next step")


def _np_lines(engine: PolicyEngine, lines: list[str], pod: str, direction: Direction,
              found: Explanation, packet: str) -> None:
    word = direction.name.lower()
    policy = engine.endpoint_policy(pod)
    selecting = [k for k in engine.selecting_policies(pod) if engine.policy(k) is not None]
    relevant = [k for k in selecting if _enforces(engine, k, direction)]
    if not policy.enforced(direction):
        others = [k for k in selecting if k not in relevant]
        also = f" (selected only for the other direction by {', '.join(others)})" if others else ""
        lines.append(f"  NetworkPolicy: none selects {pod} for {word}{also}: not isolated.")
        return
    lines.append(f"  NetworkPolicy: selected for {word} by: {', '.join(relevant)}")
    # Policies that only isolate here (too large to enforce): the datapath denies what
    # they would allow, and so does this trace.
    lines += [f"    ! {problem}" for problem in engine.endpoint_problems(pod)
              if any(problem.startswith(f"policy {k} ") for k in relevant)]
    decision = found.decision
    if not decision.allowed:
        lines.append(f"    isolated for {word}, and no rule allows {packet}: denied.")
        return
    lines.append(f"    allowed ({decision.match_type.hubble_name}) {packet} by:")
    lines += [f"      - {ref.text}" for ref in found.rules]


def _enforces(engine: PolicyEngine, policy_key: str, direction: Direction) -> bool:
    compiled = engine.policy(policy_key)
    return compiled is not None and compiled.enforces(direction)
