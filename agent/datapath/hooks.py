"""Which hook the datapath's programs go on: TCX links or tc clsact filters.

    tcx   pinned TCX links (tcx.py), kernel 6.6+: no qdisc, cheaper per packet;
    tc    clsact qdisc + direct-action bpf filters (attach.py), any kernel;
    auto  TCX where the kernel has it, else tc (decided at the first attach, then kept).

Attaching in one mode removes what the other mode of ours left on that interface (an
agent restarted with another mode, or an upgrade from a clsact-only build): the new
hook is in place first, then the old one goes, so no packet passes unjudged. Only our
own filters (named membrane:*) and our own pinned links are ever removed.
"""

from __future__ import annotations

import logging

from agent.datapath import attach as tc
from agent.datapath import tcx
from core.errors import DatapathError

log = logging.getLogger(__name__)

MODES = ("auto", "tcx", "tc")


class Hooks:
    def __init__(self, mode: str, pin_dir: str, netns: str | None) -> None:
        if mode not in MODES:
            raise DatapathError(f"attach mode {mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode
        self.pin_dir = pin_dir
        self.netns = netns

    def attach(self, ifname: str, ifindex: int, prog_fds: dict[str, int]) -> str:
        """Both programs on the interface; returns the mode used ("tcx" or "tc")."""
        if self.mode in ("auto", "tcx"):
            try:
                tcx.attach(self.pin_dir, ifindex, prog_fds, self.netns)
            except tcx.TcxUnsupported as e:
                if self.mode == "tcx":
                    raise DatapathError(f"attach {ifname}: {e} (kernel 6.6+ has TCX; "
                                        "--attach-mode tc works on any)") from e
                log.info("no TCX on this kernel (%s): attaching with tc clsact", e)
                self.mode = "tc"
            else:
                self.mode = "tcx"
                tc.detach(ifname, self.netns)        # a clsact leftover of ours, if any
                return "tcx"
        tc.attach(ifname, prog_fds, self.netns)
        tcx.detach(self.pin_dir, ifindex)            # a TCX leftover of ours, if any
        return "tc"

    def detach(self, ifname: str, ifindex: int) -> bool:
        """Our programs off the interface, whichever way they were attached."""
        removed = tcx.detach(self.pin_dir, ifindex)
        removed |= tc.detach(ifname or None, netns=self.netns,
                             ifindex=None if ifname else ifindex)
        return removed

    def attached(self, ifname: str, ifindex: int) -> dict[str, str]:
        """hook -> our program name, from either mode (TCX first)."""
        return tcx.attached(self.pin_dir, ifindex) or tc.attached(ifname, self.netns)
