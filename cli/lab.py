"""`membrane lab ...`: a cluster of network namespaces on this machine. Thin wiring over
lab.controller."""

from __future__ import annotations

import argparse
import json
import subprocess

from agent.policy.matrix import FAMILIES, to_json, to_table
from agent.policy.modes import ENFORCEMENT_MODES
from core.errors import LabError
from lab.controller import Lab
from lab.netbuilder import pod_command
from lab.probe import run_probe
from lab.state import known_labs

EXAMPLES = """\
examples:
  membrane lab up --nodes 2 -f demo/tutorial/demo-app.yaml
  membrane lab up --policy-audit-mode -f app.yaml -f cluster-policies/
  membrane lab exec default/frontend -- curl -sI backend:8080
  membrane lab apply -f demo/tutorial/01-backend-ingress-deny.yaml
  membrane lab label namespace kube-system contains=coredns
  membrane lab probe --port 8080 -o table
  membrane lab probe --family ipv6 --port 80 --protocol UDP
  membrane lab stop agent --node node2 --signal KILL    # rehearse a crash
  membrane lab start agent --node node2
  membrane lab stop etcd; membrane lab start etcd       # an etcd outage
  membrane lab down
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = sub.add_parser("lab", help="a cluster of network namespaces on this machine",
                         description="Build and drive a lab: node and pod network namespaces, "
                                     "an agent per node, a DNS pod and an external host.",
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = lab.add_subparsers(dest="verb", metavar="VERB")

    def usage(args: argparse.Namespace) -> int:
        lab.print_help()
        return 2

    lab.set_defaults(func=usage)

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help, description=help)
        p.add_argument("--name", default="membrane", help="the lab (default: membrane)")
        return p

    p = verb("up", "create a lab and apply manifests to it")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("-f", "--filename", dest="files", action="append", default=[])
    p.add_argument("-n", "--namespace", default=None, help="for documents without one")
    p.add_argument("--identity-backend", choices=("local", "etcd"), default="local")
    p.add_argument("--etcd", default="", help="etcd URL (default with etcd: one the lab starts)")
    p.add_argument("--no-agent", action="store_true", help="network only, no enforcement")
    p.add_argument("--policy-audit-mode", action="store_true",
                   help="agents let policy denials through, reported as AUDIT")
    p.add_argument("--enable-policy", choices=ENFORCEMENT_MODES, default="default",
                   help="the agents' enforcement mode (default|always|never)")
    p.set_defaults(func=cmd_up)

    for name, func, help in (("apply", cmd_apply, "create or update objects from files"),
                             ("delete", cmd_delete, "delete the objects the files declare")):
        p = verb(name, help)
        p.add_argument("-f", "--filename", dest="files", action="append", required=True)
        p.add_argument("-n", "--namespace", default=None, help="for documents without one")
        p.set_defaults(func=func)

    p = verb("label", "set (k=v) or remove (k-) labels of a pod or namespace")
    p.add_argument("kind", choices=("pod", "namespace", "ns"))
    p.add_argument("target", help="NS/NAME for a pod, NAME for a namespace")
    p.add_argument("changes", nargs="+", metavar="k=v|k-")
    p.set_defaults(func=cmd_label)

    p = verb("exec", "run a command in a pod's network namespace")
    p.add_argument("pod", help="NS/NAME, or NS/WORKLOAD when the workload has one pod")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ...")
    p.set_defaults(func=cmd_exec)

    p = verb("status", "nodes, pods and agents of the lab")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_status)

    p = verb("probe", "try every ordered pair of pods with real connections")
    p.add_argument("--port", type=int, action="append", dest="ports")
    p.add_argument("--protocol", action="append", dest="protocols", type=str.upper,
                   choices=("TCP", "UDP", "SCTP"),
                   help="TCP (default) or UDP; SCTP is refused with the reason")
    p.add_argument("-o", "--output", choices=("json", "table"), default="json")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per denied probe")
    p.add_argument("--family", type=str.lower, choices=sorted(FAMILIES), default="ipv4",
                   help="connect to the pods' addresses of this IP family (default ipv4)")
    p.set_defaults(func=cmd_probe)

    p = verb("stop", "stop the lab's etcd or a node's agent (a fault to rehearse)")
    p.add_argument("component", choices=("etcd", "agent"))
    p.add_argument("--node", help="the node whose agent (agent only)")
    p.add_argument("--signal", choices=("TERM", "KILL"), default="TERM",
                   help="TERM (default) or KILL: a crash, no cleanup (agent only)")
    p.set_defaults(func=cmd_stop)

    p = verb("start", "start the lab's etcd or a node's agent again; pending pods retried")
    p.add_argument("component", choices=("etcd", "agent"))
    p.add_argument("--node", help="the node whose agent (agent only)")
    p.set_defaults(func=cmd_start)

    p = verb("down", "remove everything the lab created")
    p.add_argument("--all-mine", action="store_true", help="every lab recorded on this machine")
    p.set_defaults(func=cmd_down)


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(args.name)


def cmd_up(args: argparse.Namespace) -> int:
    agent_args = [f"--enable-policy={args.enable_policy}"] if args.enable_policy != "default" \
        else []
    if args.policy_audit_mode:
        agent_args.append("--policy-audit-mode")
    ok = _lab(args).up(args.nodes, args.files, args.identity_backend, args.etcd,
                       agents=not args.no_agent, namespace=args.namespace,
                       agent_args=agent_args)
    print(f"lab {args.name} is up: {args.nodes} node(s); `membrane lab status --name {args.name}`")
    return 0 if ok else 1


def cmd_apply(args: argparse.Namespace) -> int:
    return 0 if _lab(args).apply(args.files, args.namespace) else 1


def cmd_delete(args: argparse.Namespace) -> int:
    return 0 if _lab(args).delete(args.files, args.namespace) else 1


def cmd_label(args: argparse.Namespace) -> int:
    kind = "Pod" if args.kind == "pod" else "Namespace"
    _lab(args).label(kind, args.target, args.changes)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    if args.component == "etcd" and (args.node or args.signal != "TERM"):
        raise LabError("--node and --signal are for `lab stop agent`")
    _lab(args).stop(args.component, args.node, args.signal)
    what = "etcd" if args.component == "etcd" else f"the agent of {args.node}"
    print(f"lab {args.name}: {what} stopped")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    if args.component == "etcd" and args.node:
        raise LabError("--node is for `lab start agent`")
    ok = _lab(args).start(args.component, args.node)
    what = "etcd" if args.component == "etcd" else f"the agent of {args.node}"
    print(f"lab {args.name}: {what} started" + ("" if ok else "; some pods are still pending"))
    return 0 if ok else 1


def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("nothing to run: `membrane lab exec NS/NAME -- CMD ...`")
    netns = _lab(args).netns_of(args.pod)
    try:
        return subprocess.call(pod_command(netns, command))
    except KeyboardInterrupt:
        return 130


def cmd_status(args: argparse.Namespace) -> int:
    status = _lab(args).status()
    if args.output == "json":
        print(json.dumps(status, indent=2))
        return 0
    external, etcd = status["external"], status["etcd"]
    print(f"lab {status['lab']}  dns {status['dns']} {status['dns6']}  external "
          f"{external['ip']} {external['ip6']}".rstrip()
          + (f"  etcd {etcd['url']} ({'running' if etcd['running'] else 'stopped'})"
             if etcd else ""))
    print()
    print(_table(["NODE", "IPv4", "IPv6", "POD CIDRs", "NETNS", "AGENT"],
                 [[n["name"], n["ip"], n["ip6"] or "-",
                   ",".join(c for c in (n["podCIDR"], n["podCIDR6"]) if c), n["netns"],
                   n["agent"]] for n in status["nodes"]]))
    print()
    print(_table(["POD", "IPv4", "IPv6", "NODE", "NETNS", "PORTS", "STATUS"],
                 [[p["pod"], p["ip"], p["ip6"] or "-", p["node"],
                   p["netns"] or "(hostNetwork)", ",".join(p["ports"]), p["status"]]
                  for p in status["pods"]]))
    return 0


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [header] + rows)


def cmd_probe(args: argparse.Namespace) -> int:
    state = _lab(args).state()
    verdicts = run_probe(state, args.ports or [80], args.protocols or ["TCP"], args.timeout,
                         FAMILIES[args.family])
    print(to_json(verdicts) if args.output == "json" else to_table(verdicts), end="\n")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    for name in (known_labs() if args.all_mine else [args.name]):
        removed = Lab(name).down()
        print(f"lab {name}: " + ("removed" if removed else "nothing to remove"))
    return 0

