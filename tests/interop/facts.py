"""Hubble's published API as facts (hubble_api_facts.tsv), both ways:

    facts_of(file)        a compiled FileDescriptorProto -> its lines of the table (what
                          tests/unit/test_hubble_protos.py compares with the table)
    read_facts(path)      the table -> {proto path: FileFacts}
    descriptors(path)     the table -> FileDescriptorProtos built from the facts alone (what
                          the independent client of tests/interop/published.py compiles
                          into its own descriptor pool: no .proto file, no generated code)

Standalone on purpose: the client process copies this file next to itself and imports
nothing of Membrane's, so it needs only protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2 as dpb

FACTS = Path(__file__).resolve().parent / "hubble_api_facts.tsv"

_F = dpb.FieldDescriptorProto
TYPES = {name[len("TYPE_"):].lower(): number for name, number in _F.Type.items()}
TYPE_NAMES = {number: name for name, number in TYPES.items()}
LABELS = {"optional": _F.LABEL_OPTIONAL, "repeated": _F.LABEL_REPEATED,
          "required": _F.LABEL_REQUIRED}
LABEL_NAMES = {number: name for name, number in LABELS.items()}
Line = tuple[str, ...]


@dataclass
class FileFacts:
    path: str
    package: str
    imports: list[str]
    lines: list[Line] = field(default_factory=list)   # every line after the file line


def read_facts(path: Path = FACTS) -> dict[str, FileFacts]:
    files: dict[str, FileFacts] = {}
    current: FileFacts | None = None
    for raw in path.read_text().splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        cols = tuple(raw.split("\t"))
        if cols[0] == "file":
            imports = [i for i in (cols[3] if len(cols) > 3 else "").split(",") if i]
            current = files[cols[1]] = FileFacts(cols[1], cols[2], imports)
        elif current is None:
            raise ValueError(f"{path}: {raw!r} comes before any file line")
        else:
            current.lines.append(cols)
    return files


def facts_of(file: dpb.FileDescriptorProto) -> list[Line]:
    """The table's lines for one compiled file, in the table's order."""
    out: list[Line] = []

    def enum(full: str, e: dpb.EnumDescriptorProto) -> None:
        out.append(("enum", full))
        out.extend(("value", f"{full}.{v.name}", str(v.number)) for v in e.value)

    def message(full: str, m: dpb.DescriptorProto) -> None:
        out.append(("message", full))
        for f in m.field:
            cols: Line = ("field", f"{full}.{f.name}", str(f.number), TYPE_NAMES[f.type],
                          LABEL_NAMES[f.label])
            oneof = m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else ""
            if f.type_name or oneof:
                cols += (f.type_name,)
            if oneof:
                cols += (oneof,)
            out.append(cols)
        for e in m.enum_type:
            enum(f"{full}.{e.name}", e)
        for nested in m.nested_type:
            message(f"{full}.{nested.name}", nested)

    for m in file.message_type:
        message(f"{file.package}.{m.name}", m)
    for e in file.enum_type:
        enum(f"{file.package}.{e.name}", e)
    for s in file.service:
        out.append(("service", f"{file.package}.{s.name}"))
        out.extend(("rpc", f"{file.package}.{s.name}.{m.name}", m.input_type.lstrip("."),
                    m.output_type.lstrip("."),
                    "server_streaming" if m.server_streaming else "unary") for m in s.method)
    return out


def descriptors(path: Path = FACTS) -> list[dpb.FileDescriptorProto]:
    """One FileDescriptorProto per file of the table, in import order."""
    return [_build(f) for f in read_facts(path).values()]


def _build(facts: FileFacts) -> dpb.FileDescriptorProto:
    file = dpb.FileDescriptorProto(name=facts.path, package=facts.package, syntax="proto3",
                                   dependency=facts.imports)
    messages: dict[str, dpb.DescriptorProto] = {}
    enums: dict[str, dpb.EnumDescriptorProto] = {}
    services: dict[str, dpb.ServiceDescriptorProto] = {}

    def parent_of(full: str) -> tuple[str, str]:
        parent, _, name = full.rpartition(".")
        return parent, name

    for cols in facts.lines:
        kind, full = cols[0], cols[1]
        parent, name = parent_of(full)
        if kind == "message":
            owner = messages.get(parent)
            messages[full] = (owner.nested_type if owner is not None
                              else file.message_type).add(name=name)
        elif kind == "enum":
            owner = messages.get(parent)
            enums[full] = (owner.enum_type if owner is not None
                           else file.enum_type).add(name=name)
        elif kind == "value":
            enums[parent].value.add(name=name, number=int(cols[2]))
        elif kind == "field":
            msg = messages[parent]
            f = msg.field.add(name=name, number=int(cols[2]), type=TYPES[cols[3]],
                              label=LABELS[cols[4]])
            if len(cols) > 5 and cols[5]:
                f.type_name = cols[5]
            if len(cols) > 6:
                names = [o.name for o in msg.oneof_decl]
                if cols[6] not in names:
                    msg.oneof_decl.add(name=cols[6])
                    names.append(cols[6])
                f.oneof_index = names.index(cols[6])
        elif kind == "service":
            services[full] = file.service.add(name=name)
        elif kind == "rpc":
            services[parent].method.add(name=name, input_type="." + cols[2],
                                        output_type="." + cols[3],
                                        server_streaming=cols[4] == "server_streaming")
        else:
            raise ValueError(f"{facts.path}: unknown kind of fact {kind!r}")
    return file
