"""The agent: keeps a node's endpoints, identities and BPF maps in step with the cluster.

`Agent` starts and stops the parts the composition root (agent.compose) built:

  threads      source       the Store from the lab directory or the Kubernetes watch
               regenerator  store or endpoint change -> engine -> datapath writes
               events       datapath ring buffer -> FlowObserver
               gc           expired conntrack entries, unreferenced identities
  servers      gRPC (Agent + Observer) on the unix socket, the Observer on TCP with
               mutual TLS if asked, /healthz and /readyz if asked

Start order: the datapath (compile, reuse pins), reconciliation with what is pinned,
the observer, the API, then the threads. Nothing is enforced from a half-known state:
until the source reports its initial list, endpoints keep what is pinned (after a
restart) or the fail-closed init policy (new ones). Stop leaves programs and pinned
maps in place, so a restarting agent neither opens nor cuts anything.
"""

from __future__ import annotations

import logging
import time

from agent.api.status import AgentStatus
from agent.compose import AgentParts, compose
from agent.config import AgentConfig
from agent.datapath.interface import Datapath
from agent.api.client import DEFAULT_WAIT_SECONDS
from agent.endpoint_manager import EndpointManager
from agent.endpoints import Endpoint
from agent.health import BoundedHTTPServer, serve_health
from agent.sources.base import Source

log = logging.getLogger("membrane.agent")


class Agent:
    def __init__(self, config: AgentConfig, datapath: Datapath | None = None,
                 source: Source | None = None) -> None:
        self.config = config
        self.parts: AgentParts = compose(config, datapath, source)
        self._health_server: BoundedHTTPServer | None = None

    @property
    def endpoints(self) -> EndpointManager:
        return self.parts.endpoints

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        p = self.parts
        p.datapath.start()
        p.endpoints.reconcile_pinned()
        p.events.start()
        p.api.start()
        if self.config.health_port:
            self._health_server = serve_health(p.health, self.config.health_port,
                                               self.config.health_address)
        p.workers.spawn("source", p.feed.run)
        p.workers.spawn("regenerator", p.regenerator.run)
        p.workers.spawn("events", p.events.run)
        p.workers.spawn("gc", p.gc.run)
        log.info("agent %s started in %.0f ms (source %s)", self.config.node,
                 (time.monotonic() - t0) * 1000, p.feed.name)

    def stop(self) -> None:
        p = self.parts
        p.stop.set()
        p.regenerator.wake()
        p.api.stop()
        if self._health_server is not None:
            self._health_server.shutdown()
            self._health_server = None
        p.workers.join()
        p.events.stop()
        # Programs and pinned maps stay: a restarting agent neither opens nor cuts anything.
        p.datapath.close(unpin=False)
        p.allocator.close()
        p.cidr_allocator.close()
        log.info("agent %s stopped", self.config.node)

    def wait(self) -> None:
        self.parts.stop.wait()

    # -- what tests, the lab and benchmarks call in-process ------------------------------
    def register_endpoint(self, namespace: str, pod: str, ifname: str, ipv4: str,
                          container_id: str = "",
                          timeout: float = DEFAULT_WAIT_SECONDS, ipv6: str = "") -> Endpoint:
        return self.parts.endpoints.register(namespace, pod, ifname, ipv4, container_id,
                                             timeout, ipv6)

    def deregister_endpoint(self, namespace: str, pod: str) -> None:
        self.parts.endpoints.deregister(namespace, pod)

    def wait_for_revision(self, revision: int, timeout: float) -> bool:
        return self.parts.regenerator.wait_for_revision(revision, timeout)

    def status(self) -> AgentStatus:
        return self.parts.status.status()
