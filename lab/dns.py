"""The lab's cluster DNS (the kube-system/coredns pod's workload), UDP and TCP.

Answers from the lab's store directory, re-read whenever it changes:

    <svc>.<ns>.svc.cluster.local   the IPs of the pods the service selects
    <pod>.<ns>.svc.cluster.local   the pod's IP (a lab convenience; a service wins a tie)
    <a-b-c-d>.<ns>.pod.cluster.local, <pod>.<ns>.pod.cluster.local
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

from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer

from agent.sources.labdir import Doc, LabStoreDir
from lab.names import CLUSTER_DOMAIN, EXTERNAL_NAMES

TTL = 5


def _meta(doc: Doc) -> tuple[str, str, dict[str, str]]:
    meta = doc.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name", "")),
            dict(meta.get("labels") or {}))


def records_from(docs: list[Doc], external_ip: str) -> dict[str, list[str]]:
    """Fully qualified name (lower case, no trailing dot) -> IPv4 addresses."""
    pods: list[tuple[str, str, dict[str, str], str]] = []
    for doc in docs:
        if doc.get("kind") == "Pod":
            ns, name, labels = _meta(doc)
            ip = str((doc.get("status") or {}).get("podIP") or "")
            if ip:
                pods.append((ns, name, labels, ip))
    names: dict[str, list[str]] = {n: [external_ip] for n in EXTERNAL_NAMES}
    for ns, name, _, ip in pods:
        names[f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"] = [ip]
        names[f"{name}.{ns}.pod.{CLUSTER_DOMAIN}"] = [ip]
        names[f"{ip.replace('.', '-')}.{ns}.pod.{CLUSTER_DOMAIN}"] = [ip]
    for doc in docs:
        if doc.get("kind") != "Service":
            continue
        ns, name, _ = _meta(doc)
        selector = dict((doc.get("spec") or {}).get("selector") or {})
        if not selector:
            continue  # no selector: endpoints are managed by hand, which the lab has not
        ips = sorted({ip for pns, _, labels, ip in pods
                      if pns == ns and all(labels.get(k) == v for k, v in selector.items())})
        names[f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"] = ips
    return {k.lower(): v for k, v in names.items()}


class StoreResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, store_dir: str, external_ip: str) -> None:
        self.store = LabStoreDir(store_dir)
        self.external_ip = external_ip
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
                self.names = records_from(docs, self.external_ip)
                self.mtime = mtime
            return self.names

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()  # sets QR and AA: we are the authority for every name we know
        qname = str(request.q.qname).rstrip(".").lower()
        ips = self._current().get(qname)
        if ips is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype in (QTYPE.A, QTYPE.ANY):
            for ip in ips:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
        # Known name, other type (AAAA...): NOERROR with no answer, as CoreDNS does.
        return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.dns")
    parser.add_argument("--store", required=True, help="the lab's store directory")
    parser.add_argument("--external-ip", required=True)
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
