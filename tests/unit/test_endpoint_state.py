"""The endpoint state file (endpoints.json): written atomically (temporary file, fsync,
rename, fsync of the directory), and one that cannot be read stops the registry with an
error naming the file, what is wrong and what to do, never a raw JSONDecodeError."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.endpoints import EndpointRegistry, EndpointStateError


def registry_with_two(state: Path) -> EndpointRegistry:
    registry = EndpointRegistry(state)
    registry.register("default", "a", "lxca", "10.244.1.2")
    registry.register("default", "b", "lxcb", "10.244.1.3")
    return registry


def test_registrations_survive_a_new_registry(tmp_path: Path) -> None:
    registry_with_two(tmp_path)
    again = EndpointRegistry(tmp_path)
    assert [(e.id, e.key, e.ipv4) for e in again.all()] == [
        (1, "default/a", "10.244.1.2"), (2, "default/b", "10.244.1.3")]


def test_the_file_and_its_directory_are_fsynced_before_and_after_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync " + os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(f"rename {Path(src).name} -> {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    EndpointRegistry(tmp_path).register("default", "a", "lxca", "10.244.1.2")
    assert events == ["fsync endpoints.tmp", "rename endpoints.tmp -> endpoints.json",
                      f"fsync {tmp_path.name}"]


def test_a_write_that_fails_half_way_leaves_the_previous_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = registry_with_two(tmp_path)
    before = (tmp_path / "endpoints.json").read_text()

    def crash(src: str | Path, dst: str | Path) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        registry.register("default", "c", "lxcc", "10.244.1.4")
    assert (tmp_path / "endpoints.json").read_text() == before


@pytest.mark.parametrize("content,why", [
    ('[{"id": 1, "namespace": "default", "pod": "a", "ifn', "not valid JSON"),
    ("", "not valid JSON"),
    ('{"id": 1}', "must be a list"),
    ('[{"id": 1, "namespace": "default"}]', "row 1: missing"),
    ('[{"id": "x", "namespace": "default", "pod": "a", "ifname": "lxca", "ipv4": "10.0.0.1"}]',
     "row 1: id"),
    ('[{"id": 1, "namespace": "default", "pod": "a", "ifname": "lxca", "ipv4": "fd00::1"}]',
     "row 1: ipv4"),
    ('[{"id": 1, "namespace": "default", "pod": "a", "ifname": "lxca", "ipv4": "10.0.0.1"},'
     ' {"id": 1, "namespace": "default", "pod": "b", "ifname": "lxcb", "ipv4": "10.0.0.2"}]',
     "row 2: id 1 is also"),
], ids=["truncated", "empty", "not a list", "a missing field", "a wrong type",
        "an IPv6 ipv4", "a repeated id"])
def test_an_unreadable_file_is_a_clear_error_naming_the_file_and_what_to_do(
        tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "endpoints.json"
    path.write_text(content)
    with pytest.raises(EndpointStateError) as raised:
        EndpointRegistry(tmp_path)
    message = str(raised.value)
    assert str(path) in message and why in message
    assert "move it aside" in message and "restart" in message
    assert "\n" not in message


def test_a_file_written_by_the_registry_reads_back_as_json_rows(tmp_path: Path) -> None:
    registry_with_two(tmp_path)
    rows = json.loads((tmp_path / "endpoints.json").read_text())
    assert [row["pod"] for row in rows] == ["a", "b"]
