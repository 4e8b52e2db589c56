"""Membrane's protos against Hubble's published API: every package, message, field (number,
type, label, type name, oneof), enum value and RPC that Membrane's compiled descriptors
define is the published one, as tests/interop/hubble_api_facts.tsv records it."""

from __future__ import annotations

from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2

from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.gen.peer import peer_pb2 as ppb
from observe.gen.relay import relay_pb2 as rpb
from tests.interop.facts import FileFacts, descriptors, facts_of, read_facts

MODULES = [rpb, fpb, ppb, opb]
GENERATED = "observe/gen/"   # where Membrane's generated files say they come from


def compiled(module: ModuleType) -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(file)
    return file


def published(package: str) -> FileFacts:
    return {f.package: f for f in read_facts().values()}[package]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.DESCRIPTOR.package)
def test_every_name_membrane_defines_has_the_published_number_and_type(
        module: ModuleType) -> None:
    ours = compiled(module)
    theirs = {line[:2]: line for line in published(ours.package).lines}
    mine = facts_of(ours)
    assert len(mine) >= 5
    assert [line for line in mine if theirs.get(line[:2]) != line] == []


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.DESCRIPTOR.package)
def test_the_facts_list_nothing_membrane_lacks(module: ModuleType) -> None:
    ours = compiled(module)
    mine = {line[:2] for line in facts_of(ours)}
    assert [line for line in published(ours.package).lines if line[:2] not in mine] == []
    assert [i.removeprefix(GENERATED) for i in ours.dependency] == \
        published(ours.package).imports


def test_a_wrong_number_is_caught() -> None:
    file = compiled(fpb)
    file.message_type[0].field[0].number += 1000
    theirs = {line[:2]: line for line in published("flow").lines}
    assert [line for line in facts_of(file) if theirs.get(line[:2]) != line] != []


def test_the_descriptors_built_from_the_facts_are_the_compiled_ones() -> None:
    built = {f.package: f for f in descriptors()}
    for module in MODULES:
        ours = compiled(module)
        assert facts_of(built[ours.package]) == facts_of(ours)
