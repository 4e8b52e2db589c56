"""How far a YAML document's aliases may expand, checked on the composed node graph
before anything is constructed.

PyYAML builds an alias as a second reference to the anchored node, so a "billion
laughs" document composes into a few dozen nodes; every later step that walks it as a
tree (validation, `json.dumps` into the lab's store, the policy engine) would then visit
all 9^9 leaves. The API server's YAML decoder (go-yaml, under sigs.k8s.io/yaml) refuses
such documents with "document contains excessive aliasing"; this module applies the same
rule (gopkg.in/yaml.v3 decode.go `allowedAliasRatio`), counted the same way:

    decoded   nodes visited when the document is decoded as a tree (aliases expanded)
    aliased   of those, nodes visited inside an alias's expansion
    refused   when aliased > 100 and decoded > 1000 and aliased / decoded exceeds
              99% (up to 400,000 decoded), falling linearly to 10% (at 4,000,000)

The walk stops as soon as the rule is broken, so a hostile document costs at most a few
thousand steps; a document without aliases costs one visit per node. An anchor whose
value contains its own alias (`&a [*a]`) is refused first, as go-yaml does ("anchor
value contains itself"): no JSON document can hold it.
"""

from __future__ import annotations

import yaml

ALIAS_RATIO_RANGE_LOW = 400_000
ALIAS_RATIO_RANGE_HIGH = 4_000_000
MIN_ALIASED = 100     # below these, any ratio is allowed (small documents)
MIN_DECODED = 1000


def allowed_alias_ratio(decoded: int) -> float:
    """go-yaml's allowedAliasRatio: 99% for small documents, 10% for very large ones."""
    if decoded <= ALIAS_RATIO_RANGE_LOW:
        return 0.99
    if decoded >= ALIAS_RATIO_RANGE_HIGH:
        return 0.10
    span = ALIAS_RATIO_RANGE_HIGH - ALIAS_RATIO_RANGE_LOW
    return 0.99 - 0.89 * (decoded - ALIAS_RATIO_RANGE_LOW) / span


def aliasing_problem(root: yaml.Node) -> str | None:
    """Why this composed document must not be constructed, or None."""
    if _contains_itself(root):
        return "an anchor's value contains itself (through an alias)"
    decoded = aliased = 0
    seen: set[int] = set()                 # nodes met once: any later meeting is an alias
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, in_alias = stack.pop()
        decoded += 1
        aliased += in_alias
        if (aliased > MIN_ALIASED and decoded > MIN_DECODED
                and aliased / decoded > allowed_alias_ratio(decoded)):
            return (f"document contains excessive aliasing (more than {aliased} of "
                    f"{decoded} values come from expanding aliases)")
        for child in _children(node):
            stack.append((child, in_alias or id(child) in seen))
            seen.add(id(child))
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _contains_itself(root: yaml.Node) -> bool:
    """A cycle in the node graph, by depth-first search over distinct nodes (linear)."""
    on_path: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            done.add(id(node))
            continue
        if id(node) in done:
            continue
        on_path.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                return True
            if id(child) not in done:
                stack.append((child, False))
    return False
