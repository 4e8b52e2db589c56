"""Labels with their source, as Cilium shows them: `k8s:app=backend`, `reserved:host`."""

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
