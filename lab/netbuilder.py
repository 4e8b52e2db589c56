"""The one builder of network namespaces and the wires between them, on pyroute2 (netlink).

The lab (lab/topology.py), the datapath tests (tests/datapath/topology.py) and the
benchmarks (bench/topology.py) all build with it. Its contracts:

- A namespace comes only from `create` and goes only by `delete`, each by its exact name.
  `create` hands the name to `record` *before* the namespace exists, so the record's owner
  (the lab's state file, a test's finalizer) can remove it whatever happens next; a name
  that already exists is refused and not recorded: it is not ours. `delete` of a name
  that is not there is a no-op.
- Opening a namespace never creates it. pyroute2 opens its netlink socket in a namespace
  with O_CREAT unless told otherwise, which once left empty namespaces behind: every
  socket here is opened with flags=0, and a missing namespace is `NamespaceNotFound`.
- Links are made inside namespaces, never in the caller's: a veth is created in one
  namespace with its peer moved into another in the same request. Routes without a
  gateway get scope link and every route protocol "boot", as `ip route add` gives them.
- Running things inside: `pod_command` (a pod's process: `ip netns exec`, which
  bind-mounts /etc/netns/<netns>/resolv.conf over /etc/resolv.conf) and `net_command`
  (the network namespace only, with nsenter: /sys/fs/bpf stays the machine's, as an
  agent needs) give command lines; `call_in` runs a Python callable on a thread of its
  own inside the namespace (a namespace switch is per thread), e.g. to write sysctls.
- Not thread-safe: one builder per thread. Its netlink sockets are cached per namespace
  until `close` (or `delete` of that namespace).

Failures are `LabError`s naming the namespace, the object and the kernel's reason.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Callable, Mapping, Sequence, TypeVar

from core.errors import LabError

# Where iproute2 and pyroute2 both keep named namespaces (/var/run is /run).
NETNS_DIR = Path("/run/netns")
NUD_PERMANENT = 0x80
RTNH_F_ONLINK = 0x4
RT_SCOPE_LINK = 253
RTPROT_BOOT = 3   # what `ip route add` marks its routes with

T = TypeVar("T")


class NamespaceNotFound(LabError):
    """The named network namespace does not exist (and is never created on our behalf)."""


class NamespaceExists(LabError):
    """`create` of a name that already exists: someone else's, or a leftover."""


def _pyroute2() -> ModuleType:
    """pyroute2, imported on first use: it costs ~0.12 s, and every `membrane` command
    imports the lab (cli.lab) while few of them build anything."""
    importlib.import_module("pyroute2.netns")   # create, remove, setns
    return importlib.import_module("pyroute2")


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def exists(name: str) -> bool:
    return netns_path(name).exists()


def open_netns(name: str) -> int:
    """A read-only fd of an existing namespace (the caller closes it). Never creates."""
    try:
        return os.open(netns_path(name), os.O_RDONLY)
    except FileNotFoundError:
        raise NamespaceNotFound(f"network namespace {name} not found") from None


def enter_netns(fd: int) -> None:
    """Moves the calling thread, and only it, into the namespace of `fd`."""
    _pyroute2().netns.setns(fd, flags=0)


def pod_command(netns: str, argv: Sequence[str]) -> list[str]:
    """argv as a pod's process: `ip netns exec` enters the namespace, bind-mounts
    /etc/netns/<netns>/* over /etc (the pod's resolv.conf) and remounts /sys for it. A
    missing namespace makes it fail; it never creates one."""
    return ["ip", "netns", "exec", netns, *argv]


def net_command(netns: str, argv: Sequence[str]) -> list[str]:
    """argv in the network namespace only (nsenter --net), as a hostNetwork pod: /etc and
    /sys/fs/bpf stay the machine's, so an agent's pins are where its tools look."""
    return ["nsenter", f"--net={netns_path(netns)}", *argv]


def call_in(netns: str, fn: Callable[[], T]) -> T:
    """fn() on a new thread inside the namespace; its result, or its exception re-raised.
    The thread ends with the call, so no other code ever runs in that namespace."""
    fd = open_netns(netns)
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            enter_netns(fd)
            result.append(fn())
        except BaseException as err:  # handed to the caller's thread
            failure.append(err)

    try:
        thread = threading.Thread(target=run, name=f"netns:{netns}")
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    if failure:
        raise failure[0]
    return result[0]


def sysctl(netns: str, settings: Mapping[str, str]) -> None:
    """Writes /proc/sys from inside the namespace (network sysctls are per namespace)."""
    def write() -> None:
        for key, value in settings.items():
            Path("/proc/sys", *key.split(".")).write_text(value)

    try:
        call_in(netns, write)
    except OSError as err:
        raise LabError(f"netns {netns}: sysctl {dict(settings)}: {err}") from None


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    mac: str


class NetBuilder:
    """Namespaces, veths, bridges, addresses, routes and static neighbours (see the
    module's contracts). `record(name)` is called before each namespace is created."""

    def __init__(self, record: Callable[[str], None] | None = None) -> None:
        self._record = record
        self._sockets: dict[str, Any] = {}   # netns name -> pyroute2 IPRoute in it

    def __enter__(self) -> NetBuilder:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for ipr in self._sockets.values():
            ipr.close()
        self._sockets.clear()

    # -- namespaces ----------------------------------------------------------------
    def create(self, name: str, sysctls: Mapping[str, str] | None = None) -> None:
        """A new namespace with lo up; `sysctls` are written before any other link
        exists (links copy the namespace's "default" settings when they are made)."""
        if exists(name):
            raise NamespaceExists(f"network namespace {name} already exists")
        if self._record is not None:
            self._record(name)
        try:
            _pyroute2().netns.create(str(netns_path(name)))
        except OSError as err:
            raise LabError(f"cannot create network namespace {name}: {err}") from None
        if sysctls:
            sysctl(name, sysctls)
        self.up(name, "lo")

    def delete(self, name: str) -> None:
        """Removes the namespace `name` (and with it every link and route inside)."""
        ipr = self._sockets.pop(name, None)
        if ipr is not None:
            ipr.close()
        if not exists(name):
            return
        try:
            _pyroute2().netns.remove(str(netns_path(name)))
        except OSError as err:
            raise LabError(f"cannot delete network namespace {name}: {err}") from None

    def _netlink(self, netns: str) -> Any:
        ipr = self._sockets.get(netns)
        if ipr is None:
            if not exists(netns):
                raise NamespaceNotFound(f"network namespace {netns} not found")
            try:
                # flags=0: open only; pyroute2's default (O_CREAT) would create it.
                ipr = _pyroute2().IPRoute(netns=str(netns_path(netns)), flags=0)
            except FileNotFoundError:
                raise NamespaceNotFound(f"network namespace {netns} not found") from None
            self._sockets[netns] = ipr
        return ipr

    def _do(self, netns: str, what: str, request: Callable[[Any], object]) -> None:
        try:
            request(self._netlink(netns))
        except LabError:
            raise
        except Exception as err:  # pyroute2's NetlinkError carries the errno as .code
            code = getattr(err, "code", None)
            reason = os.strerror(code) if isinstance(code, int) else str(err)
            raise LabError(f"netns {netns}: {what}: {reason}") from None

    # -- links ---------------------------------------------------------------------
    def index(self, netns: str, ifname: str) -> int:
        found = self._netlink(netns).link_lookup(ifname=ifname)
        if not found:
            raise LabError(f"netns {netns}: no interface {ifname}")
        return int(found[0])

    def link(self, netns: str, ifname: str) -> Link:
        index = self.index(netns, ifname)
        msg = self._netlink(netns).get_links(index)[0]
        return Link(ifname, index, str(msg.get_attr("IFLA_ADDRESS")))

    def links(self, netns: str) -> dict[str, int]:
        """Every interface of the namespace: name -> ifindex."""
        return {str(m.get_attr("IFLA_IFNAME")): int(m["index"])
                for m in self._netlink(netns).get_links()}

    def veth(self, netns: str, name: str, peer: str, peer_netns: str | None = None,
             mac: str | None = None, peer_mac: str | None = None) -> Link:
        """A veth pair made in `netns`: `name` stays there, `peer` goes to `peer_netns`
        (stays too when None), both down. Returns the `name` end."""
        spec: dict[str, Any] = {"ifname": peer}
        if peer_mac:
            spec["address"] = peer_mac
        fd = open_netns(peer_netns) if peer_netns else None
        if fd is not None:
            spec["net_ns_fd"] = fd
        where = f" in {peer_netns}" if peer_netns else ""
        try:
            self._do(netns, f"add veth {name} (peer {peer}{where})",
                     lambda ipr: ipr.link("add", ifname=name, kind="veth", peer=spec,
                                          **({"address": mac} if mac else {})))
        finally:
            if fd is not None:
                os.close(fd)
        return self.link(netns, name)

    def bridge(self, netns: str, name: str) -> None:
        self._do(netns, f"add bridge {name}",
                 lambda ipr: ipr.link("add", ifname=name, kind="bridge"))

    def attach_to_bridge(self, netns: str, ifname: str, bridge: str) -> None:
        master = self.index(netns, bridge)
        index = self.index(netns, ifname)
        self._do(netns, f"set {ifname} master {bridge}",
                 lambda ipr: ipr.link("set", index=index, master=master))

    def up(self, netns: str, *ifnames: str) -> None:
        self._set_state(netns, ifnames, "up")

    def down(self, netns: str, *ifnames: str) -> None:
        self._set_state(netns, ifnames, "down")

    def _set_state(self, netns: str, ifnames: Sequence[str], state: str) -> None:
        for ifname in ifnames:
            index = self.index(netns, ifname)
            self._do(netns, f"set {ifname} {state}",
                     lambda ipr: ipr.link("set", index=index, state=state))

    # -- addresses, routes, neighbours ---------------------------------------------
    def address(self, netns: str, ifname: str, cidr: str) -> None:
        """An address with its prefix length, e.g. "172.18.0.10/24" (no broadcast)."""
        iface = ipaddress.ip_interface(cidr)
        index = self.index(netns, ifname)
        self._do(netns, f"add address {cidr} to {ifname}",
                 lambda ipr: ipr.addr("add", index=index, address=str(iface.ip),
                                      prefixlen=iface.network.prefixlen))

    def route(self, netns: str, dst: str, via: str | None = None, dev: str | None = None,
              onlink: bool = False, replace: bool = False) -> None:
        """`ip route add|replace DST [via VIA] [dev DEV] [onlink]`; DST a CIDR, an address
        (a /32 or /128) or "default" (0.0.0.0/0, or ::/0 when VIA is IPv6)."""
        spec = self._route_spec(netns, dst, via, dev)
        if via is None:
            spec["scope"] = RT_SCOPE_LINK
        if onlink:
            spec["flags"] = RTNH_F_ONLINK
        verb = "replace" if replace else "add"
        self._do(netns, f"{verb} route {dst}" + (f" via {via}" if via else ""),
                 lambda ipr: ipr.route(verb, proto=RTPROT_BOOT, **spec))

    def delete_route(self, netns: str, dst: str, via: str | None = None,
                     dev: str | None = None) -> None:
        spec = self._route_spec(netns, dst, via, dev)
        self._do(netns, f"delete route {dst}", lambda ipr: ipr.route("del", **spec))

    def _route_spec(self, netns: str, dst: str, via: str | None,
                    dev: str | None) -> dict[str, Any]:
        if dst == "default":   # of the gateway's family
            dst = "::/0" if via is not None and ":" in via else "0.0.0.0/0"
        spec: dict[str, Any] = {"dst": str(ipaddress.ip_network(dst))}
        if via is not None:
            spec["gateway"] = via
        if dev is not None:
            spec["oif"] = self.index(netns, dev)
        return spec

    def neighbour(self, netns: str, ifname: str, ip: str, mac: str) -> None:
        """A permanent neighbour entry: no ARP for `ip` on `ifname`, ever."""
        index = self.index(netns, ifname)
        self._do(netns, f"add neighbour {ip} lladdr {mac} on {ifname}",
                 lambda ipr: ipr.neigh("add", dst=ip, lladdr=mac, ifindex=index,
                                       state=NUD_PERMANENT))
