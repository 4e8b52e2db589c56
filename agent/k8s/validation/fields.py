"""Typed access to untrusted documents, and the two things validation returns besides
objects: `InvalidObject` (a rejection) and `ValidationWarning` (accepted, but worth
saying).

A `Field` is a value found at a field path of a document; reading it checks its type
first, so a malformed document gives a message naming the path, never a traceback.
Every Field of one object shares that object's `ObjectRef`, which names the object in
messages and collects the warnings its validation raises (`Field.warn`). The caller
hands the ref a list (`ObjectRef.warnings`) and reads it afterwards: warnings travel
beside the object, the way the API server returns them in `Warning` headers beside the
object it stored.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NoReturn

from core.errors import InvalidObject

# A name's rule (agent.k8s.validation.names): what is wrong with a name, None if nothing.
NameRule = Callable[[str], "str | None"]


@dataclass(frozen=True)
class ValidationWarning:
    """Something about an accepted object that its author should know:
    `<kind> <ns>/<name>: <field path>: <message>`, worded like InvalidObject."""

    kind: str
    name: str
    path: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        where = f" ({self.source})" if self.source else ""
        return f"{self.kind.lower()} {self.name}: {self.path}: {self.message}{where}"


@dataclass(frozen=True)
class ObjectRef:
    """The object a document describes, for messages: kind, "ns/name", source; and the
    list its warnings go to (compare=False: two refs to one object are equal)."""

    kind: str
    name: str
    source: str = ""
    warnings: list[ValidationWarning] = field(default_factory=list, compare=False,
                                              repr=False)

    def invalid(self, path: str, problem: str) -> InvalidObject:
        # Every part may come from the document (a kind, a key in a path, a value in a
        # problem) or from a file name: escaped, so a message is always one line.
        return InvalidObject(printable(self.kind), printable(self.name), printable(path),
                             printable(problem), printable(self.source))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(ValidationWarning(printable(self.kind), printable(self.name),
                                               printable(path), printable(message),
                                               printable(self.source)))


def describe_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def printable(text: str) -> str:
    """text with every non-printable character (newline, escape, NUL, line separator,
    ...) written as Python escapes it (`\\n`, `\\x1b`): a value from a document must not
    start a forged log line or carry a terminal escape into one."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def quoted(value: object, limit: int = 60) -> str:
    """A value for a message, quoted, escaped (printable) and shortened so a huge value
    cannot flood a log."""
    text = repr(value) if not isinstance(value, str) else '"' + printable(value) + '"'
    return text if len(text) <= limit else text[: limit - 4] + '..."'


def unknown_field_problem(key: str, known: tuple[str, ...]) -> str:
    guess = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {guess[0]!r}?" if guess else f"; known fields: {', '.join(known)}"
    return f"unknown field {quoted(key)}{hint}"


@dataclass(frozen=True)
class Field:
    """A value found at a field path of a document; reading it checks its type."""

    ref: ObjectRef
    path: str
    value: Any

    def fail(self, problem: str) -> NoReturn:
        raise self.ref.invalid(self.path or "(document)", problem)

    def warn(self, message: str) -> None:
        self.ref.warn(self.path or "(document)", message)

    def _wrong_type(self, expected: str) -> NoReturn:
        self.fail(f"must be {expected}, not {describe_type(self.value)}")

    @property
    def is_absent(self) -> bool:
        # Kubernetes (Go) decodes an explicit null exactly like a missing field.
        return self.value is None

    def child_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Field:
        """The field `key` of this object (absent when this object is absent)."""
        if self.value is None:
            return Field(self.ref, self.child_path(key), None)
        if not isinstance(self.value, dict):
            self._wrong_type("an object")
        return Field(self.ref, self.child_path(key), self.value.get(key))

    def fields(self, allowed: Iterable[str] | None = None) -> dict[str, Field]:
        """The fields of this object. With `allowed`, any other field is rejected, as the
        API server's strict field validation does (a typo must not silently widen a policy)."""
        if self.value is None:
            return {}
        if not isinstance(self.value, dict):
            self._wrong_type("an object")
        known = None if allowed is None else tuple(allowed)
        result: dict[str, Field] = {}
        for key, value in self.value.items():
            if not isinstance(key, str):
                self.fail(f"field names must be strings, not {describe_type(key)} {quoted(key)}")
            if known is not None and key not in known:
                Field(self.ref, self.child_path(key), value).fail(unknown_field_problem(key, known))
            result[key] = Field(self.ref, self.child_path(key), value)
        return result

    def items(self) -> list[Field]:
        """The elements of this list (none when absent)."""
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            self._wrong_type("a list")
        return [Field(self.ref, f"{self.path}[{i}]", v) for i, v in enumerate(self.value)]

    def string_map(self) -> dict[str, str]:
        """A map of strings to strings (labels, selectors, annotations). A null value
        decodes as "" in Go's encoding/json (a map element that null leaves at its zero
        value), so the API server accepts `app: null` as `app: ""`; so do we, saying so."""
        result: dict[str, str] = {}
        for key, entry in self.fields().items():
            entry = Field(self.ref, f"{self.path}[{key}]", entry.value)
            if entry.is_absent:
                entry.warn('null is read as the empty string "", as the API server does')
                result[key] = ""
            else:
                result[key] = entry.string()
        return result

    def string(self) -> str:
        if not isinstance(self.value, str):
            self._wrong_type("a string")
        return self.value

    def optional_string(self) -> str | None:
        return None if self.value is None else self.string()

    def checked_name(self, name: str, rule: NameRule) -> str:
        """`name` (this field's value, or its default), refused as the API server
        refuses it when `rule` finds a problem with it."""
        problem = rule(name)
        if problem:
            self.fail(f"invalid value {quoted(name)}: {problem}")
        return name

    def optional_name(self, rule: NameRule) -> str | None:
        """An optional name by `rule`; absent or "" is None."""
        name = self.optional_string() or None
        return None if name is None else self.checked_name(name, rule)

    def required_string(self) -> str:
        if self.value is None or self.value == "":
            self.fail("Required value")
        return self.string()

    def integer(self) -> int:
        # bool is an int in Python but never in a Kubernetes document.
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            self._wrong_type("an integer")
        return self.value

    def optional_integer(self) -> int | None:
        return None if self.value is None else self.integer()

    def boolean(self, default: bool = False) -> bool:
        if self.value is None:
            return default
        if not isinstance(self.value, bool):
            self._wrong_type("a boolean")
        return self.value
