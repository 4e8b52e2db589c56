"""Chain `membrane-cni` into the node's CNI configuration, and take it out again.

Container runtimes (containerd, CRI-O, cri-dockerd) load the first network config in
/etc/cni/net.d in lexical order (*.conf, *.conflist, *.json). We do not edit the node's own
file, which its owner (kindnetd on kind, minikube's provisioner) may rewrite at any time:
like Cilium's generic-veth chaining, we write a copy of it, with our plugin appended last,
under a name that sorts before it (`05-membrane.conflist`). Uninstalling deletes that copy
and the runtime falls back to the untouched original.

    python -m agent.cni.installer install   [--conf-dir D] [--bin-dir D] [--plugin PATH]
    python -m agent.cni.installer uninstall [--conf-dir D] [--bin-dir D]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

PLUGIN_TYPE = "membrane-cni"
CONF_NAME = "05-membrane.conflist"
CONF_EXTENSIONS = (".conf", ".conflist", ".json")
# Marks files we wrote, so uninstall never deletes a config it did not create.
OWNER_KEY = "membrane.io/chained-from"


class InstallError(Exception):
    pass


@dataclass(frozen=True)
class Installed:
    conf: Path      # the chained conflist we wrote
    source: Path    # the node's own config it was made from
    binary: Path


def config_files(conf_dir: Path) -> list[Path]:
    """The runtime's view: every network config file, in the order it would try them."""
    if not conf_dir.is_dir():
        return []
    return sorted(p for p in conf_dir.iterdir()
                  if p.is_file() and p.suffix in CONF_EXTENSIONS)


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InstallError(f"{path}: not a readable JSON CNI config: {err}") from None
    if not isinstance(doc, dict):
        raise InstallError(f"{path}: a CNI config must be a JSON object")
    return doc


def is_ours(doc: dict[str, Any]) -> bool:
    return OWNER_KEY in doc


def find_source(conf_dir: Path, name: str = "") -> Path | None:
    """The config the runtime would use were we not installed: the first one not ours, or
    the one named (kind's 10-kindnet.conflist, minikube's 1-k8s.conflist) when given."""
    if name:
        named = conf_dir / name
        return named if named.is_file() and not is_ours(_load(named)) else None
    for path in config_files(conf_dir):
        if not is_ours(_load(path)):
            return path
    return None


def as_conflist(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """A single-plugin .conf becomes a one-plugin list (name and version move up a level)."""
    if "plugins" in doc:
        if not isinstance(doc["plugins"], list) or not doc["plugins"]:
            raise InstallError(f"{path}: `plugins` must be a non-empty list")
        return copy.deepcopy(doc)
    if "type" not in doc:
        raise InstallError(f"{path}: neither a conflist (plugins) nor a conf (type)")
    plugin = {k: v for k, v in doc.items() if k not in ("cniVersion", "name")}
    return {"cniVersion": doc.get("cniVersion", "0.3.1"), "name": doc.get("name", "k8s-pod-network"),
            "plugins": [plugin]}


def chained(source: dict[str, Any], source_path: Path,
            plugin_conf: dict[str, Any]) -> dict[str, Any]:
    """The source's chain with ours last; the network `name` is kept so the runtime's cached
    results (keyed by network name) still match pods created before we were installed."""
    out = as_conflist(source, source_path)
    out["plugins"] = [p for p in out["plugins"] if p.get("type") != PLUGIN_TYPE]
    out["plugins"].append({"type": PLUGIN_TYPE, **plugin_conf})
    out[OWNER_KEY] = source_path.name
    return out


def conf_name_for(source: Path) -> str:
    """A name that sorts before the source; `05-membrane` unless the node's own sorts earlier."""
    if CONF_NAME < source.name:
        return CONF_NAME
    for prefix in ("00-", "0-", "000-", "!"):  # '!' sorts before every digit and letter
        name = prefix + "membrane.conflist"
        if name < source.name:
            return name
    raise InstallError(f"{source}: no file name sorts before it; rename it or chain by hand")


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a sibling temp file, then rename: a runtime never reads half a config, and an
    exec of the binary never sees half a file (or ETXTBSY on one being overwritten)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install(conf_dir: str | Path, bin_dir: str | Path, plugin_path: str | Path,
            plugin_conf: dict[str, Any] | None = None, source_name: str = "") -> Installed:
    conf_dir, bin_dir = Path(conf_dir), Path(bin_dir)
    source = find_source(conf_dir, source_name)
    if source is None:
        wanted = f" named {source_name}" if source_name else ""
        raise InstallError(f"no CNI config{wanted} in {conf_dir} to chain into: membrane "
                           "chains with the cluster's CNI (kindnet, minikube's bridge), which must be "
                           "installed first")
    bin_dir.mkdir(parents=True, exist_ok=True)
    binary = bin_dir / PLUGIN_TYPE
    # Binary first: the moment the config names membrane-cni, the runtime may exec it.
    write_atomic(binary, Path(plugin_path).read_bytes(), 0o755)
    doc = chained(_load(source), source, plugin_conf or {})
    # Ours must load before every config of the node, not only before the one we copied.
    first = find_source(conf_dir) or source
    target = conf_dir / conf_name_for(min(first, source))
    for stale in config_files(conf_dir):  # an older install under another name
        if stale != target and is_ours(_load(stale)):
            stale.unlink()
    write_atomic(target, (json.dumps(doc, indent=2) + "\n").encode())
    return Installed(conf=target, source=source, binary=binary)


def uninstall(conf_dir: str | Path, bin_dir: str | Path) -> list[Path]:
    """Remove every config we wrote, then the binary. Returns what was removed."""
    conf_dir, bin_dir = Path(conf_dir), Path(bin_dir)
    removed: list[Path] = []
    for path in config_files(conf_dir):
        try:
            ours = is_ours(_load(path))
        except InstallError:
            continue  # someone else's broken file is not ours to judge
        if ours:
            path.unlink()
            removed.append(path)
    binary = bin_dir / PLUGIN_TYPE
    if binary.exists():
        binary.unlink()
        removed.append(binary)
    return removed


def wait_for_source(conf_dir: Path, timeout: float, name: str = "") -> None:
    """On a fresh node the cluster CNI (kindnet) may write its config after we start."""
    deadline = time.monotonic() + timeout
    while find_source(conf_dir, name) is None and time.monotonic() < deadline:
        time.sleep(1.0)


def _plugin_conf(args: argparse.Namespace) -> dict[str, Any]:
    conf: dict[str, Any] = {"socket": args.socket}
    if args.log_file:
        conf["logFile"] = args.log_file
    return conf


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m agent.cni.installer",
        description="Chain membrane-cni into the node's CNI config, or remove it.",
        epilog="examples:\n  python -m agent.cni.installer install --conf-dir /host/etc/cni/net.d "
               "--bin-dir /host/opt/cni/bin\n  python -m agent.cni.installer uninstall",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("install", "uninstall"))
    parser.add_argument("--conf-dir", default=env("MEMBRANE_CNI_CONF_DIR", "/etc/cni/net.d"))
    parser.add_argument("--bin-dir", default=env("MEMBRANE_CNI_BIN_DIR", "/opt/cni/bin"))
    parser.add_argument("--plugin", default=env("MEMBRANE_CNI_PLUGIN",
                                                "/usr/local/lib/membrane/membrane-cni"),
                        help="the membrane-cni executable to copy into --bin-dir")
    parser.add_argument("--socket", default=env("MEMBRANE_SOCKET", "/run/membrane/agent.sock"),
                        help="agent socket path as seen from the node (written into the config)")
    parser.add_argument("--source", default=env("MEMBRANE_CNI_SOURCE", ""),
                        help="file name of the node's config to chain into (default: the "
                             "first the runtime would load)")
    parser.add_argument("--log-file", default=env("MEMBRANE_CNI_LOG_FILE", ""))
    parser.add_argument("--wait", type=float, default=float(env("MEMBRANE_CNI_WAIT", "300")),
                        help="seconds to wait for the cluster CNI's config to appear")
    args = parser.parse_args(argv)
    try:
        if args.action == "install":
            wait_for_source(Path(args.conf_dir), args.wait, args.source)
            done = install(args.conf_dir, args.bin_dir, args.plugin, _plugin_conf(args),
                           args.source)
            print(f"chained {PLUGIN_TYPE} into {done.source.name} as {done.conf}")
        else:
            for path in uninstall(args.conf_dir, args.bin_dir):
                print(f"removed {path}")
    except (InstallError, OSError) as err:
        print(f"InstallError: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
