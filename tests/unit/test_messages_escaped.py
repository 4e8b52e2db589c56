"""Messages built from object fields never carry a raw control character: a newline in a
label key, a field name, a kind or a name must not forge a second log line or break a
table. They are escaped as Python writes them (`\\n`, `\\x1b`), so the value stays
recognisable."""

from __future__ import annotations

from typing import Any

import pytest

from agent.k8s.loader import objects_from_documents, parse_document
from agent.k8s.validation.fields import ObjectRef, ValidationWarning, quoted
from agent.sources.k8s_mirror import parse
from core.errors import InvalidObject, MembraneError

CONTROL = "\n\r\t\x1b\x00\x7f\u2028"


def no_control(text: str) -> bool:
    return all(ch.isprintable() for ch in text)


def policy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"podSelector": {}, **spec}}


def test_quoted_escapes_control_characters() -> None:
    text = quoted("a\nwarning: forged\x1b[31m")
    assert no_control(text)
    assert text == '"a\\nwarning: forged\\x1b[31m"'


def test_quoted_still_shortens_a_long_value_after_escaping() -> None:
    text = quoted("\n" * 100)
    assert no_control(text) and len(text) <= 60 and text.endswith('..."')


@pytest.mark.parametrize("doc", [
    policy(podSelector={"matchLabels": {"app\nINFO forged": "x"}}),
    policy(**{"ingress\nforged": []}),
    {**policy(), "kind": "NetworkPolicy\n"},
    {**policy(), "metadata": {"name": "web\nforged", "namespace": "default"}},
    {**policy(), "metadata": {"name": "web", "namespace": "de\x1bfault"}},
    policy(ingress=[{"ports": [{"port": "http\n"}]}]),
], ids=["a label key", "a field name", "a kind", "a name", "a namespace", "a port name"])
def test_an_invalid_object_message_has_no_control_character(doc: dict[str, Any]) -> None:
    with pytest.raises(MembraneError) as raised:
        parse_document(doc, source="file\n.yaml")
    assert no_control(str(raised.value)), repr(str(raised.value))


def test_the_kubernetes_mirror_names_an_unreadable_document_without_control_characters(
        ) -> None:
    doc = policy()
    doc["metadata"]["name"] = "web\nforged"
    result = parse("NetworkPolicy", doc)
    assert isinstance(result, InvalidObject) and no_control(str(result))


def test_a_warning_has_no_control_character() -> None:
    warnings: list[ValidationWarning] = []
    ref = ObjectRef("NetworkPolicy", "default/web" + CONTROL, "src" + CONTROL, warnings)
    ref.warn("spec" + CONTROL, "message" + CONTROL)
    (warning,) = warnings
    assert no_control(str(warning))


def test_every_part_of_an_invalid_object_is_escaped() -> None:
    error = ObjectRef("Pod" + CONTROL, "a/b" + CONTROL, "f" + CONTROL).invalid(
        "spec" + CONTROL, "bad" + CONTROL)
    assert no_control(str(error))


def test_objects_from_documents_reports_a_forged_line_escaped() -> None:
    _, errors = objects_from_documents([policy(podSelector={"matchLabels": {"a\nb": "c"}})])
    (error,) = errors
    assert no_control(str(error)) and "a\\nb" in str(error)
