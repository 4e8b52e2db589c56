"""membrane-cni in real CNI chains, and the installer that puts it there.

The chain tests exec Debian's reference plugins (ptp and bridge with host-local, plus
portmap, as kindnet and minikube configure them) and then membrane-cni, exactly as a
runtime does (tests/k8s/cni_runtime.py). The "node" is a network namespace the test makes,
so the bridge, routes and veths never touch the machine; the agent is a fake gRPC server
on a unix socket in the test's temp dir that records what the plugin asked.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent.cni import installer
from agent.cni.endpoint import find_pod_interface
from agent.cni.spec import CniError
from cni_runtime import Attachment, CniFailure, CniRuntime

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_PLUGINS = Path("/usr/lib/cni")
_ns_counter = itertools.count()


# -- the fake agent -------------------------------------------------------------------------

@dataclass
class FakeAgentState:
    endpoints: dict[tuple[str, str], Any] = field(default_factory=dict)
    registered: list[Any] = field(default_factory=list)
    deregistered: list[tuple[str, str]] = field(default_factory=list)
    fail_register: str = ""   # when set, RegisterEndpoint fails with this detail
    lock: threading.Lock = field(default_factory=threading.Lock)


def _make_servicer(state: FakeAgentState) -> Any:
    import grpc
    from agent.api.gen import agent_pb2 as pb
    from agent.api.gen import agent_pb2_grpc as pb_grpc

    class FakeAgent(pb_grpc.AgentServicer):  # type: ignore[misc]
        def RegisterEndpoint(self, request: Any, context: Any) -> Any:
            with state.lock:
                state.registered.append(request)
                if state.fail_register:
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, state.fail_register)
                endpoint = pb.Endpoint(id=len(state.registered), namespace=request.namespace,
                                       pod=request.pod, ifname=request.ifname,
                                       ipv4=request.ipv4, ipv6=request.ipv6, state="ready",
                                       identity=256)
                state.endpoints[(request.namespace, request.pod)] = endpoint
                return endpoint

        def DeregisterEndpoint(self, request: Any, context: Any) -> Any:
            with state.lock:
                key = (request.namespace, request.pod)
                state.deregistered.append(key)
                if state.endpoints.pop(key, None) is None:
                    context.abort(grpc.StatusCode.NOT_FOUND, f"no endpoint {key}")
                return pb.Empty()

        def GetEndpoint(self, request: Any, context: Any) -> Any:
            with state.lock:
                found = state.endpoints.get((request.namespace, request.pod))
                if found is None:
                    context.abort(grpc.StatusCode.NOT_FOUND, "no such endpoint")
                return found

    return FakeAgent()


@dataclass
class FakeAgent:
    socket: str
    state: FakeAgentState
    server: Any


@pytest.fixture
def fake_agent(tmp_path: Path) -> Iterator[FakeAgent]:
    grpc = pytest.importorskip("grpc")
    pb_grpc = pytest.importorskip("agent.api.gen.agent_pb2_grpc")
    state = FakeAgentState()
    sock = str(tmp_path / "agent.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_AgentServicer_to_server(_make_servicer(state), server)
    server.add_insecure_port("unix:" + sock)
    server.start()
    try:
        yield FakeAgent(sock, state, server)
    finally:
        server.stop(grace=None)


# -- namespaces and the chain ---------------------------------------------------------------

def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def netns() -> Iterator[Any]:
    """Makes uniquely named network namespaces; deletes exactly those, pass or fail."""
    made: list[str] = []

    def make(role: str) -> str:
        name = f"mbcni-{os.getpid()}-{next(_ns_counter)}-{role}"
        _ip("netns", "add", name)
        made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    try:
        yield make
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """membrane-cni as the runtime finds it: an executable named by its type on CNI_PATH.
    MEMBRANE_CNI_BINARY=path runs the chain with a built one (the image's frozen binary)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "membrane-cni"
    built = os.environ.get("MEMBRANE_CNI_BINARY")
    if built:
        launcher.symlink_to(Path(built).resolve())
        return bindir
    launcher.write_text(f"#!{sys.executable}\n"
                        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                        "from agent.cni.plugin import main\nmain()\n")
    launcher.chmod(0o755)
    return bindir


def kind_conflist(data_dir: Path, agent_socket: str) -> dict[str, Any]:
    """kindnet's 10-kindnet.conflist (ptp + portmap), with a private subnet and IPAM dir."""
    return {"cniVersion": "0.3.1", "name": "kindnet", "plugins": [
        {"type": "ptp", "ipMasq": False, "mtu": 1500,
         "ipam": {"type": "host-local", "dataDir": str(data_dir),
                  "ranges": [[{"subnet": "10.251.7.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "membrane-cni", "socket": agent_socket, "agentWait": 0},
    ]}


def minikube_conflist(data_dir: Path, agent_socket: str) -> dict[str, Any]:
    """minikube's 1-k8s.conflist (bridge + portmap), masquerading off: no iptables rules."""
    return {"cniVersion": "1.0.0", "name": "bridge", "plugins": [
        {"type": "bridge", "bridge": "mbtbr0", "addIf": "true", "isDefaultGateway": True,
         "forceAddress": False, "ipMasq": False, "hairpinMode": True,
         "ipam": {"type": "host-local", "subnet": "10.251.8.0/24", "dataDir": str(data_dir)}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "membrane-cni", "socket": agent_socket, "agentWait": 0},
    ]}


CHAINS = {"kindnet ptp": kind_conflist, "minikube bridge": minikube_conflist}


@dataclass
class Chain:
    runtime: CniRuntime
    host: str
    make_pod: Any


@pytest.fixture(params=list(CHAINS), ids=list(CHAINS))
def chain(request: Any, tmp_path: Path, netns: Any, plugin_dir: Path,
          fake_agent: FakeAgent) -> Chain:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    if not (REFERENCE_PLUGINS / "ptp").exists():
        pytest.skip("Debian's containernetworking-plugins is not installed")
    host = netns("node")
    conflist = CHAINS[request.param](tmp_path / "ipam", fake_agent.socket)
    runtime = CniRuntime(conflist, [str(REFERENCE_PLUGINS), str(plugin_dir)], host_netns=host)

    def make_pod(name: str) -> Attachment:
        pod_ns = netns("pod")
        return Attachment(container_id=f"{name}-{pod_ns}", netns=f"/run/netns/{pod_ns}",
                          ifname="eth0", args={"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "demo",
                                               "K8S_POD_NAME": name})
    return Chain(runtime, host, make_pod)


def check(chain: Chain, pod: Attachment) -> None:
    """CHECK the whole chain where the runtime would; below 0.4.0 (kindnet's 0.3.1) libcni
    never sends CHECK, so exercise membrane-cni's own CHECK directly with the cached result."""
    if chain.runtime.supports_check():
        chain.runtime.check(pod)
    else:
        chain.runtime.exec_plugin("CHECK", chain.runtime.conflist["plugins"][-1], pod, pod.result)


def _links(netns: str) -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in json.loads(_ip("-n", netns, "-d", "-j", "link"))}


def _ipv4_of(netns: str, ifname: str) -> str:
    addrs = json.loads(_ip("-n", netns, "-j", "addr", "show", ifname))
    return next(a["local"] for a in addrs[0]["addr_info"] if a["family"] == "inet")


# -- the chain, for real --------------------------------------------------------------------

@pytest.mark.privileged
def test_add_registers_the_host_veth_and_pod_ip_and_passes_the_result_through(
        chain: Chain, fake_agent: FakeAgent) -> None:
    pod = chain.make_pod("frontend")
    seen: list[dict[str, Any] | None] = []
    original = chain.runtime.exec_plugin

    def spy(command: str, plugin: dict[str, Any], att: Attachment,
            prev: dict[str, Any] | None) -> dict[str, Any] | None:
        if plugin["type"] == "membrane-cni" and command == "ADD":
            seen.append(prev)
        return original(command, plugin, att, prev)

    chain.runtime.exec_plugin = spy  # type: ignore[method-assign]
    try:
        result = chain.runtime.add(pod)
        assert seen and result == seen[0], "membrane-cni must print prevResult unchanged"

        assert len(fake_agent.state.registered) == 1
        req = fake_agent.state.registered[0]
        pod_netns = pod.netns.rsplit("/", 1)[1]
        assert (req.namespace, req.pod, req.container_id) == ("demo", "frontend", pod.container_id)
        assert req.ipv4 == _ipv4_of(pod_netns, "eth0")
        host_link = _links(chain.host)[req.ifname]
        assert host_link["linkinfo"]["info_kind"] == "veth"
        # and it is eth0's peer, not some other veth (or the bridge)
        eth0 = _links(pod_netns)["eth0"]
        assert eth0["link_index"] == host_link["ifindex"]

        check(chain, pod)
    finally:
        chain.runtime.exec_plugin = original  # type: ignore[method-assign]
        chain.runtime.delete(pod)
    assert ("demo", "frontend") in fake_agent.state.deregistered


@pytest.mark.privileged
def test_an_agent_failure_fails_add_and_the_runtime_tears_the_pod_down(
        chain: Chain, fake_agent: FakeAgent) -> None:
    fake_agent.state.fail_register = "policy map full"
    pod = chain.make_pod("backend")
    with pytest.raises(CniFailure) as failed:
        chain.runtime.add(pod)
    assert failed.value.plugin == "membrane-cni"
    assert failed.value.code == 100
    assert "policy map full" in failed.value.error["msg"]
    assert failed.value.error["cniVersion"] == chain.runtime.conflist["cniVersion"]
    # the runtime's cleanup DEL ran through the whole chain: no pod interface is left
    assert "eth0" not in _links(pod.netns.rsplit("/", 1)[1])
    assert not [n for n, l in _links(chain.host).items()
                if l.get("linkinfo", {}).get("info_kind") == "veth"]


@pytest.mark.privileged
def test_add_fails_when_no_agent_listens(chain: Chain, fake_agent: FakeAgent) -> None:
    fake_agent.server.stop(grace=None)
    Path(fake_agent.socket).unlink(missing_ok=True)
    pod = chain.make_pod("orphan")
    with pytest.raises(CniFailure) as failed:
        chain.runtime.add(pod)
    assert failed.value.code == 11  # try again later: the kubelet retries the sandbox


@pytest.mark.privileged
def test_del_is_idempotent_and_survives_a_missing_netns_or_endpoint(
        chain: Chain, fake_agent: FakeAgent) -> None:
    pod = chain.make_pod("monitoring")
    result = chain.runtime.add(pod)
    chain.runtime.delete(pod, prev_result=result)
    chain.runtime.delete(pod, prev_result=result)  # endpoint already gone: NOT_FOUND is fine
    assert fake_agent.state.deregistered.count(("demo", "monitoring")) == 2
    subprocess.run(["ip", "netns", "delete", pod.netns.rsplit("/", 1)[1]], check=True)
    chain.runtime.delete(pod, prev_result=result)  # and so is a vanished netns
    gone = Attachment(pod.container_id, "", "eth0", pod.args)
    chain.runtime.delete(gone, prev_result=result)  # the runtime may not pass one at all


@pytest.mark.privileged
def test_del_succeeds_when_the_agent_is_down(chain: Chain, fake_agent: FakeAgent) -> None:
    pod = chain.make_pod("db")
    chain.runtime.add(pod)
    result = pod.result
    fake_agent.server.stop(grace=None)
    chain.runtime.delete(pod, prev_result=result)


@pytest.mark.privileged
def test_check_fails_once_the_agent_forgot_the_endpoint(chain: Chain,
                                                        fake_agent: FakeAgent) -> None:
    pod = chain.make_pod("web")
    chain.runtime.add(pod)
    try:
        check(chain, pod)
        fake_agent.state.endpoints.clear()
        with pytest.raises(CniFailure) as failed:
            check(chain, pod)
        assert (failed.value.plugin, failed.value.code) == ("membrane-cni", 101)
    finally:
        chain.runtime.delete(pod)


@pytest.mark.privileged
def test_version_lists_the_spec_versions(chain: Chain) -> None:
    reply = chain.runtime.version("membrane-cni")
    assert reply["cniVersion"] == "1.0.0"
    assert {"0.3.1", "0.4.0", "1.0.0"} <= set(reply["supportedVersions"])


# -- finding the pod's interface, without netlink -------------------------------------------

BRIDGE_RESULT = {"cniVersion": "1.0.0",
                 "interfaces": [{"name": "cni0", "mac": "aa:00:00:00:00:01"},
                                {"name": "veth1234", "mac": "aa:00:00:00:00:02"},
                                {"name": "eth0", "mac": "aa:00:00:00:00:03",
                                 "sandbox": "/run/netns/p"}],
                 "ips": [{"address": "fd00::5/64", "interface": 2},
                         {"address": "10.251.8.5/24", "gateway": "10.251.8.1", "interface": 2}]}
IPV6_ONLY_RESULT = {"cniVersion": "1.0.0",
                    "interfaces": [{"name": "veth6666", "mac": "aa:00:00:00:00:06"},
                                   {"name": "eth0", "sandbox": "/run/netns/p"}],
                    "ips": [{"address": "fd00:10:244:1::9/64", "interface": 1}]}
PTP_RESULT_031 = {"cniVersion": "0.3.1",
                  "interfaces": [{"name": "veth9876", "mac": "aa:00:00:00:00:04"},
                                 {"name": "eth0", "sandbox": "/proc/42/ns/net"}],
                  "ips": [{"version": "4", "address": "10.251.7.9/24", "interface": 1}]}


@pytest.mark.parametrize("result, peer, kinds, expected", [
    pytest.param(PTP_RESULT_031, None, {"veth9876": "veth"}, ("veth9876", "10.251.7.9", ""),
                 id="ptp's single host interface is the veth"),
    pytest.param(BRIDGE_RESULT, None, {"cni0": "bridge", "veth1234": "veth"},
                 ("veth1234", "10.251.8.5", "fd00::5"),
                 id="bridge's bridge is skipped by its link kind; both families are taken"),
    pytest.param(BRIDGE_RESULT, "veth1234", {}, ("veth1234", "10.251.8.5", "fd00::5"),
                 id="the netns peer lookup wins when the netns is there"),
    pytest.param(IPV6_ONLY_RESULT, None, {"veth6666": "veth"},
                 ("veth6666", "", "fd00:10:244:1::9"), id="an IPv6-only pod has no IPv4"),
])
def test_pod_interface_is_found(result: dict[str, Any], peer: str | None,
                                kinds: dict[str, str], expected: tuple[str, str, str]) -> None:
    got = find_pod_interface(result, "/run/netns/p", "eth0",
                             peer_of=lambda ns, ifname: peer, kind_of=kinds.get)
    assert (got.host_ifname, got.ipv4, got.ipv6) == expected


@pytest.mark.parametrize("result, peer, kinds", [
    pytest.param({"interfaces": [], "ips": []}, None, {}, id="no address at all is an error"),
    pytest.param(BRIDGE_RESULT, None, {"cni0": "bridge", "veth1234": "bridge"},
                 id="no veth among the host interfaces is an error"),
    pytest.param(BRIDGE_RESULT, "vethOTHER", {}, id="a peer prevResult does not list is an error"),
])
def test_pod_interface_refuses_to_guess(result: dict[str, Any], peer: str | None,
                                        kinds: dict[str, str]) -> None:
    with pytest.raises(CniError):
        find_pod_interface(result, "/run/netns/p", "eth0",
                           peer_of=lambda ns, ifname: peer, kind_of=kinds.get)


@pytest.mark.parametrize("env, stdin, code", [
    pytest.param({"CNI_COMMAND": "BOGUS"}, "{}", 4, id="an unknown command is an env error"),
    pytest.param({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0",
                  "CNI_NETNS": "/x"}, "not json", 6, id="a config that is not JSON is a decode error"),
    pytest.param({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0",
                  "CNI_NETNS": "/x"}, '{"cniVersion": "0.2.0"}', 1,
                 id="a result format without interfaces is an incompatible version"),
    pytest.param({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0",
                  "CNI_NETNS": "/x", "CNI_ARGS": "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b"},
                 '{"cniVersion": "1.0.0", "name": "n"}', 7,
                 id="add without a prevResult says membrane-cni must be chained"),
    pytest.param({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0",
                  "CNI_NETNS": "/x"}, '{"cniVersion": "1.0.0", "prevResult": {}}', 4,
                 id="add without the kubelet's pod arguments is an env error"),
])
def test_bad_invocations_are_cni_errors(env: dict[str, str], stdin: str, code: int) -> None:
    from agent.cni.plugin import run

    def no_agent(socket: str, wait: float) -> Any:
        raise AssertionError("must fail before talking to the agent")

    status, reply = run(env, stdin, connect=no_agent)
    assert status == 1 and reply is not None
    assert reply["code"] == code and reply["msg"]


# -- the installer --------------------------------------------------------------------------

KINDNET_CONFLIST = {
    "cniVersion": "0.3.1", "name": "kindnet",
    "plugins": [{"type": "ptp", "ipMasq": False,
                 "ipam": {"type": "host-local", "dataDir": "/run/cni-ipam-state",
                          "routes": [{"dst": "0.0.0.0/0"}],
                          "ranges": [[{"subnet": "10.244.0.0/24"}]]}, "mtu": 1500},
                {"type": "portmap", "capabilities": {"portMappings": True}}]}
MINIKUBE_CONFLIST = {
    "cniVersion": "1.0.0", "name": "bridge",
    "plugins": [{"type": "bridge", "bridge": "bridge", "addIf": "true", "isDefaultGateway": True,
                 "forceAddress": False, "ipMasq": True, "hairpinMode": True,
                 "ipam": {"type": "host-local", "subnet": "10.244.0.0/16"}},
                {"type": "portmap", "capabilities": {"portMappings": True}}]}
CRIO_BRIDGE_CONF = {"cniVersion": "0.3.1", "name": "crio", "type": "bridge", "bridge": "cni0",
                    "isGateway": True, "ipMasq": True,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.85.0.0/16"}]]}}

NODE_CONFIGS = {
    "kindnet": {"10-kindnet.conflist": KINDNET_CONFLIST},
    "minikube bridge": {"1-k8s.conflist": MINIKUBE_CONFLIST,
                        "87-podman-bridge.conflist.mk_disabled": {"ignored": True}},
    "cri-o single conf": {"100-crio-bridge.conf": CRIO_BRIDGE_CONF,
                          "200-loopback.conf": {"cniVersion": "0.3.1", "type": "loopback"}},
}


def _node(tmp_path: Path, files: dict[str, Any]) -> tuple[Path, Path, Path]:
    conf_dir, bin_dir = tmp_path / "net.d", tmp_path / "bin"
    conf_dir.mkdir()
    for name, doc in files.items():
        (conf_dir / name).write_text(json.dumps(doc))
    plugin = tmp_path / "membrane-cni.build"
    plugin.write_bytes(b"#!/bin/sh\nexit 0\n")
    return conf_dir, bin_dir, plugin


def _snapshot(conf_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(conf_dir.iterdir())}


@pytest.mark.parametrize("node", list(NODE_CONFIGS), ids=list(NODE_CONFIGS))
def test_install_chains_last_in_a_copy_that_sorts_first_and_uninstall_restores(
        tmp_path: Path, node: str) -> None:
    conf_dir, bin_dir, plugin = _node(tmp_path, NODE_CONFIGS[node])
    before = _snapshot(conf_dir)
    done = installer.install(conf_dir, bin_dir, plugin, {"socket": "/run/membrane/agent.sock"})

    # the runtime now loads ours, and it is the node's chain with membrane-cni last
    assert installer.config_files(conf_dir)[0] == done.conf
    chained = json.loads(done.conf.read_text())
    source = json.loads(done.source.read_text())
    source_plugins = source.get("plugins") or [
        {k: v for k, v in source.items() if k not in ("cniVersion", "name")}]
    assert chained["plugins"][:-1] == source_plugins
    assert chained["plugins"][-1] == {"type": "membrane-cni", "socket": "/run/membrane/agent.sock"}
    assert (chained["name"], chained["cniVersion"]) == (source["name"], source["cniVersion"])
    assert (bin_dir / "membrane-cni").read_bytes() == plugin.read_bytes()
    assert os.access(bin_dir / "membrane-cni", os.X_OK)
    # the node's own files were not touched
    assert {k: v for k, v in _snapshot(conf_dir).items() if k != done.conf.name} == before

    installer.uninstall(conf_dir, bin_dir)
    assert _snapshot(conf_dir) == before
    assert not (bin_dir / "membrane-cni").exists()


def test_install_twice_chains_once(tmp_path: Path) -> None:
    conf_dir, bin_dir, plugin = _node(tmp_path, NODE_CONFIGS["kindnet"])
    first = installer.install(conf_dir, bin_dir, plugin)
    second = installer.install(conf_dir, bin_dir, plugin)
    assert first.conf == second.conf
    assert first.source == second.source  # our own copy is never taken for the node's config
    types = [p["type"] for p in json.loads(second.conf.read_text())["plugins"]]
    assert types.count("membrane-cni") == 1
    assert sorted(p.name for p in conf_dir.iterdir()) == ["05-membrane.conflist",
                                                          "10-kindnet.conflist"]


def test_install_follows_a_node_config_that_already_sorts_before_ours(tmp_path: Path) -> None:
    conf_dir, bin_dir, plugin = _node(tmp_path, {"01-early.conflist": KINDNET_CONFLIST})
    done = installer.install(conf_dir, bin_dir, plugin)
    assert done.conf.name < "01-early.conflist"
    assert installer.config_files(conf_dir)[0] == done.conf


def test_install_without_a_cluster_cni_is_a_clear_error(tmp_path: Path) -> None:
    conf_dir, bin_dir, plugin = _node(tmp_path, {})
    with pytest.raises(installer.InstallError, match="no CNI config"):
        installer.install(conf_dir, bin_dir, plugin)
    assert installer.main(["install", "--conf-dir", str(conf_dir), "--bin-dir", str(bin_dir),
                           "--plugin", str(plugin), "--wait", "0"]) == 1


def test_uninstall_leaves_configs_it_did_not_write(tmp_path: Path) -> None:
    conf_dir, bin_dir, plugin = _node(tmp_path, {
        "10-kindnet.conflist": KINDNET_CONFLIST,
        "05-other.conflist": dict(KINDNET_CONFLIST, name="other")})
    before = _snapshot(conf_dir)
    assert installer.main(["uninstall", "--conf-dir", str(conf_dir),
                           "--bin-dir", str(bin_dir)]) == 0
    assert _snapshot(conf_dir) == before


def test_install_chains_the_named_config_and_still_sorts_before_all(tmp_path: Path) -> None:
    conf_dir, bin_dir, plugin = _node(tmp_path, {
        "1-k8s.conflist": MINIKUBE_CONFLIST, "01-leftover.conflist": KINDNET_CONFLIST})
    done = installer.install(conf_dir, bin_dir, plugin, source_name="1-k8s.conflist")
    assert done.source.name == "1-k8s.conflist"
    assert json.loads(done.conf.read_text())["name"] == "bridge"
    assert installer.config_files(conf_dir)[0] == done.conf


@pytest.mark.privileged
def test_the_peer_lookup_never_creates_a_missing_netns(tmp_path: Path) -> None:
    from agent.cni.endpoint import netlink_peer

    if os.geteuid() != 0:
        pytest.skip("needs root")
    missing = f"/run/netns/mbcni-{os.getpid()}-missing"
    assert netlink_peer(missing, "eth0") is None
    assert not os.path.exists(missing)
