"""Labels with their source, as Cilium shows them: `k8s:app=backend`, `reserved:host`.

Stored (state files, etcd) as [source, key, value] triples: `encode_labels` and
`decode_labels`, exact where parsing `source:key=value` back would not be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

SOURCE_K8S = "k8s"
SOURCE_RESERVED = "reserved"
SOURCE_CIDR = "cidr"


@dataclass(frozen=True, order=True)
class Label:
    source: str
    key: str
    value: str = ""

    def __str__(self) -> str:
        return f"{self.source}:{self.key}={self.value}" if self.value else f"{self.source}:{self.key}"

    @classmethod
    def parse(cls, text: str) -> "Label":
        """`source:key[=value]`; a label without a source is taken as k8s."""
        source, sep, rest = text.partition(":")
        if not sep or "/" in source or "=" in source:
            source, rest = SOURCE_K8S, text
        key, _, value = rest.partition("=")
        if not key:
            raise ValueError(f"label {text!r}: empty key")
        return cls(source, key, value)


class LabelSet(frozenset[Label]):
    """An immutable set of labels; its sorted string form is the identity's key."""

    @classmethod
    def from_mapping(cls, labels: Mapping[str, str], source: str = SOURCE_K8S) -> "LabelSet":
        return cls(Label(source, k, v) for k, v in labels.items())

    @classmethod
    def parse(cls, texts: Iterable[str]) -> "LabelSet":
        return cls(Label.parse(t) for t in texts)

    def sorted(self) -> list[Label]:
        return sorted(self)

    def key(self) -> str:
        """A stable, canonical string: what allocators store and compare."""
        return ";".join(str(label) for label in self.sorted())

    def lines(self) -> list[str]:
        return [str(label) for label in self.sorted()]

    def with_source(self, source: str) -> dict[str, str]:
        return {label.key: label.value for label in self if label.source == source}

    def __repr__(self) -> str:
        return f"LabelSet({self.key()!r})"


def encode_labels(labels: LabelSet) -> list[list[str]]:
    """Labels as sorted [source, key, value] triples, for JSON."""
    return [[label.source, label.key, label.value] for label in labels.sorted()]


def decode_labels(raw: object) -> LabelSet:
    """The inverse of encode_labels; ValueError on anything else."""
    if not isinstance(raw, list):
        raise ValueError("labels must be a list of [source, key, value]")
    labels = []
    for item in raw:
        if (not isinstance(item, list) or len(item) != 3
                or not all(isinstance(part, str) for part in item)):
            raise ValueError(f"label {item!r} is not [source, key, value]")
        labels.append(Label(item[0], item[1], item[2]))
    return LabelSet(labels)
