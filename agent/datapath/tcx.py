"""Attaching the datapath's programs with TCX links (kernel 6.6+), pinned per endpoint.

A TCX link puts a program on a device's ingress or egress without a qdisc: the kernel's
own multi-program hook in front of tc's clsact filters, cheaper per packet (no qdisc
classification, no filter chain walk). A link lives as long as something holds it; we
pin each one in the node's bpffs directory so it outlives the agent process (the
pinned-endpoint restart contract, as the pinned maps):

    <pin_dir>/links/<ifindex>-ingress   from_container   packets leaving the pod
    <pin_dir>/links/<ifindex>-egress    to_container     packets entering the pod

attach() on an interface whose link is pinned swaps the link's program (BPF_LINK_UPDATE:
atomic, no packet without a program), so a restarted agent re-attaching its pinned
endpoints takes over as tc "replace" does. A pin whose link is defunct (its device was
deleted; the index may since name another device) is dropped and a new link made.
detach() detaches and unpins only links at our own pin paths: we never query or touch
another program on the hook, and programs other tools attached run before or after
ours as the kernel orders them (ours are appended at attach time).

Creating a link resolves the ifindex in the calling thread's network namespace; when
`netns` names another one the syscall runs on a short-lived thread that entered it
(setns is per thread). Everything else works on fds and bpffs paths.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Callable, TypeVar

from agent.datapath import bpfsys
from core.errors import DatapathError

LINK_DIR = "links"
PREFIX = "membrane:"
# (program, attach type, hook name as attach.attached() reports it)
HOOKS = (("from_container", bpfsys.BPF_TCX_INGRESS, "ingress"),
         ("to_container", bpfsys.BPF_TCX_EGRESS, "egress"))
# What a kernel without TCX answers BPF_LINK_CREATE with an unknown attach type.
UNSUPPORTED = (errno.EINVAL, errno.EOPNOTSUPP, 524)   # 524: the kernel's ENOTSUPP

T = TypeVar("T")


class TcxUnsupported(DatapathError):
    """The kernel has no TCX (before 6.6): the caller falls back to clsact."""


def link_path(pin_dir: str, ifindex: int, hook: str) -> str:
    return os.path.join(pin_dir, LINK_DIR, f"{ifindex}-{hook}")


def _in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    if not netns:
        return fn()
    path = os.path.join("/run/netns", netns)
    out: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            err.append(DatapathError(f"network namespace {netns} not found"))
            return
        try:
            bpfsys.setns_net(fd)
            out.append(fn())
        except BaseException as e:  # handed to the caller's thread
            err.append(e)
        finally:
            os.close(fd)

    t = threading.Thread(target=run, name=f"tcx-{netns}")
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


def _live_link(path: str, ifindex: int) -> int | None:
    """An fd of the link pinned at path if it is still attached to ifindex, else None
    (the stale pin removed)."""
    try:
        fd = bpfsys.obj_get(path)
    except FileNotFoundError:
        return None
    try:
        if bpfsys.link_info(fd).ifindex == ifindex:
            return fd
    except OSError:
        pass
    os.close(fd)
    os.unlink(path)
    return None


def attach(pin_dir: str, ifindex: int, prog_fds: dict[str, int],
           netns: str | None = None) -> None:
    """Both programs on ifindex through pinned TCX links (created, or their program
    swapped). Raises TcxUnsupported when the kernel has no TCX, DatapathError else."""
    os.makedirs(os.path.join(pin_dir, LINK_DIR), exist_ok=True)
    for prog, attach_type, hook in HOOKS:
        path = link_path(pin_dir, ifindex, hook)
        fd = _live_link(path, ifindex)
        try:
            if fd is not None:
                bpfsys.link_update(fd, prog_fds[prog])
                continue
            fd = _in_netns(netns, lambda: bpfsys.link_create_tcx(
                prog_fds[prog], ifindex, attach_type))
            # Pinned before our fd closes: the link is never left without a holder.
            bpfsys.obj_pin(fd, path)
        except OSError as e:
            if e.errno in UNSUPPORTED and fd is None:
                raise TcxUnsupported(f"TCX link on ifindex {ifindex}: {e.strerror}") from e
            raise DatapathError(f"TCX {hook} link on ifindex {ifindex}: {e.strerror}") from e
        finally:
            if fd is not None:
                os.close(fd)


def detach(pin_dir: str, ifindex: int) -> bool:
    """Detaches and unpins our links on ifindex; returns whether one was there."""
    removed = False
    for _, _, hook in HOOKS:
        path = link_path(pin_dir, ifindex, hook)
        try:
            fd = bpfsys.obj_get(path)
        except FileNotFoundError:
            continue
        try:
            bpfsys.link_detach(fd)
        except OSError as e:
            if e.errno not in (errno.ENOLINK, errno.EINVAL, errno.ENOENT):
                raise DatapathError(f"detach TCX {hook} link on ifindex {ifindex}: "
                                    f"{e.strerror}") from e
        finally:
            os.close(fd)
        os.unlink(path)
        removed = True
    return removed


def attached(pin_dir: str, ifindex: int) -> dict[str, str]:
    """hook ("ingress"/"egress") -> "membrane:<program>", for our live links on ifindex."""
    out: dict[str, str] = {}
    for prog, _, hook in HOOKS:
        path = link_path(pin_dir, ifindex, hook)
        try:
            fd = bpfsys.obj_get(path)
        except FileNotFoundError:
            continue
        try:
            if bpfsys.link_info(fd).ifindex == ifindex:
                out[hook] = PREFIX + prog
        finally:
            os.close(fd)
    return out
