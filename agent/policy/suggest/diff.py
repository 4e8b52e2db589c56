"""`policy suggest --diff`: the suggestion against the policies in force.

Three answers, all from the engine over the pods the flows show and the ports seen:

  dropped_now   observed connections the current policies deny (what breaks today)
  adds          pod pairs and ports the suggestion allows and the current policies do
                not (these are the observed connections dropped now)
  removes       pod pairs and ports the current policies allow and the suggestion does
                not: access nobody was seen using
and, by name, the policies the suggestion writes that do not exist yet, the ones it
would replace, and the current ones it has no counterpart for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.k8s.objects import NetworkPolicy
from agent.policy.suggest.observed import Connection, pods_of
from agent.policy.suggest.verify import Pair, decide, engine_for, reachability


@dataclass
class Diff:
    dropped_now: list[tuple[Connection, str]] = field(default_factory=list)
    adds: list[Pair] = field(default_factory=list)
    removes: list[Pair] = field(default_factory=list)
    new_policies: list[str] = field(default_factory=list)
    replaced_policies: list[str] = field(default_factory=list)
    other_policies: list[str] = field(default_factory=list)   # current, not in the suggestion

    def as_dict(self) -> dict[str, object]:
        def pair(p: Pair) -> dict[str, object]:
            return {"from": p[0], "to": p[1], "protocol": p[2], "port": p[3]}
        return {
            "dropped_now": [{"connection": c.text, "why": why} for c, why in self.dropped_now],
            "adds": [pair(p) for p in self.adds],
            "removes": [pair(p) for p in self.removes],
            "policies": {"new": self.new_policies, "replaced": self.replaced_policies,
                         "current_not_suggested": self.other_policies},
        }

    def text(self) -> str:
        lines = [f"observed connections the current policies drop: {len(self.dropped_now)}"]
        lines += [f"  {c.text}   ({why})" for c, why in self.dropped_now]
        lines.append(f"the suggestion allows, the current policies do not: {len(self.adds)}")
        lines += _capped([f"  + {_pair_text(p)}" for p in self.adds])
        lines.append(f"the current policies allow, the suggestion does not (never seen): "
                     f"{len(self.removes)}")
        lines += _capped([f"  - {_pair_text(p)}" for p in self.removes])
        lines.append("policies:")
        lines += [f"  + {name} (new)" for name in self.new_policies]
        lines += [f"  ~ {name} (replaced by the suggestion's)" for name in
                  self.replaced_policies]
        lines += [f"  - {name} (in force; the suggestion has no such policy)"
                  for name in self.other_policies]
        return "\n".join(lines) + "\n"


TEXT_LIMIT = 50   # pairs listed per section in text; -o json lists every one


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= TEXT_LIMIT:
        return lines
    return lines[:TEXT_LIMIT] + [f"  ... and {len(lines) - TEXT_LIMIT} more (-o json lists "
                                 "every one)"]


def _pair_text(p: Pair) -> str:
    return f"{p[0]} -> {p[1]} {p[2]}/{p[3]}"


def diff(conns: Sequence[Connection], current: dict[str, NetworkPolicy],
         suggested: dict[str, NetworkPolicy]) -> Diff:
    out = Diff()
    now = engine_for(conns, current)
    after = engine_for(conns, suggested)
    for conn in conns:
        allowed, why = decide(now, conn)
        if not allowed:
            out.dropped_now.append((conn, why))
    pods = sorted(pods_of(conns).values(), key=lambda p: p.key)
    ports = {(c.protocol, c.port) for c in conns if c.port}
    before_pairs = reachability(now, pods, ports)
    after_pairs = reachability(after, pods, ports)
    out.adds = sorted(after_pairs - before_pairs)
    out.removes = sorted(before_pairs - after_pairs)
    out.new_policies = sorted(set(suggested) - set(current))
    out.replaced_policies = sorted(set(suggested) & set(current))
    out.other_policies = sorted(set(current) - set(suggested))
    return out
