"""`membrane agent`: run the agent on this node until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from agent.config import AgentConfig

EXAMPLES = """\
examples:
  membrane agent --node kind-worker --source kubernetes
  nsenter --net=/run/netns/NODE membrane agent --node node1 --source lab:/run/membrane/labs/x/store \\
      --state-dir /run/membrane/labs/x/nodes/node1 --socket /run/membrane/labs/x/nodes/node1/agent.sock \\
      --bpffs /sys/fs/bpf/membrane/x/node1
"""


def register(sub: Any) -> None:
    p = sub.add_parser("agent", help="run the agent on this node",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node", required=True, help="this node's name")
    p.add_argument("--source", default="kubernetes", help="kubernetes | lab:<store dir>")
    p.add_argument("--kubeconfig", default=None)
    p.add_argument("--state-dir", default="/var/lib/membrane", type=Path)
    p.add_argument("--socket", default="/run/membrane/agent.sock")
    p.add_argument("--bpffs", default="/sys/fs/bpf/membrane")
    p.add_argument("--cluster", default="default")
    p.add_argument("--identity-backend", choices=("local", "etcd", "crd"), default="local",
                   help="crd: MembraneIdentity objects shared by every node (the "
                   "DaemonSet's default); local: this node alone (the lab's); etcd: --etcd")
    p.add_argument("--etcd", action="append", default=[], metavar="URL")
    p.add_argument("--identity-grace", type=float, default=300.0, metavar="SECONDS")
    p.add_argument("--exclude-label", action="append", default=[], metavar="KEY",
                   help="a pod label key left out of identities (repeatable)")
    p.add_argument("--flow-capacity", type=int, default=4095)
    p.add_argument("--event-queue", type=int, default=65536)
    p.add_argument("--event-ring-pages", type=int, default=512,
                   help="kernel ring buffer size in pages (a power of two)")
    p.add_argument("--metrics-port", type=int, default=None)
    p.add_argument("--health-port", type=int, default=None)
    p.add_argument("--observer-listen", default=None, metavar="HOST:PORT",
                   help="also serve the Observer on TCP (needs the three --tls-* files)")
    p.add_argument("--tls-cert", default=None)
    p.add_argument("--tls-key", default=None)
    p.add_argument("--tls-client-ca", default=None)
    p.add_argument("--datapath", choices=("bpf", "fake"), default="bpf")
    p.add_argument("--max-policy-entries", type=int, default=65536)
    p.add_argument("--max-conntrack-entries", type=int, default=262144)
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from agent.daemon import Agent

    config = AgentConfig(
        node=args.node, source=args.source, state_dir=args.state_dir, socket=args.socket,
        bpffs=args.bpffs, cluster=args.cluster, identity_backend=args.identity_backend,
        etcd_endpoints=tuple(args.etcd), identity_grace_seconds=args.identity_grace,
        exclude_labels=tuple(args.exclude_label), flow_capacity=args.flow_capacity,
        event_queue_size=args.event_queue, event_ring_pages=args.event_ring_pages,
        metrics_port=args.metrics_port,
        health_port=args.health_port, kubeconfig=args.kubeconfig, datapath=args.datapath,
        max_policy_entries=args.max_policy_entries,
        max_conntrack_entries=args.max_conntrack_entries, observer_listen=args.observer_listen,
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca)
    agent = Agent(config)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger("membrane.agent").info("signal %d: shutting down", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.start()
    if args.health_port:
        from agent.health import serve_health

        serve_health(agent, args.health_port)
    stopping.wait()
    agent.stop()
    return 0
