"""`membrane demo`: the NetworkPolicy tutorial (seeds/networkpolicy-tutorial.txt), replayed
on a lab with real packets. Each step applies what the tutorial applies, runs the checks it
shows (curl from a pod: HTTP 200, connection timeout, or DNS resolution timing out) and
prints what the tutorial expects next to what happened. Exit code 1 if any check differs.

The demo drives the lab through the same `membrane lab ...` verbs a person would type.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.api.client import LAB_ROOT
from cli.command import Subparsers, add_command

TUTORIAL = Path(__file__).resolve().parents[1] / "demo" / "tutorial"

# What the tutorial shows, reduced to the first line of curl's answer.
OK = "HTTP 200"
REDIRECT = "HTTP 301"
TIMEOUT = "connection timed out"
DNS_TIMEOUT = "resolving timed out"


@dataclass
class Check:
    what: str
    pod_label: tuple[str, str, str]   # (namespace, label key, value) of the client pod
    target: str                       # host:port, or "{backend_ip}:8080"
    expect: str


@dataclass
class Step:
    title: str
    apply: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    label_namespace: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    observe: bool = False


FRONTEND = ("default", "app", "frontend")
BACKEND = ("default", "app", "backend")
MONITORING = ("monitoring", "app", "monitoring")
F_TO_B = Check("frontend -> backend:8080", FRONTEND, "backend:8080", OK)
M_TO_B = Check("monitoring -> backend.default.svc.cluster.local:8080", MONITORING,
               "backend.default.svc.cluster.local:8080", OK)

STEPS = (
    Step("demo app, no policy: default allow",
         checks=(F_TO_B, Check("backend -> kubernetes.io", BACKEND, "kubernetes.io", REDIRECT))),
    Step("01 backend ingress default deny", apply=("01-backend-ingress-deny.yaml",),
         checks=(Check(F_TO_B.what, FRONTEND, "backend:8080", TIMEOUT),
                 Check("backend -> kubernetes.io (egress still open, replies pass: stateful)",
                       BACKEND, "kubernetes.io", REDIRECT)),
         observe=True),
    Step("02 allow frontend -> backend", apply=("02-backend-ingress-allow-frontend.yaml",),
         checks=(F_TO_B,)),
    Step("03 allow within namespace, then delete 02", apply=("03-all-pods-allow-within-namespace.yaml",),
         delete=("02-backend-ingress-allow-frontend.yaml",), checks=(F_TO_B,)),
    Step("monitoring namespace: denied across namespaces", apply=("monitoring-app.yaml",),
         checks=(Check(M_TO_B.what, MONITORING, M_TO_B.target, TIMEOUT),)),
    Step("04 allow from namespaces type=monitoring",
         apply=("04-backend-ingress-allow-monitoring-namespace.yaml",), checks=(M_TO_B,)),
    Step("05 namespaceSelector AND podSelector, then delete 04",
         apply=("05-backend-ingress-allow-monitoring-app.yaml",),
         delete=("04-backend-ingress-allow-monitoring-namespace.yaml",), checks=(M_TO_B,)),
    Step("06 frontend egress default deny (DNS too)", apply=("06-frontend-egress-deny.yaml",),
         checks=(Check(F_TO_B.what, FRONTEND, "backend:8080", DNS_TIMEOUT),)),
    Step("07 allow frontend -> backend egress (DNS still denied)",
         apply=("07-frontend-egress-allow-to-backend.yaml",),
         checks=(Check(F_TO_B.what, FRONTEND, "backend:8080", DNS_TIMEOUT),
                 Check("frontend -> backend pod IP:8080", FRONTEND, "{backend_ip}:8080", OK))),
    Step("08 allow DNS to kube-system (labelled contains=coredns)",
         label_namespace=("kube-system", "contains=coredns"),
         apply=("08-all-pods-egress-allow-dns.yaml",),
         checks=(F_TO_B,
                 Check("backend -> kubernetes.io (side effect: backend egress now denied)",
                       BACKEND, "kubernetes.io", TIMEOUT))),
)


def classify(first_line: str) -> str:
    """curl's first line, reduced to what the tutorial distinguishes. curl words its
    timeouts differently across versions ("Connection timed out after", "Failed to
    connect ... Timeout was reached", "Resolving timed out after"); exit 28 is a timeout,
    and a name that could not be resolved in time is the DNS case."""
    low = first_line.lower()
    if low.startswith("http/"):
        return f"HTTP {first_line.split()[1]}"
    if "resolv" in low:
        return DNS_TIMEOUT
    if "(28)" in low or "timed out" in low or "timeout" in low:
        return TIMEOUT
    return first_line


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "demo", help="replay the NetworkPolicy tutorial on a lab",
                    examples="membrane demo\nmembrane demo --keep --name tut\n")
    p.add_argument("--name", default="demo", help="lab name (default demo)")
    p.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    p.add_argument("--timeout", type=int, default=3, help="curl --connect-timeout seconds")
    p.set_defaults(func=run)


class Demo:
    def __init__(self, lab: str, timeout: int) -> None:
        self.lab = lab
        self.timeout = timeout
        self.exe = [sys.executable, "-m", "cli.main"]
        self.failures = 0

    def membrane(self, *args: str, check: bool = True, show: bool = True) -> subprocess.CompletedProcess[str]:
        if show:
            print(f"$ membrane {' '.join(shlex.quote(a) for a in args)}", flush=True)
        proc = subprocess.run([*self.exe, *args], text=True, capture_output=True)
        if check and proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"demo: `membrane {' '.join(args)}` failed ({proc.returncode})")
        return proc

    def pods(self) -> list[dict[str, Any]]:
        store = LAB_ROOT / self.lab / "store" / "objects.json"
        return [d for d in json.loads(store.read_text())["objects"] if d.get("kind") == "Pod"]

    def pod(self, namespace: str, key: str, value: str) -> dict[str, Any]:
        for doc in self.pods():
            meta = doc["metadata"]
            if meta.get("namespace", "default") == namespace and (meta.get("labels") or {}).get(key) == value:
                return doc
        raise SystemExit(f"demo: no pod with {key}={value} in namespace {namespace}")

    def curl(self, check: Check) -> str:
        client = self.pod(*check.pod_label)["metadata"]
        target = check.target.format(backend_ip=self.pod(*BACKEND).get("status", {}).get("podIP", ""))
        ref = f"{client.get('namespace', 'default')}/{client['name']}"
        proc = self.membrane("lab", "exec", "--name", self.lab, ref, "--", "curl", "-sS", "-I",
                             "--connect-timeout", str(self.timeout), "-m", str(self.timeout + 2),
                             target, check=False, show=False)
        text = (proc.stdout + proc.stderr).strip()
        first = text.splitlines()[0] if text else f"exit {proc.returncode}"
        return classify(first)

    def step(self, n: int, step: Step) -> None:
        print(f"\n== Step {n}: {step.title}")
        if step.label_namespace:
            ns, label = step.label_namespace
            self.membrane("lab", "label", "--name", self.lab, "namespace", ns, label)
        for f in step.apply:
            self.membrane("lab", "apply", "--name", self.lab, "-f", str(TUTORIAL / f))
        for f in step.delete:
            self.membrane("lab", "delete", "--name", self.lab, "-f", str(TUTORIAL / f))
        rows = []
        for check in step.checks:
            got = self.curl(check)
            ok = got == check.expect
            self.failures += not ok
            rows.append((check.what, check.expect, got, "ok" if ok else "DIFFERS"))
        width = max(len(r[0]) for r in rows)
        print(f"  {'check'.ljust(width)}  {'tutorial':<22} {'lab':<22} ")
        for what, expect, got, verdict in rows:
            print(f"  {what.ljust(width)}  {expect:<22} {got:<22} {verdict}")
        if step.observe:
            print("\nWhy? The flows of the denied connection, as `hubble observe` shows them:")
            out = self.membrane("observe", "--lab", self.lab, "--from-label", "app=frontend",
                                "--to-label", "app=backend", "--last", "6", check=False)
            print(out.stdout.rstrip() or out.stderr.rstrip())

    def run(self) -> int:
        self.membrane("lab", "down", "--name", self.lab, check=False, show=False)
        t0 = time.monotonic()
        self.membrane("lab", "up", "--name", self.lab, "-f", str(TUTORIAL / "demo-app.yaml"))
        print(f"(lab up in {time.monotonic() - t0:.1f}s)")
        for n, step in enumerate(STEPS):
            self.step(n, step)
        print("\n== Endpoints at the end (membrane endpoint list)")
        print(self.membrane("endpoint", "list", "--lab", self.lab, show=False).stdout.rstrip())
        print(f"\n{'All checks match the tutorial.' if not self.failures else f'{self.failures} check(s) differ from the tutorial.'}")
        return 1 if self.failures else 0


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("demo: needs root (network namespaces, BPF)", file=sys.stderr)
        return 1
    demo = Demo(args.name, args.timeout)
    try:
        return demo.run()
    finally:
        if not args.keep:
            demo.membrane("lab", "down", "--name", args.name, check=False, show=False)
