"""Benchmark 5: agent memory at 1,000 endpoints and 100,000 cluster pods in the ipcache.

The worker runs inside a bare node namespace and builds what the agent process holds:
LocalAllocator + CidrAllocator + PolicyEngine over the synthetic cluster (bench.cluster:
1,000 local endpoints, 100,000 pods, ~10,000 identities, ~200 policies) and BpfDatapath
with the whole ipcache synced and every endpoint added with add_endpoint (its policy
written and the programs attached with tc to an idle veth in the node namespace, as in
bench.programming). RSS (VmRSS and
the peak VmHWM) is read from /proc/self/status after each step; the BPF maps live in the
kernel, so their memory is reported apart, from the map fds' `memlock` in /proc/self/fdinfo.

Both allocators keep their state in a directory with persist="on_flush", as the agent
does: the ~10,000 identities are written once, at the flush after engine.update (one
write per identity made this take many minutes before; see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.profiling import serve_worker
from bench.report import Table, fmt_num, print_report

ENDPOINTS = 1000
CLUSTER_PODS = 100_000


def rss_kb() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, from /proc/self/status."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def bpf_map_memlock_kb() -> int:
    """Kernel memory charged to the BPF maps this process holds open."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "bpf-map" not in os.readlink(f"/proc/self/fd/{fd}"):
                continue
            with open(f"/proc/self/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("memlock:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total // 1024


def _worker(a: argparse.Namespace) -> dict[str, Any]:
    from agent.datapath.bpf import BpfDatapath
    from agent.datapath.interface import EndpointSlot
    from agent.policy.engine import PolicyEngine
    from bench import cluster
    from bench.topology import pin_dir
    from identity.cidr import CidrAllocator
    from identity.local import LocalAllocator

    steps: list[dict[str, Any]] = [{"step": "interpreter + engine imports", **rss_kb()}]
    objs = cluster.build(a.endpoints, a.cluster_pods)
    steps.append({"step": "cluster objects built", **rss_kb()})
    idle: list[list[Any]] = json.loads(a.idle)
    state = Path(tempfile.mkdtemp(prefix="mbrb-mem-"))
    alloc = LocalAllocator(state / "identities", grace_seconds=300, persist="on_flush")
    cidr = CidrAllocator(state / "cidr-identities", persist="on_flush")
    engine = PolicyEngine(alloc, cidr, cluster="bench")
    t0 = time.monotonic()
    engine.update(objs)
    maps = engine.cluster_maps(cluster.NODE)
    steps.append({"step": "engine.update + cluster_maps", "seconds": time.monotonic() - t0,
                  **rss_kb()})
    t0 = time.monotonic()
    alloc.flush()
    cidr.flush()
    steps.append({"step": f"identity state flush ({len(alloc.identities()):,})",
                  "seconds": time.monotonic() - t0, **rss_kb()})
    dp = BpfDatapath("memory", pin_dir("memory"), max_endpoints=a.endpoints + 64,
                     max_ipcache=1 << (a.cluster_pods * 5 // 4).bit_length(),
                     max_policy=65536)
    try:
        t0 = time.monotonic()
        dp.start()
        steps.append({"step": "datapath start (bcc import, compile)", "seconds": time.monotonic() - t0,
                      **rss_kb()})
        t0 = time.monotonic()
        dp.sync_cluster_maps(maps)
        steps.append({"step": f"ipcache sync ({len(maps.ipcache):,} entries)",
                      "seconds": time.monotonic() - t0, **rss_kb()})
        t0 = time.monotonic()
        entries = 0
        local = sorted(k for k, p in objs.pods.items() if p.node_name == cluster.NODE)
        for eid, (key, (ifname, ifindex)) in enumerate(zip(local, idle), start=1):
            ident = engine.identity_of(key)
            assert ident is not None
            policy = engine.endpoint_policy(key)
            entries += len(policy.entries)
            dp.add_endpoint(EndpointSlot(eid, ifname, ifindex, objs.pods[key].ip or "",
                                         ident.id), policy)
        steps.append({"step": f"{len(local):,} endpoints added (tc attach)", "seconds":
                      time.monotonic() - t0, **rss_kb()})
        t0 = time.monotonic()
        dp.sync_cluster_maps(maps)
        resync = time.monotonic() - t0
        relabelled = dict(maps.ipcache)
        relabelled[next(iter(relabelled))] += 1
        t0 = time.monotonic()
        one = dp.sync_cluster_maps(type(maps)(relabelled, maps.cidrs))
        resync_one = time.monotonic() - t0
        return {"steps": steps, "identities": len(alloc.identities()),
                "pods": len(objs.pods), "policies": len(objs.policies),
                "policy_entries": entries, "ipcache_entries": len(maps.ipcache),
                "bpf_memlock_kb": bpf_map_memlock_kb(), "resync_unchanged_s": resync,
                "resync_one_change_s": resync_one, "resync_one_change_writes": one}
    finally:
        dp.close(unpin=True)
        alloc.close()
        cidr.close()
        shutil.rmtree(state, ignore_errors=True)


def run(quick: bool = False) -> dict[str, Any]:
    from bench.topology import Node, run_worker

    node = Node("memory", pod_names=())
    try:
        node.build()
        idle = node.add_dummies(ENDPOINTS)
        return run_worker(node.name, "bench.memory", "worker", "--endpoints", str(ENDPOINTS),
                          "--cluster-pods", str(CLUSTER_PODS), "--idle", json.dumps(idle),
                          timeout=900)
    finally:
        node.destroy()


def tables(res: dict[str, Any]) -> tuple[list[Table], list[tuple[str, str, str]]]:
    t = Table(f"5. Memory: {ENDPOINTS:,} endpoints, {res['pods']:,} cluster pods "
              f"({res['identities']:,} identities, {res['ipcache_entries']:,} ipcache "
              f"entries, {res['policy_entries']:,} policy entries)",
              ["step", "seconds", "RSS MiB", "peak MiB"])
    for st in res["steps"]:
        t.add(st["step"], fmt_num(st.get("seconds"), digits=2),
              fmt_num(st["VmRSS"] / 1024, digits=0), fmt_num(st["VmHWM"] / 1024, digits=0))
    t.notes += [f"BPF maps (kernel, not in RSS): {res['bpf_memlock_kb'] / 1024:.0f} MiB "
                "memlock.",
                f"re-sync of the {res['ipcache_entries']:,}-entry ipcache against the "
                f"writer's shadow: unchanged {res['resync_unchanged_s'] * 1e3:.1f} ms, "
                f"one entry changed {res['resync_one_change_s'] * 1e3:.1f} ms "
                f"({res['resync_one_change_writes']} write)."]
    rss = res["steps"][-1]["VmRSS"] / 1024
    return [t], [("agent RSS at 1,000 endpoints / 100,000 pods (no target; reported)",
                  f"{rss:.0f} MiB", "n/a")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    w.add_argument("--endpoints", type=int, required=True)
    w.add_argument("--cluster-pods", type=int, required=True)
    w.add_argument("--idle", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if serve_worker(a, "memory", _worker):
        return
    tabs, targets = tables(run(a.quick))
    print_report(tabs, targets)


if __name__ == "__main__":
    main()
