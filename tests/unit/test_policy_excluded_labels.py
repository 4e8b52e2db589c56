"""The spec's verdict whatever the label: selectors on keys the identity filter leaves
out (per-replica labels), and on a pod's own labels whose keys the agent reserves for
the identity's namespace labels, select exactly the pods the spec says.

Identities leave out replica-varying keys (identity/filter.py) so replicas share one;
a policy that selects on such a key makes it part of the identity of the pods it may
concern (its namespace, or every namespace for a peer with a namespaceSelector). A
pod's own label with a reserved key (io.kubernetes.pod.namespace,
io.cilium.k8s.namespace.labels.*) is kept under its own source, so podSelectors match it
and namespaceSelectors never read it.
"""

from __future__ import annotations

import pytest

from agent.k8s.objects import NAMESPACE_NAME_LABEL
from identity.security import NAMESPACE_LABELS_PREFIX, POD_NAMESPACE
from policy_helpers import cluster, engine_for, ns, peer, pod, policy, rule, sel, verdict

POD_NAME = "statefulset.kubernetes.io/pod-name"
JOB = "job-name"
HASH = "pod-template-hash"

PODS = [
    ns("db"), ns("other", team="other"),
    pod("db/db-0", {"app": "db", POD_NAME: "db-0", "controller-revision-hash": "db-5c"},
        "10.1.0.10"),
    pod("db/db-1", {"app": "db", POD_NAME: "db-1", "controller-revision-hash": "db-5c"},
        "10.1.0.11"),
    pod("db/backup-1", {"app": "backup", JOB: "backup-1"}, "10.1.0.20"),
    pod("db/web-a", {"app": "web", HASH: "7c9f"}, "10.1.0.30"),
    pod("db/web-b", {"app": "web", HASH: "5d8f"}, "10.1.0.31"),
    pod("other/client", {"app": "client"}, "10.2.0.1"),
]


def with_policies(*policies: object) -> object:
    return cluster(*PODS, *policies)


CASES = [
    pytest.param(
        [policy("db/only-db-0", sel({POD_NAME: "db-0"}))],
        [("other/client", "db/db-0", False), ("other/client", "db/db-1", True)],
        id="a deny selecting one StatefulSet replica by pod-name isolates that replica only"),
    pytest.param(
        [policy("db/from-non-jobs", sel({"app": "db"}),
                ingress=[rule([peer(sel(None, (JOB, "DoesNotExist", ())))])])],
        [("db/backup-1", "db/db-0", False), ("db/web-a", "db/db-0", True)],
        id="a peer job-name DoesNotExist leaves Job pods out"),
    pytest.param(
        [policy("db/jobs-no-egress", sel(None, (JOB, "Exists", ())), types=["Egress"])],
        [("db/backup-1", "db/db-0", False), ("db/web-a", "db/db-0", True)],
        id="a policy selecting Job pods by job-name Exists selects them"),
    pytest.param(
        [policy("db/not-this-rollout", sel(None, (HASH, "NotIn", ("7c9f",))))],
        [("other/client", "db/web-a", True), ("other/client", "db/web-b", False),
         ("other/client", "db/db-0", False)],
        id="pod-template-hash NotIn selects the other rollouts and pods without the key"),
    pytest.param(
        [policy("other/from-db-0", sel(),
                ingress=[rule([peer(sel({POD_NAME: "db-0"}), sel())])])],
        [("db/db-0", "other/client", True), ("db/db-1", "other/client", False)],
        id="a peer with a namespaceSelector sees per-replica labels in other namespaces"),
    pytest.param(
        [policy("db/only-db-0", sel({POD_NAME: "db-0"}))],
        [("db/web-a", "db/web-b", True), ("other/client", "db/web-a", True)],
        id="pods without the selected key keep the verdicts they had"),
]


@pytest.mark.parametrize("policies, expected", CASES)
def test_a_selector_on_a_left_out_key_selects_as_the_spec_says(
        policies: list[object], expected: list[tuple[str, str, bool]]) -> None:
    engine = engine_for(with_policies(*policies))  # type: ignore[arg-type]
    got = [(src, dst, verdict(engine, src, dst)) for src, dst, _ in expected]
    assert got == expected


def test_replicas_share_an_identity_until_a_policy_selects_on_their_per_replica_label() -> None:
    engine = engine_for(with_policies())   # type: ignore[arg-type]
    assert engine.identity_of("db/db-0") == engine.identity_of("db/db-1")
    assert engine.identity_of("db/web-a") == engine.identity_of("db/web-b")
    engine.update(with_policies(policy("db/only-db-0", sel({POD_NAME: "db-0"}))))  # type: ignore[arg-type]
    zero, one = engine.identity_of("db/db-0"), engine.identity_of("db/db-1")
    assert zero is not None and one is not None and zero.id != one.id
    # Only the key a policy selects on, only where it may select: the rest still share.
    assert engine.identity_of("db/web-a") == engine.identity_of("db/web-b")
    assert "controller-revision-hash" not in str(zero.labels)


# -- the agent's reserved keys on a pod's own labels ---------------------------------------

CLAIMS = [
    ns("shop"), ns("bank", tier="secure"),
    pod("shop/impostor", {"app": "x", POD_NAMESPACE: "bank",
                          NAMESPACE_LABELS_PREFIX + "tier": "secure",
                          NAMESPACE_LABELS_PREFIX + NAMESPACE_NAME_LABEL: "bank"}, "10.3.0.1"),
    pod("shop/plain", {"app": "x"}, "10.3.0.2"),
    pod("bank/vault", {"app": "vault"}, "10.4.0.1"),
    pod("bank/teller", {"app": "teller"}, "10.4.0.2"),
]

CLAIM_CASES = [
    pytest.param(
        [policy("bank/from-secure", sel({"app": "vault"}),
                ingress=[rule([peer(namespaces=sel({"tier": "secure"}))])])],
        [("shop/impostor", "bank/vault", False), ("bank/teller", "bank/vault", True)],
        id="a pod label io.cilium.k8s.namespace.labels.tier never passes a namespaceSelector"),
    pytest.param(
        [policy("bank/from-bank", sel({"app": "vault"}),
                ingress=[rule([peer(namespaces=sel({NAMESPACE_NAME_LABEL: "bank"}))])])],
        [("shop/impostor", "bank/vault", False), ("bank/teller", "bank/vault", True)],
        id="a pod label claiming the namespace name label never passes for that namespace"),
    pytest.param(
        [policy("bank/same-namespace", sel({"app": "vault"}), ingress=[rule([peer(sel())])])],
        [("shop/impostor", "bank/vault", False), ("bank/teller", "bank/vault", True)],
        id="a pod label io.kubernetes.pod.namespace never moves the pod to that namespace"),
    pytest.param(
        [policy("shop/select-by-own-label", sel({POD_NAMESPACE: "bank"}))],
        [("bank/teller", "shop/impostor", False), ("bank/teller", "shop/plain", True)],
        id="a podSelector on io.kubernetes.pod.namespace matches the pod's own label"),
    pytest.param(
        [policy("bank/from-labelled", sel({"app": "vault"}), ingress=[rule([peer(
            sel(None, (NAMESPACE_LABELS_PREFIX + "tier", "Exists", ())), sel())])])],
        [("shop/impostor", "bank/vault", True), ("shop/plain", "bank/vault", False),
         ("bank/teller", "bank/vault", False)],
        id="a podSelector on an io.cilium.k8s.namespace.labels key matches pods' own labels"),
    pytest.param(
        [policy("shop/no-claimers", sel(None, (POD_NAMESPACE, "DoesNotExist", ())))],
        [("bank/teller", "shop/impostor", True), ("bank/teller", "shop/plain", False)],
        id="DoesNotExist on a reserved key leaves out the pods that carry it"),
]


@pytest.mark.parametrize("policies, expected", CLAIM_CASES)
def test_a_pods_own_label_with_a_reserved_key_is_selected_but_claims_nothing(
        policies: list[object], expected: list[tuple[str, str, bool]]) -> None:
    engine = engine_for(cluster(*CLAIMS, *policies))  # type: ignore[arg-type]
    got = [(src, dst, verdict(engine, src, dst)) for src, dst, _ in expected]
    assert got == expected


# -- what endpoint get shows -----------------------------------------------------------------

def test_the_engine_says_which_labels_it_left_out_of_an_identity_and_why() -> None:
    engine = engine_for(with_policies(policy("db/only-db-0", sel({POD_NAME: "db-0"}))))  # type: ignore[arg-type]
    identity = engine.identity_of("db/db-0")
    assert identity is not None
    assert f"k8s:{POD_NAME}=db-0" in identity.labels.lines()
    left_out = engine.left_out_labels("db/db-0")
    assert len(left_out) == 1
    assert left_out[0].startswith("k8s:controller-revision-hash=db-5c: ")
    assert "revision" in left_out[0] and "no policy" in left_out[0]
    assert engine.left_out_labels("other/client") == ()
