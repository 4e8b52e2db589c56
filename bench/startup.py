"""Benchmark 3: agent start, from zero to enforcing for 100 endpoints (bcc compile included).

The parent builds a node namespace with the `client` and `server` pods and 98 idle veth
endpoints, then starts the worker inside it (nsenter --net, as the DaemonSet pod runs)
with fresh pins and a fresh state directory. The worker is the real `agent.daemon.Agent`
(BpfDatapath, engine, allocators, observer, gRPC socket) fed by a static source holding
the synthetic cluster (bench.cluster: 100 local pods, 1,000 cluster pods, ~20 policies);
all 100 endpoints register at once from 16 threads, as a node's CNI ADDs arrive. The
clock starts in the parent just before the worker is spawned, so interpreter start and
imports count. "Enforcing" is when every endpoint is READY; the parent then checks that a
port no policy allows is dropped (timeout, not refused).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.profiling import serve_worker
from bench.report import Table, fmt_num, print_report

ENDPOINTS = 100
CLUSTER_PODS = 1000


class StaticSource:
    """A Source holding a fixed ClusterObjects: lists once, then waits."""

    name = "bench-static"

    def __init__(self, objects: Any) -> None:
        self.objects = objects

    def run(self, store: Any, stop: threading.Event) -> None:
        store.replace_all(self.objects, synced=True)
        stop.wait()


def _worker(a: argparse.Namespace) -> dict[str, Any]:
    t_main = time.monotonic_ns()
    from agent.config import AgentConfig
    from agent.daemon import Agent
    from bench import cluster
    from bench.memory import rss_kb
    from bench.topology import pin_dir

    t_imported = time.monotonic_ns()
    ifaces: dict[str, str] = json.loads(a.ifaces)     # pod name -> host ifname
    objs = cluster.build(a.endpoints, a.cluster_pods, a.client_ip, a.server_ip)
    state = Path(tempfile.mkdtemp(prefix="mbrb-start-"))
    cfg = AgentConfig(node=cluster.NODE, source="bench", state_dir=state,
                      socket=str(state / "agent.sock"), bpffs=pin_dir("startup"))
    agent = Agent(cfg, source=StaticSource(objs))
    t_constructed = time.monotonic_ns()
    agent.start()
    t_started = time.monotonic_ns()
    local = [p for p in objs.pods.values() if p.node_name == cluster.NODE]

    def register(pod: Any) -> None:
        agent.register_endpoint(pod.namespace, pod.name, ifaces[pod.name], pod.ip or "")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(register, local))
    t_ready = time.monotonic_ns()
    status = agent.status()
    out = {"t0_to_main_ms": (t_main - a.t0) / 1e6,
           "imports_ms": (t_imported - t_main) / 1e6,
           "construct_ms": (t_constructed - t_imported) / 1e6,
           "start_ms": (t_started - t_constructed) / 1e6,
           "register_ms": (t_ready - t_started) / 1e6,
           "total_ms": (t_ready - a.t0) / 1e6,
           "endpoints_by_state": dict(status.endpoints_by_state),
           "identities": status.identities, "rss_kb": rss_kb()}
    agent.stop()   # programs and pins stay: the parent checks enforcement afterwards
    return out


def run(quick: bool = False) -> dict[str, Any]:
    from bench.ruleset import CRR_PORT, DENIED_PORT, RR_PORT, UDP_PORT
    from bench.topology import Node, in_ns, pin_dir, python_in_pod, run_worker

    node = Node("start", subnet=230)
    try:
        node.build()
        srv = node.spawn("server", *python_in_pod("serve", str(RR_PORT), str(CRR_PORT),
                                                  str(UDP_PORT)))
        assert srv.stdout is not None
        srv.stdout.readline()
        idle = node.add_dummies(ENDPOINTS - 2)
        ifaces = {"client": node.pods["client"].host_if, "server": node.pods["server"].host_if}
        ifaces.update({f"ep-{i}": name for i, (name, _) in enumerate(idle)})
        t0 = time.monotonic_ns()
        res = run_worker(node.name, "bench.startup", "worker", "--t0", str(t0),
                         "--endpoints", str(ENDPOINTS), "--cluster-pods", str(CLUSTER_PODS),
                         "--client-ip", node.pods["client"].ip,
                         "--server-ip", node.pods["server"].ip, "--ifaces", json.dumps(ifaces))
        res["denied_port_check"] = in_ns(node.pods["client"].ns, *python_in_pod(
            "check", node.pods["server"].ip, str(DENIED_PORT))).stdout.strip()
        return res
    finally:
        node.destroy()
        shutil.rmtree(pin_dir("startup"), ignore_errors=True)


def tables(res: dict[str, Any]) -> tuple[list[Table], list[tuple[str, str, str]]]:
    t = Table(f"3. Agent start: zero to enforcing for {ENDPOINTS} endpoints "
              f"({CLUSTER_PODS:,} cluster pods)", ["phase", "ms"])
    for key, name in (("t0_to_main_ms", "interpreter start"), ("imports_ms", "imports"),
                      ("construct_ms", "Agent() (allocators, engine)"),
                      ("start_ms", "start(): bcc compile + load, gRPC, threads"),
                      ("register_ms", f"register {ENDPOINTS} endpoints -> all READY"),
                      ("total_ms", "total: zero to enforcing")):
        t.add(name, fmt_num(res[key], digits=0))
    t.notes += [f"endpoints: {res['endpoints_by_state']}; denied port after start: "
                f"{res['denied_port_check']} (timeout = dropped by policy)",
                f"agent RSS after start: {res['rss_kb'].get('VmRSS', 0) / 1024:.0f} MiB"]
    ok = (res["denied_port_check"] == "timeout"
          and res["endpoints_by_state"].get("ready") == ENDPOINTS)
    return [t], [("agent start to enforcing, 100 endpoints (no target; reported)",
                  f"{res['total_ms'] / 1000:.1f} s", "n/a" if ok else "MISS")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    for flag in ("--t0", "--endpoints", "--cluster-pods"):
        w.add_argument(flag, type=int, required=True)
    for flag in ("--client-ip", "--server-ip", "--ifaces"):
        w.add_argument(flag, required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if serve_worker(a, "startup", _worker):
        return
    tabs, targets = tables(run(a.quick))
    print_report(tabs, targets)


if __name__ == "__main__":
    main()
