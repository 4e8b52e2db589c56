"""Generated scenarios (tests/datapath/scenarios.py): `policy matrix` and `policy trace`
give the spec's verdict (tests/datapath/netpol_spec.py, read off the pods' own labels)
for every pair of pods, protocol and probed port.

The datapath is held to the matrix by tests/datapath/test_generated_scenarios.py on the
same scenarios; this closes the loop to the spec without a kernel, so it runs many more.
The scenarios carry labels identities leave out (per-replica keys) and pods' own labels
with the keys the agent reserves for its identity labels, selected on by policies; some
carry a policy far beyond the default limits: only it is enforced fail-closed (it
isolates its pods and allows nothing), every other verdict is the spec's.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings

from agent.k8s.objects import Protocol
from agent.policy.matrix import endpoints, offline_engine, reachability
from agent.policy.trace import trace_engine
from tests.datapath.netpol_spec import spec_allows
from tests.datapath.scenarios import Scenario, probed_ports, scenarios

EXAMPLES = int(os.environ.get("MEMBRANE_SPEC_SCENARIOS", "150"))


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, print_blob=False,
          database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario=scenarios())
def test_the_matrix_and_trace_give_the_specs_verdict_on_generated_scenarios(
        scenario: Scenario) -> None:
    objects = scenario.objects
    engine = offline_engine(objects)
    pods = endpoints(engine)
    # What the default limits cannot hold is enforced fail-closed, and only that.
    skip = {pod: engine.unenforced_policies(pod) for pod in pods}
    if "huge" in {p.name for p in objects.policies.values()}:
        assert any(skip.values()) or not any(
            p.pod_selector.matches(objects.pods[k].labels) for p in objects.policies.values()
            if p.name == "huge" for k in pods if objects.pods[k].namespace == p.namespace)
    assert all(k.endswith("/huge") for keys in skip.values() for k in keys), skip
    wrong = []
    for v in reachability(objects, probed_ports(scenario), [p.value for p in Protocol], engine):
        want = spec_allows(objects, v.src, v.dst, Protocol(v.protocol), v.port, skip)
        if v.allowed != want:
            wrong.append(f"{v.src} -> {v.dst} {v.protocol}/{v.port}: the matrix "
                         f"{'allows' if v.allowed else 'denies'}, the spec "
                         f"{'allows' if want else 'denies'}")
    # trace explains the same engine's verdict: one port per pair is enough to hold it to
    # the spec too.
    port = probed_ports(scenario)[0]
    for src in pods:
        for dst in pods:
            got = trace_engine(engine, src, dst, port, "TCP").allowed
            if got != spec_allows(objects, src, dst, Protocol.TCP, port, skip):
                wrong.append(f"trace {src} -> {dst} TCP/{port}: {got}, not the spec's")
    assert not wrong, "\n".join(wrong[:20]) + "\nscenario:\n" + scenario.yaml()
