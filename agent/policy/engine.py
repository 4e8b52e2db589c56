"""The policy engine: cluster objects in, map state out, recomputing only what changed.

`update(objects)` takes the whole desired state (as the store snapshots it) and works
out the difference with the previous one:

  policies'   -> left-out label keys they select on (identitykeys.py): pods of the
                 scopes that gained or lost one get their identities recomputed
  pods        -> identities allocated / released; the selector cache learns new ones
  policies    -> compiled, indexed by namespace, their selectors referenced in the cache
  ipBlocks    -> every cidr and except prefix gets a CIDR identity (either family: a
                 block matches the addresses of its own family only, as each family's
                 prefixes are looked up apart)
  then        -> only endpoints whose inputs changed are recomputed: new or changed pods,
                 pods selected (before or after) by a changed policy, and pods selected
                 by a policy whose contribution changed (a peer selector's identity set,
                 a covering prefix, or the ports other pods declare for egress named ports)

Isolation: an endpoint is enforced in a direction iff a policy of its namespace selects
it and declares that policy type. The node always reaches its pods: an ingress-enforced
endpoint gets (INGRESS, host, any) as well.

Both families: a pod has one identity whatever its addresses (identities come from
labels); every address in its status (IPv4 and IPv6) maps to it in the ipcache, and a
node's addresses of both families to host / remote-node.

Failure isolation (limits.py): nothing one pod or one policy brings stops the update.
An identity that cannot be allocated leaves that pod without one (allocation.py); a
policy whose ipBlocks do not fit the cidr map is compiled isolating (admission.py); an
endpoint whose policies need more map entries than it may have gets the smallest that
fit, counted before anything is expanded. Each says why: `endpoint_problems`,
`identity_problems`, `policy_problems`. Cluster-wide tiers (agent.policy.tiers: `tiers`)
are indexed like NetworkPolicies, giving endpoints ranked tier entries; the modes
(agent.policy.modes) shape every EndpointPolicy.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence, Union

from core.protocols import ANY_PROTOCOL, Direction
from agent.k8s.objects import (ClusterObjects, IPBlock, Namespace, NetworkPolicy, Node, Pod,
                               TieredPolicy)
from agent.policy.admission import PrefixAdmission
from agent.policy.allocation import Allocates, GuardedAllocation
from agent.policy.identitykeys import SelectedKeys
from agent.policy.limits import PolicyLimits
from agent.policy.mapstate import ClusterMaps, EndpointPolicy, PolicyKey
from agent.policy.modes import PolicyModes, audit_changed, shape
from agent.policy.prefixes import Net, Prefixes
from agent.policy.resolver import HOST_PROVENANCE, CompiledPolicy, Contribution, Provenance
from agent.policy.tiers import CompiledTierPolicy, TierIndex
from agent.policy.selectorcache import Selector, SelectorCache
from identity.allocator import Identity
from identity.filter import LabelFilter
from identity.labels import LabelSet
from identity.reserved import ReservedIdentity
from identity.security import cidr_labels, left_out_labels, security_labels

WORLD_PREFIXES = ("0.0.0.0/0", "::/0")
HOST_ENTRY = PolicyKey(Direction.INGRESS, int(ReservedIdentity.HOST), ANY_PROTOCOL)

log = logging.getLogger(__name__)
Compiled = Union[CompiledPolicy, CompiledTierPolicy]

__all__ = ["Allocates", "EngineDelta", "PolicyEngine"]


@dataclass(frozen=True)
class EngineDelta:
    """What one update changed, so the datapath writes only that."""

    changed_endpoints: frozenset[str] = frozenset()   # pods whose EndpointPolicy changed
    removed_endpoints: frozenset[str] = frozenset()   # pods no longer endpoints
    cluster_maps_changed: bool = False
    identities_added: frozenset[int] = frozenset()
    identities_removed: frozenset[int] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.changed_endpoints or self.removed_endpoints
                    or self.cluster_maps_changed)


class PolicyEngine:
    def __init__(self, allocator: Allocates, cidr_allocator: Allocates,
                 cluster: str = "default", label_filter: LabelFilter | None = None,
                 limits: PolicyLimits | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 modes: PolicyModes = PolicyModes()) -> None:
        self._alloc = allocator
        self._cidr_alloc = cidr_allocator
        self._cluster = cluster
        self._filter = label_filter or LabelFilter.default()
        self._limits = limits or PolicyLimits()
        self._clock = clock
        self.modes = modes
        self._clear()

    def _clear(self) -> None:
        """Knows nothing: the state of a new engine."""
        self._cache = SelectorCache()
        self._selected_keys = SelectedKeys(lambda key: not self._filter.is_relevant(key))
        self._admission = PrefixAdmission(self._limits)
        self._identities = GuardedAllocation(self._alloc, self._clock)
        self._by_labels: dict[LabelSet, Identity] = {}     # identities some pod holds
        self._sizes: dict[str, dict[object, int]] = {}      # policy -> map entries
        self._problems: dict[str, dict[str, str]] = {}      # endpoint -> policy -> why
        self._namespaces: dict[str, Namespace] = {}
        self._nodes: dict[str, Node] = {}
        self._pods: dict[str, Pod] = {}                    # every pod, hostNetwork too
        self._pod_identity: dict[str, Identity] = {}       # endpoints only
        self._identity_pods: dict[int, set[str]] = {}
        self._policies: dict[str, CompiledPolicy] = {}
        self.tiers = TierIndex()                            # the cluster-wide policies
        self._ns_policies: dict[str, set[str]] = {}
        self._peer_users: dict[Selector, set[str]] = {}    # selector -> policies using it
        self._selects: dict[str, set[str]] = {}            # policy -> pods it selects
        self._selected_by: dict[str, tuple[str, ...]] = {}  # pod -> policies selecting it
        self._contrib: dict[str, dict[object, Contribution]] = {}
        self._prefix_refs: Counter[str] = Counter()
        self._prefixes = Prefixes()
        self._blocks: dict[IPBlock, tuple[int, ...]] = {}
        self._cidr_pods: dict[int, list[Pod]] | None = None
        self._endpoints: dict[str, EndpointPolicy] = {}
        self._provenance: dict[str, dict[PolicyKey, list[Provenance]]] = {}
        self._maps: dict[str | None, ClusterMaps] = {}

    # -- queries -----------------------------------------------------------------
    def identity_of(self, pod_key: str) -> Identity | None:
        return self._pod_identity.get(pod_key)

    def endpoint_policy(self, pod_key: str) -> EndpointPolicy:
        """The policy of any known pod; hostNetwork pods are never enforced."""
        if pod_key not in self._pods:
            raise KeyError(f"pod {pod_key} is not known to the policy engine")
        return self._endpoints.get(pod_key, EndpointPolicy())

    def left_out_labels(self, pod_key: str) -> tuple[str, ...]:
        """The pod's labels its identity does not hold, each with why."""
        pod = self._pods.get(pod_key)
        if pod is None or pod_key not in self._pod_identity:
            return ()
        return tuple(left_out_labels(
            pod.labels, label_filter=self._filter,
            selected_keys=self._selected_keys.keys_for(pod.namespace)))

    def endpoint_problems(self, pod_key: str) -> tuple[str, ...]:
        """Why the endpoint's policy allows less than the spec (policies of it that are
        not enforced, for it or at all); () when it is exactly the spec's."""
        return tuple(f"policy {k} {why}" for k, why in self._problems.get(pod_key, {}).items())

    def unenforced_policies(self, pod_key: str) -> frozenset[str]:
        """The policies selecting this endpoint that only isolate it (allow nothing)."""
        return frozenset(self._problems.get(pod_key, ()))

    def identity_problems(self) -> Mapping[str, str]:
        """Pods without an identity because it cannot be allocated, and why."""
        return self._identities.problems()

    def policy_problems(self) -> Mapping[str, str]:
        """Policies not enforced (only their isolation applies), and why."""
        return self._admission.refused()

    def provenance(self, pod_key: str) -> dict[PolicyKey, list[Provenance]]:
        return {k: list(v) for k, v in self._provenance.get(pod_key, {}).items()}

    def selecting_policies(self, pod_key: str) -> tuple[str, ...]:
        """Keys of the policies selecting this pod: NetworkPolicies, then tier policies."""
        return self._selected_by.get(pod_key, ())

    def selected_endpoints(self, policy_key: str) -> frozenset[str]:
        return frozenset(self._selects.get(policy_key, ()))

    def policy(self, policy_key: str) -> CompiledPolicy | None:
        return self._policies.get(policy_key)

    def pods(self) -> Mapping[str, Pod]:
        return self._pods

    def cluster_maps(self, local_node: str | None = None) -> ClusterMaps:
        maps = self._maps.get(local_node)
        if maps is None:
            maps = self._maps[local_node] = self._build_maps(local_node)
        return maps

    # -- ResolveContext ----------------------------------------------------------
    def selected(self, selector: Selector) -> frozenset[int]:
        return self._cache.matches(selector)

    def block_identities(self, block: IPBlock) -> Sequence[int]:
        found = self._blocks.get(block)
        if found is None:
            # P is allowed iff the block contains P and no except contains P: with every
            # except being a prefix of its own, the LPM of an excepted address lands on an
            # except (or inside one) and is never allowed by this block, yet another block
            # or policy may still allow it.
            excepts = [Net.of(e) for e in block.except_]
            found = tuple(sorted(
                self._prefixes.ids[p].id
                for net, p in self._prefixes.inside(Net.of(block.cidr))
                if not any(e.covers(net) for e in excepts)))
            self._blocks[block] = found
        return found

    def label_identities(self) -> Iterable[int]:
        return self._cache.identities()

    def pods_of(self, identity: int) -> Iterable[Pod]:
        return [self._pods[k] for k in sorted(self._identity_pods.get(identity, ()))]

    def pods_in_cidr(self, cidr_identity: int) -> Iterable[Pod]:
        if self._cidr_pods is None:
            self._cidr_pods = {}
            for key in sorted(self._pod_identity):
                pod = self._pods[key]
                for address in pod.addresses:
                    cid = self._prefixes.lpm(address)
                    if cid:
                        self._cidr_pods.setdefault(cid, []).append(pod)
        return self._cidr_pods.get(cidr_identity, [])

    # -- update ------------------------------------------------------------------
    def update(self, objects: ClusterObjects) -> EngineDelta:
        """Brings the engine to `objects` and says what changed. If this raises, the
        engine has forgotten everything (identity references released) rather than keep
        indexes a half-done update left disagreeing; the next update rebuilds it all."""
        try:
            return self._update(objects)
        except BaseException:
            self._forget_everything()
            raise

    def _forget_everything(self) -> None:
        # Each step of an update leaves every reference it took recorded in exactly one
        # of these two tables, so releasing them both balances the allocators.
        for allocator, identities in ((self._alloc, self._pod_identity.values()),
                                      (self._cidr_alloc, self._prefixes.ids.values())):
            for identity in identities:
                try:
                    allocator.release(identity)
                except Exception as err:  # noqa: BLE001 (one failed release must not stop the rest)
                    log.warning("releasing identity %d after a failed update: %s",
                                identity.id, err)
        self._clear()

    def _update(self, objects: ClusterObjects) -> EngineDelta:
        identities_before = set(self._identity_pods)
        maps_changed = self._update_nodes(objects.nodes)
        old_namespaces, self._namespaces = self._namespaces, dict(objects.namespaces)
        rescoped = self._selected_keys.update(objects.policies)
        refused = self._admission.update(objects.policies)
        pods_changed, removed_pods, ip_changed = self._update_pods(
            objects.pods, old_namespaces, rescoped)
        maps_changed |= ip_changed
        audit = audit_changed(old_namespaces, self._namespaces)   # shapes policies only
        dirty = set(pods_changed) | {k for k, p in self._pods.items() if p.namespace in audit}
        invalidate: set[str] = set()
        changed_prefixes = self._update_policies(objects.policies, dirty, invalidate, refused,
                                                 objects.cluster_policies)
        compiled: list[Compiled] = [*self._policies.values(), *self.tiers.compiled.values()]
        if changed_prefixes:
            maps_changed = True
            nets = [Net.of(p) for p in changed_prefixes]
            for cp in compiled:
                if any(Net.of(b.cidr).covers(n) for b in cp.ip_blocks for n in nets):
                    invalidate.add(cp.key)
        for selector in self._cache.drain_changed():
            invalidate |= self._peer_users.get(selector, set())
        if pods_changed or removed_pods or changed_prefixes:
            self._cidr_pods = None
            # Egress named ports resolve on other pods' declared ports.
            invalidate |= {cp.key for cp in compiled if cp.egress_named}
        for key in invalidate:
            self._contrib.pop(key, None)
            self._sizes.pop(key, None)
            policy = self._policies.get(key) or self.tiers.invalidate(key)
            if policy is not None:
                dirty |= self._subject_pods(policy)
            dirty |= self._selects.get(key, set())
        changed = set()
        for pod_key in dirty:
            if pod_key in self._pod_identity and self._recompute(pod_key):
                changed.add(pod_key)
        for pod_key in removed_pods:
            self._forget_endpoint(pod_key)
        if maps_changed:
            self._maps.clear()
        identities_after = set(self._identity_pods)
        return EngineDelta(frozenset(changed), frozenset(removed_pods), maps_changed,
                           frozenset(identities_after - identities_before),
                           frozenset(identities_before - identities_after))

    def _update_nodes(self, nodes: Mapping[str, Node]) -> bool:
        old = {n: node.addresses for n, node in self._nodes.items()}
        self._nodes = dict(nodes)
        return old != {n: node.addresses for n, node in self._nodes.items()}

    def _update_pods(self, pods: Mapping[str, Pod], old_namespaces: Mapping[str, Namespace],
                     rescoped: set[str]) -> tuple[set[str], set[str], bool]:
        """Allocates and releases identities; returns (changed pods, gone endpoints,
        whether the ipcache changed). rescoped: namespaces (or ANY_NAMESPACE) whose
        selected left-out keys changed."""
        changed: set[str] = set()
        gone: set[str] = set()
        ip_changed = False
        for key in set(self._pods) - set(pods):
            old = self._pods.pop(key)
            self._identities.forget(key)
            if key in self._pod_identity:
                gone.add(key)
                ip_changed |= bool(old.addresses)
                self._drop_identity(key)
        for key, pod in pods.items():
            old_pod = self._pods.get(key)
            self._pods[key] = pod
            if pod.host_network:
                self._identities.forget(key)
                if key in self._pod_identity:
                    gone.add(key)
                    ip_changed |= bool(old_pod and old_pod.addresses)
                    self._drop_identity(key)
                continue
            current = self._pod_identity.get(key)
            namespace = self._namespaces.get(pod.namespace)
            if (current is not None and old_pod == pod
                    and old_namespaces.get(pod.namespace) == namespace
                    and not SelectedKeys.concerns(rescoped, pod.namespace)):
                continue  # nothing an identity or a policy could depend on changed
            labels = security_labels(
                pod.labels, namespace=pod.namespace,
                namespace_labels=namespace.labels if namespace else {},
                service_account=pod.service_account, cluster=self._cluster,
                label_filter=self._filter,
                selected_keys=self._selected_keys.keys_for(pod.namespace))
            if current is not None and current.labels == labels:
                assert old_pod is not None
                if old_pod.ports != pod.ports or old_pod.addresses != pod.addresses:
                    changed.add(key)
                    ip_changed |= old_pod.addresses != pod.addresses
                continue
            # Take the new reference before dropping the old: a relabel back and forth
            # must not free a number still in use.
            identity = self._identities.allocate(key, labels, labels in self._by_labels)
            if identity is None:
                # Fail closed: out of the ipcache and every selector until it has one.
                if current is not None:
                    gone.add(key)
                    ip_changed |= bool(old_pod and old_pod.addresses)
                    self._drop_identity(key)
                continue
            self._drop_identity(key)
            self._pod_identity[key] = identity
            holders = self._identity_pods.setdefault(identity.id, set())
            if not holders:
                self._cache.add_identity(identity.id, identity.labels)
                self._by_labels[identity.labels] = identity
            holders.add(key)
            changed.add(key)
            ip_changed |= bool(pod.addresses) or bool(old_pod and old_pod.addresses)
        return changed, gone, ip_changed

    def _drop_identity(self, key: str) -> None:
        identity = self._pod_identity.pop(key, None)
        if identity is None:
            return
        holders = self._identity_pods.get(identity.id, set())
        holders.discard(key)
        if not holders:
            self._identity_pods.pop(identity.id, None)
            self._cache.remove_identity(identity.id)
            self._by_labels.pop(identity.labels, None)
        self._alloc.release(identity)

    def _update_policies(self, policies: Mapping[str, NetworkPolicy], dirty: set[str],
                         invalidate: set[str], refused: Mapping[str, str],
                         tier_policies: Mapping[str, TieredPolicy]) -> set[str]:
        """Compiles new and changed policies (refused ones isolating; tier policies with
        `nodes` peers also when nodes changed); returns the prefixes that came or went."""
        before = set(self._prefix_refs)
        for key in list(self._policies):
            old = self._policies[key]
            if policies.get(key) != old.policy or old.not_enforced != refused.get(key, ""):
                self._uncompile(old)
                dirty |= self._selects.pop(key, set())
        for stale in self.tiers.stale(tier_policies, self._nodes):
            self._uncompile(stale)
            dirty |= self._selects.pop(stale.key, set())
        for key, policy in policies.items():
            if key not in self._policies:
                self._compile(CompiledPolicy.isolating(policy, refused[key]) if key in refused
                              else CompiledPolicy.of(policy))
                invalidate.add(key)
        for tier_policy in self.tiers.new(tier_policies):
            self._compile(CompiledTierPolicy.of(tier_policy, self._nodes))
            invalidate.add(tier_policy.key)
        after = set(self._prefix_refs)
        changed = before ^ after
        for prefix in before - after:
            self._cidr_alloc.release(self._prefixes.ids.pop(prefix))
        for prefix in sorted(after - before):
            self._prefixes.ids[prefix] = self._cidr_alloc.allocate(cidr_labels(prefix))
        if changed:
            self._prefixes.reindex()
            self._blocks.clear()
        return changed

    def _compile(self, cp: Compiled) -> None:
        if isinstance(cp, CompiledTierPolicy):
            self.tiers.compiled[cp.key] = cp
        else:
            self._policies[cp.key] = cp
            self._ns_policies.setdefault(cp.policy.namespace, set()).add(cp.key)
        self._cache.add_selector(cp.subject)
        for selector in cp.peer_selectors:
            self._cache.add_selector(selector)
            self._peer_users.setdefault(selector, set()).add(cp.key)
        for block in cp.ip_blocks:
            self._prefix_refs.update([block.cidr, *block.except_])

    def _uncompile(self, cp: Compiled) -> None:
        if isinstance(cp, CompiledTierPolicy):
            self.tiers.drop(cp.key)
        else:
            del self._policies[cp.key]
            self._ns_policies[cp.policy.namespace].discard(cp.key)
        self._contrib.pop(cp.key, None)
        self._sizes.pop(cp.key, None)
        self._cache.remove_selector(cp.subject)
        for selector in cp.peer_selectors:
            self._cache.remove_selector(selector)
            users = self._peer_users[selector]
            users.discard(cp.key)
            if not users:
                del self._peer_users[selector]
        for block in cp.ip_blocks:
            self._prefix_refs.subtract([block.cidr, *block.except_])
        self._prefix_refs = +self._prefix_refs  # drop prefixes nobody references

    def _subject_pods(self, cp: Compiled) -> set[str]:
        pods: set[str] = set()
        for ident in self._cache.matches(cp.subject):
            pods |= self._identity_pods.get(ident, set())
        return pods

    # -- per endpoint ------------------------------------------------------------
    def _recompute(self, pod_key: str) -> bool:
        """Recomputes one endpoint; True if its EndpointPolicy changed."""
        pod = self._pods[pod_key]
        ident = self._pod_identity[pod_key].id
        selecting = sorted(
            k for k in self._ns_policies.get(pod.namespace, ())
            if self._cache.contains(self._policies[k].subject, ident))
        tiers = self.tiers.selecting(lambda selector: self._cache.contains(selector, ident))
        keys = selecting + [t.key for t in tiers]
        for k in set(self._selected_by.get(pod_key, ())) - set(keys):
            self._selects.get(k, set()).discard(pod_key)
        for k in keys:
            self._selects.setdefault(k, set()).add(pod_key)
        self._selected_by[pod_key] = tuple(keys)

        ingress = egress = False
        prov: dict[PolicyKey, list[Provenance]] = {}
        admitted, problems = self._fitting(selecting, pod)
        for k in selecting:
            cp = self._policies[k]
            ingress |= cp.enforces(Direction.INGRESS)
            egress |= cp.enforces(Direction.EGRESS)
            if k not in admitted:
                continue   # not enforced: it isolates, and allows nothing
            for entry, why in self._contribution(cp, pod):
                prov.setdefault(entry, []).append(why)
        if ingress:
            prov.setdefault(HOST_ENTRY, []).append(HOST_PROVENANCE)
        tier_prov = self.tiers.entries(pod_key, pod, tiers, self)
        namespace = self._namespaces.get(pod.namespace)
        policy = shape(EndpointPolicy(ingress, egress, frozenset(prov), frozenset(tier_prov)),
                       self.modes, bool(namespace and namespace.audit), tier_prov)
        self._provenance[pod_key] = prov
        if problems:
            self._problems[pod_key] = problems
        else:
            self._problems.pop(pod_key, None)
        old = self._endpoints.get(pod_key)
        self._endpoints[pod_key] = policy
        return old != policy

    def _fitting(self, selecting: Sequence[str], pod: Pod) -> tuple[set[str], dict[str, str]]:
        """The selecting policies whose entries fit the endpoint's share of the policy
        map, smallest first (counted, not built), and why the others are left out."""
        problems = {k: f"is not enforced: {self._policies[k].not_enforced}"
                    for k in selecting if self._policies[k].not_enforced}
        sized = sorted((self._size(self._policies[k], pod), k) for k in selecting
                       if not self._policies[k].not_enforced)
        room = self._limits.max_entries_per_endpoint - 1     # the node's own entry
        admitted: set[str] = set()
        for need, k in sized:
            if need > room:
                problems[k] = (
                    f"needs {need} policy map entries here, more than the {room} left of "
                    f"the {self._limits.max_entries_per_endpoint} an endpoint may have "
                    "(--max-policy-entries-per-endpoint): it isolates and allows nothing")
                continue
            room -= need
            admitted.add(k)
        return admitted, problems

    def _size(self, cp: CompiledPolicy, pod: Pod) -> int:
        signature: object = pod.ports if cp.ingress_named else None
        per_policy = self._sizes.setdefault(cp.key, {})
        found = per_policy.get(signature)
        if found is None:
            found = per_policy[signature] = cp.map_entries(pod, self)
        return found

    def _contribution(self, cp: CompiledPolicy, pod: Pod) -> Contribution:
        # Only ingress named ports make a contribution depend on the endpoint itself.
        signature: object = pod.ports if cp.ingress_named else None
        per_policy = self._contrib.setdefault(cp.key, {})
        found = per_policy.get(signature)
        if found is None:
            found = per_policy[signature] = cp.contribution(pod, self)
        return found

    def _forget_endpoint(self, pod_key: str) -> None:
        for k in self._selected_by.pop(pod_key, ()):
            self._selects.get(k, set()).discard(pod_key)
        self._endpoints.pop(pod_key, None)
        self._provenance.pop(pod_key, None)
        self._problems.pop(pod_key, None)
        self.tiers.forget(pod_key)

    # -- cluster maps ------------------------------------------------------------
    def _build_maps(self, local_node: str | None) -> ClusterMaps:
        ipcache: dict[str, int] = {p: int(ReservedIdentity.WORLD) for p in WORLD_PREFIXES}
        for key, identity in self._pod_identity.items():
            for address in self._pods[key].addresses:
                ipcache[_host_prefix(address)] = identity.id
        # Node addresses win over a pod claiming one: the host must stay the host.
        for name, node in self._nodes.items():
            for address in node.addresses:
                ipcache[_host_prefix(address)] = int(
                    ReservedIdentity.HOST if name == local_node else ReservedIdentity.REMOTE_NODE)
        cidrs = {prefix: ident.id for prefix, ident in self._prefixes.ids.items()}
        return ClusterMaps(ipcache, cidrs)


def _host_prefix(address: str) -> str:
    """The one-address prefix of an address: /32 (IPv4) or /128 (IPv6)."""
    return f"{address}/128" if ":" in address else f"{address}/32"
