"""The agent's settings, from flags (or the DaemonSet's ConfigMap, which sets flags).

Every default lives here: `membrane agent`'s flags (cli/daemon.py) read theirs from
`AgentConfig`, and the flow ring's sizes are observe.ring's constants, one number each.
`validate()` refuses a combination the agent cannot run with, before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.api.client import DEFAULT_SOCKET
from agent.endpoint_manager import UNMANAGED_GRACE
from agent.health import HEALTH_ADDRESS
from agent.policy.modes import ENFORCEMENT_MODES, PolicyModes
from core.errors import MembraneError
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
    metrics_port: int | None = None
    health_port: int | None = None
    health_address: str = HEALTH_ADDRESS     # loopback: the probes ask 127.0.0.1
    # A networked pod of this node without an endpoint this long is "unmanaged" (status,
    # /readyz, endpoint list): its CNI ADD may still be on its way until then.
    unmanaged_grace_seconds: float = UNMANAGED_GRACE
    kubeconfig: str | None = None
    datapath: str = "bpf"                    # "bpf" | "fake" (tests of the control plane)
    max_policy_entries: int = 65536
    max_conntrack_entries: int = 262144
    conntrack_gc_interval: float = 5.0
    identity_gc_interval: float = 30.0       # unreferenced identities past their grace
    observer_listen: str | None = None       # "0.0.0.0:4245": Observer on TCP, mutual TLS only
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
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
