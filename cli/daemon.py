"""`membrane agent`: run the agent on this node until SIGTERM.

Every flag's default is AgentConfig's (agent/config.py), the one place defaults live.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from agent.config import DATAPATHS, IDENTITY_BACKENDS, AgentConfig
from agent.policy.modes import ENFORCEMENT_MODES
from core.errors import MembraneError

DEFAULTS = AgentConfig(node="")

EXAMPLES = """\
examples:
  membrane agent --node kind-worker --source kubernetes
  nsenter --net=/run/netns/NODE membrane agent --node node1 --source lab:/run/membrane/labs/x/store \\
      --state-dir /run/membrane/labs/x/nodes/node1 --socket /run/membrane/labs/x/nodes/node1/agent.sock \\
      --bpffs /sys/fs/bpf/membrane/x/node1
"""


def register(sub: Any) -> None:
    d = DEFAULTS
    p = sub.add_parser("agent", help="run the agent on this node",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node", required=True, help="this node's name")
    p.add_argument("--source", default=d.source, help="kubernetes | lab:<store dir>")
    p.add_argument("--kubeconfig", default=d.kubeconfig)
    p.add_argument("--state-dir", default=d.state_dir, type=Path)
    p.add_argument("--socket", default=d.socket)
    p.add_argument("--bpffs", default=d.bpffs)
    p.add_argument("--cluster", default=d.cluster)
    p.add_argument("--identity-backend", choices=IDENTITY_BACKENDS, default=d.identity_backend,
                   help="crd: MembraneIdentity objects shared by every node (the "
                   "DaemonSet's default); local: this node alone (the lab's); etcd: --etcd")
    p.add_argument("--etcd", action="append", default=list(d.etcd_endpoints), metavar="URL",
                   help="etcd endpoint (repeatable, or comma-separated)")
    p.add_argument("--etcd-ca", default=d.etcd_ca_file, metavar="FILE",
                   help="CA of etcd's serving certificate (https endpoints)")
    p.add_argument("--etcd-cert", default=d.etcd_cert_file, metavar="FILE",
                   help="client certificate for etcd (with --etcd-key)")
    p.add_argument("--etcd-key", default=d.etcd_key_file, metavar="FILE")
    p.add_argument("--etcd-user", default=d.etcd_user, metavar="NAME",
                   help="etcd user, when etcd auth is on (with --etcd-password-file)")
    p.add_argument("--etcd-password-file", default=d.etcd_password_file, metavar="FILE")
    p.add_argument("--identity-grace", type=float, default=d.identity_grace_seconds,
                   metavar="SECONDS")
    p.add_argument("--exclude-label", action="append", default=list(d.exclude_labels),
                   metavar="KEY", help="a pod label key left out of identities (repeatable)")
    p.add_argument("--flow-capacity", type=int, default=d.flow_capacity)
    p.add_argument("--event-queue", type=int, default=d.event_queue_size)
    p.add_argument("--event-ring-pages", type=int, default=d.event_ring_pages,
                   help="kernel ring buffer size in pages (a power of two)")
    p.add_argument("--prometheus-serve-addr", default=d.prometheus_serve_addr,
                   metavar="[HOST]:PORT",
                   help="serve the agent's own metrics (:9962: every address, Cilium's port)")
    p.add_argument("--hubble-metrics-server", default=d.hubble_metrics_server,
                   metavar="[HOST]:PORT",
                   help="serve Hubble's flow metrics (:9965: every address, Cilium's port)")
    p.add_argument("--hubble-metrics", default=d.hubble_metrics, metavar="METRICS",
                   help="which flow metrics, with their context options, as Cilium's "
                        f"(default {d.hubble_metrics!r}; e.g. "
                        "'drop:sourceContext=pod;destinationContext=pod flow')")
    p.add_argument("--metrics-port", type=int, default=d.metrics_port,
                   help="both sets of metrics on 127.0.0.1:PORT")
    p.add_argument("--hubble-export-file-path", default=d.export_file, metavar="FILE",
                   help="write flows to FILE as JSON lines in Hubble's export format")
    p.add_argument("--hubble-export-file-max-size-mb", type=int,
                   default=d.export_file_max_size_mb, metavar="MB",
                   help="rotate the export file at this size")
    p.add_argument("--hubble-export-file-max-backups", type=int,
                   default=d.export_file_max_backups, metavar="N",
                   help="rotated export files kept")
    p.add_argument("--hubble-export-allowlist", action="append",
                   default=list(d.export_allowlist), metavar="JSON",
                   help="export only flows matching these FlowFilters (JSON objects)")
    p.add_argument("--hubble-export-denylist", action="append",
                   default=list(d.export_denylist), metavar="JSON",
                   help="never export flows matching these FlowFilters")
    p.add_argument("--health-port", type=int, default=d.health_port)
    p.add_argument("--health-address", default=d.health_address, metavar="ADDRESS",
                   help="where /healthz and /readyz listen (default: loopback)")
    p.add_argument("--unmanaged-grace", type=float, default=d.unmanaged_grace_seconds,
                   metavar="SECONDS", help="how long a pod of this node may run without "
                   "an endpoint before it is reported unmanaged (and /readyz fails)")
    p.add_argument("--observer-listen", default=d.observer_listen, metavar="HOST:PORT",
                   help="also serve the Observer on TCP (needs the three --tls-* files)")
    p.add_argument("--tls-cert", default=d.tls_cert)
    p.add_argument("--tls-key", default=d.tls_key)
    p.add_argument("--tls-client-ca", default=d.tls_client_ca)
    p.add_argument("--tls-server-name", default=d.tls_server_name,
                   help="the name in the agents' certificates (told to relays)")
    p.add_argument("--tls-client-name", action="append", default=list(d.tls_client_names),
                   metavar="NAME[,NAME]",
                   help="a client certificate CN or SAN that may read flows over TCP "
                        "(repeatable; '*': any the client CA signed)")
    p.add_argument("--datapath", choices=DATAPATHS, default=d.datapath)
    p.add_argument("--attach-mode", choices=("auto", "tcx", "tc"), default=d.attach_mode,
                   help="how programs go on a pod's veth: TCX links (kernel 6.6+), tc "
                        "clsact filters, or auto (TCX where the kernel has it)")
    p.add_argument("--enable-policy", choices=ENFORCEMENT_MODES, default=d.enable_policy,
                   help="default: enforce what policies select; always: deny what no "
                        "policy allows, everywhere; never: enforce nothing (Cilium's)")
    p.add_argument("--policy-audit-mode", type=_flag, nargs="?", const=True,
                   default=d.policy_audit_mode, metavar="BOOL",
                   help="let policy denials through, reported as AUDIT (true|false)")
    maps = p.add_argument_group(
        "map sizes and shares",
        "max_entries of the BPF maps (a changed size recreates that pinned map at\n"
        "start) and what one policy, endpoint or namespace may take of them; what\n"
        "does not fit fails closed for the pods concerned only (not-ready, with the\n"
        "reason in `endpoint list` and `status`)")
    maps.add_argument("--max-policy-entries", type=int, default=d.max_policy_entries,
                      help="allow entries of every local endpoint (%(default)s)")
    maps.add_argument("--max-conntrack-entries", type=int, default=d.max_conntrack_entries,
                      help="tracked connections on this node (%(default)s)")
    maps.add_argument("--max-ipcache-entries", type=int, default=d.max_ipcache_entries,
                      help="pod and node addresses of the cluster (%(default)s)")
    maps.add_argument("--max-cidr-entries", type=int, default=d.max_cidr_entries,
                      help="ipBlock prefixes of every policy (%(default)s)")
    maps.add_argument("--max-endpoints", type=int, default=d.max_endpoints,
                      help="local endpoints (%(default)s)")
    maps.add_argument("--max-policy-entries-per-endpoint", type=int,
                      default=d.max_policy_entries_per_endpoint,
                      help="policy map entries one endpoint may have (%(default)s)")
    maps.add_argument("--max-cidr-prefixes-per-policy", type=int,
                      default=d.max_cidr_prefixes_per_policy,
                      help="ipBlock prefixes (cidrs and excepts) one policy may have "
                      "(%(default)s)")
    maps.add_argument("--namespace-map-share", type=float, default=d.namespace_map_share,
                      metavar="FRACTION",
                      help="of the policy map (this node's endpoints) and the cidr map "
                      "(its policies) one namespace may use (%(default)s)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=run)


def config_from(args: argparse.Namespace) -> AgentConfig:
    return AgentConfig(
        node=args.node, source=args.source, state_dir=args.state_dir, socket=args.socket,
        bpffs=args.bpffs, cluster=args.cluster, identity_backend=args.identity_backend,
        etcd_endpoints=tuple(e for arg in args.etcd for e in arg.split(",") if e),
        etcd_ca_file=args.etcd_ca or None, etcd_cert_file=args.etcd_cert or None,
        etcd_key_file=args.etcd_key or None, etcd_user=args.etcd_user or None,
        etcd_password_file=args.etcd_password_file or None,
        identity_grace_seconds=args.identity_grace,
        exclude_labels=tuple(args.exclude_label), flow_capacity=args.flow_capacity,
        event_queue_size=args.event_queue, event_ring_pages=args.event_ring_pages,
        metrics_port=args.metrics_port, prometheus_serve_addr=args.prometheus_serve_addr,
        hubble_metrics_server=args.hubble_metrics_server, hubble_metrics=args.hubble_metrics,
        export_file=args.hubble_export_file_path,
        export_file_max_size_mb=args.hubble_export_file_max_size_mb,
        export_file_max_backups=args.hubble_export_file_max_backups,
        export_allowlist=tuple(json_objects(args.hubble_export_allowlist)),
        export_denylist=tuple(json_objects(args.hubble_export_denylist)),
        tls_server_name=args.tls_server_name,
        health_port=args.health_port, health_address=args.health_address,
        unmanaged_grace_seconds=args.unmanaged_grace,
        kubeconfig=args.kubeconfig, datapath=args.datapath, attach_mode=args.attach_mode,
        max_policy_entries=args.max_policy_entries,
        max_conntrack_entries=args.max_conntrack_entries,
        max_ipcache_entries=args.max_ipcache_entries, max_cidr_entries=args.max_cidr_entries,
        max_endpoints=args.max_endpoints,
        max_policy_entries_per_endpoint=args.max_policy_entries_per_endpoint,
        max_cidr_prefixes_per_policy=args.max_cidr_prefixes_per_policy,
        namespace_map_share=args.namespace_map_share, observer_listen=args.observer_listen,
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
        tls_client_names=tuple(name.strip() for names in args.tls_client_name
                               for name in names.split(",") if name.strip()),
        enable_policy=args.enable_policy, policy_audit_mode=args.policy_audit_mode)


def _flag(text: str) -> bool:
    """A boolean flag's value, as Go's flag package reads --flag=VALUE (the ConfigMap
    passes "true" or "false")."""
    value = text.strip().lower()
    if value in ("1", "t", "true", "yes", "on"):
        return True
    if value in ("0", "f", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"{text!r}: expected true or false")


def json_objects(values: list[str]) -> list[str]:
    """Each flag value holds one or more JSON objects ('{...},{...}' as Cilium's
    export lists do): one string per object. An empty value (an unset ConfigMap key) is
    none."""
    decoder = json.JSONDecoder()
    out = []
    for text in values:
        pos = 0
        text = text.strip()
        while pos < len(text):
            try:
                obj, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as err:
                raise MembraneError(f"export filter {text!r}: not JSON: {err}") from None
            out.append(json.dumps(obj))
            pos = end
            while pos < len(text) and text[pos] in " ,\n\t":
                pos += 1
    return out


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Every other `membrane` command builds this parser too: only the agent loads the
    # engine, allocators, datapath and servers.
    from agent.daemon import Agent

    agent = Agent(config_from(args))
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger("membrane.agent").info("signal %d: shutting down", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.start()
    stopping.wait()
    agent.stop()
    return 0
