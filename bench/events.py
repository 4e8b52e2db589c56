"""Benchmark 4: flow events per second the agent ingests, decodes and serves, and loss
counted exactly above that rate.

One node namespace, `client` and `server` pods. The client's egress is enforced with one
allow entry (TCP 5201 to the server, so the endpoint is "enforced with a policy"), so every UDP datagram
it sends is dropped at its veth by policy, and each such packet emits two ring-buffer
records (a POLICY_VERDICT for the new flow and a DROP). bench/traffic.py flood sends
32-byte datagrams at a set rate from the client pod; the last stage sends as fast as one
Python sender can. (iperf3 -u cannot be the sender: its UDP handshake is denied too.)

The worker runs inside the node namespace and does what the agent does with events
(agent.observing.EventPipeline.run): a thread calls datapath.poll_events(100) and then
datapath.lost_events() for the kernel's lost counter, which it reports to the FlowObserver;
the handler is FlowObserver.on_events (queue 65,536, the agent's default), whose worker
builds Flows into the ring (4,095). Per stage, after the sender stops and the pipeline
drains, the books must balance exactly:

  records emitted  = 2 x policy drops (kernel per-CPU drop counter)
                   = read by the reader + lost in the kernel (lost_events map)
  read             = flows built (observer seen) + lost in the observer queue

Table 4b then floods again with one GetFlows follower attached (bench/follower.py): the
handler's own loop in this process, and a gRPC client process following the Observer
served as the agent serves it (observe.h2server on a unix socket, in this process; the
client: bench/follower_client.c, or grpcio with --followers grpcio). Each counts the
flows it receives and what the ring overwrote before it read them, and the books balance
again: flows seen = received + lost by the follower.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import threading
import time
from typing import Any

from agent.config import AgentConfig
from bench.profiling import serve_worker
from bench.report import Table, fmt_num, print_report

# Measure what the agent runs with (`membrane agent --event-ring-pages`).
AGENT_RING_PAGES = AgentConfig.event_ring_pages

DROP_POLICY = 133
RATES_FULL = (5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 0)   # packets/s; 0 = unlimited
RATES_QUICK = (10_000, 20_000, 100_000, 0)
# Table 4b: one GetFlows follower during a flood (packets/s; 2 events each).
# 110,000 and 125,000 packets/s offer 220,000 and 250,000 flows/s: above the 200,000
# the follower must take (a stage at exactly 200,000 would land a sender's hair below it).
FOLLOW_RATES_FULL = (50_000, 110_000, 125_000, 0)
FOLLOW_RATES_QUICK = (110_000,)
FOLLOWERS = ("stream", "grpc")
AGENT_FLOW_RING = 4095            # the agent's --flow-capacity default (Hubble's)
FOLLOW_RINGS = (AGENT_FLOW_RING, 65535)   # 65,535: the largest --flow-capacity
DATAGRAM = 32


def _drops(dp: Any) -> tuple[int, int]:
    """(policy drops, all drops): a policy drop of a new flow emits two records, any
    other drop (an IPv6 router solicitation from the enforced pod, say) one."""
    drops = dp.stats().drops
    return int(drops.get(DROP_POLICY, 0)), int(sum(drops.values()))


def _worker(a: argparse.Namespace) -> dict[str, Any]:
    from agent.datapath.bpf import BpfDatapath
    from agent.datapath.interface import EndpointSlot
    from agent.policy.mapstate import ClusterMaps, Direction, EndpointPolicy, PolicyKey
    from bench.topology import pin_dir, pod_cmd, python_in_pod
    from bench.follower import FOLLOWERS
    from observe.h2server import SWITCH_INTERVAL_SECONDS
    from observe.ring import FlowObserver

    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)   # as the agent serving flows runs
    current: list[FlowObserver] = []
    rates = [int(r) for r in a.rates.split(",")]
    dp = BpfDatapath("events", pin_dir("events"), max_endpoints=64,
                     ring_pages=a.ring_pages)
    observer = FlowObserver("events", capacity=AGENT_FLOW_RING, queue_size=65536)
    stop = threading.Event()
    read = [0]
    lost_seen = [0]

    every = a.lost_every_ms / 1000

    def events_loop() -> None:
        # As agent.observing.EventPipeline.run: poll, then check the kernel's lost counter (at
        # most every `every` seconds: lost_events() walks a per-CPU map through bcc,
        # which costs more than reading a poll's records; the counter is cumulative, so
        # reading it less often delays the report, never loses a count).
        next_check = 0.0
        while not stop.is_set():
            read[0] += dp.poll_events(100)
            if every:
                now = time.monotonic()
                if now < next_check:
                    continue
                next_check = now + every
            lost = dp.lost_events()
            if lost > lost_seen[0]:
                current[0].report_lost("kernel", lost - lost_seen[0])
                lost_seen[0] = lost

    try:
        dp.start()
        dp.sync_cluster_maps(ClusterMaps({f"{a.client_ip}/32": 900, f"{a.server_ip}/32": 901,
                                          "0.0.0.0/0": 2}))
        client = EndpointSlot(1, a.client_if, a.client_ifindex, a.client_ip, 900)
        server = EndpointSlot(2, a.server_if, a.server_ifindex, a.server_ip, 901)
        dp.add_endpoint(server, EndpointPolicy())
        dp.add_endpoint(client, EndpointPolicy(egress_enforced=True, entries=frozenset(
            {PolicyKey(Direction.EGRESS, 901, 6, 5201, 5201)})))
        observer.start()
        if a.per_event:
            def one_by_one(batch: Any) -> None:
                for event in batch.events():
                    observer.on_event(event)
            dp.set_batch_handler(one_by_one)
        else:
            dp.set_batch_handler(observer.on_events)
        current.append(observer)   # the observer the reader feeds (4b swaps ring sizes)
        mode = dp._reader.mode if dp._reader is not None else ""
        reader = threading.Thread(target=events_loop, daemon=True)
        reader.start()
        def stage(rate: int) -> dict[str, Any]:
            """One flood at `rate` packets/s, drained, with its books."""
            observer = current[0]
            before: dict[str, Any] = {"drops": _drops(dp), "read": read[0],
                                      "klost": lost_seen[0],
                                      "seen": observer.status().seen_flows,
                                      "qlost": observer.status().lost.get(
                                          "OBSERVER_EVENTS_QUEUE", 0)}
            cmd = pod_cmd(a.client_ns,
                          *python_in_pod("flood", a.server_ip, "5204", str(rate),
                                         str(a.seconds), str(DATAGRAM)))
            t0 = time.monotonic()
            r = subprocess.run(cmd, text=True, capture_output=True, timeout=a.seconds + 30)
            sent_s = time.monotonic() - t0
            read_during = read[0] - before["read"]
            try:
                sent = int(json.loads(r.stdout)["sent"])
            except (ValueError, KeyError):
                sent = -1
            # Drain: the reader and the observer catch up on what is buffered.
            idle_since = time.monotonic()
            last = (read[0], observer.status().seen_flows)
            while time.monotonic() - idle_since < 0.7:
                time.sleep(0.1)
                now = (read[0], observer.status().seen_flows)
                if now != last:
                    idle_since, last = time.monotonic(), now
            st = observer.status()
            policy_now, all_now = _drops(dp)
            drops = policy_now - before["drops"][0]
            emitted = 2 * drops + (all_now - before["drops"][1] - drops)
            got = read[0] - before["read"]
            klost = lost_seen[0] - before["klost"]
            qlost = st.lost.get("OBSERVER_EVENTS_QUEUE", 0) - before["qlost"]
            seen = st.seen_flows - before["seen"]
            return {"offered_pps": rate, "seconds": a.seconds, "sent": sent,
                    "policy_drops": drops, "emitted": emitted, "read": got,
                    "read_while_sending": read_during, "sending_s": sent_s,
                    "kernel_lost": klost, "queue_lost": qlost, "flows": seen,
                    "unaccounted": emitted - got - klost,
                    "unaccounted_observer": got - seen - qlost,
                    "events_per_s": emitted / a.seconds,
                    "served_per_s": seen / a.seconds}

        stages = [stage(rate) for rate in rates]
        follow_stages = []
        for ring in (int(r) for r in a.follow_rings.split(",")):
            if ring != current[0].ring.capacity:
                swapped = FlowObserver("events", capacity=ring, queue_size=65536)
                swapped.start()
                dp.set_batch_handler(swapped.on_events)
                current[0].stop()
                current[0] = swapped
            for kind, rate in ((k, int(r)) for k in filter(None, a.followers.split(","))
                               for r in a.follow_rates.split(",")):
                follower = FOLLOWERS[kind](current[0])
                # The follower's books run from its start (a stray record, an IPv6
                # router solicitation, can come before the stage's own snapshot).
                seen_before = current[0].status().seen_flows
                follower.start()
                try:
                    st = stage(rate)
                    time.sleep(0.5)       # the follower reads what the drain left
                finally:
                    got = follower.stop()
                followed = current[0].status().seen_flows - seen_before
                follow_stages.append({**st, "follower": kind, "ring": ring,
                                      "received": got["received"],
                                      "follower_lost": got["lost"],
                                      "received_per_s": got["received"] / a.seconds,
                                      "followed_flows": followed,
                                      "unaccounted_follower":
                                          followed - got["received"] - got["lost"]})
        mapped = getattr(dp._reader, "_mapped", None)
        return {"stages": stages, "follow_stages": follow_stages, "reader": mode,
                "ring_pages": a.ring_pages,
                "lost_every_ms": a.lost_every_ms,
                "ring_peak_bytes": getattr(mapped, "peak_bytes", None),
                "handover": "on_event" if a.per_event else "on_events"}
    finally:
        stop.set()
        for last in current[:1]:
            last.stop()
        dp.close(unpin=True)


def run(quick: bool = False, per_event: bool = False, ring_pages: int = AGENT_RING_PAGES,
        lost_every_ms: int = 100, followers: tuple[str, ...] = FOLLOWERS) -> dict[str, Any]:
    from bench.topology import Node, run_worker

    node = Node("events", subnet=240)
    try:
        node.build()
        c, s = node.pods["client"], node.pods["server"]
        rates = RATES_QUICK if quick else RATES_FULL
        return run_worker(node.name, "bench.events", "worker",
                          "--rates", ",".join(map(str, rates)),
                          "--seconds", "2" if quick else "3",
                          "--client-ns", c.ns, "--client-ip", c.ip, "--client-if", c.host_if,
                          "--client-ifindex", str(c.ifindex), "--server-ip", s.ip,
                          "--server-if", s.host_if, "--server-ifindex", str(s.ifindex),
                          "--ring-pages", str(ring_pages),
                          "--lost-every-ms", str(lost_every_ms),
                          "--followers", ",".join(followers),
                          "--follow-rates", ",".join(map(str, FOLLOW_RATES_QUICK if quick
                                                         else FOLLOW_RATES_FULL)),
                          *(["--per-event"] if per_event else []))
    finally:
        node.destroy()


def lossless(res: dict[str, Any]) -> float:
    """The highest event rate of a stage with nothing lost anywhere."""
    ok = [st["events_per_s"] for st in res["stages"]
          if st["kernel_lost"] == 0 and st["queue_lost"] == 0 and st["policy_drops"] > 0]
    return max(ok, default=0.0)


def tables(res: dict[str, Any]) -> tuple[list[Table], list[tuple[str, str, str]]]:
    t = Table("4. Events: denied UDP flood, 2 records per packet (verdict + drop)",
              ["offered pps", "events/s", "read", "kernel lost", "queue lost", "flows served",
               "served/s", "unaccounted"])
    for st in res["stages"]:
        t.add("max" if st["offered_pps"] == 0 else f"{st['offered_pps']:,}",
              fmt_num(st["events_per_s"], digits=0), f"{st['read']:,}",
              f"{st['kernel_lost']:,}", f"{st['queue_lost']:,}", f"{st['flows']:,}",
              fmt_num(st["served_per_s"], digits=0),
              f"{st['unaccounted'] + st['unaccounted_observer']}")
    t.notes += ["events/s = records emitted (2 per policy drop, 1 per other drop, from "
                "the kernel's drop counters) / stage seconds; "
                "read + kernel lost must equal it, and read = flows + queue lost "
                "(unaccounted = the difference, 0 when the books balance).",
                "reader as agent.observing.EventPipeline.run: poll_events(100), then "
                "datapath.lost_events() at most every "
                f"{res.get('lost_every_ms', 0)} ms (0: every poll); "
                f"kernel ring {res.get('ring_pages', AGENT_RING_PAGES)} pages; "
                "FlowObserver queue 65,536, ring 4,095; "
                f"reader {res.get('reader') or '?'}, hand-over "
                f"{res.get('handover', 'on_event')} (flows built lazily for batches: "
                "'flows served' = entries in the ring, built when a reader asks)."]
    best = lossless(res)
    targets = [("events ingested without loss >= 200,000/s", f"{best:,.0f}/s",
                "PASS" if best >= 200_000 else "MISS")]
    follow = res.get("follow_stages", [])
    if not follow:
        return [t], targets
    f = Table("4b. One GetFlows follower during the flood (follow from now, no filter)",
              ["follower", "ring", "offered pps", "events/s", "flows", "received",
               "received/s", "follower lost", "unaccounted"])
    for st in follow:
        f.add(st["follower"], f"{st.get('ring', AGENT_FLOW_RING):,}",
              "max" if st["offered_pps"] == 0 else f"{st['offered_pps']:,}",
              fmt_num(st["events_per_s"], digits=0), f"{st['flows']:,}",
              f"{st['received']:,}", fmt_num(st["received_per_s"], digits=0),
              f"{st['follower_lost']:,}", f"{st['unaccounted_follower']}")
    f.notes += ["stream: the GetFlows handler's loop (observe.stream.FlowStream) in the "
                "agent's process, yielding the serialized responses it hands to the "
                "transport; grpc: the Observer served by observe.h2server on a unix "
                "socket in the agent's process, followed by a gRPC client process "
                "(bench/follower_client.c: HTTP/2, every message split out and its kind "
                "read); grpcio: the same server, a grpcio client process. "
                "received/s = flows received / stage seconds; follower lost "
                "= overwritten in the ring before the follower read them "
                "(HUBBLE_RING_BUFFER); flows seen from the follower's start = received + "
                "follower lost (unaccounted: the difference)."]
    whats = {"stream": "GetFlows follower (handler, in the agent's process)",
             "grpc": "GetFlows follower over gRPC (unix socket, C client)",
             "grpcio": "GetFlows follower over gRPC (grpcio client)"}
    for kind, ring in dict.fromkeys((st["follower"], st.get("ring", AGENT_FLOW_RING))
                                    for st in follow):
        mine = [st for st in follow if st["follower"] == kind
                and st.get("ring", AGENT_FLOW_RING) == ring]
        ok = [st["received_per_s"] for st in mine if st["follower_lost"] == 0
              and st["kernel_lost"] == 0 and st["queue_lost"] == 0 and st["received"] > 0]
        lost = sum(st["follower_lost"] for st in mine)
        rate = max(ok, default=0.0)
        targets.append((f"{whats.get(kind, kind)}, ring {ring:,}, without loss "
                        ">= 200,000 flows/s", f"{rate:,.0f}/s (lost {lost:,} in "
                        f"{len(mine)} stages)", "PASS" if rate >= 200_000 else "MISS"))
    return [t, f], targets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    for flag in ("--rates", "--client-ns", "--client-ip", "--client-if", "--server-ip",
                 "--server-if"):
        w.add_argument(flag, required=True)
    for flag in ("--seconds", "--client-ifindex", "--server-ifindex"):
        w.add_argument(flag, type=int, required=True)
    w.add_argument("--per-event", action="store_true",
                   help="the old hand-over: each event decoded and handed over alone")
    w.add_argument("--ring-pages", type=int, default=AGENT_RING_PAGES)
    w.add_argument("--followers", default=",".join(FOLLOWERS),
                   help="table 4b's followers: stream, grpc, grpcio (comma-separated; "
                        "empty: none)")
    w.add_argument("--follow-rates", default=",".join(map(str, FOLLOW_RATES_FULL)))
    w.add_argument("--follow-rings", default=",".join(map(str, FOLLOW_RINGS)),
                   help="flow ring sizes of table 4b's stages (comma-separated)")
    w.add_argument("--lost-every-ms", type=int, default=100,
                   help="read the kernel lost counter at most this often (0: every poll)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--per-event", action="store_true",
                    help="hand events over one by one (FlowObserver.on_event), as before")
    ap.add_argument("--ring-pages", type=int, default=AGENT_RING_PAGES,
                    help="kernel ring buffer pages (default: the agent's)")
    ap.add_argument("--lost-every-ms", type=int, default=100,
                    help="read the kernel lost counter at most this often (0: every poll)")
    ap.add_argument("--followers", default=",".join(FOLLOWERS),
                    help="followers of table 4b (stream, grpc, grpcio; empty: none)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if serve_worker(a, "events", _worker):
        return
    tabs, targets = tables(run(a.quick, a.per_event, a.ring_pages, a.lost_every_ms,
                               tuple(filter(None, a.followers.split(",")))))
    print_report(tabs, targets)


if __name__ == "__main__":
    main()
