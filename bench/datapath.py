"""Benchmark 1: what enforcement costs a pod-to-pod flow, against the limit and iptables.

Five identical nodes are built side by side (bench.topology): `base` with nothing
attached, `ctl` with nothing attached either (the control: its ratio to `base` is what
"no difference" looks like on this machine, the resolution of every other ratio), `mem`
with Membrane's programs on both pods' veths attached as the agent attaches them by
default (TCX links where the kernel has them), `mtc` with the same programs and rules
attached as tc clsact filters (the fallback), and `ipt` with the kube-router style
iptables + ipset rules (bench.iptables_peer). For each rule count the two enforcing nodes
get the same rule set (bench.ruleset). Enforcement is checked before measuring: a
connection to a port no rule allows must time out on `mem` and `ipt` and be refused on
`base` and `ctl`.

Two methods, both reported:
- iperf3, one TCP stream, in `rounds` rounds with the order of the nodes rotated; the
  ratio is the median over rounds of (mode / base in the same round). One-second
  rounds of the same path swing by 2x on this VM, so this ratio resolves ~10%, no better.
- bench.interleaved: one client process alternating between the four nodes chunk by chunk
  (8 MiB bulk transfers), round trip by round trip (64-byte RR on one connection) and
  connection by connection (CRR), so machine noise lands on all four alike. Its ratios
  resolve a few percent even with other work on the machine (the control shows how
  many in every run); the targets are judged on them.

Both IP families (`Params.families`): the nodes are dual-stack, Membrane's one policy
holds for both (identities), the ipcache holds every identity's IPv4 and IPv6 address,
and the iptables peer loads the rule set into iptables and ip6tables. At every rule count
both methods run over IPv4, then over IPv6, and each family is judged against the same
targets (the IPv6 rows and target lines say "IPv6").
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from bench import iptables_peer
from bench.report import (Table, at_least, at_most, fmt_num, fmt_ratio, median, print_report,
                          ratio, summarize)
from bench.ruleset import (CLIENT_IDENTITY, CRR_PORT, DENIED_PORT, IPERF_PORT, RR_PORT,
                           SERVER_IDENTITY, SINK_PORT, UDP_PORT, RuleSet, dual_stack_maps)
from bench.topology import PREFIX, PYTHON, ROOT, Node, in_ns, pin_dir, python_in_pod

log = logging.getLogger("bench.datapath")

MODES = ("base", "ctl", "mem", "mtc", "ipt")
MODE_NAMES = {"base": "no program", "ctl": "no program (ctl)", "mem": "Membrane",
              "mtc": "Membrane (tc clsact)", "ipt": "iptables+ipset"}
# Membrane's nodes and how each attaches (agent/datapath/hooks.py).
MEMBRANE_ATTACH = {"mem": "auto", "mtc": "tc"}
UNENFORCED = ("base", "ctl")
RR_BLOCKS = 10  # p99 ratios per tenth of the RR run, then the median: one tail burst is one block
CLIENT_CPU = ("taskset", "-c", "0")
SERVER_CPU = ("taskset", "-c", str(max(0, (os.cpu_count() or 1) - 1)))


@dataclass(frozen=True)
class Params:
    sizes: tuple[int, ...] = (10, 100, 1000, 10000)
    identities: int = 10000
    rounds: int = 5          # iperf3 rounds per size; each mode runs once per round
    iperf_seconds: int = 2   # per round: 5 rounds x 2 s = 10 s of iperf3 per mode and size
    bulk_seconds: float = 30.0   # interleaved bulk, all modes together (~6 s each)
    chunk_bytes: int = 8 << 20
    rr_count: int = 50000    # interleaved round trips per mode and size
    crr_count: int = 2000    # interleaved new connections per mode and size
    families: tuple[int, ...] = (4, 6)   # IP families measured, each against the targets


QUICK = Params(rounds=2, iperf_seconds=1, bulk_seconds=8.0, rr_count=10000, crr_count=200)
FULL_BULK_SECONDS = Params().bulk_seconds


class Bed:
    """The nodes, their servers, and Membrane's datapaths on `mem` and `mtc`."""

    def __init__(self, identities: int) -> None:
        self.identities = identities
        self.nodes = {m: Node(m, subnet=210 + i) for i, m in enumerate(MODES)}
        self.dps: dict[str, Any] = {}
        self.slots: dict[str, dict[str, Any]] = {}
        self.rr_client: str | None = None
        self.tmp = tempfile.mkdtemp(prefix=f"{PREFIX}-")   # the RR client's binary

    def build(self) -> None:
        for node in self.nodes.values():
            node.build()
            # Servers on the last CPU, clients on the first (SERVER_CPU/CLIENT_CPU): the
            # same placement for all three nodes, so no mode wins by where it ran.
            node.spawn("server", *SERVER_CPU, "iperf3", "-s", "-p", str(IPERF_PORT))
            srv = node.spawn("server", *SERVER_CPU, *python_in_pod(
                "serve", str(RR_PORT), str(CRR_PORT), str(UDP_PORT), str(SINK_PORT)))
            assert srv.stdout is not None
            if srv.stdout.readline().strip() != "ready":
                raise RuntimeError(f"traffic server on {node.name} did not start")
        for mode, attach_mode in MEMBRANE_ATTACH.items():
            self._start_membrane(mode, attach_mode)
        self.rr_client = build_rr_client(self.tmp)
        time.sleep(0.5)   # iperf3 -s binds asynchronously

    def _start_membrane(self, mode: str, attach_mode: str) -> None:
        from agent.datapath.bpf import BpfDatapath
        from agent.datapath.interface import EndpointSlot
        from agent.policy.mapstate import EndpointPolicy

        node = self.nodes[mode]
        # 10,000 identities + pods; the largest rule set plus room for the host entry.
        dp = BpfDatapath(mode, pin_dir(f"datapath-{mode}"), netns=node.name,
                         max_ipcache=max(16384, self.identities * 2),
                         max_policy=65536, max_endpoints=64, attach_mode=attach_mode)
        self.dps[mode] = dp
        dp.start()
        ids = {"client": CLIENT_IDENTITY, "server": SERVER_IDENTITY}
        slots = self.slots[mode] = {}
        for i, (name, pod) in enumerate(node.pods.items()):
            slots[name] = EndpointSlot(endpoint_id=10 + i, ifname=pod.host_if,
                                       ifindex=pod.ifindex, ipv4=pod.ip,
                                       identity=ids[name], ipv6=pod.ip6)
        # Both families' addresses of every identity: a dual-stack node's ipcache.
        dp.sync_cluster_maps(dual_stack_maps(self.ruleset(mode, 1, 4),
                                             self.ruleset(mode, 1, 6)))
        dp.add_endpoint(slots["client"], EndpointPolicy())
        dp.add_endpoint(slots["server"], self.ruleset(mode, 1).server_policy())
        log.info("%s: Membrane attached with %s", mode, dp.attach_mode)

    def attach_modes(self) -> dict[str, str]:
        return {m: str(dp.attach_mode) for m, dp in self.dps.items()}

    def ruleset(self, mode: str, rules: int, family: int = 4) -> RuleSet:
        pods = self.nodes[mode].pods
        return RuleSet.make(rules, self.identities, pods["client"].address(family),
                            pods["server"].address(family), family)

    def program(self, rules: int) -> dict[str, float]:
        """Gives `mem` and `ipt` the rule set (both families); returns how long each
        took (s). Membrane's policy is one for both (identities)."""
        t0 = time.monotonic()
        for mode, dp in self.dps.items():
            dp.update_endpoint(self.slots[mode]["server"],
                               self.ruleset(mode, rules).server_policy())
        t1 = time.monotonic()
        n = iptables_peer.apply(self.nodes["ipt"].name, self.ruleset("ipt", rules, 4),
                                self.ruleset("ipt", rules, 6))
        t2 = time.monotonic()
        log.info("rules %d: Membrane wrote (%d nodes) in %.2fs, iptables loaded %d rules in "
                 "%.2fs", rules, len(self.dps), t1 - t0, n, t2 - t1)
        return {"membrane_s": (t1 - t0) / len(self.dps), "iptables_s": t2 - t1,
                "iptables_rules": n}

    def check_enforcing(self, family: int = 4) -> dict[str, str]:
        got = {}
        for mode, node in self.nodes.items():
            client = node.pods["client"].ns
            server_ip = node.pods["server"].address(family)
            denied = in_ns(client, *python_in_pod("check", server_ip, str(DENIED_PORT))).stdout
            allowed = in_ns(client, *python_in_pod("check", server_ip, str(RR_PORT))).stdout
            got[mode] = f"{denied.strip()}/{allowed.strip()}"
        want = {m: "refused/open" if m in UNENFORCED else "timeout/open" for m in MODES}
        if got != want:
            raise RuntimeError(f"enforcement check failed over IPv{family}: denied/allowed "
                               f"port gave {got}, expected {want}")
        return got

    def close(self) -> None:
        for dp in self.dps.values():
            try:
                dp.close(unpin=True)
            except Exception as e:   # the namespaces go anyway
                log.warning("closing datapath: %s", e)
        shutil.rmtree(self.tmp, ignore_errors=True)
        for node in self.nodes.values():
            node.destroy()


def _iperf(node: Node, seconds: int, family: int = 4) -> float:
    args = ["iperf3", "-c", node.pods["server"].address(family), "-p", str(IPERF_PORT),
            "-t", str(seconds), "-J"]
    r = in_ns(node.pods["client"].ns, *CLIENT_CPU, *args, timeout=seconds + 30)
    data = json.loads(r.stdout)
    return float(data["end"]["sum_received"]["bits_per_second"]) / 1e9


def _interleaved(bed: Bed, p: Params, family: int = 4) -> dict[str, Any]:
    """bench.interleaved in its own process on the clients' CPU, entering the pods' netns."""
    spec = {"pods": {m: [n.pods["client"].ns, n.pods["server"].address(family)]
                     for m, n in bed.nodes.items()},
            "sink_port": SINK_PORT, "rr_port": RR_PORT, "crr_port": CRR_PORT,
            "bulk_seconds": p.bulk_seconds, "chunk_bytes": p.chunk_bytes,
            "rr_count": p.rr_count, "crr_count": p.crr_count, "rr_client": bed.rr_client}
    r = subprocess.run([*CLIENT_CPU, PYTHON, "-m", "bench.interleaved", json.dumps(spec)],
                       text=True, capture_output=True, cwd=ROOT, timeout=900,
                       env={**os.environ, "MBRB_PREFIX": PREFIX})
    if r.returncode != 0:
        raise RuntimeError(f"bench.interleaved failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def build_rr_client(directory: str) -> str | None:
    """bench/rr_client.c built with gcc -O2 into `directory`; None without gcc (the
    interleaved run then measures RR and CRR with its Python loops, and says so)."""
    os.makedirs(directory, exist_ok=True)
    out = os.path.join(directory, "rr_client")
    try:
        done = subprocess.run(["gcc", "-O2", "-Wall", "-o", out,
                               os.path.join(ROOT, "bench", "rr_client.c")],
                              capture_output=True, text=True)
    except FileNotFoundError:
        log.warning("no gcc: RR and CRR measured with the Python client")
        return None
    if done.returncode != 0:
        raise RuntimeError(f"gcc could not build the RR client: {done.stderr}")
    return out


def _blocks(samples: list[float], n: int) -> list[list[float]]:
    size = max(1, len(samples) // n)
    return [samples[i * size:(i + 1) * size] for i in range(n) if samples[i * size:]]


def measure(bed: Bed, p: Params, rules: int, family: int = 4) -> dict[str, dict[str, Any]]:
    """iperf3 in rotated rounds, then the interleaved run (module docstring), over one IP
    family."""
    gbps: dict[str, list[float]] = {m: [] for m in MODES}
    # One discarded warm-up: the first runs after (re)programming pay for cold caches
    # and CPU frequency ramps, which would land on whichever mode goes first.
    for mode in MODES:
        _iperf(bed.nodes[mode], 1, family)
    for rnd in range(p.rounds):
        k = rnd % len(MODES)
        for mode in MODES[k:] + MODES[:k]:
            gbps[mode].append(_iperf(bed.nodes[mode], p.iperf_seconds, family))
    il = _interleaved(bed, p, family)
    out: dict[str, dict[str, Any]] = {}
    for m in MODES:
        bulk = il["bulk"][m]
        rr_blocks = _blocks(il["rr_us"][m], RR_BLOCKS)
        out[m] = {"gbps": gbps[m], "gbps_median": median(gbps[m]),
                  "gbps_ratio": median([x / b for x, b in zip(gbps[m], gbps["base"]) if b]),
                  "bulk_gbps": bulk["bytes"] * 8 / bulk["seconds"] / 1e9,
                  "bulk_block_seconds": bulk["block_seconds"],
                  "rr_us": summarize(il["rr_us"][m]),
                  "rr_p99_blocks": [summarize(b)["p99"] for b in rr_blocks],
                  "crr_us": summarize(il["crr_us"][m]), "client": il.get("client", "python")}
    for m in MODES:
        # Per one-second block (same chunk count per mode, so time ratio = rate ratio),
        # then the median: a second in which one node stalled is one block, not the result.
        out[m]["bulk_ratio"] = median([b / x for x, b in zip(out[m]["bulk_block_seconds"],
                                                             out["base"]["bulk_block_seconds"])
                                       if x])
        out[m]["rr_p99_ratio"] = median([x / b for x, b in zip(out[m]["rr_p99_blocks"],
                                                                  out["base"]["rr_p99_blocks"])
                                         if b])
    return out


# results key of each family's sizes: IPv4 where it always was, IPv6 beside it.
SIZES_KEY = {4: "sizes", 6: "sizes6"}


def run(p: Params) -> dict[str, Any]:
    bed = Bed(p.identities)
    results: dict[str, Any] = {"params": p.__dict__,
                               **{SIZES_KEY[f]: {} for f in p.families}}
    try:
        bed.build()
        results["attach"] = bed.attach_modes()
        for rules in p.sizes:
            prog = bed.program(rules)
            for family in p.families:
                check = bed.check_enforcing(family)
                load0 = os.getloadavg()[0]
                per_mode = measure(bed, p, rules, family)
                load = (load0 + os.getloadavg()[0]) / 2
                results[SIZES_KEY[family]][str(rules)] = {
                    "programming": prog, "check": check, "loadavg": load, **per_mode}
                _log_size(rules, per_mode, family)
    finally:
        bed.close()
    return results


def _log_size(rules: int, m: dict[str, dict[str, Any]], family: int = 4) -> None:
    for mode in m:
        log.info("IPv%d rules %6d %-16s iperf3 %6.2f Gbit/s  bulk %6.2f Gbit/s (%.3f)  rr p50 "
                 "%.1f p99 %.1f us (%.3f)  crr p50 %.1f p99 %.1f us", family, rules,
                 MODE_NAMES[mode],
                 m[mode]["gbps_median"], m[mode]["bulk_gbps"], m[mode]["bulk_ratio"] or 0,
                 m[mode]["rr_us"]["p50"], m[mode]["rr_us"]["p99"],
                 m[mode]["rr_p99_ratio"] or 0, m[mode]["crr_us"]["p50"],
                 m[mode]["crr_us"]["p99"])


def bulk_resolution(results: dict[str, Any], family: int = 4) -> float:
    """How far the control (a second node without a program) strayed from the baseline in
    this run, over every rule count of the family, and at least 1%: a smaller gap between
    two modes is not a difference this machine can show."""
    strays = [abs(1 - float(d["ctl"]["bulk_ratio"]))
              for d in results.get(SIZES_KEY[family], {}).values()
              if d["ctl"].get("bulk_ratio") is not None]
    return max([0.01, *strays])


def ahead_of_iptables(data: dict[str, Any], resolution: float) -> bool:
    """Membrane is ahead at one rule count when new connections (CRR p99, where a linear
    chain pays per rule) are no slower and bulk throughput is not behind by more than the
    run's resolution (established packets cost both one conntrack lookup, whatever the
    rule count: equal within resolution is as good as it gets there)."""
    m, i = data["mem"], data["ipt"]
    bulk_ok = (m["bulk_ratio"] or 0) >= (i["bulk_ratio"] or 0) - resolution
    return bool(bulk_ok and m["crr_us"]["p99"] <= i["crr_us"]["p99"])


def tables(results: dict[str, Any]) -> tuple[list[Table], list[tuple[str, str, str]]]:
    """The throughput/latency table (a row per rule count, family and mode) and this
    benchmark's target lines: IPv4's as they always were, then IPv6's ("IPv6: ...")."""
    t = Table("1. Datapath: pod -> node -> pod on one node (ratios to 'no program' "
              "measured side by side)",
              ["rules", "IP", "mode", "iperf3 Gbit/s", "ratio", "bulk Gbit/s", "ratio",
               "RR p50 us", "RR p99 us", "p99 ratio", "CRR p50 us", "CRR p99 us",
               "p99 ratio"])
    targets: list[tuple[str, str, str]] = []
    loads: list[str] = []
    for family, key in SIZES_KEY.items():
        if results.get(key):
            targets += _family_rows(t, results, family, loads)
    bulk_seconds = float(results.get("params", {}).get("bulk_seconds", FULL_BULK_SECONDS))
    if bulk_seconds < FULL_BULK_SECONDS:
        t.notes.append(f"short run ({bulk_seconds:g} s of interleaved bulk per size, "
                       f"{FULL_BULK_SECONDS:g} s in a full run): each ratio rests on a few "
                       "one-second blocks; judge the targets on a full run.")
    attach = results.get("attach")
    if attach:
        t.notes.append("Membrane attached with: " + ", ".join(
            f"{MODE_NAMES[m]}: {how}" for m, how in attach.items()) + ".")
    clients = {d["base"].get("client", "python") for key in SIZES_KEY.values()
               for d in results.get(key, {}).values()}
    t.notes.append(f"RR/CRR client: {', '.join(sorted(clients))} (bench/rr_client.c when "
                   "'c').")
    t.notes += [f"machine load average (2 cores) during each size: {', '.join(loads)}.",
                "iperf3: one stream, median Gbit/s over rounds; ratio = median over rounds of "
                "(mode / no program in the same round): on this VM it resolves ~10% at best.",
                "bulk, RR, CRR: one client process alternating between the nodes (8 MiB "
                "chunks, 64-byte round trips, new connections); Gbit/s and latencies pooled; "
                "bulk ratio = median over one-second blocks, RR p99 ratio = median over "
                f"{RR_BLOCKS} consecutive blocks. The control row (a second node with no "
                "program) shows this method's resolution: its ratios would be 100% on a quiet "
                "machine.",
                "iptables: kube-router layout, client's rule last (worst case of a "
                "linear chain; ip6tables for IPv6); Membrane: the same rules as policy-map "
                "entries, 10,000 identities in the ipcache at every size (each with an IPv4 "
                "and an IPv6 address: one dual-stack node, measured over each family)."]
    return [t], targets


def _family_rows(t: Table, results: dict[str, Any], family: int,
                 loads: list[str]) -> list[tuple[str, str, str]]:
    """One family's rows into t, its loads into loads; returns its target lines."""
    worst: dict[str, float | None] = {"tput": None, "p99": None, "ctl_tput": None,
                                      "ctl_p99": None}
    ahead: list[str] = []
    resolution = bulk_resolution(results, family)
    sizes = results[SIZES_KEY[family]]

    def keep(key: str, value: float | None, lower_is_worse: bool) -> None:
        old = worst[key]
        if value is not None and (old is None or (value < old if lower_is_worse else value > old)):
            worst[key] = value

    for rules, data in sizes.items():
        base = data["base"]
        for mode in MODES:
            if mode not in data:
                continue         # results of a run without that node
            d = data[mode]
            crr = ratio(d["crr_us"]["p99"], base["crr_us"]["p99"])
            t.add(rules, f"v{family}", MODE_NAMES[mode], fmt_num(d["gbps_median"], digits=2),
                  fmt_ratio(d["gbps_ratio"]), fmt_num(d["bulk_gbps"], digits=2),
                  fmt_ratio(d["bulk_ratio"]), fmt_num(d["rr_us"]["p50"]),
                  fmt_num(d["rr_us"]["p99"]), fmt_ratio(d["rr_p99_ratio"]),
                  fmt_num(d["crr_us"]["p50"]), fmt_num(d["crr_us"]["p99"]), fmt_ratio(crr))
            if mode in ("mem", "ctl"):
                prefix = "" if mode == "mem" else "ctl_"
                keep(prefix + "tput", d["bulk_ratio"], lower_is_worse=True)
                keep(prefix + "p99", d["rr_p99_ratio"], lower_is_worse=False)
        if int(rules) >= 1000:
            ahead.append(f"{rules}:{'yes' if ahead_of_iptables(data, resolution) else 'no'}")
    loads += [f"{r} (IPv{family}): {d['loadavg']:.1f}" for r, d in sizes.items()]
    label = "" if family == 4 else f"IPv{family}: "
    all_ahead = bool(ahead) and all(a.endswith("yes") for a in ahead)
    # The control's largest stray either way, in bulk or RR p99, over every size.
    ctl_stray = max([abs(1 - float(d["ctl"][k])) for d in sizes.values()
                     for k in ("bulk_ratio", "rr_p99_ratio") if d["ctl"].get(k) is not None],
                    default=0.0)
    return [
        (f"{label}throughput >= 95% of baseline, every rule count (interleaved bulk)",
         f"worst {fmt_ratio(worst['tput'])} (ctl {fmt_ratio(worst['ctl_tput'])})",
         at_least(worst["tput"], 0.95)),
        (f"{label}RR p99 within 10% of baseline, every rule count (interleaved)",
         f"worst {fmt_ratio(worst['p99'])} (ctl {fmt_ratio(worst['ctl_p99'])})",
         at_most(worst["p99"], 1.10)),
        (f"{label}ahead of iptables from 1,000 rules (CRR p99, bulk within resolution)",
         f"{' '.join(ahead) or '-'} (resolution {resolution:.1%})",
         ("PASS" if all_ahead else "MISS") if ahead else "n/a"),
        # Issue 17's limits, and whether this run's control could show them at all.
        (f"{label}at the limit: bulk >= 98% of baseline, every rule count",
         f"worst {fmt_ratio(worst['tput'])} (ctl {fmt_ratio(worst['ctl_tput'])})",
         at_least(worst["tput"], 0.98)),
        (f"{label}at the limit: RR p99 <= 103% of baseline, every rule count",
         f"worst {fmt_ratio(worst['p99'])} (ctl {fmt_ratio(worst['ctl_p99'])})",
         at_most(worst["p99"], 1.03)),
        (f"{label}the method resolves it: control within 1% (bulk and RR p99)",
         f"control strayed {ctl_stray:.1%}",
         "PASS" if worst["ctl_tput"] is not None and ctl_stray <= 0.01 else "MISS"),
    ]


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default="", help="comma-separated rule counts")
    ap.add_argument("--families", default="4,6", help="IP families to measure (4, 6 or 4,6)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = QUICK if args.quick else Params()
    if args.sizes:
        p = Params(**{**p.__dict__, "sizes": tuple(int(s) for s in args.sizes.split(","))})
    p = Params(**{**p.__dict__,
                  "families": tuple(int(f) for f in args.families.split(",") if f)})
    res = run(p)
    tabs, targets = tables(res)
    print_report(tabs, targets)


if __name__ == "__main__":
    main()
