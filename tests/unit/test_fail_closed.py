"""An object that cannot be enforced fails closed for exactly the pods and directions it
covers, every other object stays, the last good version is kept, and `policy get`,
`status`, `policy matrix` and `policy trace` say so.

The documents rejected here are ones Membrane cannot represent: a field a newer API
server knows (strict field validation refuses it), or a document edited in the lab's
store. The stand-in isolates the pods the document covers in its directions and allows
nothing; other policies still allow what they allow.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from agent.api.gen import agent_pb2 as pb
from agent.api.server import AgentServicer, status_message
from agent.api.services import LoadedPolicies
from agent.datapath.fake import FakeDatapath
from agent.k8s.loader import objects_from_documents
from agent.k8s.objects import LabelSelector, PolicyType
from agent.k8s.rejection import Rejection
from agent.policy.mapstate import Direction
from agent.policy.matrix import reachability
from agent.policy.trace import TraceResult
from agent.sources.labdir import LabDirSource, LabStoreDir
from agent.store import Store
from cli.main import main
from core.errors import InvalidObject
from tests.unit.test_agent import StaticSource, make_agent
from tests.unit.test_agent_parts import Context, FakeEndpoints, FakeIdentities, FakeStatus

Doc = dict[str, Any]
BOTH = frozenset(PolicyType)


def namespace(name: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}


def pod(name: str, ns: str, ip: str, **labels: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x",
                                                       "ports": [{"containerPort": 80}]}]},
            "status": {"podIP": ip}}


def policy(name: str, ns: str = "default", resource_version: str = "", **spec: Any) -> Doc:
    meta: Doc = {"name": name, "namespace": ns}
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, **spec}}


ALLOW_CLIENT = {"ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}


def cluster() -> list[Doc]:
    return [namespace("default"), namespace("other"),
            pod("web", "default", "10.244.1.2", app="web"),
            pod("client", "default", "10.244.1.3", app="client"),
            pod("web", "other", "10.244.1.4", app="web"),
            pod("client", "other", "10.244.1.5", app="client")]


def unrepresentable(name: str = "web", **spec: Any) -> Doc:
    """A policy with a field a newer API server might have: Membrane cannot enforce it."""
    doc = policy(name, **spec)
    doc["spec"]["futureField"] = {"mode": "strict"}
    return doc


# -- which pods and directions the stand-in covers ---------------------------------------

def test_a_rejected_policy_leaves_a_stand_in_isolating_its_pods_with_no_rule() -> None:
    objects, errors = objects_from_documents(
        cluster() + [unrepresentable(**ALLOW_CLIENT), policy("keep", ns="other", **ALLOW_CLIENT)])
    (error,) = errors
    assert isinstance(error, InvalidObject) and "futureField" in str(error)
    stand_in = objects.policies["default/web"]
    assert stand_in.fail_closed == str(error)
    assert stand_in.pod_selector == LabelSelector.of({"app": "web"})
    assert stand_in.policy_types == {PolicyType.INGRESS} and not stand_in.ingress
    assert not objects.policies["other/keep"].fail_closed   # every other object stays
    assert len(objects.pods) == 4


@pytest.mark.parametrize("spec,selector,types", [
    ({"policyTypes": ["Egress"]}, LabelSelector.of({"app": "web"}), {PolicyType.EGRESS}),
    ({"egress": [{}]}, LabelSelector.of({"app": "web"}), BOTH),
    ({"podSelector": {"matchExpressions": [{"key": "app", "operator": "Near"}]}},
     LabelSelector(), {PolicyType.INGRESS}),
    ({"podSelector": {"matchLabels": {"app": "web"}, "matchFields": {}}},
     LabelSelector(), {PolicyType.INGRESS}),
    ({"policyTypes": ["Ingress", "Sideways"]}, LabelSelector.of({"app": "web"}), BOTH),
    ({"egress": "everything"}, LabelSelector.of({"app": "web"}), BOTH),
], ids=["its policy types", "egress rules add Egress", "an unreadable selector: the namespace",
        "a selector field Membrane does not know: the namespace",
        "unreadable policy types: both", "unreadable egress: both"])
def test_the_stand_in_covers_what_the_document_says_or_more_when_unreadable(
        spec: Doc, selector: LabelSelector, types: set[PolicyType]) -> None:
    objects, errors = objects_from_documents([unrepresentable(**spec)])
    assert len(errors) == 1
    stand_in = objects.policies["default/web"]
    assert (stand_in.pod_selector, set(stand_in.policy_types)) == (selector, types)
    assert not stand_in.ingress and not stand_in.egress


def test_a_spec_that_is_not_an_object_isolates_the_whole_namespace_both_ways() -> None:
    doc = policy("web")
    doc["spec"] = ["not", "a", "spec"]
    objects, _ = objects_from_documents([doc])
    stand_in = objects.policies["default/web"]
    assert stand_in.pod_selector.is_empty and stand_in.policy_types == BOTH


def test_a_policy_in_a_namespace_no_pod_can_be_in_has_no_stand_in() -> None:
    objects, errors = objects_from_documents([policy("web", ns="Not_A_Namespace")])
    assert len(errors) == 1 and not objects.policies


def test_a_policy_of_another_api_version_fails_closed_too() -> None:
    doc = policy("web", **ALLOW_CLIENT)
    doc["apiVersion"] = "networking.k8s.io/v2"
    objects, errors = objects_from_documents([doc])
    assert len(errors) == 1 and objects.policies["default/web"].fail_closed


# -- the verdicts: matrix and the engine -------------------------------------------------

def verdict(objects_docs: list[Doc], src: str, dst: str) -> bool:
    objects, _ = objects_from_documents(objects_docs)
    return {(v.src, v.dst): v.allowed for v in reachability(objects, [80], ["TCP"])}[(src, dst)]


def test_the_pods_it_covers_are_denied_and_the_others_keep_their_verdicts() -> None:
    docs = cluster() + [unrepresentable(**ALLOW_CLIENT)]
    assert not verdict(docs, "default/client", "default/web")   # was open before
    assert verdict(docs, "default/web", "default/client")        # egress not covered
    assert verdict(docs, "other/client", "other/web")            # another namespace


def test_other_policies_still_allow_what_they_allow() -> None:
    allow = policy("allow", **ALLOW_CLIENT)
    docs = cluster() + [unrepresentable(), allow]
    assert verdict(docs, "default/client", "default/web")
    assert not verdict(docs, "other/client", "default/web")


# -- the CLI: matrix and trace exit non-zero naming what they skipped ---------------------

@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(cluster() + [unrepresentable(**ALLOW_CLIENT)]))
    return path


def test_policy_matrix_exits_non_zero_naming_the_skipped_policy(
        manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "matrix", "-f", str(manifests), "-o", "json"]) == 1
    out, err = capsys.readouterr()
    rows = {(r["from"], r["to"]): r for r in json.loads(out)["verdicts"]}
    assert not rows[("default/client", "default/web")]["allowed"]
    assert "networkpolicy default/web" in err and "futureField" in err
    assert "fail closed" in err


def test_policy_trace_exits_non_zero_naming_the_skipped_policy(
        manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["policy", "trace", "-f", str(manifests), "--from", "default/client",
                 "--to", "default/web", "--port", "80"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "DENIED" in out and "networkpolicy default/web" in err


def test_matrix_of_valid_manifests_still_exits_zero(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump_all(cluster()))
    assert main(["policy", "matrix", "-f", str(path)]) == 0


# -- the store: the last good version, every other object ---------------------------------

def test_the_store_keeps_the_last_good_version_and_enforces_the_stand_in() -> None:
    store = Store()
    good_docs = cluster() + [policy("web", resource_version="7", **ALLOW_CLIENT)]
    good, _ = objects_from_documents(good_docs)
    store.replace_all(good, synced=True)
    bad_docs = cluster() + [unrepresentable(**ALLOW_CLIENT)]
    bad, errors = objects_from_documents(bad_docs)
    store.replace_all(bad, errors, synced=True)
    snap = store.snapshot()
    (rejection,) = snap.rejected
    assert (rejection.kind, rejection.key) == ("NetworkPolicy", "default/web")
    assert rejection.last_good == good.policies["default/web"]
    assert rejection.last_good.resource_version == "7"
    assert snap.objects.policies["default/web"].fail_closed
    assert "fail closed: pods app=web of namespace default isolated for Ingress" in str(rejection)
    assert len(snap.objects.pods) == 4
    # Still rejected at the next read: the last good version is not forgotten.
    store.replace_all(bad, errors, synced=True)
    assert store.snapshot().rejected[0].last_good == good.policies["default/web"]
    # Fixed: the policy is back and the rejection gone.
    store.replace_all(good, synced=True)
    snap = store.snapshot()
    assert not snap.rejected and not snap.objects.policies["default/web"].fail_closed


def test_a_rejected_pod_keeps_its_last_good_version_in_force() -> None:
    store = Store()
    good, _ = objects_from_documents(cluster())
    store.replace_all(good, synced=True)
    docs = cluster()
    docs[2]["spec"]["containers"][0]["ports"] = [{"containerPort": 0}]
    bad, errors = objects_from_documents(docs)
    assert "default/web" not in bad.pods and len(errors) == 1
    store.replace_all(bad, errors, synced=True)
    snap = store.snapshot()
    assert snap.objects.pods["default/web"] == good.pods["default/web"]
    assert "in force: the last good version" in str(snap.rejected[0])


def test_reject_after_upsert_keeps_the_version_before_and_enforces_the_stand_in() -> None:
    store = Store()
    good, _ = objects_from_documents([policy("web", **ALLOW_CLIENT)])
    store.upsert(good.policies["default/web"])
    bad, (error,) = objects_from_documents([unrepresentable()])
    store.reject("NetworkPolicy", "default/web", error, bad.policies["default/web"])
    snap = store.snapshot()
    assert snap.objects.policies["default/web"] == bad.policies["default/web"]
    assert snap.rejected[0].last_good == good.policies["default/web"]
    store.reject("NetworkPolicy", "default/web", error, bad.policies["default/web"])
    assert store.snapshot().rejected[0].last_good == good.policies["default/web"]


# -- the lab's store: warnings and rejections through to the snapshot ---------------------

@pytest.fixture
def lab_store(tmp_path: Path) -> Iterator[tuple[LabStoreDir, Store]]:
    directory = LabStoreDir(tmp_path / "store")
    directory.create()
    store, stop = Store(), threading.Event()
    thread = threading.Thread(target=LabDirSource(directory.path).run, args=(store, stop))
    thread.start()
    yield directory, store
    stop.set()
    thread.join()


def wait_for(store: Store, revision: int) -> None:
    deadline = time.monotonic() + 5
    while store.source_revision < revision:
        assert time.monotonic() < deadline, f"the source did not deliver revision {revision}"
        time.sleep(0.02)


def test_the_lab_source_hands_warnings_and_rejections_to_the_store(
        lab_store: tuple[LabStoreDir, Store]) -> None:
    directory, store = lab_store
    repeated = policy("twice", policyTypes=["Ingress", "Ingress"])
    wait_for(store, directory.apply(cluster() + [repeated, unrepresentable()]))
    snap = store.snapshot()
    (warning,) = snap.warnings
    assert (warning.kind, warning.name) == ("NetworkPolicy", "default/twice")
    assert "repeated value" in str(warning)
    (rejection,) = snap.rejected
    assert rejection.key == "default/web" and snap.objects.policies["default/web"].fail_closed


# -- the API: policy get and status say so -------------------------------------------------

class Loaded:
    def __init__(self, store: Store) -> None:
        self.store = store

    def loaded(self) -> LoadedPolicies:
        snap = self.store.snapshot()
        return LoadedPolicies(revision=1, policies=dict(snap.objects.policies),
                              rejected=snap.rejected, selected_endpoints={},
                              warnings=snap.warnings)

    def trace(self, src: str, dst: str, port: int, protocol: str, family: int = 4
              ) -> TraceResult:
        return TraceResult(False, "denied")


def test_policy_get_marks_the_stand_in_and_lists_rejections_and_warnings() -> None:
    store = Store()
    docs = cluster() + [policy("web", resource_version="7", **ALLOW_CLIENT)]
    good, _ = objects_from_documents(docs)
    store.replace_all(good, synced=True)
    warnings: list[Any] = []
    bad, errors = objects_from_documents(
        cluster() + [unrepresentable(), policy("twice", policyTypes=["Ingress", "Ingress"])],
        warnings=warnings)
    store.replace_all(bad, errors, synced=True, warnings=warnings)
    servicer = AgentServicer("n1", FakeEndpoints(), FakeIdentities(), Loaded(store),
                             FakeDatapath(), FakeStatus())
    reply = servicer.GetPolicies(pb.Empty(), Context())
    by_name = {p.name: p for p in reply.policies}
    assert "futureField" in by_name["web"].fail_closed
    assert by_name["web"].last_good_resource_version == "7"
    assert not by_name["twice"].fail_closed
    assert any("repeated value" in w for w in by_name["twice"].warnings)
    assert any("default/web" in r and "fail closed" in r for r in reply.rejected)
    assert any("default/twice" in w for w in reply.warnings)
    trace = servicer.Trace(pb.TraceRequest(to="default/web"), Context())
    assert any("default/web" in s for s in trace.skipped)


def test_rejection_records_read_as_one_line() -> None:
    rejection = Rejection("NetworkPolicy", "a/b", "networkpolicy a/b: spec: bad",
                          in_force="fail closed: ...")
    assert str(rejection) == "networkpolicy a/b: spec: bad; in force: fail closed: ..."
    assert copy.copy(rejection) == rejection


def test_the_agent_isolates_the_covered_pods_and_its_status_says_so(tmp_path: Path) -> None:
    good, _ = objects_from_documents(cluster() + [policy("web", **ALLOW_CLIENT)])
    source = StaticSource(good)
    datapath = FakeDatapath(node="n1")
    agent = make_agent(tmp_path, source, datapath)
    agent.start()
    try:
        web = agent.register_endpoint("default", "web", "lo", "10.244.1.2", timeout=5)
        allowed = datapath.policies[web.id]
        assert len(allowed.entries) > 1   # the host and the client
        warnings: list[Any] = []
        bad, errors = objects_from_documents(
            cluster() + [unrepresentable(**ALLOW_CLIENT),
                         policy("twice", ns="other", policyTypes=["Ingress", "Ingress"])],
            warnings=warnings)
        assert source.store is not None
        source.store.replace_all(bad, errors, synced=True, source_revision=2,
                                 warnings=warnings)
        assert agent.wait_for_revision(2, 5)
        closed = datapath.policies[web.id]
        assert closed.ingress_enforced and not closed.egress_enforced
        assert {k.direction for k in closed.entries} == {Direction.INGRESS}
        assert len(closed.entries) == 1   # the node only: nothing allowed by the policy
        status = agent.status()
        assert any("default/web" in r and "fail closed" in r for r in status.rejected)
        assert any("other/twice" in w for w in status.object_warnings)
        reply = status_message(status)
        assert list(reply.rejected) == list(status.rejected)
        assert list(reply.object_warnings) == list(status.object_warnings)
    finally:
        agent.stop()
