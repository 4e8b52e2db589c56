"""The Agent gRPC service: thin translation between agent.proto and the agent's parts.

The servicer is handed the small Protocols of `agent.api.services` (as Hubble's
`NewLocalServer` is handed its parser and ring): endpoints, identities, policies, map
dumps and status. It holds no lock and no agent; every conversion to the proto is here.
"""

from __future__ import annotations

import ipaddress
import grpc
import yaml

from agent.api.client import DEFAULT_WAIT_SECONDS
from agent.api.gen import agent_pb2 as pb
from agent.api.gen import agent_pb2_grpc as pb_grpc
from agent.api.services import (EndpointService, EndpointView, IdentityView,
                                InvalidRegistration, MapDumps, PolicyView, StatusProvider)
from agent.api.status import AgentStatus, CheckKind
from agent.k8s.objects import TIER_KINDS, NetworkPolicy
from agent.k8s.serialize import to_document
from core.errors import MembraneError
from core.protocols import Direction, protocol_name
from observe.reasons import DropReason

DEFAULT_TRACE_PORT = 80


class AgentServicer(pb_grpc.AgentServicer):
    def __init__(self, node: str, endpoints: EndpointService, identities: IdentityView,
                 policies: PolicyView, maps: MapDumps, status: StatusProvider) -> None:
        self.node = node
        self.endpoints = endpoints
        self.identities = identities
        self.policies = policies
        self.maps = maps
        self.status = status

    def _find(self, ref: pb.EndpointRef, context: grpc.ServicerContext) -> EndpointView:
        ep = self.endpoints.find(ref.id, f"{ref.namespace}/{ref.pod}")
        if ep is None:
            what = f"id {ref.id}" if ref.id else f"{ref.namespace}/{ref.pod}"
            context.abort(grpc.StatusCode.NOT_FOUND, f"no endpoint {what} on node {self.node}")
        return ep

    def _endpoint(self, ep: EndpointView) -> pb.Endpoint:
        labels = self.identities.identity_labels(ep.identity) if ep.identity else []
        return endpoint_message(ep, labels)

    # -- endpoints -----------------------------------------------------------------
    def RegisterEndpoint(self, request: pb.RegisterEndpointRequest,
                         context: grpc.ServicerContext) -> pb.Endpoint:
        try:
            ep = self.endpoints.register(request.namespace, request.pod, request.ifname,
                                         request.ipv4, request.container_id,
                                         request.timeout_seconds or DEFAULT_WAIT_SECONDS,
                                         ipv6=request.ipv6)
        except InvalidRegistration as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        except MembraneError as err:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(err))
        return self._endpoint(ep)

    def DeregisterEndpoint(self, request: pb.EndpointRef,
                           context: grpc.ServicerContext) -> pb.Empty:
        self.endpoints.deregister(request.namespace, request.pod)
        return pb.Empty()

    def ListEndpoints(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.EndpointList:
        return pb.EndpointList(endpoints=[self._endpoint(ep) for ep in self.endpoints.endpoints()])

    def GetEndpoint(self, request: pb.EndpointRef, context: grpc.ServicerContext) -> pb.Endpoint:
        return self._endpoint(self._find(request, context))

    # -- identities and policy -----------------------------------------------------
    def ListIdentities(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.IdentityList:
        refs: dict[int, int] = {}
        for ep in self.endpoints.endpoints():
            refs[ep.identity] = refs.get(ep.identity, 0) + 1
        return pb.IdentityList(identities=[
            pb.IdentityInfo(id=i.id, labels=i.labels.lines(), references=refs.get(i.id, 0))
            for i in self.identities.identities()])

    def GetIdentity(self, request: pb.IdentityRef,
                    context: grpc.ServicerContext) -> pb.IdentityInfo:
        labels = self.identities.identity_labels(request.id)
        if not labels:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no identity {request.id}")
        return pb.IdentityInfo(id=request.id, labels=labels)

    def GetPolicies(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.PolicyList:
        loaded = self.policies.loaded()
        last_good = {r.key: r.last_good for r in loaded.rejected if r.kind == "NetworkPolicy"}
        warnings: dict[str, list[str]] = {}
        for warning in loaded.warnings:
            if warning.kind == "NetworkPolicy":
                warnings.setdefault(warning.name, []).append(str(warning))
        policies = []
        for key, p in sorted(loaded.policies.items()):
            kept = last_good.get(key)
            policies.append(pb.PolicyInfo(
                namespace=p.namespace, name=p.name,
                yaml=yaml.safe_dump(to_document(p), sort_keys=False),
                selected_endpoints=sorted(loaded.selected_endpoints.get(key, ())),
                fail_closed=p.fail_closed, warnings=warnings.get(key, []),
                last_good_resource_version=(kept.resource_version
                                            if isinstance(kept, NetworkPolicy) else ""),
                kind="NetworkPolicy"))
        tier_warnings: dict[str, list[str]] = {}
        for warning in loaded.warnings:
            if warning.kind in TIER_KINDS:
                tier_warnings.setdefault(f"{warning.kind}/{warning.name}", []).append(
                    str(warning))
        # The cluster-wide tiers after, in evaluation order: Admin, then Baseline.
        policies += [pb.PolicyInfo(name=t.name, kind=t.kind, tier=t.tier.value,
                                   priority=t.shown_priority,
                                   yaml=yaml.safe_dump(to_document(t), sort_keys=False),
                                   selected_endpoints=sorted(
                                       loaded.selected_endpoints.get(key, ())),
                                   warnings=tier_warnings.get(key, []))
                     for key, t in sorted(loaded.cluster_policies.items(),
                                          key=lambda kv: (kv[1].tier.value, kv[1].order_key))]
        return pb.PolicyList(revision=loaded.revision, policies=policies,
                             rejected=[str(r) for r in loaded.rejected],
                             warnings=[str(w) for w in loaded.warnings],
                             notes=list(loaded.notes))

    def Trace(self, request: pb.TraceRequest, context: grpc.ServicerContext) -> pb.TraceReply:
        try:
            result = self.policies.trace(getattr(request, "from"), request.to,
                                         request.port or DEFAULT_TRACE_PORT,
                                         request.protocol or "TCP", request.ip_version or 4)
        except MembraneError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        # What the verdict did not read as written: the client exits non-zero, naming them.
        skipped = [str(r) for r in self.policies.loaded().rejected]
        return pb.TraceReply(allowed=result.allowed, explanation=result.explanation,
                             skipped=skipped)

    # -- maps ----------------------------------------------------------------------
    def BpfPolicy(self, request: pb.EndpointRef,
                  context: grpc.ServicerContext) -> pb.BpfPolicyReply:
        ep = self._find(request, context)
        entries = []
        for item in sorted(self.maps.dump_policy(ep.id), key=lambda e: e.key):
            key = item.key
            entries.append(pb.BpfPolicyEntry(
                direction=Direction(key.direction).name, identity=key.peer,
                labels=(self.identities.identity_labels(key.peer) if key.peer
                        else ["reserved:all"]),
                protocol=protocol_name(key.protocol),
                port_low=key.port_low, port_high=key.port_high,
                match_type=key.match_type.hubble_name if item.allow else "-",
                packets=item.packets, bytes=item.bytes, allow=item.allow, tiers=item.tiers))
        return pb.BpfPolicyReply(endpoint=ep.id, ingress_enforced=ep.ingress_enforced,
                                 egress_enforced=ep.egress_enforced, entries=entries)

    def BpfConntrack(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.CtList:
        return pb.CtList(entries=[
            pb.CtEntry(protocol=protocol_name(e.protocol), src=f"{e.src_ip}:{e.src_port}",
                       dst=f"{e.dst_ip}:{e.dst_port}", endpoint=e.endpoint_id,
                       direction=Direction(e.direction).name, state=e.state,
                       expires_in_seconds=e.expires_in_s, packets=e.packets, bytes=e.bytes)
            for e in self.maps.dump_conntrack()])

    def BpfIpcache(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.IpcacheList:
        ipcache, cidrs = self.maps.dump_ipcache()
        rows = []
        for table, content in (("ipcache", ipcache), ("cidr", cidrs)):
            # IPv4 first, then IPv6, each by address: the map each row is in is named
            # (the IPv6 twins are ipcache6 and cidr6).
            nets = [(ipaddress.ip_network(p), i) for p, i in content.items()]
            for net, ident in sorted(nets, key=lambda n: (n[0].version, n[0])):
                rows.append(pb.IpcacheEntry(
                    prefix=str(net), identity=ident,
                    table=table + ("6" if net.version == 6 else ""),
                    labels=self.identities.identity_labels(ident)))
        return pb.IpcacheList(entries=rows)

    # -- status --------------------------------------------------------------------
    def Status(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.StatusReply:
        return status_message(self.status.status())

    def WaitForRevision(self, request: pb.WaitRequest,
                        context: grpc.ServicerContext) -> pb.StatusReply:
        timeout = request.timeout_seconds or DEFAULT_WAIT_SECONDS
        if not self.status.wait_for_revision(request.revision, timeout):
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                   f"node {self.node}: revision {request.revision} not applied within "
                   f"{request.timeout_seconds:.0f}s (applied {self.status.applied_revision()})")
        return status_message(self.status.status())


def endpoint_message(ep: EndpointView, labels: list[str]) -> pb.Endpoint:
    return pb.Endpoint(
        id=ep.id, namespace=ep.namespace, pod=ep.pod, identity=ep.identity, labels=labels,
        ipv4=ep.ipv4, ipv6=ep.ipv6, ifname=ep.ifname, ifindex=ep.ifindex,
        ingress_enforced=ep.ingress_enforced, egress_enforced=ep.egress_enforced,
        state=ep.state, error=ep.error, policy_revision=ep.policy_revision,
        last_regeneration_ms=ep.last_regeneration_ms, policy_entries=ep.policy_entries,
        policy_audit=ep.audit, labels_left_out=list(ep.labels_left_out))


def drop_reason_name(code: int) -> str:
    try:
        return DropReason(code).description
    except ValueError:
        return f"reason {code}"


def status_message(st: AgentStatus) -> pb.StatusReply:
    """The typed status as the wire has it. `errors` carries the recent error history,
    then what is wrong now, then the warnings; `message` says why it is not healthy."""
    errors = list(st.errors) + list(st.problems) + list(st.warnings)
    if st.healthy:
        message = "ok"
    else:
        reasons = [f"{name} failing" for name in st.health.failing(CheckKind.LIVENESS)]
        reasons += [] if st.synced else ["not synced"]
        message = "; ".join(reasons + list(st.errors[-3:]))
    # The observer counts every loss where it happened (kernel ring buffer, agent queue,
    # flow ring); the kernel's count reaches it through report_lost.
    lost = [pb.Counter(name=source, value=n) for source, n in st.observer.lost.items()]
    return pb.StatusReply(
        node=st.node, version=st.version, healthy=st.healthy, message=message,
        uptime_seconds=st.uptime_seconds, store_revision=st.store_revision,
        applied_revision=st.applied_revision, endpoints_by_state=dict(st.endpoints_by_state),
        identities=st.identities,
        maps=[pb.MapUsage(name=m.name, entries=m.entries, max_entries=m.max_entries)
              for m in st.maps],
        drops=[pb.Counter(name=drop_reason_name(code), value=count)
               for code, count in sorted(st.drops.items())],
        flows_seen=st.observer.seen_flows, lost=lost,
        last_regeneration_ms=st.regeneration.last_ms, errors=errors, source=st.source,
        rejected=list(st.rejected), object_warnings=list(st.object_warnings),
        unmanaged=list(st.unmanaged))
