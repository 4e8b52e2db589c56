"""source_label / destination_label / node_labels: Kubernetes label selectors over a
flow's labels.

    app=backend   app==backend   app!=backend   app in (a,b)   app notin (a,b)
    app           !app           k8s:app=backend   reserved:world

Requirements separated by commas must all hold. A key without a source ("app") matches
a label of any source; "k8s:app" only the k8s one, as Hubble reads them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb

_SOURCE = re.compile(r"^[A-Za-z0-9_-]+$")
_SET_OP = re.compile(r"^(?P<key>\S+?)\s+(?P<op>in|notin)\s*\((?P<vals>[^)]*)\)$")
_EQ_OP = re.compile(r"^(?P<key>[^=!\s]+)\s*(?P<op>==|=|!=)\s*(?P<val>\S*)$")


def split_label(text: str) -> tuple[str, str, str]:
    """"k8s:app=x" -> ("k8s", "app", "x"); "app=x" -> ("", "app", "x")."""
    key, _, value = text.partition("=")
    source, sep, rest = key.partition(":")
    if sep and _SOURCE.match(source):
        return source, rest, value
    return "", key, value


@dataclass(frozen=True)
class Requirement:
    source: str           # "" = any source
    key: str
    op: str               # exists, !exists, in, notin (= and == are in; != is notin)
    values: frozenset[str]

    def holds(self, labels: dict[tuple[str, str], str]) -> bool:
        found = [v for (src, key), v in labels.items()
                 if key == self.key and (not self.source or src == self.source)]
        if self.op == "exists":
            return bool(found)
        if self.op == "!exists":
            return not found
        if self.op == "in":
            return any(v in self.values for v in found)
        return not any(v in self.values for v in found)   # notin: absent also holds


def _split_top_level(selector: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _key(text: str, selector: str) -> tuple[str, str]:
    source, sep, key = text.partition(":")
    if not sep or not _SOURCE.match(source):
        source, key = "", text
    if not key:
        raise ValueError(f"label selector {selector!r}: empty key")
    return source, key


def parse_selector(selector: str) -> list[Requirement]:
    reqs = []
    for part in _split_top_level(selector):
        m = _SET_OP.match(part)
        if m:
            vals = frozenset(v.strip() for v in m["vals"].split(",") if v.strip())
            reqs.append(Requirement(*_key(m["key"], selector), m["op"], vals))
            continue
        m = _EQ_OP.match(part)
        if m:
            op = "notin" if m["op"] == "!=" else "in"
            reqs.append(Requirement(*_key(m["key"], selector), op, frozenset([m["val"]])))
            continue
        if part.startswith("!") and " " not in part:
            reqs.append(Requirement(*_key(part[1:], selector), "!exists", frozenset()))
            continue
        if " " not in part and "(" not in part:
            reqs.append(Requirement(*_key(part, selector), "exists", frozenset()))
            continue
        raise ValueError(f"label selector {selector!r}: cannot parse {part!r} (use key=value, "
                         "key!=value, 'key in (a,b)', 'key notin (a,b)', key or !key)")
    if not reqs:
        raise ValueError(f"label selector {selector!r} is empty")
    return reqs


def _label_map(labels: list[str]) -> dict[tuple[str, str], str]:
    out = {}
    for text in labels:
        source, key, value = split_label(text)
        out[(source, key)] = value
    return out


def _matcher(selectors: list[str], labels_of: Callable[[fpb.Flow], list[str]]) -> FilterFunc:
    parsed = [parse_selector(s) for s in selectors]

    def match(flow: fpb.Flow) -> bool:
        labels = _label_map(labels_of(flow))
        return any(all(r.holds(labels) for r in reqs) for reqs in parsed)
    return match


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    out: list[FilterFunc] = []
    if ff.source_label:
        out.append(_matcher(list(ff.source_label), lambda f: list(f.source.labels)))
    if ff.destination_label:
        out.append(_matcher(list(ff.destination_label),
                            lambda f: list(f.destination.labels)))
    if ff.node_labels:
        out.append(_matcher(list(ff.node_labels), lambda f: list(f.node_labels)))
    return out
