"""The agent's settings, from flags (or the DaemonSet's ConfigMap, which sets flags).

Every default lives here: `membrane agent`'s flags (cli/daemon.py) read theirs from
`AgentConfig`, and the flow ring's sizes are observe.ring's constants, one number each;
the policy limits are agent.policy.limits' constants, which `policy matrix` and `policy
trace` use offline too, so their answers match a default agent's.
`validate()` refuses a combination the agent cannot run with, before anything is built.

Map sizes are max_entries of the pinned BPF maps (memory when full: README.md, "Map
sizes"). A pinned map keeps the size it was created with, so a changed size is applied
at start by recreating that map (agent/datapath/bpf.py says what that costs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.api.client import DEFAULT_SOCKET
from agent.endpoint_manager import UNMANAGED_GRACE
from agent.health import HEALTH_ADDRESS
from agent.policy.limits import (DEFAULT_MAX_CIDR_PREFIXES, DEFAULT_MAX_ENTRIES_PER_ENDPOINT,
                                 DEFAULT_MAX_PREFIXES_PER_POLICY, DEFAULT_NAMESPACE_SHARE,
                                 PolicyLimits)
from agent.policy.modes import ENFORCEMENT_MODES, PolicyModes
from core.errors import MembraneError
from observe.metrics import DEFAULT_METRICS, parse_metrics
from observe.ring import DEFAULT_CAPACITY, DEFAULT_QUEUE_SIZE

LAB_SOURCE_PREFIX = "lab:"
IDENTITY_BACKENDS = ("local", "etcd", "crd")
DATAPATHS = ("bpf", "fake")


@dataclass(frozen=True)
class AgentConfig:
    node: str
    source: str = "kubernetes"               # "kubernetes" | "lab:<store dir>"
    state_dir: Path = Path("/var/lib/membrane")
    socket: str = DEFAULT_SOCKET
    bpffs: str = "/sys/fs/bpf/membrane"
    cluster: str = "default"
    identity_backend: str = "local"          # "local" | "etcd" | "crd"
    etcd_endpoints: tuple[str, ...] = ()
    # etcd security (identity.etcd.EtcdAccess): TLS files, and an etcd user whose
    # password is read from a file (never a flag: flags show in `ps`).
    etcd_ca_file: str | None = None
    etcd_cert_file: str | None = None
    etcd_key_file: str | None = None
    etcd_user: str | None = None
    etcd_password_file: str | None = None
    identity_grace_seconds: float = 300.0
    exclude_labels: tuple[str, ...] = ()
    flow_capacity: int = DEFAULT_CAPACITY
    event_queue_size: int = DEFAULT_QUEUE_SIZE
    # 2 MiB of kernel ring holds ~180 ms of events at 200k/s (64 pages: ~23 ms), enough
    # to ride out reader stalls on a busy 2-CPU node (docs/PERFORMANCE.md, events).
    event_ring_pages: int = 512
    # Prometheus: the agent's own metrics and Hubble's flow metrics, each on its own
    # listener as Cilium's (":9962", ":9965": all addresses). metrics_port is the older
    # single loopback listener serving both.
    prometheus_serve_addr: str | None = None
    hubble_metrics_server: str | None = None
    hubble_metrics: str = DEFAULT_METRICS    # "drop:sourceContext=pod;destinationContext=pod ..."
    metrics_port: int | None = None
    # Flow export (Hubble's format, JSON lines) to a file with size-based rotation.
    export_file: str | None = None
    export_file_max_size_mb: int = 10
    export_file_max_backups: int = 5
    export_allowlist: tuple[str, ...] = ()   # FlowFilters as JSON
    export_denylist: tuple[str, ...] = ()
    health_port: int | None = None
    health_address: str = HEALTH_ADDRESS     # loopback: the probes ask 127.0.0.1
    # A networked pod of this node without an endpoint this long is "unmanaged" (status,
    # /readyz, endpoint list): its CNI ADD may still be on its way until then.
    unmanaged_grace_seconds: float = UNMANAGED_GRACE
    kubeconfig: str | None = None
    datapath: str = "bpf"                    # "bpf" | "fake" (tests of the control plane)
    attach_mode: str = "auto"                # "auto" | "tcx" | "tc" (agent/datapath/hooks.py)
    # BPF map sizes (max_entries).
    max_policy_entries: int = 65536          # every local endpoint's allow entries
    max_conntrack_entries: int = 262144
    max_ipcache_entries: int = 16384         # pod IPs (cluster-wide), node IPs, world
    max_cidr_entries: int = DEFAULT_MAX_CIDR_PREFIXES   # every policy's ipBlock prefixes
    max_endpoints: int = 1024                # local endpoints
    # Shares of them one policy, endpoint or namespace may take (agent/policy/limits.py).
    max_policy_entries_per_endpoint: int = DEFAULT_MAX_ENTRIES_PER_ENDPOINT
    max_cidr_prefixes_per_policy: int = DEFAULT_MAX_PREFIXES_PER_POLICY
    namespace_map_share: float = DEFAULT_NAMESPACE_SHARE  # of the policy and cidr maps
    conntrack_gc_interval: float = 5.0
    identity_gc_interval: float = 30.0       # unreferenced identities past their grace
    observer_listen: str | None = None       # "0.0.0.0:4245": Observer on TCP, mutual TLS only
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    # The name in the agents' TLS certificate, which the Peer service tells relays.
    tls_server_name: str = "membrane-agent"
    # Client certificate names (subject CN or SAN) that may read flows over TCP; "*":
    # every certificate the client CA signed. Required with observer_listen.
    tls_client_names: tuple[str, ...] = ()
    enable_policy: str = "default"           # enforcement: default | always | never
    policy_audit_mode: bool = False          # policy denials pass, reported as AUDIT

    @property
    def lab_store(self) -> str | None:
        """The store directory of a "lab:<dir>" source, else None."""
        if self.source.startswith(LAB_SOURCE_PREFIX):
            return self.source[len(LAB_SOURCE_PREFIX):]
        return None

    @property
    def policy_modes(self) -> PolicyModes:
        return PolicyModes.of(self.enable_policy, self.policy_audit_mode)

    def validate(self) -> None:
        """The source and the datapath are checked where they are built (agent.compose),
        since tests hand the agent their own."""
        if self.identity_backend not in IDENTITY_BACKENDS:
            raise MembraneError(f"--identity-backend {self.identity_backend!r}: expected "
                                f"{' or '.join(IDENTITY_BACKENDS)}")
        if self.enable_policy not in ENFORCEMENT_MODES:
            raise MembraneError(f"--enable-policy {self.enable_policy!r}: expected "
                                f"{', '.join(ENFORCEMENT_MODES)}")
        if self.identity_backend == "etcd" and not self.etcd_endpoints:
            raise MembraneError("--identity-backend etcd needs --etcd URL")
        try:
            parse_metrics(self.hubble_metrics)
        except ValueError as err:
            raise MembraneError(f"--hubble-metrics: {err}") from None
        if self.export_file_max_size_mb < 1 or self.export_file_max_backups < 0:
            raise MembraneError("--hubble-export-file-max-size-mb must be at least 1 and "
                                "--hubble-export-file-max-backups at least 0")
        if bool(self.etcd_cert_file) != bool(self.etcd_key_file):
            raise MembraneError("--etcd-cert and --etcd-key go together: give both or "
                                "neither")
        if bool(self.etcd_user) != bool(self.etcd_password_file):
            raise MembraneError("--etcd-user and --etcd-password-file go together: give "
                                "both or neither")
        if self.etcd_ca_file or self.etcd_cert_file:
            plain = [e for e in self.etcd_endpoints if not e.startswith("https://")]
            if plain:
                raise MembraneError(f"--etcd {', '.join(plain)}: the --etcd-ca/--etcd-cert "
                                    "options need https:// endpoints")
        for flag, value in (("--max-policy-entries", self.max_policy_entries),
                            ("--max-conntrack-entries", self.max_conntrack_entries),
                            ("--max-ipcache-entries", self.max_ipcache_entries),
                            ("--max-cidr-entries", self.max_cidr_entries),
                            ("--max-endpoints", self.max_endpoints)):
            if value < 1:
                raise MembraneError(f"{flag} {value}: a map needs at least one entry")
        if self.max_policy_entries_per_endpoint > self.max_policy_entries:
            raise MembraneError(
                f"--max-policy-entries-per-endpoint {self.max_policy_entries_per_endpoint} "
                f"is larger than the policy map (--max-policy-entries "
                f"{self.max_policy_entries})")
        if self.max_cidr_prefixes_per_policy > self.max_cidr_entries:
            raise MembraneError(
                f"--max-cidr-prefixes-per-policy {self.max_cidr_prefixes_per_policy} is "
                f"larger than the cidr map (--max-cidr-entries {self.max_cidr_entries})")
        self.policy_limits().validate()

    def policy_limits(self) -> PolicyLimits:
        return PolicyLimits(max_cidr_prefixes=self.max_cidr_entries,
                            max_prefixes_per_policy=self.max_cidr_prefixes_per_policy,
                            max_entries_per_endpoint=self.max_policy_entries_per_endpoint,
                            namespace_share=self.namespace_map_share)
