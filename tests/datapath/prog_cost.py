"""What one packet costs inside the datapath programs, without a network: BPF_PROG_TEST_RUN.

    .venv/bin/python -m tests.datapath.prog_cost [--rules 10000] [--repeat 1000000]

The pod-to-pod benchmark (bench/datapath.py) measures the whole path on a shared VM,
where one-second iperf rounds swing by 2x; this measures only the programs, on one CPU,
as the kernel's own average over `repeat` runs of the same packet. It compiles the
datapath into a throwaway pin dir, writes the benchmark's rule set and ipcache
(bench/ruleset.py: 10,000 identities) and one endpoint, the "server", on ifindex 1 (the
test run's packets come from loopback; nothing is attached to any interface and no
traffic leaves the process), then times:

    ingress fwd  to_container, client -> server ACK of an established connection
                 (the enforced direction: policy applies)
    egress reply from_container, server -> client ACK (a reply of that connection)
    ingress decided  to_container, a GRE packet client -> server: an untracked protocol,
                 so every packet takes the slow path (ipcache, cidr and the three policy
                 lookups; with tiers, policy_decide over the Admin tier, NetworkPolicy and
                 the Baseline tier): what a new connection's first packet costs

The rule set is the benchmark's, tier entries included when the checkout has them
(bench.ruleset), plus one allow of every protocol from the client for the GRE packet.

each over IPv4 and over IPv6 (the server is dual-stack; `--family 4` or `6` for one):
the IPv6 rows are what the same packets cost through handle_ipv6 and the IPv6 maps.

What it cannot show: cache lines shared between CPUs (the conntrack and policy counter
writes of the old datapath bounced between the data and the ACK CPU), and the tc hook
itself. Run it with PYTHONPATH pointing at another checkout to compare builds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from dataclasses import replace

from tests.datapath.progrun import (IPPROTO_TCP, TCP_ACK, TCP_SYN, ipv4_frame, ipv6_frame,
                                    prog_test_run, tcp_frame, tcp_header)

CLIENT, SERVER = "10.77.0.1", "10.77.0.2"
CLIENT6, SERVER6 = "fd00:77::1", "fd00:77::2"
ADDRESSES = {4: (CLIENT, SERVER), 6: (CLIENT6, SERVER6)}
SPORT = 40000
GRE = 47   # an IP protocol conntrack does not track: policy decides every packet


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", type=int, default=10000)
    ap.add_argument("--identities", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per packet (median)")
    ap.add_argument("--family", choices=("4", "6", "both"), default="both")
    a = ap.parse_args()
    families = (4, 6) if a.family == "both" else (int(a.family),)

    from agent.datapath.bpf import BpfDatapath
    from agent.datapath.interface import EndpointSlot
    from agent.policy.mapstate import ANY_PROTOCOL, Direction, PolicyKey
    from bench.ruleset import (CLIENT_IDENTITY, SERVER_IDENTITY, IPERF_PORT, RuleSet,
                               dual_stack_maps)

    pin = f"/sys/fs/bpf/mbrt-{os.getpid()}-cost"
    dp = BpfDatapath("cost", pin, max_ipcache=max(16384, a.identities * 2), max_policy=65536,
                     max_endpoints=64)
    try:
        dp.start()
        rule_sets = [RuleSet.make(a.rules, a.identities, *ADDRESSES[f], family=f)
                     for f in (4, 6)]
        dp.sync_cluster_maps(dual_stack_maps(*rule_sets))
        slot = EndpointSlot(endpoint_id=10, ifname="lo", ifindex=1, ipv4=SERVER,
                            identity=SERVER_IDENTITY, ipv6=SERVER6)
        policy = rule_sets[0].server_policy()
        # The GRE packet needs an allow: every protocol from the client.
        policy = replace(policy, entries=policy.entries | {PolicyKey(
            Direction.INGRESS, CLIENT_IDENTITY, ANY_PROTOCOL)})
        dp.update_endpoint(slot, policy)   # map entries only: no tc attach
        to_c = dp._progs["to_container"].fd
        from_c = dp._progs["from_container"].fd
        tiers = len(getattr(policy, "tier_entries", ()))
        print(f"rules {a.rules}, identities {a.identities}, tier entries {tiers}, "
              f"{a.repeat:,} runs x {a.runs}")
        print("  programs: " + ", ".join(
            f"{name} {jit:,} B JITed ({insns:,} insns)" for name, (jit, insns)
            in ((n, _sizes(p.fd)) for n, p in sorted(dp._progs.items()))))
        for family in families:
            syn, synack, ack, ack_back, gre = connection(family)
            for prog, frame, what in ((to_c, syn, "SYN"), (from_c, synack, "SYN-ACK"),
                                      (to_c, ack, "ACK")):
                rc, _ = prog_test_run(prog, frame, 1)
                if rc != 0:
                    raise SystemExit(f"IPv{family} {what} was not passed (tc verdict {rc}): "
                                     "setup broken")
            for name, prog, frame in (("ingress fwd (established, enforced)", to_c, ack),
                                      ("egress reply", from_c, ack_back),
                                      ("ingress decided (untracked: policy)", to_c, gre)):
                times = []
                for _ in range(a.runs):
                    rc, ns = prog_test_run(prog, frame, a.repeat)
                    assert rc == 0, rc
                    times.append(ns)
                times.sort()
                print(f"  IPv{family} {name:38s} median {times[len(times) // 2]:4d} ns/packet"
                      f"  (runs: {', '.join(map(str, times))})")
    finally:
        dp.close(unpin=True)
        shutil.rmtree(pin, ignore_errors=True)
    return 0


def _sizes(fd: int) -> tuple[int, int]:
    try:
        from agent.datapath.bpfsys import prog_sizes
    except ImportError:      # a checkout before bpfsys (prog_ab against an older build)
        return 0, 0
    return prog_sizes(fd)


def connection(family: int) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """SYN, SYN-ACK, a data ACK and the ACK back of one connection to the server, and a
    GRE packet from the client (untracked: policy decides it)."""
    from bench.ruleset import IPERF_PORT

    client, server = ADDRESSES[family]
    if family == 4:
        return (tcp_frame(client, server, SPORT, IPERF_PORT, TCP_SYN),
                tcp_frame(server, client, IPERF_PORT, SPORT, TCP_SYN | TCP_ACK),
                tcp_frame(client, server, SPORT, IPERF_PORT, TCP_ACK, b"x" * 64),
                tcp_frame(server, client, IPERF_PORT, SPORT, TCP_ACK),
                ipv4_frame(client, server, GRE, b"\x00" * 8))

    def tcp6(src: str, dst: str, sport: int, dport: int, flags: int,
             payload: bytes = b"") -> bytes:
        return ipv6_frame(src, dst, IPPROTO_TCP, tcp_header(sport, dport, flags, payload))

    return (tcp6(client, server, SPORT, IPERF_PORT, TCP_SYN),
            tcp6(server, client, IPERF_PORT, SPORT, TCP_SYN | TCP_ACK),
            tcp6(client, server, SPORT, IPERF_PORT, TCP_ACK, b"x" * 64),
            tcp6(server, client, IPERF_PORT, SPORT, TCP_ACK),
            ipv6_frame(client, server, GRE, b"\x00" * 8))


if __name__ == "__main__":
    sys.exit(main())
