"""Attaching the datapath's tc programs to a pod's host-side veth (pyroute2).

The agent runs inside its node's network namespace (nsenter --net, like a hostNetwork
DaemonSet pod), so interfaces are found by name in the *current* namespace; tests pass
`netns` to work on a namespace by name from outside (an existing one: a namespace that
is gone is never re-created, and detaching from it finds nothing to remove).

We own: a clsact qdisc (added unless one exists: "add", EEXIST is fine; never a dump of
the namespace's qdiscs) and one bpf filter per hook, at
priority FILTER_PRIO, handle FILTER_HANDLE, named `membrane:<program>`:

  clsact ingress (parent ffff:fff2)  from_container   packets leaving the pod
  clsact egress  (parent ffff:fff3)  to_container     packets entering the pod

Attaching uses "replace", so re-attaching a newly compiled program (agent restart)
swaps it atomically: no packet sees the interface without a program. Detaching deletes
only filters carrying our name, and the clsact qdisc only when no filter is left on it.
"""

from __future__ import annotations

import errno
import logging
from contextlib import contextmanager
from typing import Any, Iterator

from agent.datapath.diagnose import explain_tc
from core.errors import DatapathError

log = logging.getLogger(__name__)

PARENT_INGRESS = 0xFFFFFFF2   # clsact ingress: from the pod
PARENT_EGRESS = 0xFFFFFFF3    # clsact egress: to the pod
FILTER_PRIO = 1
FILTER_HANDLE = 1
NAME_PREFIX = "membrane:"

HOOKS = (("from_container", PARENT_INGRESS), ("to_container", PARENT_EGRESS))


class NamespaceNotFound(DatapathError):
    """The named network namespace does not exist (never created on our behalf)."""


@contextmanager
def _netlink(netns: str | None) -> Iterator[Any]:
    from pyroute2 import IPRoute, NetNS  # late: only processes that attach need pyroute2

    if netns:
        # flags=0: open an existing namespace only. pyroute2's default (O_CREAT) would
        # create an empty one of that name, e.g. when detaching from a namespace that
        # is already gone, and leave it behind.
        try:
            ipr = NetNS(netns, flags=0)
        except FileNotFoundError as e:
            raise NamespaceNotFound(f"network namespace {netns} not found") from e
    else:
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def ifname_of(ifindex: int, netns: str | None = None) -> str:
    """The name of interface ifindex, or "" when there is none (or no namespace)."""
    try:
        with _netlink(netns) as ipr:
            links = ipr.get_links(ifindex)
            return str(links[0].get_attr("IFLA_IFNAME")) if links else ""
    except Exception:  # pyroute2's NetlinkError (ENODEV), NamespaceNotFound
        return ""


def ifindex_of(ifname: str, netns: str | None = None) -> int:
    with _netlink(netns) as ipr:
        found = ipr.link_lookup(ifname=ifname)
    if not found:
        where = f" in netns {netns}" if netns else ""
        raise DatapathError(f"interface {ifname}{where} not found: is the pod's veth up?")
    return int(found[0])


def _filter_name(f: Any) -> str | None:
    opts = f.get_attr("TCA_OPTIONS")
    if opts is None:
        return None
    name = opts.get_attr("TCA_BPF_NAME")
    return str(name) if name is not None else None


def _ensure_clsact(ipr: Any, idx: int) -> None:
    """Adds the clsact qdisc to interface idx; one that is already there is fine.

    One netlink request, no dump: listing qdiscs (get_qdiscs) dumps every qdisc of the
    namespace and filters in Python, which made attaching N interfaces O(N^2)
    (docs/PERFORMANCE.md, "tc attach")."""
    try:
        ipr.tc("add", "clsact", idx)
    except Exception as e:  # pyroute2's NetlinkError
        if getattr(e, "code", None) != errno.EEXIST:
            raise DatapathError(explain_tc("the clsact qdisc", e)) from e


def attach(ifname: str, prog_fds: dict[str, int], netns: str | None = None) -> int:
    """Attaches from_container and to_container to `ifname`; returns its ifindex."""
    with _netlink(netns) as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise DatapathError(f"attach to {ifname}: no such interface"
                                + (f" in netns {netns}" if netns else ""))
        idx = int(found[0])
        try:
            _ensure_clsact(ipr, idx)
            for prog, parent in HOOKS:
                ipr.tc("replace-filter", "bpf", idx, handle=FILTER_HANDLE,
                       fd=prog_fds[prog], name=NAME_PREFIX + prog, parent=parent,
                       classid=1, direct_action=True, prio=FILTER_PRIO)
        except Exception as e:
            why = e if isinstance(e, DatapathError) else explain_tc("the bpf filter", e)
            raise DatapathError(f"attach tc programs to {ifname} (ifindex {idx}): {why}") from e
    log.debug("attached from_container/to_container to %s (ifindex %d)", ifname, idx)
    return idx


def attached(ifname: str, netns: str | None = None) -> dict[str, str]:
    """hook ("ingress"/"egress") -> our filter name, for the filters present."""
    out: dict[str, str] = {}
    try:
        with _netlink(netns) as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                return out
            for hook, parent in (("ingress", PARENT_INGRESS), ("egress", PARENT_EGRESS)):
                for f in ipr.get_filters(index=found[0], parent=parent):
                    name = _filter_name(f)
                    if name and name.startswith(NAME_PREFIX):
                        out[hook] = name
    except NamespaceNotFound:
        pass
    return out


def detach(ifname: str | None = None, netns: str | None = None,
           ifindex: int | None = None) -> bool:
    """Removes our filters (and clsact if it is then empty). A missing interface, or
    namespace, is not an error (the pod's veth is gone, and its filters with it).
    Returns whether anything was removed."""
    try:
        return _detach(ifname, netns, ifindex)
    except NamespaceNotFound:
        return False


def _detach(ifname: str | None, netns: str | None, ifindex: int | None) -> bool:
    removed = False
    with _netlink(netns) as ipr:
        if ifindex is None:
            found = ipr.link_lookup(ifname=ifname) if ifname else []
            if not found:
                return False
            ifindex = int(found[0])
        try:
            remaining = 0
            for _, parent in HOOKS:
                for f in ipr.get_filters(index=ifindex, parent=parent):
                    if f.get_attr("TCA_KIND") != "bpf" or f["handle"] == 0:
                        continue   # the per-priority chain head, not a filter
                    name = _filter_name(f)
                    if name and name.startswith(NAME_PREFIX):
                        ipr.tc("del-filter", "bpf", ifindex, handle=f["handle"],
                               parent=parent, prio=f["info"] >> 16)
                        removed = True
                    else:
                        remaining += 1
            if remaining == 0 and removed:
                ipr.tc("del", "clsact", ifindex)
        except Exception as e:  # pyroute2 raises NetlinkError
            code = getattr(e, "code", None)
            if code in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                return removed
            raise DatapathError(f"detach tc programs from {ifname or ifindex}: {e}") from e
    return removed
