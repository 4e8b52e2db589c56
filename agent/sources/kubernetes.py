"""The Kubernetes source: the agent's view of a real cluster, from the API server.

Namespaces, Pods (every namespace: each pod IP goes to the ipcache, not only this
node's), Nodes and NetworkPolicies are each listed, then watched, by one thread
(k8s_watch.KindWatcher); so are the Network Policy API's cluster-wide kinds
(ClusterNetworkPolicy policy.networking.k8s.io/v1alpha2, AdminNetworkPolicy and
BaselineAdminNetworkPolicy v1alpha1), which are CRDs a cluster may not have: a kind its
API server does not serve counts as listed and empty, and is looked for again until its
CRD appears (docs/cluster-policies.md says how to install them). What they learn goes
through a Mirror (k8s_mirror) that keeps the store empty and unsynced until every
initial list is in. The policy engine
downstream cannot tell this source from the lab's.

Configuration, in this order: an injected `api_client` (tests, or an embedding program);
in-cluster (the pod's service account) when `in_cluster` is true, or when it is None and
the process runs in a pod (KUBERNETES_SERVICE_HOST is set) without a kubeconfig given;
otherwise a kubeconfig (`kubeconfig`, else $KUBECONFIG, else ~/.kube/config).

    source = KubernetesSource(node_name="kind-worker")
    threading.Thread(target=source.run, args=(store, stop)).start()
    source.synced.wait()   # the store holds a complete cluster from here on
"""

from __future__ import annotations

import logging
import os
import threading
from functools import partial
from typing import Any

from kubernetes import client, config

from core.errors import LoadError
from identity.allocator import Allocator
from identity.crd import CrdAllocator
from agent.k8s.objects import (ANP_API_VERSION, ANP_KIND, API_GROUP, BANP_KIND,
                               CNP_API_VERSION, CNP_KIND)
from agent.sources.k8s_mirror import Mirror
from agent.sources.k8s_watch import KindSpec, KindWatcher, WatchSettings
from agent.store import Store

log = logging.getLogger(__name__)

# How long run() waits for its threads once stopped; a watch is interrupted by shutting
# its socket, so this is only reached if a thread is stuck outside the client.
_JOIN_TIMEOUT = 5.0


class KubernetesSource:
    name = "kubernetes"

    def __init__(self, kubeconfig: str | None = None, in_cluster: bool | None = None,
                 node_name: str | None = None, api_client: Any = None,
                 settings: WatchSettings | None = None, tiers: bool = True) -> None:
        # The node this agent runs on: its pods are the local endpoints. Every pod is
        # still watched, since remote pods' IPs are needed for the ipcache.
        self.node_name = node_name
        self.settings = settings or WatchSettings()
        self.api_client = api_client or client.ApiClient(load_configuration(kubeconfig,
                                                                            in_cluster))
        self.synced = threading.Event()   # set once the store holds the initial lists
        self.watchers: list[KindWatcher] = []
        self.tiers = tiers                # also the Network Policy API's CRDs

    def specs(self) -> list[KindSpec]:
        core = client.CoreV1Api(self.api_client)
        networking = client.NetworkingV1Api(self.api_client)
        specs = [
            KindSpec("Namespace", "v1", core.list_namespace),
            KindSpec("Node", "v1", core.list_node),
            KindSpec("Pod", "v1", core.list_pod_for_all_namespaces),
            KindSpec("NetworkPolicy", "networking.k8s.io/v1",
                     networking.list_network_policy_for_all_namespaces),
        ]
        if self.tiers:
            custom = client.CustomObjectsApi(self.api_client)
            for kind, api_version, plural in (
                    (CNP_KIND, CNP_API_VERSION, "clusternetworkpolicies"),
                    (ANP_KIND, ANP_API_VERSION, "adminnetworkpolicies"),
                    (BANP_KIND, ANP_API_VERSION, "baselineadminnetworkpolicies")):
                version = api_version.split("/")[1]
                specs.append(KindSpec(kind, api_version, partial(
                    custom.list_cluster_custom_object, API_GROUP, version, plural),
                    optional=True))
        return specs

    def run(self, store: Store, stop: threading.Event) -> None:
        specs = self.specs()
        mirror = Mirror(store, (s.kind for s in specs), self.synced)
        self.watchers = [KindWatcher(s, mirror, stop, self.settings) for s in specs]
        threads = [threading.Thread(target=w.run, name=f"k8s-{w.spec.kind}", daemon=True)
                   for w in self.watchers]
        log.info("kubernetes: watching %s from %s (node %s)",
                 ", ".join(s.kind for s in specs), self.api_client.configuration.host,
                 self.node_name or "unknown")
        for t in threads:
            t.start()
        stop.wait()
        # A watch may be between connecting and streaming when interrupted, and the
        # client forgets a stop() issued before its stream begins: interrupt until gone.
        for watcher, thread in zip(self.watchers, threads):
            for _ in range(int(_JOIN_TIMEOUT / 0.1)):
                watcher.interrupt()
                thread.join(0.1)
                if not thread.is_alive():
                    break
            else:
                log.warning("kubernetes: %s watcher did not stop in %.0fs",
                            watcher.spec.kind, _JOIN_TIMEOUT)


def load_configuration(kubeconfig: str | None = None,
                       in_cluster: bool | None = None) -> client.Configuration:
    """The client configuration for a pod's service account or a kubeconfig."""
    if in_cluster is None:
        in_cluster = kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ
    cfg = client.Configuration()
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=cfg)
    except (config.ConfigException, OSError) as e:
        where = ("the in-cluster service account (is this running in a pod with its token "
                 "mounted?)" if in_cluster else
                 f"kubeconfig {kubeconfig or os.environ.get('KUBECONFIG') or '~/.kube/config'}"
                 " (pass --kubeconfig, or run in a pod)")
        raise LoadError(f"cannot configure the Kubernetes client from {where}: {e}") from e
    return cfg


def crd_allocator(kubeconfig: str | None, node: str, grace_seconds: float) -> Allocator:
    """The cluster-wide allocator over MembraneIdentity objects (identity/crd.py), with the
    same client configuration as the source: a pod's service account, or a kubeconfig."""
    api = client.ApiClient(load_configuration(kubeconfig))
    allocator: Allocator = CrdAllocator(api, node=node, grace_seconds=grace_seconds)
    return allocator
