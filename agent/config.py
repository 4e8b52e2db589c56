"""The agent's settings, from flags (or the DaemonSet's ConfigMap, which sets flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class AgentConfig:
    node: str
    source: str = "kubernetes"               # "kubernetes" | "lab:<store dir>"
    state_dir: Path = Path("/var/lib/membrane")
    socket: str = "/run/membrane/agent.sock"
    bpffs: str = "/sys/fs/bpf/membrane"
    cluster: str = "default"
    identity_backend: str = "local"          # "local" | "etcd" | "crd"
    etcd_endpoints: tuple[str, ...] = ()
    identity_grace_seconds: float = 300.0
    exclude_labels: tuple[str, ...] = ()
    flow_capacity: int = 4095
    event_queue_size: int = 65536
    # 2 MiB of kernel ring holds ~180 ms of events at 200k/s (64 pages: ~23 ms), enough
    # to ride out reader stalls on a busy 2-CPU node (docs/PERFORMANCE.md, events).
    event_ring_pages: int = 512
    metrics_port: int | None = None
    health_port: int | None = None
    kubeconfig: str | None = None
    datapath: str = "bpf"                    # "bpf" | "fake" (tests of the control plane)
    max_policy_entries: int = 65536
    max_conntrack_entries: int = 262144
    conntrack_gc_interval: float = 5.0
    observer_listen: str | None = None       # "0.0.0.0:4245": Observer on TCP, mutual TLS only
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
