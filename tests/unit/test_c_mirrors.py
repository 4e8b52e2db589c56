"""Every fact Python copies from the C datapath is checked against the C, by parsing bpf/.

C is the source (bpf/bpf_lxc.c, bpf/lib/*.h). Each `#define` there is either MIRRORED
(the Python value that copies it is named below and compared) or C_ONLY (with the reason
Python has no copy); a new `#define` that is neither fails
`test_every_c_define_is_mirrored_or_known_to_be_c_only`, so a constant cannot be copied
into Python without a mirror check. The same holds for structs (layout.STRUCTS, sizes and
offsets computed from the C declaration with natural alignment: what clang does for
these padding-free structs; tests/unit/test_datapath_layout.py also compares them with
what bcc compiled, as root) and for maps (names, key and value types).
"""

from __future__ import annotations

import ctypes
import re
import socket
from pathlib import Path
import pytest

from core import protocols
from core.protocols import IPProtocol
from agent.datapath import bpf, compiler, layout
from agent.k8s.objects import Protocol
from agent.policy import mapstate
from identity.reserved import ReservedIdentity
from observe import events, flow
from observe.reasons import DropReason
from tests.unit.test_reasons_mirror import drop_defines

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
C_FILES = sorted([BPF_DIR / "bpf_lxc.c", *(BPF_DIR / "lib").glob("*.h")])

_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)(?:[ \t]+(.*?))?\s*(?:/\*.*)?$")
_STRUCT = re.compile(r"^struct\s+(\w+)\s*\{(.*?)^\};", re.S | re.M)
# A field: a fixed-width integer (or an array of them), or a nested struct (only in
# structs that stay on the program's stack, C_ONLY_STRUCTS: never mirrored).
_FIELD = re.compile(
    r"^\s*(__(?:u|be|s)(?:8|16|32|64)|struct\s+\w+)\s+(\w+)(?:\[(\d+)\])?\s*;", re.M)
_TABLE = re.compile(r'BPF_TABLE_PINNED\(\s*"(\w+)"\s*,\s*([\w ]+?)\s*,\s*([\w ]+?)\s*,\s*(\w+)\s*,')
_RING = re.compile(r"BPF_(?:RINGBUF|PERF)_OUTPUT\(\s*(\w+)")


def _c_text(path: Path) -> str:
    # Comments out (block and line), so a commented-out #define or struct is not seen.
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), path.read_text(),
                  flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def c_defines() -> dict[str, str]:
    """name -> value text of every #define with a value (include guards have none)."""
    found: dict[str, str] = {}
    for path in C_FILES:
        for line in _c_text(path).splitlines():
            match = _DEFINE.match(line)
            if match and match.group(2):
                found.setdefault(match.group(1), match.group(2).strip())
    return found


def c_int(text: str) -> int:
    return int(re.sub(r"[uUlL]+$", "", text), 0)


def c_structs() -> dict[str, list[tuple[str, str, int]]]:
    """struct name -> [(C type, field, array length or 0)]."""
    found = {}
    for path in C_FILES:
        for name, body in _STRUCT.findall(_c_text(path)):
            fields = [(t, f, int(n) if n else 0) for t, f, n in _FIELD.findall(body)]
            declared = [line for line in body.split(";") if line.strip()]
            assert len(fields) == len(declared), f"struct {name}: a field type the test " \
                                                 "does not know; extend _FIELD"
            found[name] = fields
    return found


def c_maps() -> dict[str, tuple[str, str]]:
    """pinned map name -> (key type, value type) as declared."""
    maps: dict[str, tuple[str, str]] = {}
    for path in C_FILES:
        for _, key, value, name in _TABLE.findall(_c_text(path)):
            maps[name] = (key, value)
    return maps


# --- #define: C name -> the Python value that copies it ---------------------------------------

_DEFAULTS = compiler.CompileOptions(pin_dir="")

MIRRORED: dict[str, int] = {
    # common.h: map sizes and ring pages, the compiler's defaults (it passes -D for each)
    "MEMBRANE_IPCACHE_MAX": _DEFAULTS.max_ipcache,
    "MEMBRANE_CIDR_MAX": _DEFAULTS.max_cidr,
    "MEMBRANE_ENDPOINTS_MAX": _DEFAULTS.max_endpoints,
    "MEMBRANE_POLICY_MAX": _DEFAULTS.max_policy,
    "MEMBRANE_CT_MAX": _DEFAULTS.max_conntrack,
    "MEMBRANE_CT_UNREPLIED_MAX": _DEFAULTS.max_conntrack_unreplied,
    "MEMBRANE_RING_PAGES": _DEFAULTS.ring_pages,
    # common.h: identities, directions, match types, protocols
    "IDENTITY_UNKNOWN": mapstate.ANY_IDENTITY,
    "IDENTITY_HOST": ReservedIdentity.HOST,
    "IDENTITY_WORLD": ReservedIdentity.WORLD,
    "DIR_INGRESS": protocols.Direction.INGRESS,
    "DIR_EGRESS": protocols.Direction.EGRESS,
    **{f"MATCH_{m.name}": m for m in mapstate.MatchType},
    "MEMBRANE_IPPROTO_SCTP": IPProtocol.SCTP,
    # common.h: TCP flag bits, as observe.flow names them
    **{f"TCP_FLAG_{name}": bit for name, bit in flow._TCP_FLAG_BITS
       if name in ("FIN", "SYN", "RST", "ACK")},
    # conntrack.h: entry states, as `membrane bpf ct list` names them
    **{f"CT_STATE_{n.upper().replace('-', '_')}": v for v, n in layout.CT_STATE_NAMES.items()},
    "CT_F_INGRESS_FIRST": layout.CT_F_INGRESS_FIRST,
    # fastpath.h: the full programs' slots
    "TAIL_FROM_CONTAINER": layout.TAIL_FROM_CONTAINER,
    "TAIL_TO_CONTAINER": layout.TAIL_TO_CONTAINER,
    "TAIL_CALL_SLOTS": len(layout.TAIL_CALLS),
    # drop.h by the Hubble name in each define's comment (observe/reasons.py;
    # test_reasons_mirror.py compares the names and descriptions too)
    **{c_name: DropReason[hubble] for c_name, hubble in drop_defines().items()},
    # endpoints.h, policy.h
    "EP_F_INGRESS_ENFORCED": layout.EP_F_INGRESS_ENFORCED,
    "EP_F_EGRESS_ENFORCED": layout.EP_F_EGRESS_ENFORCED,
    "MEMBRANE_ENDPOINT_IDS": layout.ENDPOINT_IDS,
    "EP_F_INGRESS_TIERED": layout.EP_F_INGRESS_TIERED,
    "EP_F_EGRESS_TIERED": layout.EP_F_EGRESS_TIERED,
    "EP_F_INGRESS_DEFAULT_DENY": layout.EP_F_INGRESS_DEFAULT_DENY,
    "EP_F_EGRESS_DEFAULT_DENY": layout.EP_F_EGRESS_DEFAULT_DENY,
    "EP_F_AUDIT": layout.EP_F_AUDIT,
    # policy.h: a tier rule's flags byte (mapstate.TierEntry.flags), the decision's results
    **{f"TIER_{a.name}": a for a in mapstate.TierAction},
    "TIER_ACTION_MASK": mapstate.TIER_ACTION_MASK,
    "TIER_AUDIT": mapstate.TIER_AUDIT,
    "TIER_MATCH_SHIFT": mapstate.TIER_MATCH_SHIFT,
    "POLICY_DENIED": layout.POLICY_DENIED,
    "POLICY_ALLOWED": layout.POLICY_ALLOWED,
    "POLICY_AUDITED": layout.POLICY_AUDITED,
    "POLICY_PREFIX_ANY_PROTO": layout.POLICY_PREFIX_ANY_PROTO,
    "POLICY_PREFIX_ANY_PORT": layout.POLICY_PREFIX_ANY_PORT,
    "POLICY_PREFIX_FULL": layout.POLICY_PREFIX_FULL,
    # ipv6.h: the longest extension header chain walked (the datapath tests build one)
    "IPV6_EXT_MAX": layout.IPV6_EXT_MAX,
    # events.h
    "EVENT_POLICY_VERDICT": events.EventType.POLICY_VERDICT,
    "EVENT_DROP": events.EventType.DROP,
}

C_ONLY: dict[str, str] = {
    "MEMBRANE_PIN_DIR": "a default for compiling the C alone; the compiler always passes it",
    "CT_NSEC_PER_SEC": "arithmetic inside conntrack.h",
    "CT_REFRESH_INTERVAL_NS": "arithmetic inside conntrack.h",
    "CT_NEW": "ct_lookup() results, never leave the program",
    "CT_ESTABLISHED": "ct_lookup() results, never leave the program",
    "CT_REPLY": "ct_lookup() results, never leave the program",
    "CT_RELATED": "ct_lookup() results, never leave the program",
    "CT_UNTRACKED": "ct_lookup() results, never leave the program",
    "CT_F_SEEN_REPLY": "ct_entry.flags bit; Python does not read it",
    "DROP_REASON_MAX": "size of drop_metrics; test_reason_codes_fit_the_counter_array below",
    "PARSE_OK": "parser results inside the programs (parse.h)",
    "PARSE_SLOW": "parser results inside the programs (parse.h)",
    **{f"EXTHDR_{name}": "IPv6 next-header values the extension header walk steps over"
       for name in ("HOP", "ROUTING", "FRAGMENT", "AUTH", "DEST")},
    "ICMP6_ND_FIRST": "ICMPv6 types that pass as link-local control (ipv6.h)",
    "ICMP6_ND_LAST": "ICMPv6 types that pass as link-local control (ipv6.h)",
    "ICMP6_ND_HOP_LIMIT": "the hop limit RFC 4861 requires of neighbour discovery",
    "ICMP6_MLD_HOP_LIMIT": "the hop limit RFC 2710/3810 require of MLD",
}

# Timeouts Python does not copy but overrides by name (CompileOptions.ct_timeouts).
CT_TIMEOUT = "CT_TIMEOUT_"

C_ONLY_STRUCTS = {"flow4": "the parsed 5-tuple, on the program's stack only",
                  "flow6": "the parsed 5-tuple, on the program's stack only",
                  "flow_l4": "the L4 part of flow4 and flow6, on the stack only"}


def test_every_c_define_is_mirrored_or_known_to_be_c_only() -> None:
    defines = {name for name in c_defines() if not name.startswith(CT_TIMEOUT)}
    unknown = defines - set(MIRRORED) - set(C_ONLY)
    assert not unknown, (f"#define {sorted(unknown)} in bpf/: mirror it in MIRRORED (and "
                         "the Python that copies it) or list it in C_ONLY with the reason")
    assert not set(MIRRORED) & set(C_ONLY)


def test_every_mirror_names_a_define_that_exists() -> None:
    defines = c_defines()
    assert sorted(set(MIRRORED) - set(defines)) == []
    assert sorted(set(C_ONLY) - set(defines)) == []


@pytest.mark.parametrize("name", sorted(MIRRORED))
def test_the_python_copy_has_the_c_value(name: str) -> None:
    assert MIRRORED[name] == c_int(c_defines()[name]), name


def test_every_python_mirror_of_a_family_is_in_the_c() -> None:
    """The families mirrored by enumeration, the other way round: a Python member the C
    lacks is a value the datapath never produces."""
    defines = c_defines()
    assert {f"MATCH_{m.name}" for m in mapstate.MatchType} <= set(defines)
    assert {DropReason[hubble] for hubble in drop_defines().values()} == set(DropReason)
    assert set(drop_defines()) <= set(defines)
    assert {f"DIR_{d.name}" for d in protocols.Direction} <= set(defines)
    c_events = {n for n in defines if n.startswith("EVENT_")}
    # TRACE is reserved in observe.events (not emitted by this datapath).
    assert {f"EVENT_{t.name}" for t in events.EventType} - c_events == {"EVENT_TRACE"}


def test_the_ct_timeouts_python_overrides_are_the_c_ones() -> None:
    c_names = {n[len(CT_TIMEOUT):] for n in c_defines() if n.startswith(CT_TIMEOUT)}
    assert set(compiler.CT_TIMEOUT_NAMES.values()) == c_names


def test_the_agent_and_observe_directions_are_the_datapath_ones() -> None:
    # One enum: events and map state take core's Direction itself, not a copy.
    assert events.DatapathEvent.__annotations__["direction"] in ("Direction", protocols.Direction)
    assert mapstate.Direction is protocols.Direction


def test_reason_codes_fit_the_counter_array() -> None:
    assert max(DropReason) < c_int(c_defines()["DROP_REASON_MAX"])


# --- protocols -------------------------------------------------------------------------------------

def _kernel_ipproto() -> dict[str, int]:
    """IPPROTO_* of the kernel's uapi headers (linux/in.h, linux/in6.h: enums), and the
    C library's for any they lack."""
    found = {name[len("IPPROTO_"):]: int(getattr(socket, name))
             for name in dir(socket) if name.startswith("IPPROTO_")}
    for header in (Path("/usr/include/linux/in.h"), Path("/usr/include/linux/in6.h")):
        if header.exists():
            found.update((name, int(value)) for name, value in re.findall(
                r"^\s*IPPROTO_(\w+)\s*=\s*(\d+)", header.read_text(), re.M))
    return found


def test_every_protocol_the_c_names_is_in_core_protocols_with_the_kernels_number() -> None:
    used = set()
    for path in C_FILES:
        used |= set(re.findall(r"\bIPPROTO_(\w+)", _c_text(path)))
    kernel = _kernel_ipproto()
    for name in used:
        assert IPProtocol[name] == kernel[name], name


def test_core_protocol_numbers_are_the_kernels() -> None:
    kernel = _kernel_ipproto()
    for member in IPProtocol:
        assert member == kernel[member.name], member


def test_protocol_names_and_numbers_agree() -> None:
    assert set(protocols.PROTOCOL_NAMES) == {protocols.ANY_PROTOCOL, *IPProtocol}
    for number, name in protocols.PROTOCOL_NAMES.items():
        assert protocols.protocol_name(number) == name
        if number != protocols.ANY_PROTOCOL:
            assert protocols.protocol_number(name.lower()) == number
    assert protocols.protocol_name(250) == "250"
    with pytest.raises(ValueError, match="TCP"):
        protocols.protocol_number("GRE")


def test_kubernetes_port_protocols_are_core_protocols() -> None:
    assert tuple(p.value for p in Protocol) == protocols.PORT_PROTOCOLS
    assert {p.value: p.number for p in Protocol} == \
           {name: int(IPProtocol[name]) for name in protocols.PORT_PROTOCOLS}


# --- structs ---------------------------------------------------------------------------------------

_C_SIZES = {"8": 1, "16": 2, "32": 4, "64": 8}


def c_layout(fields: list[tuple[str, str, int]]) -> tuple[list[tuple[str, int, int]], int]:
    """[(field, offset, size)], total size, by natural alignment."""
    offset, out, align = 0, [], 1
    for ctype, name, count in fields:
        unit = _C_SIZES[re.sub(r"\D", "", ctype)]
        offset = (offset + unit - 1) // unit * unit
        size = unit * (count or 1)
        out.append((name, offset, size))
        offset += size
        align = max(align, unit)
    return out, (offset + align - 1) // align * align


def test_every_c_struct_has_a_mirror_or_is_known_to_be_c_only() -> None:
    structs = set(c_structs())
    assert structs - set(C_ONLY_STRUCTS) == set(layout.STRUCTS)


@pytest.mark.parametrize("name", sorted(layout.STRUCTS))
def test_the_ctypes_mirror_has_the_c_fields_offsets_and_size(name: str) -> None:
    cls = layout.STRUCTS[name]
    expected, size = c_layout(c_structs()[name])
    mirrored = [(f, getattr(cls, f).offset, getattr(cls, f).size) for f, *_ in cls._fields_]
    assert mirrored == expected
    assert ctypes.sizeof(cls) == size


# --- maps ------------------------------------------------------------------------------------------

def _mirror_of(c_type: str) -> str | None:
    return None if c_type == "__u32" else c_type.removeprefix("struct ").strip()


def test_the_agent_pins_exactly_the_maps_the_c_declares() -> None:
    assert set(bpf.PINNED_MAPS) == set(c_maps())


def test_the_ring_buffer_is_the_map_the_reader_opens() -> None:
    rings = {name for path in C_FILES for name in _RING.findall(_c_text(path))}
    assert rings == {"events"}


@pytest.mark.parametrize("name", sorted(c_maps()))
def test_each_map_with_a_struct_has_a_layout_entry_of_those_structs(name: str) -> None:
    key, value = c_maps()[name]
    if "struct" not in key and "struct" not in value:
        assert name not in layout.MAPS or layout.MAPS[name] == (None, None)
        return
    key_cls, value_cls = layout.MAPS[name]
    assert (None if key_cls is None else key_cls.__name__) == _mirror_of(key)
    assert (None if value_cls is None else value_cls.__name__) == _mirror_of(value)
