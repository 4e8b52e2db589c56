"""The etcd allocator over TLS with client certificates and with etcd users, against a
real etcd on loopback (tests/etcd_server.py), with certificates made by the documented
step itself (deploy/components/etcd/make-certs.sh).

- TLS: an https endpoint verified against the CA, a client certificate presented; a
  client without one is refused by etcd (--client-cert-auth), and a plain-HTTP client
  gets nothing either.
- Users: with etcd auth on, the allocator authenticates (user and password: the JSON
  gateway cannot map certificates to users), replaces a token etcd stops accepting
  (its TTL ran out, or etcd restarted) without a restart of its own, and a wrong
  password or no credentials is a refusal, not an allocation.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from core.errors import AllocationError
from agent.config import AgentConfig
from identity.etcd import EtcdAccess, EtcdAllocator
from identity.labels import LabelSet
from tests.etcd_server import ETCD_BINARY, EtcdServer

MAKE_CERTS = Path(__file__).resolve().parents[2] / "deploy/components/etcd/make-certs.sh"
WEB = LabelSet.parse(["k8s:io.kubernetes.pod.namespace=shop", "k8s:app=web"])
PREFIX = "/membrane/identities"

pytestmark = pytest.mark.skipif(
    not Path(ETCD_BINARY).exists() or shutil.which("openssl") is None,
    reason="needs etcd (etcd-server) and openssl")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki") / "etcd"
    subprocess.run(["sh", str(MAKE_CERTS), str(out), "127.0.0.1"], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def tls_etcd(pki: Path) -> Iterator[EtcdServer]:
    with EtcdServer(tls=pki) as server:
        yield server


def allocator(endpoint: str, access: EtcdAccess, node: str = "n1") -> EtcdAllocator:
    return EtcdAllocator([endpoint], node, f"/membrane-test/{uuid.uuid4().hex[:8]}",
                         lease_ttl=2, request_timeout=2.0, start=False, access=access)


def test_the_documented_step_makes_what_the_agents_and_etcd_mount(pki: Path) -> None:
    assert {p.name for p in pki.iterdir()} >= {
        "ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key",
        "password", "endpoints"}
    assert (pki / "endpoints").read_text() == "https://127.0.0.1:12379"
    assert oct(pki.stat().st_mode & 0o777) == "0o700"


def test_with_the_ca_and_a_client_certificate_identities_are_allocated(
        tls_etcd: EtcdServer, pki: Path) -> None:
    access = EtcdAccess(ca_file=str(pki / "ca.crt"), cert_file=str(pki / "client.crt"),
                        key_file=str(pki / "client.key"))
    a = allocator(tls_etcd.endpoint, access)
    try:
        assert a.allocate(WEB).id >= 256
        assert a.connected
    finally:
        a.close()


def test_without_a_client_certificate_etcd_refuses_the_connection(
        tls_etcd: EtcdServer, pki: Path) -> None:
    anonymous = allocator(tls_etcd.endpoint, EtcdAccess(ca_file=str(pki / "ca.crt")))
    try:
        with pytest.raises(AllocationError, match="unreachable"):
            anonymous.allocate(WEB)
        assert not anonymous.connected
    finally:
        anonymous.close(revoke=False)
    plain = allocator(tls_etcd.endpoint.replace("https:", "http:"), EtcdAccess())
    try:
        with pytest.raises(AllocationError):
            plain.allocate(WEB)
    finally:
        plain.close(revoke=False)


def test_tls_options_need_https_and_a_key_needs_its_certificate(pki: Path) -> None:
    with pytest.raises(ValueError, match="https"):
        allocator("http://127.0.0.1:2379", EtcdAccess(ca_file=str(pki / "ca.crt")))
    with pytest.raises(ValueError, match="certificate and key"):
        allocator("https://127.0.0.1:2379", EtcdAccess(cert_file=str(pki / "client.crt")))
    with pytest.raises(ValueError, match="user and password"):
        allocator("http://127.0.0.1:2379", EtcdAccess(user="membrane"))


# -- etcd users -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def auth_etcd() -> Iterator[EtcdServer]:
    with EtcdServer(auth_token_ttl=1) as server:
        server.enable_auth("membrane", "s3cret", PREFIX)
        yield server


def test_with_etcd_users_on_the_allocator_authenticates_and_renews_its_token(
        auth_etcd: EtcdServer) -> None:
    a = EtcdAllocator([auth_etcd.endpoint], "n1", f"{PREFIX}/{uuid.uuid4().hex[:8]}",
                      lease_ttl=2, start=False,
                      access=EtcdAccess(user="membrane", password="s3cret"))
    try:
        web = a.allocate(WEB)
        time.sleep(2.5)                   # idle past --auth-token-ttl: the token is dead
        other = a.allocate(LabelSet.parse(["k8s:io.kubernetes.pod.namespace=shop",
                                           "k8s:app=db"]))
        assert other.id != web.id
        auth_etcd.stop()                  # a restarted etcd forgets every token
        auth_etcd.start()
        assert a.sync()
        a.refresh()
        assert {i.id for i in a.identities()} >= {web.id, other.id}
    finally:
        a.close()


@pytest.mark.parametrize("access, why", [
    (EtcdAccess(), "user name is empty"),
    (EtcdAccess(user="membrane", password="wrong"), "authentication failed"),
], ids=["no credentials", "a wrong password"])
def test_without_valid_credentials_allocation_is_refused(
        auth_etcd: EtcdServer, access: EtcdAccess, why: str) -> None:
    a = EtcdAllocator([auth_etcd.endpoint], "n1", f"{PREFIX}/{uuid.uuid4().hex[:8]}",
                      lease_ttl=2, start=False, access=access)
    try:
        with pytest.raises(AllocationError, match=why):
            a.allocate(WEB)
    finally:
        a.close(revoke=False)


def test_the_membrane_user_reaches_nothing_outside_its_prefix(auth_etcd: EtcdServer) -> None:
    a = EtcdAllocator([auth_etcd.endpoint], "n1", "/elsewhere", lease_ttl=2, start=False,
                      access=EtcdAccess(user="membrane", password="s3cret"))
    try:
        with pytest.raises(AllocationError, match="permission denied"):
            a.allocate(WEB)
    finally:
        a.close(revoke=False)


# -- the agent's flags ------------------------------------------------------------------------

def agent_config(*flags: str) -> AgentConfig:
    import argparse

    from cli import daemon

    parser = argparse.ArgumentParser()
    daemon.register(parser.add_subparsers())
    return daemon.config_from(parser.parse_args(["agent", "--node", "n1", *flags]))


def test_the_agents_etcd_flags_reach_the_allocator(tls_etcd: EtcdServer, pki: Path,
                                                   tmp_path: Path) -> None:
    from agent.compose import make_allocators

    config = agent_config("--identity-backend", "etcd", "--state-dir", str(tmp_path),
                          "--etcd", f"{tls_etcd.endpoint},https://127.0.0.1:1",
                          "--etcd-ca", str(pki / "ca.crt"), "--etcd-cert",
                          str(pki / "client.crt"), "--etcd-key", str(pki / "client.key"))
    assert config.etcd_endpoints == (tls_etcd.endpoint, "https://127.0.0.1:1")
    config.validate()
    labels, cidrs = make_allocators(config)
    try:
        assert labels.allocate(WEB).id >= 256
    finally:
        labels.close()
        cidrs.close()


@pytest.mark.parametrize("flags, why", [
    (["--etcd-cert", "c.crt"], "--etcd-cert and --etcd-key go together"),
    (["--etcd-user", "membrane"], "--etcd-user and --etcd-password-file go together"),
    (["--etcd-ca", "ca.crt"], "need https:// endpoints"),
], ids=["a certificate without its key", "a user without a password", "TLS over http"])
def test_etcd_flags_that_cannot_work_together_are_refused_before_anything_starts(
        flags: list[str], why: str) -> None:
    from core.errors import MembraneError

    config = agent_config("--identity-backend", "etcd", "--etcd", "http://127.0.0.1:2379",
                          *flags)
    with pytest.raises(MembraneError, match=why):
        config.validate()


def test_a_missing_password_file_is_a_clear_error(tmp_path: Path) -> None:
    from agent.compose import make_allocators
    from core.errors import MembraneError

    config = agent_config("--identity-backend", "etcd", "--state-dir", str(tmp_path),
                          "--etcd", "http://127.0.0.1:1", "--etcd-user", "membrane",
                          "--etcd-password-file", str(tmp_path / "nope"))
    with pytest.raises(MembraneError, match="etcd-password-file .*nope"):
        make_allocators(config)
