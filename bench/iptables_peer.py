"""The peer: the same rule set enforced with iptables + ipset the way kube-router does it.

kube-router's network policy controller (pkg/controllers/netpol) builds, per node:

  FORWARD -> KUBE-ROUTER-FORWARD
  KUBE-ROUTER-FORWARD: -d <pod ip> -j KUBE-POD-FW-<pod>, -s <pod ip> -j KUBE-POD-FW-<pod>
  KUBE-POD-FW-<pod>:   conntrack RELATED,ESTABLISHED -> ACCEPT; INVALID -> DROP;
                       -d <pod ip> -j KUBE-NWPLCY-<policy>  for each policy selecting it;
                       unmarked -> DROP (kube-router: NFLOG + REJECT); else ACCEPT
  KUBE-NWPLCY-<policy>: per rule  -m set --match-set KUBE-SRC-<rule> src
                                  -m set --match-set KUBE-DST-<policy> dst
                                  -p tcp --dport P[:Q] -j MARK --set-xmark 0x10000/0x10000
                        followed by  -m mark --mark 0x10000/0x10000 -j RETURN
  ipsets: hash:ip of source pod IPs per rule, of the selected pods per policy.

We group the rules ten to a policy chain (a policy with ten ingress rules) and put the
client's rule last: a new connection walks every rule before it is allowed, the worst
case for a linear chain (on average a flow would walk half). Established packets stop
at the conntrack ACCEPT, so throughput of one long connection barely depends on the rule
count; new-connection latency does. Everything is loaded with ipset/iptables-restore
inside the node namespace only (topology.in_ns refuses any other namespace).

IPv6 is the same again with ip6tables and `family inet6` ipsets (kube-router's dual-stack
layout: one set of chains per family); a rule set is of one family (bench.ruleset), and
`apply` loads any number of them, one per family.
"""

from __future__ import annotations

from bench.ruleset import TCP, RuleSet
from bench.topology import in_ns

RULES_PER_POLICY = 10
MARK = "0x10000/0x10000"


def _sets(rs: RuleSet) -> tuple[str, str, str]:
    """(set name prefix, ipset family, host prefix length) of the rule set's family."""
    return ("KUBE6-", "inet6", "128") if rs.family == 6 else ("KUBE-", "inet", "32")


def ipset_script(rs: RuleSet) -> str:
    prefix, family, _ = _sets(rs)
    lines = []
    npolicies = (len(rs.rules) + RULES_PER_POLICY - 1) // RULES_PER_POLICY
    for p in range(npolicies):
        lines.append(f"create {prefix}DST-{p:05d} hash:ip family {family} hashsize 64")
        lines.append(f"add {prefix}DST-{p:05d} {rs.server_ip}")
    for i, rule in enumerate(rs.rules):
        lines.append(f"create {prefix}SRC-{i:05d} hash:ip family {family} hashsize 64")
        lines += [f"add {prefix}SRC-{i:05d} {ip}" for ip in rule.peer_ips]
    return "\n".join(lines) + "\n"


def iptables_script(rs: RuleSet) -> str:
    """The iptables-restore input of the rule set (ip6tables-restore for an IPv6 one)."""
    sets, _, plen = _sets(rs)
    npolicies = (len(rs.rules) + RULES_PER_POLICY - 1) // RULES_PER_POLICY
    pod_chain = "KUBE-POD-FW-SERVER"
    chains = ["KUBE-ROUTER-FORWARD", pod_chain] + [f"KUBE-NWPLCY-{p:05d}"
                                                   for p in range(npolicies)]
    server = f"{rs.server_ip}/{plen}"
    out = ["*filter"] + [f":{c} - [0:0]" for c in chains]
    out.append("-A FORWARD -m comment --comment kube-router-netpol -j KUBE-ROUTER-FORWARD")
    out.append(f"-A KUBE-ROUTER-FORWARD -d {server} -j {pod_chain}")
    out.append(f"-A KUBE-ROUTER-FORWARD -s {server} -j {pod_chain}")
    out.append(f"-A {pod_chain} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    out.append(f"-A {pod_chain} -m conntrack --ctstate INVALID -j DROP")
    for p in range(npolicies):
        out.append(f"-A {pod_chain} -d {server} -j KUBE-NWPLCY-{p:05d}")
    # Only traffic *to* the server is policed (its egress is not isolated).
    out.append(f"-A {pod_chain} -d {server} -m mark ! --mark {MARK} -j DROP")
    out.append(f"-A {pod_chain} -j ACCEPT")
    for i, rule in enumerate(rs.rules):
        chain = f"KUBE-NWPLCY-{i // RULES_PER_POLICY:05d}"
        ports = (str(rule.port_low) if rule.port_low == rule.port_high
                 else f"{rule.port_low}:{rule.port_high}")
        match = (f"-p {TCP} -m set --match-set {sets}SRC-{i:05d} src "
                 f"-m set --match-set {sets}DST-{i // RULES_PER_POLICY:05d} dst "
                 f"-m tcp --dport {ports}")
        out.append(f"-A {chain} {match} -j MARK --set-xmark {MARK}")
        out.append(f"-A {chain} -m mark --mark {MARK} -j RETURN")
    out.append("COMMIT")
    return "\n".join(out) + "\n"


def clear(ns: str) -> None:
    """Flushes what apply() loaded (the namespace is ours: a full flush is safe)."""
    for tool in ("iptables", "ip6tables"):
        in_ns(ns, tool, "-F", check=False)
        in_ns(ns, tool, "-X", check=False)
    in_ns(ns, "ipset", "destroy", check=False)


def apply(ns: str, *rule_sets: RuleSet) -> int:
    """Replaces the node's rules with the rule sets' (at most one per family); returns
    the rule count of the largest (what one family's packets walk)."""
    clear(ns)
    counts = []
    for rs in rule_sets:
        in_ns(ns, "ipset", "restore", input=ipset_script(rs))
        script = iptables_script(rs)
        restore = "ip6tables-restore" if rs.family == 6 else "iptables-restore"
        in_ns(ns, restore, input=script, timeout=300)
        counts.append(sum(1 for ln in script.splitlines() if ln.startswith("-A")))
    return max(counts, default=0)
