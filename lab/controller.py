"""The lab verbs: up, apply, delete, label, status, stop, start, down. Wiring of the
modules beside it.

The store directory is the lab's API server: every object is written there, and each
node's agent follows it. A pod is written to the store, wired, registered with its
node's agent (which returns once the pod is enforced) and only then gets its workload:
no moment in which a selected pod answers unenforced.

A pod its agent cannot enforce (agent stopped, an identity etcd cannot allocate) stays
*pending*, as a pod whose CNI ADD fails does: wired, registered when its agent answers
(so fail-closed), no workload. `apply` waits at most APPLY_WAIT_SECONDS in all, names
each pending pod and node that is behind, and holds back nothing else; `lab start`
(etcd or an agent) tries the pending pods again.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable, TextIO

from agent.api.client import LAB_ROOT, AgentClient
from agent.k8s.loader import CLUSTER_SCOPED_KINDS, parse_document, read_documents
from agent.k8s.objects import Namespace, Node, Pod
from agent.k8s.workloads import WORKLOAD_KINDS
from agent.sources.labdir import Doc, LabStoreDir, doc_key
from agent.store import StoreObject
from core.errors import AgentUnreachable, LabError, MembraneError
from lab import agents as agent_procs
from lab import netbuilder
from lab import pods as podlib
from lab import relay
from lab import topology
from lab.documents import dns_pod_doc, namespace_doc, node_doc, pod_document
from lab.names import EXTERNAL_NAMES, LabNames
from lab.processes import is_ours, python_in_pod, spawn, stop, wait_ready
from lab.state import LabState, NodeState, PodState, Process, lab_lock, lab_root

MAX_NODES = 50
CLUSTER_SCOPED = CLUSTER_SCOPED_KINDS
DNS_NAMESPACE, DNS_POD = "kube-system", "coredns"
# What one apply (delete, label) waits for its pods and its revision, in all: a pod that
# cannot become ready is reported pending within it, and holds back nothing else.
APPLY_WAIT_SECONDS = 25.0
# Of which registering new pods may take at most this much.
POD_READY_SECONDS = 15.0
COMPONENTS = ("etcd", "agent")


class Lab:
    def __init__(self, name: str, err: TextIO | None = None) -> None:
        self.names = LabNames(name)
        self.name = name
        self.err = err

    def state(self) -> LabState:
        """The lab's recorded state; LabError when the lab is not up."""
        state = LabState.load(self.name)
        if state is None:
            raise LabError(f"lab {self.name} is not up: `membrane lab up --name {self.name}`")
        return state

    # -- up ------------------------------------------------------------------------
    def up(self, nodes: int, paths: list[str], identity_backend: str = "local",
           etcd_url: str = "", agents: bool = True, namespace: str | None = None,
           agent_args: list[str] | None = None) -> bool:
        """Builds the lab; returns False if some documents of `paths` failed. agent_args:
        more `membrane agent` flags for every node (--policy-audit-mode, ...)."""
        if not 1 <= nodes <= MAX_NODES:
            raise LabError(f"--nodes {nodes}: a lab has 1 to {MAX_NODES} nodes")
        with lab_lock(self.name):
            if LabState.load(self.name) is not None:
                raise LabError(f"lab {self.name} is already up (`membrane lab down --name "
                               f"{self.name}` first, or pick another --name)")
            state = LabState(name=self.name, root=str(lab_root(self.name)), agents=agents,
                             identity_backend=identity_backend, etcd_url=etcd_url,
                             agent_args=list(agent_args or []))
            try:
                self._build(state, nodes)
                ok = self._apply(state, paths, namespace)
                if not podlib.has_dns_address(state):
                    # After the files, so that a CoreDNS of theirs takes the DNS address.
                    self._add_dns_pod(state, LabStoreDir(state.store_dir))
                return ok
            except BaseException:
                # Half a lab helps nobody: take down what was recorded, then report.
                try:
                    self._teardown(state)
                except MembraneError as error:
                    self._error(error)  # the first failure is the one to raise
                raise

    def _build(self, state: LabState, count: int) -> None:
        state.save()
        store = LabStoreDir(state.store_dir)
        store.create()
        etcd_here = state.agents and state.identity_backend == "etcd" and not state.etcd_url
        with topology.builder(state) as net:
            topology.create_underlay(net, state, self.names.underlay_netns,
                                     with_etcd_ip=etcd_here)
            topology.create_external(net, state, self.names.external_netns)
            for i in range(1, count + 1):
                name = self.names.node_name(i)
                topology.create_node(net, state, NodeState(
                    name=name, index=i, netns=self.names.node_netns(name),
                    ip=LabNames.node_ip(i), pod_cidr=LabNames.pod_cidr(i),
                    ip6=LabNames.node_ip6(i), pod_cidr6=LabNames.pod_cidr6(i)))
            topology.route_pod_cidrs(net, state)
        self._start_external_server(state)
        # Nodes and the namespaces every cluster has, before any agent reads the store.
        store.apply([node_doc(n) for n in state.nodes.values()]
                    + [namespace_doc("default"), namespace_doc(DNS_NAMESPACE)])
        if state.agents:
            if etcd_here:
                agent_procs.start_etcd(state)
            procs = [(n, agent_procs.start_agent(state, n)) for n in state.nodes.values()]
            for node, proc in procs:
                agent_procs.wait_agent(state, node, proc)
            relay.start_relay(state)

    def _start_external_server(self, state: LabState) -> None:
        cmd = python_in_pod(state.external_netns, "lab.servers",
                            ["--lab", state.name, "--name", EXTERNAL_NAMES[0],
                             "--status", "301", "--location", "https://kubernetes.io/",
                             "--tcp", "80", "--udp", "80"])
        log = Path(state.root) / "external.log"
        proc = spawn(cmd, log, stdout=subprocess.PIPE)
        state.processes.append(Process(
            pid=proc.pid, marker=f"lab.servers --lab {state.name} --name {EXTERNAL_NAMES[0]} "))
        state.save()
        wait_ready(proc, "the external host's server", log)

    def _add_dns_pod(self, state: LabState, store: LabStoreDir) -> None:
        req = podlib.PodRequest(DNS_NAMESPACE, DNS_POD, ports=[53], dns=True)
        pod = podlib.place(state, self.names, req)
        revision = store.apply([dns_pod_doc(pod)])
        deadline = time.monotonic() + APPLY_WAIT_SECONDS
        self._create_pods(state, [(pod, podlib.server_command(state, pod))], deadline)
        self._settle(state, revision, deadline)

    # -- pods ----------------------------------------------------------------------
    def _create_pods(self, state: LabState, pods: list[tuple[PodState, tuple[list[str], str]]],
                     deadline: float) -> bool:
        """Wire, register, then start workloads. Pod docs are already in the store.
        False when some pods stay pending (each named on stderr)."""
        with topology.builder(state) as net:
            for pod, _ in pods:
                state.pods[pod.key] = pod
                state.save()
                if pod.netns:
                    topology.create_pod_link(net, state, pod,
                                             self.names.pod_macs(pod.namespace, pod.name))
                    podlib.write_resolv_conf(state, pod)
        netted = [(p, c) for p, c in pods if p.netns]
        if state.agents:
            wait = max(1.0, min(POD_READY_SECONDS, deadline - time.monotonic()))
            self._parallel([partial(self._register, state, p, wait) for p, _ in netted])
            state.save()
        podlib.start_workloads(state, [(p, c) for p, c in netted if not p.pending])
        for pod, _ in netted:
            if pod.pending:
                self._error(LabError(f"pod {pod.key} on {pod.node} is pending: "
                                     f"{pod.pending}"))
        return not any(p.pending for p, _ in netted)

    def _register(self, state: LabState, pod: PodState, timeout: float) -> None:
        """Registers the pod with its agent and waits until it is enforced; if it is not
        within timeout, or the agent is down, the pod is left pending with the reason."""
        node = state.nodes[pod.node]
        try:
            with AgentClient(node.socket) as client:
                client.register_endpoint(pod.namespace, pod.name, pod.host_ifname, pod.ip,
                                         timeout=timeout, ipv6=pod.ip6)
        except AgentUnreachable:
            pod.pending = (f"the agent of {pod.node} is not running; `membrane lab start "
                           f"--name {state.name} agent --node {pod.node}` enforces it")
            return
        except MembraneError as err:
            pod.registered = True   # the agent has it, fail-closed, and keeps trying
            pod.pending = str(err)
            return
        pod.registered = True
        pod.pending = ""

    def _resume_pending(self, state: LabState, node: str | None, timeout: float) -> bool:
        """Registers pending pods (of one node, or all) again; those enforced now get
        their workloads. False when some are still pending (each named on stderr)."""
        pending = [p for p in state.pods.values()
                   if p.pending and p.netns and node in (None, p.node)]
        if not pending:
            return True
        self._parallel([partial(self._register, state, p, timeout) for p in pending])
        state.save()
        podlib.start_workloads(state, [(p, podlib.server_command(state, p))
                                       for p in pending if not p.pending])
        for pod in pending:
            if pod.pending:
                self._error(LabError(f"pod {pod.key} on {pod.node} is still pending: "
                                     f"{pod.pending}"))
        return not any(p.pending for p in pending)

    def _settle(self, state: LabState, revision: int, deadline: float) -> bool:
        """Waits for every running agent to apply revision until deadline; names on
        stderr each node that did not. True when all did."""
        behind = agent_procs.wait_revision(state, revision,
                                           max(1.0, deadline - time.monotonic()))
        for line in behind:
            self._error(LabError(line))
        return not behind

    def _remove_pod(self, state: LabState, pod: PodState) -> None:
        if pod.server:
            stop([pod.server])
        if pod.registered and state.agents:
            try:
                with AgentClient(state.nodes[pod.node].socket) as client:
                    client.deregister_endpoint(pod.namespace, pod.name)
            except AgentUnreachable:
                pass  # a restarted agent drops endpoints whose veth is gone
        if pod.netns:
            with topology.builder(state) as net:
                topology.remove_pod_link(net, state, pod)
            podlib.remove_resolv_conf(state, pod)
        state.pods.pop(pod.key, None)
        state.save()

    @staticmethod
    def _parallel(jobs: list[Callable[[], None]]) -> None:
        if not jobs:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()

    # -- apply / delete --------------------------------------------------------------
    def apply(self, paths: list[str], namespace: str | None = None) -> bool:
        with lab_lock(self.name):
            return self._apply(self.state(), paths, namespace)

    def _read(self, paths: list[str], namespace: str | None) -> tuple[list[tuple[Doc, StoreObject]], bool]:
        """(document, object) pairs of the files, errors printed; ok False if any failed."""
        docs, errors = read_documents(paths)
        ok = not errors
        for error in errors:
            self._error(error)
        out: list[tuple[Doc, StoreObject]] = []
        for doc, source in docs:
            if namespace and doc.get("kind") not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {}).setdefault("namespace", namespace)
            try:
                out += [(doc, obj) for obj in parse_document(doc, source)]
            except MembraneError as error:
                self._error(error)
                ok = False
        return out, ok

    def _error(self, error: BaseException) -> None:
        print(f"{type(error).__name__}: {error}", file=self.err or sys.stderr)

    def _apply(self, state: LabState, paths: list[str], namespace: str | None) -> bool:
        if not paths:
            return True
        pairs, ok = self._read(paths, namespace)
        store = LabStoreDir(state.store_dir)
        _, existing = store.read()
        known_ns = {doc_key(d)[2] for d in existing if d.get("kind") == "Namespace"}
        docs: list[Doc] = []
        new_pods: list[PodState] = []
        changed_pods: list[PodState] = []
        owned: dict[str, set[str]] = {}   # workload -> the pods it has after this apply
        for doc, obj in pairs:
            if isinstance(obj, Node):
                self._error(LabError(f"node {obj.name}: a lab's nodes are its own; skipped"))
                ok = False
                continue
            if isinstance(obj, Namespace):
                known_ns.add(obj.name)
                docs.append(doc)
                continue
            ns = getattr(obj, "namespace", None)
            if ns and ns not in known_ns:
                # As if `kubectl create namespace` had been run: pods need their namespace.
                known_ns.add(ns)
                docs.append(namespace_doc(ns))
            if isinstance(obj, Pod):
                existed = f"{obj.namespace}/{obj.name}" in state.pods
                try:
                    pod = self._pod_for(state, obj)
                except LabError as error:
                    self._error(error)
                    ok = False
                    continue
                pod.owner = workload_of(doc)
                if pod.owner:
                    owned.setdefault(pod.owner, set()).add(pod.key)
                if not existed:
                    new_pods.append(pod)
                elif pod.netns and not pod.dns and pod.ports != podlib.served_ports(obj):
                    changed_pods.append(pod)
                docs.append(pod_document(obj, pod))
            else:
                if ns:
                    # Written as the API server stores it: the namespace explicit.
                    doc.setdefault("metadata", {})["namespace"] = ns
                docs.append(doc)
        revision = store.apply(docs)
        deadline = time.monotonic() + APPLY_WAIT_SECONDS
        ok &= self._create_pods(state, [(p, podlib.server_command(state, p))
                                        for p in new_pods], deadline)
        self._restart_workloads(state, [p for p in changed_pods if not p.pending], pairs)
        # As the controllers do: fewer replicas or a new template leave pods the workload
        # no longer has (a Deployment's new template hash names all its pods anew).
        stale = [p for p in state.pods.values()
                 if p.owner in owned and p.key not in owned[p.owner]]
        if stale:
            for pod in stale:
                self._remove_pod(state, pod)
            revision = store.delete([("Pod", p.namespace, p.name) for p in stale])
        state.save()
        return self._settle(state, revision, deadline) and ok

    def _restart_workloads(self, state: LabState, pods: list[PodState],
                           pairs: list[tuple[Doc, StoreObject]]) -> None:
        """Re-applied pods whose container ports changed serve the new ports."""
        if not pods:
            return
        objs = {o.key: o for _, o in pairs if isinstance(o, Pod)}
        stop([p.server for p in pods if p.server])
        for pod in pods:
            pod.ports = podlib.served_ports(objs[pod.key])
        podlib.start_workloads(state, [(p, podlib.server_command(state, p)) for p in pods])

    def _pod_for(self, state: LabState, obj: Pod) -> PodState:
        key = f"{obj.namespace}/{obj.name}"
        if key in state.pods:
            return state.pods[key]  # re-applied: same node and address, new labels
        req = podlib.PodRequest(obj.namespace, obj.name, node=obj.node_name, ip=obj.ip,
                                ip6=obj.ipv6,
                                ports=[port for port, _ in podlib.served_ports(obj)],
                                host_network=obj.host_network,
                                dns=podlib.is_dns_pod(obj.namespace, dict(obj.labels)))
        pod = podlib.place(state, self.names, req)
        if not pod.netns:
            pod.ports = []  # hostNetwork: the node's own processes, the lab starts none
        state.pods[key] = pod  # reserves its address for the next pod of this apply
        return pod

    def delete(self, paths: list[str], namespace: str | None = None) -> bool:
        with lab_lock(self.name):
            state = self.state()
            pairs, ok = self._read(paths, namespace)
            keys: set[tuple[str, str, str]] = set()
            gone_ns: set[str] = set()
            # Every pod a deleted workload made, including ones an earlier version of the
            # file had and the one being deleted no longer names.
            gone_workloads = {workload_of(doc) for doc, _ in pairs} - {""}
            keys |= {("Pod", p.namespace, p.name) for p in state.pods.values()
                     if p.owner in gone_workloads}
            for doc, obj in pairs:
                if isinstance(obj, Pod):
                    keys.add(("Pod", obj.namespace, obj.name))
                elif isinstance(obj, Namespace):
                    gone_ns.add(obj.name)
                    keys.add(("Namespace", "", obj.name))
                else:
                    keys.add(doc_key(doc))
            store = LabStoreDir(state.store_dir)
            _, existing = store.read()
            # Deleting a namespace deletes what lives in it, as the API server does.
            keys |= {doc_key(d) for d in existing if doc_key(d)[1] in gone_ns}
            for pod in list(state.pods.values()):
                if ("Pod", pod.namespace, pod.name) in keys:
                    self._remove_pod(state, pod)
            revision = store.delete(sorted(keys))
            return self._settle(state, revision, time.monotonic() + APPLY_WAIT_SECONDS) and ok

    # -- label -----------------------------------------------------------------------
    def label(self, kind: str, target: str, changes: list[str]) -> None:
        if kind not in ("Pod", "Namespace"):
            raise LabError(f"label: kind {kind!r}: expected Pod or Namespace")
        sets, removes = parse_label_changes(changes)
        with lab_lock(self.name):
            state = self.state()
            if kind == "Pod":
                pod = find_pod(state, target)
                ns, name = pod.namespace, pod.name
            else:
                ns, name = "", target
            def change(docs: list[Doc]) -> list[Doc]:
                if kind == "Namespace" and not any(doc_key(d) == (kind, ns, name) for d in docs):
                    docs.append(namespace_doc(name))
                for d in docs:
                    if doc_key(d) == (kind, ns, name):
                        labels = d.setdefault("metadata", {}).setdefault("labels", {}) or {}
                        labels.update(sets)
                        for k in removes:
                            labels.pop(k, None)
                        d["metadata"]["labels"] = labels
                return docs

            store = LabStoreDir(state.store_dir)
            _, docs = store.read()
            if kind == "Pod" and not any(doc_key(d) == (kind, ns, name) for d in docs):
                raise LabError(f"pod {ns}/{name} not found in lab {self.name}")
            revision = store.update(change)
            if not self._settle(state, revision, time.monotonic() + APPLY_WAIT_SECONDS):
                raise LabError(f"lab {self.name}: the label change is stored (revision "
                               f"{revision}) but not enforced everywhere yet")

    # -- exec ------------------------------------------------------------------------
    def netns_of(self, target: str) -> str:
        state = self.state()
        pod = find_pod(state, target)
        return pod.netns or state.nodes[pod.node].netns

    # -- status ----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        state = self.state()
        nodes = []
        for node in sorted(state.nodes.values(), key=lambda n: n.index):
            nodes.append({"name": node.name, "ip": node.ip, "ip6": node.ip6,
                          "podCIDR": node.pod_cidr, "podCIDR6": node.pod_cidr6,
                          "netns": node.netns, "agent": agent_health(state, node),
                          "agentPid": node.agent.pid if node.agent else None,
                          "socket": node.socket, "bpffs": node.bpffs,
                          "metrics": relay.metrics_url(node) if state.agents else None,
                          "agentMetrics": (relay.agent_metrics_url(node) if state.agents
                                           else None)})
        pods = [{"pod": p.key, "ip": p.ip, "ip6": p.ip6, "node": p.node, "netns": p.netns,
                 "ports": [f"{port}/{proto}" for port, proto in p.ports],
                 "hostNetwork": not p.netns,
                 "status": f"pending: {p.pending}" if p.pending else "running"}
                for p in sorted(state.pods.values(), key=lambda p: p.key)]
        etcd = None
        if agent_procs.etcd_process(state) is not None:
            etcd = {"url": state.etcd_url,
                    "running": agent_procs.etcd_running(state)}
        return {"lab": state.name, "root": state.root, "nodes": nodes, "pods": pods,
                "external": {"netns": state.external_netns, "ip": state.external_ip,
                             "ip6": state.external_ip6, "names": list(EXTERNAL_NAMES)},
                "dns": LabNames.dns_ip(), "dns6": LabNames.dns_ip6(), "agents": state.agents,
                "etcd": etcd,
                "relay": relay.relay_target(state.name) if state.agents else None}

    # -- faults ------------------------------------------------------------------------
    def stop(self, component: str, node: str | None = None, sig: str = "TERM") -> None:
        """Stops the lab's etcd, or one node's agent (sig TERM, or KILL as a crash)."""
        with lab_lock(self.name):
            state = self.state()
            if component == "etcd":
                agent_procs.stop_etcd(state)
            elif component == "agent":
                if sig not in ("TERM", "KILL"):
                    raise LabError(f"--signal {sig}: expected TERM or KILL")
                agent_procs.stop_agent(state, self._agent_node(state, node),
                                       signal.Signals[f"SIG{sig}"])
            else:
                raise LabError(f"{component!r}: expected one of {', '.join(COMPONENTS)}")
            state.save()

    def start(self, component: str, node: str | None = None,
              pending_timeout: float = POD_READY_SECONDS) -> bool:
        """Starts the lab's etcd, or one node's agent, again; then tries the pending pods
        (of that node, for an agent). False when some are still pending."""
        with lab_lock(self.name):
            state = self.state()
            if component == "etcd":
                agent_procs.start_etcd(state)
                return self._resume_pending(state, None, pending_timeout)
            if component != "agent":
                raise LabError(f"{component!r}: expected one of {', '.join(COMPONENTS)}")
            target = self._agent_node(state, node)
            if target.agent is not None and is_ours(target.agent):
                raise LabError(f"the agent of {target.name} is already running")
            proc = agent_procs.start_agent(state, target)
            agent_procs.wait_agent(state, target, proc)
            return self._resume_pending(state, target.name, pending_timeout)

    def _agent_node(self, state: LabState, node: str | None) -> NodeState:
        if not state.agents:
            raise LabError(f"lab {self.name} runs no agents (--no-agent)")
        if not node:
            raise LabError("which agent? --node NODE")
        if node not in state.nodes:
            raise LabError(f"node {node!r} is not a node of lab {self.name} "
                           f"(nodes: {', '.join(state.nodes)})")
        return state.nodes[node]

    # -- down ------------------------------------------------------------------------
    def down(self) -> bool:
        """Removes everything the lab recorded; False when there was nothing."""
        with lab_lock(self.name):
            state = LabState.load(self.name)
            if state is None:
                shutil.rmtree(lab_root(self.name), ignore_errors=True)
                removed = False
            else:
                self._teardown(state)
                removed = True
            # Still held, and nobody else's: the lock file is the last thing the lab made.
            (LAB_ROOT / f".{self.name}.lock").unlink(missing_ok=True)
            return removed

    def _teardown(self, state: LabState) -> None:
        servers = [p.server for p in state.pods.values() if p.server]
        stop(servers + state.processes)
        stop([n.agent for n in state.nodes.values() if n.agent])
        with netbuilder.NetBuilder() as net:
            for name in reversed(state.netns):
                try:
                    net.delete(name)
                except LabError:
                    pass  # the others still go; what is left is reported just below
        for path in reversed(state.paths):
            shutil.rmtree(path, ignore_errors=True)
        _remove_if_empty(agent_procs.BPFFS_ROOT)
        left = [n for n in state.netns if netbuilder.exists(n)] + \
            [p for p in state.paths if Path(p).exists()]
        if left:
            state.save()
            raise LabError(f"lab {state.name}: could not remove {', '.join(left)}; "
                           "run `membrane lab down` again")
        shutil.rmtree(state.root, ignore_errors=True)


def _remove_if_empty(shared: Path) -> None:
    """The parent the labs' pin directories share: gone with the last of them, kept while
    anything (another lab, an agent using the default) still lives in it."""
    try:
        shared.rmdir()
    except OSError:
        pass


def workload_of(doc: Doc) -> str:
    """"Kind/namespace/name" when the document is a workload (its pods are the
    controller's), "" for anything else. The namespace is the expanded pods' one."""
    kind = doc.get("kind")
    if kind not in WORKLOAD_KINDS:
        return ""
    meta = doc.get("metadata") or {}
    return f"{kind}/{meta.get('namespace') or 'default'}/{meta.get('name')}"


def find_pod(state: LabState, target: str) -> PodState:
    """NS/NAME (NAME alone: default/NAME). A workload's name also works when it has exactly
    one pod, as `kubectl exec deploy/NAME` picks one: default/frontend -> frontend-xxx-yyy."""
    key = target if "/" in target else f"default/{target}"
    if key in state.pods:
        return state.pods[key]
    matches = [p for k, p in state.pods.items() if k.startswith(key + "-")]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(state.pods)) or "none"
    what = "is ambiguous" if matches else "not found"
    raise LabError(f"pod {key} {what} in lab {state.name} (pods: {known})")


def agent_health(state: LabState, node: NodeState) -> str:
    if not state.agents:
        return "none (--no-agent)"
    try:
        with AgentClient(node.socket, timeout=2.0) as client:
            reply = client.status()
        return "ok" if reply.healthy else f"unhealthy: {reply.message}"
    except MembraneError as err:
        return f"unreachable: {err}"


def parse_label_changes(changes: list[str]) -> tuple[dict[str, str], list[str]]:
    sets: dict[str, str] = {}
    removes: list[str] = []
    for change in changes:
        if change.endswith("-") and "=" not in change:
            removes.append(change[:-1])
        elif "=" in change:
            k, _, v = change.partition("=")
            if not k:
                raise LabError(f"label {change!r}: the key is empty")
            sets[k] = v
        else:
            raise LabError(f"label {change!r}: use key=value to set or key- to remove")
    return sets, removes
