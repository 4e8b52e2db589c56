"""The Agent gRPC service: thin translation between agent.proto and the Agent."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

import grpc

from agent.endpoints import Endpoint
from core.errors import MembraneError
from agent.policy.mapstate import ANY_PROTOCOL, Direction
from agent.api.gen import agent_pb2 as pb
from agent.api.gen import agent_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from agent.daemon import Agent

PROTOCOL_NAMES = {ANY_PROTOCOL: "ANY", 1: "ICMP", 6: "TCP", 17: "UDP", 132: "SCTP"}


def endpoint_message(agent: "Agent", ep: Endpoint) -> pb.Endpoint:
    ident = agent.allocator.lookup(ep.identity) if ep.identity else None
    labels = ident.labels.lines() if ident is not None else []
    if not labels and ep.identity:
        from agent.flowmeta import AgentMetadata

        labels = AgentMetadata(agent).identity_labels(ep.identity)
    return pb.Endpoint(
        id=ep.id, namespace=ep.namespace, pod=ep.pod, identity=ep.identity, labels=labels,
        ipv4=ep.ipv4, ifname=ep.ifname, ifindex=ep.ifindex,
        ingress_enforced=ep.ingress_enforced, egress_enforced=ep.egress_enforced,
        state=ep.state.value, error=ep.error, policy_revision=ep.policy_revision,
        last_regeneration_ms=ep.last_regeneration_ms, policy_entries=ep.policy_entries)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> Any:
    context.abort(code, message)


class AgentServicer(pb_grpc.AgentServicer):
    def __init__(self, agent: "Agent") -> None:
        self.agent = agent

    def _find(self, ref: pb.EndpointRef, context: grpc.ServicerContext) -> Endpoint:
        reg = self.agent.registry
        ep = reg.get(ref.id) if ref.id else reg.by_pod(f"{ref.namespace}/{ref.pod}")
        if ep is None:
            what = f"id {ref.id}" if ref.id else f"{ref.namespace}/{ref.pod}"
            return _abort(context, grpc.StatusCode.NOT_FOUND, f"no endpoint {what} on node "
                          f"{self.agent.config.node}")
        return ep

    def RegisterEndpoint(self, request: pb.RegisterEndpointRequest,
                         context: grpc.ServicerContext) -> pb.Endpoint:
        try:
            ep = self.agent.register_endpoint(request.namespace, request.pod, request.ifname,
                                              request.ipv4, request.container_id,
                                              request.timeout_seconds or 30.0)
        except MembraneError as err:
            return _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(err))
        return endpoint_message(self.agent, ep)

    def DeregisterEndpoint(self, request: pb.EndpointRef,
                           context: grpc.ServicerContext) -> pb.Empty:
        self.agent.deregister_endpoint(request.namespace, request.pod)
        return pb.Empty()

    def ListEndpoints(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.EndpointList:
        return pb.EndpointList(endpoints=[endpoint_message(self.agent, ep)
                                          for ep in self.agent.registry.all()])

    def GetEndpoint(self, request: pb.EndpointRef, context: grpc.ServicerContext) -> pb.Endpoint:
        return endpoint_message(self.agent, self._find(request, context))

    def ListIdentities(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.IdentityList:
        refs: dict[int, int] = {}
        for ep in self.agent.registry.all():
            refs[ep.identity] = refs.get(ep.identity, 0) + 1
        idents = sorted(self.agent.allocator.identities(), key=lambda i: i.id)
        return pb.IdentityList(identities=[
            pb.IdentityInfo(id=i.id, labels=i.labels.lines(), references=refs.get(i.id, 0))
            for i in idents])

    def GetIdentity(self, request: pb.IdentityRef,
                    context: grpc.ServicerContext) -> pb.IdentityInfo:
        from agent.flowmeta import AgentMetadata

        labels = AgentMetadata(self.agent).identity_labels(request.id)
        if not labels:
            return _abort(context, grpc.StatusCode.NOT_FOUND, f"no identity {request.id}")
        return pb.IdentityInfo(id=request.id, labels=labels)

    def GetPolicies(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.PolicyList:
        import yaml

        from agent.k8s.serialize import to_document

        snap = self.agent.snapshot
        selected: dict[str, list[int]] = {}
        for ep in self.agent.registry.all():
            for prov in _selecting_policies(self.agent, ep.key):
                selected.setdefault(prov, []).append(ep.id)
        policies = [pb.PolicyInfo(namespace=p.namespace, name=p.name,
                                  yaml=yaml.safe_dump(to_document(p), sort_keys=False),
                                  selected_endpoints=sorted(selected.get(key, [])))
                    for key, p in sorted(snap.objects.policies.items())]
        return pb.PolicyList(revision=snap.source_revision, policies=policies,
                             rejected=list(snap.rejected))

    def Trace(self, request: pb.TraceRequest, context: grpc.ServicerContext) -> pb.TraceReply:
        from agent.policy.trace import trace_engine

        try:
            # The live engine: identity numbers in the explanation are the agent's own.
            with self.agent._lock:
                result = trace_engine(self.agent.engine, getattr(request, "from"), request.to,
                                      request.port or 80, request.protocol or "TCP")
        except MembraneError as err:
            return _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return pb.TraceReply(allowed=result.allowed, explanation=result.explanation)

    def BpfPolicy(self, request: pb.EndpointRef,
                  context: grpc.ServicerContext) -> pb.BpfPolicyReply:
        from agent.flowmeta import AgentMetadata

        ep = self._find(request, context)
        meta = AgentMetadata(self.agent)
        entries = []
        for item in sorted(self.agent.datapath.dump_policy(ep.id), key=lambda e: e.key):
            key = item.key
            entries.append(pb.BpfPolicyEntry(
                direction=Direction(key.direction).name, identity=key.peer,
                labels=meta.identity_labels(key.peer) if key.peer else ["reserved:all"],
                protocol=PROTOCOL_NAMES.get(key.protocol, str(key.protocol)),
                port_low=key.port_low, port_high=key.port_high,
                match_type=key.match_type.hubble_name, packets=item.packets, bytes=item.bytes))
        return pb.BpfPolicyReply(endpoint=ep.id, ingress_enforced=ep.ingress_enforced,
                                 egress_enforced=ep.egress_enforced, entries=entries)

    def BpfConntrack(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.CtList:
        out = []
        for e in self.agent.datapath.dump_conntrack():
            out.append(pb.CtEntry(protocol=PROTOCOL_NAMES.get(e.protocol, str(e.protocol)),
                                  src=f"{e.src_ip}:{e.src_port}", dst=f"{e.dst_ip}:{e.dst_port}",
                                  endpoint=e.endpoint_id, direction=Direction(e.direction).name,
                                  state=e.state, expires_in_seconds=e.expires_in_s,
                                  packets=e.packets, bytes=e.bytes))
        return pb.CtList(entries=out)

    def BpfIpcache(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.IpcacheList:
        from agent.flowmeta import AgentMetadata

        meta = AgentMetadata(self.agent)
        ipcache, cidrs = self.agent.datapath.dump_ipcache()
        rows = []
        for table, content in (("ipcache", ipcache), ("cidr", cidrs)):
            for prefix, ident in sorted(content.items(),
                                        key=lambda kv: ipaddress.IPv4Network(kv[0])):
                rows.append(pb.IpcacheEntry(prefix=prefix, identity=ident,
                                            labels=meta.identity_labels(ident), table=table))
        return pb.IpcacheList(entries=rows)

    def Status(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.StatusReply:
        return status_message(self.agent)

    def WaitForRevision(self, request: pb.WaitRequest,
                        context: grpc.ServicerContext) -> pb.StatusReply:
        if not self.agent.wait_for_revision(request.revision, request.timeout_seconds or 30.0):
            return _abort(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                          f"node {self.agent.config.node}: revision {request.revision} not "
                          f"applied within {request.timeout_seconds:.0f}s (applied "
                          f"{self.agent.applied_revision})")
        return status_message(self.agent)


def _selecting_policies(agent: "Agent", pod_key: str) -> set[str]:
    return set(agent.engine.selecting_policies(pod_key))


def status_message(agent: "Agent") -> pb.StatusReply:
    from observe.reasons import DropReason

    st = agent.status()
    obs = st["observer"] or {}
    drops = []
    for code, count in sorted(st["drops"].items()):
        try:
            name = DropReason(code).description
        except ValueError:
            name = f"reason {code}"
        drops.append(pb.Counter(name=name, value=count))
    # The observer counts every loss where it happened (kernel ring buffer, agent queue,
    # flow ring); the kernel's count reaches it through report_lost.
    lost = [pb.Counter(name=source, value=int(n)) for source, n in (obs.get("lost") or {}).items()]
    return pb.StatusReply(
        node=st["node"], version=st["version"], healthy=st["healthy"],
        message="ok" if st["healthy"] else "; ".join(st["errors"][-3:]) or "not synced",
        uptime_seconds=st["uptime_seconds"], store_revision=st["store_revision"],
        applied_revision=st["applied_revision"], endpoints_by_state=st["endpoints_by_state"],
        identities=st["identities"],
        maps=[pb.MapUsage(name=m.name, entries=m.entries, max_entries=m.max_entries)
              for m in st["maps"]],
        drops=drops, flows_seen=int(obs.get("seen_flows", 0)), lost=lost,
        last_regeneration_ms=st["last_regeneration_ms"], errors=st["errors"],
        source=st["source"])
