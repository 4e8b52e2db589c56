"""Map sizes and shares are configurable end to end: the DaemonSet passes every one from
the ConfigMap as a flag, the ConfigMap's values are AgentConfig's defaults, the flags
build the AgentConfig, and compose hands the sizes to the datapath and the limits to
the engine (before, compose never passed max_cidr/max_ipcache)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.compose import make_datapath
from agent.config import AgentConfig
from agent.datapath.bpf import BpfDatapath
from cli.daemon import config_from
from cli.main import build_parser
from core.errors import MembraneError
from tests.k8s.test_manifests import agent_ds, by_kind, render

SIZES = {"max-policy-entries": "max_policy_entries",
         "max-conntrack-entries": "max_conntrack_entries",
         "max-ipcache-entries": "max_ipcache_entries",
         "max-cidr-entries": "max_cidr_entries", "max-endpoints": "max_endpoints",
         "max-policy-entries-per-endpoint": "max_policy_entries_per_endpoint",
         "max-cidr-prefixes-per-policy": "max_cidr_prefixes_per_policy",
         "namespace-map-share": "namespace_map_share"}


def test_the_daemonset_passes_every_size_from_the_configmap_at_the_agents_defaults() -> None:
    docs = render("base")
    agent = agent_ds(docs)["spec"]["template"]["spec"]["containers"][0]
    (config,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] ==
                 "membrane-config"]
    env = {e["name"]: e["valueFrom"]["configMapKeyRef"]["key"] for e in agent["env"]
           if "configMapKeyRef" in e.get("valueFrom", {})}
    args = {}
    for arg in agent["args"]:
        m = re.fullmatch(r"--([a-z-]+)=\$\((\w+)\)", arg)
        if m and m.group(1) in SIZES:
            args[m.group(1)] = config["data"][env[m.group(2)]]
    assert set(args) == set(SIZES)
    defaults = AgentConfig(node="")
    for flag, field in SIZES.items():
        assert float(args[flag]) == getattr(defaults, field), flag
    parsed = build_parser().parse_args(
        ["agent", "--node", "n1"] + [f"--{flag}={value}" for flag, value in args.items()])
    assert config_from(parsed) == AgentConfig(node="n1")


def test_the_flags_reach_the_datapath_and_the_engine(tmp_path: Path) -> None:
    parsed = build_parser().parse_args([
        "agent", "--node", "n1", "--max-cidr-entries", "128", "--max-ipcache-entries", "256",
        "--max-endpoints", "64", "--max-policy-entries", "4096",
        "--max-policy-entries-per-endpoint", "512", "--max-cidr-prefixes-per-policy", "32",
        "--namespace-map-share", "0.25", "--bpffs", str(tmp_path)])
    config = config_from(parsed)
    datapath = make_datapath(config)
    assert isinstance(datapath, BpfDatapath)
    options = datapath.options
    assert (options.max_cidr, options.max_ipcache, options.max_endpoints,
            options.max_policy) == (128, 256, 64, 4096)
    limits = config.policy_limits()
    assert (limits.max_cidr_prefixes, limits.max_prefixes_per_policy,
            limits.max_entries_per_endpoint, limits.namespace_share) == (128, 32, 512, 0.25)


@pytest.mark.parametrize("change, message", [
    ({"max_cidr_entries": 0}, "--max-cidr-entries 0"),
    ({"max_policy_entries": 1000, "max_policy_entries_per_endpoint": 2000},
     "larger than the policy map"),
    ({"max_cidr_entries": 100, "max_cidr_prefixes_per_policy": 200},
     "larger than the cidr map"),
    ({"namespace_map_share": 1.5}, "namespace_share"),
], ids=["an empty map", "an endpoint share above the map", "a policy share above the map",
        "a namespace share above one"])
def test_sizes_the_agent_cannot_run_with_are_refused_before_anything_is_built(
        change: dict[str, float], message: str) -> None:
    with pytest.raises(MembraneError, match=message):
        AgentConfig(node="n1", **change).validate()  # type: ignore[arg-type]
