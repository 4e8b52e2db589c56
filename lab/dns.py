"""The lab's cluster DNS (the kube-system/coredns pod's workload), UDP and TCP.

Answers from the lab's store directory, re-read whenever it changes, with A records for
IPv4 addresses and AAAA records for IPv6 ones (a dual-stack name has both):

    <svc>.<ns>.svc.cluster.local   the IPs of the pods the service selects
    <pod>.<ns>.svc.cluster.local   the pod's IPs (a lab convenience; a service wins a tie)
    <a-b-c-d>.<ns>.pod.cluster.local, <pod>.<ns>.pod.cluster.local
    <fd00-10-244-1--5>.<ns>.pod.cluster.local   (an IPv6 address, colons as dashes)
    kubernetes.io, www.kubernetes.io    the lab's external host

Short names work through the search path in each pod's resolv.conf. Anything else is
NXDOMAIN: the lab has no upstream, its namespaces have no route to the real network.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer

from agent.sources.labdir import Doc, LabStoreDir
from lab.names import CLUSTER_DOMAIN, EXTERNAL_NAMES

TTL = 5


def _meta(doc: Doc) -> tuple[str, str, dict[str, str]]:
    meta = doc.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name", "")),
            dict(meta.get("labels") or {}))


def _pod_ips(doc: Doc) -> list[str]:
    """status.podIP and status.podIPs, each once, in that order."""
    status = doc.get("status") or {}
    ips = [str(status.get("podIP") or "")]
    ips += [str((entry or {}).get("ip") or "") for entry in status.get("podIPs") or []]
    return list(dict.fromkeys(ip for ip in ips if ip))


def records_from(docs: list[Doc], external_ips: list[str]) -> dict[str, list[str]]:
    """Fully qualified name (lower case, no trailing dot) -> addresses (either family)."""
    pods: list[tuple[str, str, dict[str, str], list[str]]] = []
    for doc in docs:
        if doc.get("kind") == "Pod":
            ns, name, labels = _meta(doc)
            ips = _pod_ips(doc)
            if ips:
                pods.append((ns, name, labels, ips))
    names: dict[str, list[str]] = {n: list(external_ips) for n in EXTERNAL_NAMES}
    for ns, name, _, ips in pods:
        names[f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"] = ips
        names[f"{name}.{ns}.pod.{CLUSTER_DOMAIN}"] = ips
        for ip in ips:
            dashed = ip.replace(".", "-").replace(":", "-")
            names[f"{dashed}.{ns}.pod.{CLUSTER_DOMAIN}"] = [ip]
    for doc in docs:
        if doc.get("kind") != "Service":
            continue
        ns, name, _ = _meta(doc)
        selector = dict((doc.get("spec") or {}).get("selector") or {})
        if not selector:
            continue  # no selector: endpoints are managed by hand, which the lab has not
        ips = sorted({ip for pns, _, labels, pod_ips in pods for ip in pod_ips
                      if pns == ns and all(labels.get(k) == v for k, v in selector.items())})
        names[f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"] = ips
    return {k.lower(): v for k, v in names.items()}


class StoreResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, store_dir: str, external_ips: list[str]) -> None:
        self.store = LabStoreDir(store_dir)
        self.external_ips = list(external_ips)
        self.lock = threading.Lock()
        self.mtime = -1
        self.names: dict[str, list[str]] = {}

    def _current(self) -> dict[str, list[str]]:
        with self.lock:
            try:
                mtime = self.store.file.stat().st_mtime_ns
            except FileNotFoundError:
                mtime = 0
            if mtime != self.mtime:
                _, docs = self.store.read()
                self.names = records_from(docs, self.external_ips)
                self.mtime = mtime
            return self.names

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()  # sets QR and AA: we are the authority for every name we know
        qname = str(request.q.qname).rstrip(".").lower()
        ips = self._current().get(qname)
        if ips is None:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            qtype = request.q.qtype
            for ip in ips:
                v6 = ":" in ip
                if qtype == QTYPE.ANY or qtype == (QTYPE.AAAA if v6 else QTYPE.A):
                    reply.add_answer(RR(request.q.qname, QTYPE.AAAA if v6 else QTYPE.A,
                                        rdata=AAAA(ip) if v6 else A(ip), ttl=TTL))
        # Known name, another type (or no address of the family asked): NOERROR with no
        # answer, as CoreDNS does.
        return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.dns")
    parser.add_argument("--store", required=True, help="the lab's store directory")
    parser.add_argument("--external-ip", action="append", required=True,
                        help="the external host's address (repeat: one per family)")
    parser.add_argument("--port", type=int, default=53)
    args = parser.parse_args(argv)
    resolver = StoreResolver(args.store, args.external_ip)
    servers = [DNSServer(resolver, port=args.port, address="0.0.0.0", tcp=tcp,
                         logger=_Quiet()) for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    while not stop.wait(1.0):
        pass
    for s in servers:
        s.stop()
    return 0


class _Quiet:
    """dnslib logs every query to stdout by default; the lab keeps its logs for errors."""

    def __getattr__(self, name: str) -> Any:
        if name == "log_error":
            return lambda handler, e: print(f"dns error: {e}", file=sys.stderr)
        return lambda *a, **k: None


if __name__ == "__main__":
    sys.exit(main())
