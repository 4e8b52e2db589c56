"""YAML aliases are expanded within the limit the API server's decoder sets (go-yaml's
"excessive aliasing" rule): a "billion laughs" manifest fails fast with a clear error
naming the document, ordinary anchors still load, and an anchor that contains itself is
refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent.k8s.loader import read_documents, yaml_documents

LAUGHS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: lol}
data:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

GOOD = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: web
    labels: &labels {app: web, tier: front}
    annotations: *labels
  spec:
    containers: [{name: c, ports: &ports [{containerPort: 80}]}]
- apiVersion: v1
  kind: Pod
  metadata: {name: api, labels: {<<: *labels, app: api}}
  spec:
    containers: [{name: c, ports: *ports}]
"""


def test_a_billion_laughs_manifest_fails_fast_naming_the_document(tmp_path: Path) -> None:
    file = tmp_path / "laughs.yaml"
    file.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\n" + LAUGHS)
    started = time.monotonic()
    docs, errors = read_documents([file])
    assert time.monotonic() - started < 2
    assert [doc["metadata"]["name"] for doc, _ in docs] == ["ok"]   # the one before is kept
    (error,) = errors
    assert f"{file}#2" in str(error) and "excessive aliasing" in str(error)


def test_the_expanded_documents_never_reach_json() -> None:
    # What the lab writes to its store: a manifest that got through would blow up here.
    docs, error = yaml_documents(LAUGHS, "laughs.yaml")
    assert error is not None and not docs
    json.dumps([value for value, _ in docs])


def test_ordinary_anchors_and_merge_keys_still_load() -> None:
    docs, error = yaml_documents(GOOD, "good.yaml")
    assert error is None
    ((doc, _),) = docs
    web, api = doc["items"]
    assert web["metadata"]["annotations"] == {"app": "web", "tier": "front"}
    assert api["metadata"]["labels"] == {"app": "api", "tier": "front"}
    assert api["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "&x [1, [2, *x]]\n"],
                         ids=["a list", "a mapping", "nested"])
def test_an_anchor_that_contains_itself_is_refused(text: str) -> None:
    docs, error = yaml_documents(text, "loop.yaml")
    assert not docs and error is not None and "contains itself" in str(error)


def test_many_aliases_of_a_small_anchor_in_a_large_document_are_allowed() -> None:
    # Mostly plain content with some aliases: well under the ratio, as go-yaml allows.
    rows = "\n".join(f"  k{i}: [{i}, {i + 1}, *one]" for i in range(2000))
    docs, error = yaml_documents(f"one: &one {{a: 1}}\nrows:\n{rows}\n", "rows.yaml")
    assert error is None and len(docs[0][0]["rows"]) == 2000
