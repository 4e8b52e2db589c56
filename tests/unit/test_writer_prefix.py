"""ipcache/cidr writes against a shadow: the kernel map is read once, then only the
difference between the desired state and what was written goes to the kernel.

Pure (no root): the writer talks to a dict-backed map with the MapIO interface (the
style of tests/datapath/test_writer_unit.py), which counts full reads and can be told
to fail writes."""

from __future__ import annotations

import errno
import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.datapath import layout
from agent.datapath.writer import PrefixWriter, parse_prefix, read_prefix_map
from core.errors import DatapathError, MapFullError


class FakeLpmMap:
    def __init__(self, name: str = "ipcache", max_entries: int = 1000) -> None:
        self.name = name
        self.max_entries = max_entries
        self.data: dict[bytes, tuple[Any, Any]] = {}
        self.log: list[tuple[str, str]] = []      # (op, "a.b.c.d/n")
        self.reads = 0
        self.fail_on: dict[str, int] = {}         # prefix -> errno of its next update

    def update(self, key: Any, value: Any) -> None:
        k = bytes(key)
        prefix = layout.key_prefix(key)
        err = self.fail_on.pop(prefix, None)
        if err is not None:
            raise OSError(err, "injected")
        if k not in self.data and len(self.data) >= self.max_entries:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data[k] = (type(key).from_buffer_copy(k), type(value).from_buffer_copy(bytes(value)))
        self.log.append(("update", prefix))

    def delete(self, key: Any) -> bool:
        self.log.append(("delete", layout.key_prefix(key)))
        return self.data.pop(bytes(key), None) is not None

    def items(self) -> list[tuple[Any, Any]]:
        self.reads += 1
        return list(self.data.values())

    def contents(self) -> dict[str, int]:
        return {layout.key_prefix(k): int(v.identity) for k, v in self.data.values()}


def pods(n: int, first_identity: int = 256) -> dict[str, int]:
    out = {f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32": first_identity + i % 50
           for i in range(n)}
    out["0.0.0.0/0"] = 2
    return out


def test_the_kernel_is_read_once_and_an_unchanged_sync_writes_nothing() -> None:
    m = FakeLpmMap(max_entries=5000)
    w = PrefixWriter(m)
    want = pods(2000)
    assert w.sync(want).added == 2001
    assert m.reads == 1
    m.log.clear()
    for _ in range(3):
        assert w.sync(dict(want)).writes == 0
    assert m.log == [] and m.reads == 1 and w.kernel_reads == 1


def test_a_label_change_writes_only_the_changed_entry() -> None:
    m = FakeLpmMap(max_entries=5000)
    w = PrefixWriter(m)
    want = pods(2000)
    w.sync(want)
    m.log.clear()
    relabelled = dict(want, **{"10.0.0.7/32": 999})
    res = w.sync(relabelled)
    assert (res.added, res.changed, res.deleted) == (0, 1, 0)
    assert m.log == [("update", "10.0.0.7/32")]
    assert m.contents() == relabelled and m.reads == 1


def test_deletes_go_first_then_adds_and_changes() -> None:
    m = FakeLpmMap()
    w = PrefixWriter(m)
    w.sync({"10.0.0.1/32": 300, "10.0.0.2/32": 301, "0.0.0.0/0": 2})
    m.log.clear()
    res = w.sync({"10.0.0.1/32": 305, "10.0.0.3/32": 302, "0.0.0.0/0": 2})
    assert (res.added, res.changed, res.deleted) == (1, 1, 1)
    assert m.log == [("delete", "10.0.0.2/32"), ("update", "10.0.0.1/32"),
                     ("update", "10.0.0.3/32")]
    assert m.contents() == {"10.0.0.1/32": 305, "10.0.0.3/32": 302, "0.0.0.0/0": 2}


def test_prefixes_not_in_normal_form_are_normalised_and_not_rewritten() -> None:
    m = FakeLpmMap("cidr")
    w = PrefixWriter(m)
    want = {"10.0.0.2": 302, "10.1.2.9/24": 1 << 24, "0.0.0.0/0": 2}
    assert w.sync(want).added == 3
    assert m.contents() == {"10.0.0.2/32": 302, "10.1.2.0/24": 1 << 24, "0.0.0.0/0": 2}
    m.log.clear()
    assert w.sync(want).writes == 0
    # The same prefixes, now spelled normally: nothing to write either.
    assert w.sync({"10.0.0.2/32": 302, "10.1.2.0/24": 1 << 24, "0.0.0.0/0": 2}).writes == 0
    assert m.log == []


def test_a_restarted_agent_diffs_against_the_pinned_map() -> None:
    m = FakeLpmMap()
    PrefixWriter(m).sync({"10.0.0.1/32": 300, "10.0.0.2/32": 301})
    m.log.clear()
    m.reads = 0
    w = PrefixWriter(m)    # a new process: its shadow starts from one kernel read
    res = w.sync({"10.0.0.1/32": 300, "10.0.0.3/32": 303})
    assert (res.added, res.changed, res.deleted) == (1, 0, 1)
    assert m.log == [("delete", "10.0.0.2/32"), ("update", "10.0.0.3/32")]
    assert m.reads == 1


def test_a_failed_write_raises_and_the_next_sync_resyncs_from_the_kernel() -> None:
    m = FakeLpmMap()
    w = PrefixWriter(m)
    w.sync({"10.0.0.1/32": 300})
    m.fail_on["10.0.0.3/32"] = errno.EIO
    want = {"10.0.0.1/32": 300, "10.0.0.2/32": 302, "10.0.0.3/32": 303, "10.0.0.4/32": 304}
    with pytest.raises(DatapathError, match=r"writing map 'ipcache' 10\.0\.0\.3/32"):
        w.sync(want)
    assert m.contents() == {"10.0.0.1/32": 300, "10.0.0.2/32": 302}   # stopped there
    # Someone else also touches the map meanwhile: the re-read sees it.
    m.update(layout.prefix_key("10.9.9.9/32"), layout.remote_identity(identity=7))
    m.log.clear()
    reads = m.reads
    res = w.sync(want)
    assert m.reads == reads + 1, "the shadow was re-read from the kernel"
    assert (res.added, res.changed, res.deleted) == (2, 0, 1)
    assert m.log == [("delete", "10.9.9.9/32"), ("update", "10.0.0.3/32"),
                     ("update", "10.0.0.4/32")]
    assert m.contents() == want
    m.log.clear()
    assert w.sync(want).writes == 0 and m.reads == reads + 1


def test_a_full_map_raises_map_full_and_recovers_once_there_is_room() -> None:
    m = FakeLpmMap(max_entries=2)
    w = PrefixWriter(m)
    want = {"10.0.0.1/32": 300, "10.0.0.2/32": 301, "10.0.0.3/32": 302}
    with pytest.raises(MapFullError, match=r"'ipcache' is full \(max_entries 2\): 1 of 3 "
                                           r"entries not written \(first: 10\.0\.0\.3/32 -> "
                                           r"302\)"):
        w.sync(want)
    m.max_entries = 10
    assert w.sync(want).added == 1
    assert m.contents() == want


def test_a_full_map_still_takes_every_change_and_delete_after_a_refused_add() -> None:
    # An address moving to another identity must land even when a new one cannot: the
    # old identity would otherwise keep passing another pod's policies.
    m = FakeLpmMap(max_entries=2)
    w = PrefixWriter(m)
    w.sync({"10.0.0.1/32": 300, "10.0.0.9/32": 309})
    with pytest.raises(MapFullError, match="1 of 3 entries not written"):
        w.sync({"10.0.0.1/32": 300, "10.0.0.5/32": 305, "10.0.0.9/32": 400})
    assert m.contents() == {"10.0.0.1/32": 300, "10.0.0.9/32": 400}
    with pytest.raises(MapFullError):
        w.sync({"10.0.0.5/32": 305, "10.0.0.6/32": 306, "10.0.0.7/32": 307})
    assert m.contents() == {"10.0.0.5/32": 305, "10.0.0.6/32": 306}   # deletes came first


def test_an_entry_deleted_behind_our_back_triggers_a_re_read() -> None:
    m = FakeLpmMap()
    w = PrefixWriter(m)
    w.sync({"10.0.0.1/32": 300, "10.0.0.2/32": 301})
    m.delete(layout.prefix_key("10.0.0.1/32"))          # not through the writer
    assert w.sync({"10.0.0.2/32": 301}).deleted == 1     # already gone: noticed
    reads = m.reads
    assert w.sync({"10.0.0.2/32": 301, "10.0.0.5/32": 305}).added == 1
    assert m.reads == reads + 1


def test_read_prefix_map_and_the_writer_agree() -> None:
    m = FakeLpmMap()
    w = PrefixWriter(m)
    w.sync({"10.0.0.1/32": 300, "192.168.0.0/16": 5})
    assert read_prefix_map(m) == w.kernel() == {"10.0.0.1/32": 300, "192.168.0.0/16": 5}


@given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.booleans())
def test_parse_prefix_agrees_with_ipaddress(addr: int, plen: int, bare: bool) -> None:
    ip = str(ipaddress.IPv4Address(addr))
    text = ip if bare else f"{ip}/{plen}"
    net = ipaddress.IPv4Network(text, strict=False)
    assert parse_prefix(text) == (str(net), net.prefixlen,
                                  layout.ip_to_be32(str(net.network_address)))
    key = layout.prefix_key(text)
    _, got_len, got_addr = parse_prefix(text)
    assert (got_len, got_addr) == (key.prefixlen, key.addr)


@pytest.mark.parametrize("bad", ["10.0.0.1/33", "256.0.0.0/8", "010.0.0.1/8", "10.1/8",
                                 "10.0.0.0/-1", "fe80::/64", "", "10.0.0.0/8/8"])
def test_parse_prefix_refuses_what_ipaddress_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_prefix(bad)
