"""The fake API server against the real `kubernetes` client: if the client is happy, an
agent tested against the fake talks the protocol a real cluster speaks."""

# The kubernetes client is untyped, and its models make every field Optional.
# mypy: disable-error-code="no-untyped-call,union-attr"
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from fake_apiserver import FakeApiServer


def pod(name: str, ns: str = "default", node: str = "n1", ip: str = "10.0.0.1",
        **labels: str) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {"podIP": ip}}


def namespace(name: str) -> dict[str, Any]:
    return {"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer() as s:
        yield s


@pytest.fixture
def api(server: FakeApiServer) -> Iterator[client.ApiClient]:
    with client.ApiClient(client.Configuration(host=server.url)) as c:
        yield c


def collect(stream: Iterator[dict[str, Any]], count: int) -> list[tuple[str, str]]:
    """(type, name) of the next `count` events."""
    seen = []
    for event in stream:
        seen.append((event["type"], event["raw_object"]["metadata"].get("name", "")))
        if len(seen) == count:
            break
    return seen


def later(action: Any, delay: float = 0.2) -> None:
    threading.Timer(delay, action).start()


def test_discovery_answers_version_core_and_groups(api: client.ApiClient) -> None:
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(api).get_api_versions().groups
    assert [g.name for g in groups] == ["coordination.k8s.io", "networking.k8s.io"]


def test_lists_carry_resource_version_and_items(server: FakeApiServer,
                                                api: client.ApiClient) -> None:
    server.apply(namespace("a"))
    server.apply(pod("p1", "a"))
    server.apply(pod("p2", "b"))
    server.apply({"kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": "a"},
                  "spec": {"podSelector": {}}})
    core = client.CoreV1Api(api)
    pods = core.list_pod_for_all_namespaces()
    assert pods.metadata.resource_version == str(server.resource_version)
    assert sorted(str(p.metadata.name) for p in pods.items) == ["p1", "p2"]
    assert [p.metadata.name for p in core.list_namespaced_pod("a").items] == ["p1"]
    assert [n.metadata.name for n in core.list_namespace().items] == ["a"]
    policies = client.NetworkingV1Api(api).list_network_policy_for_all_namespaces()
    assert [p.metadata.name for p in policies.items] == ["deny"]
    assert core.read_namespaced_pod("p1", "a").status.pod_ip == "10.0.0.1"


def test_unknown_object_is_a_404_status(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).read_namespace("nope")
    assert err.value.status == 404


def test_field_selector_on_node_name(server: FakeApiServer, api: client.ApiClient) -> None:
    server.apply(pod("here", node="n1"))
    server.apply(pod("there", node="n2"))
    items = client.CoreV1Api(api).list_pod_for_all_namespaces(
        field_selector="spec.nodeName=n1").items
    assert [p.metadata.name for p in items] == ["here"]


def test_watch_streams_added_modified_deleted_in_order(server: FakeApiServer,
                                                       api: client.ApiClient) -> None:
    rv = client.CoreV1Api(api).list_namespace().metadata.resource_version

    def changes() -> None:
        server.apply(namespace("a"))
        server.apply({**namespace("a"), "metadata": {"name": "a", "labels": {"x": "1"}}})
        server.delete("Namespace", "a")

    later(changes)
    w = watch.Watch()
    stream = w.stream(client.CoreV1Api(api).list_namespace, resource_version=rv,
                      timeout_seconds=5)
    assert collect(stream, 3) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    w.stop()
    assert w.resource_version == str(server.resource_version)


def test_watch_from_an_old_version_replays_history(server: FakeApiServer,
                                                   api: client.ApiClient) -> None:
    start = server.resource_version
    server.apply(pod("p1"))
    server.delete("Pod", "p1")
    stream = watch.Watch().stream(client.CoreV1Api(api).list_pod_for_all_namespaces,
                                  resource_version=str(start), timeout_seconds=5)
    assert collect(stream, 2) == [("ADDED", "p1"), ("DELETED", "p1")]


def test_watch_without_version_starts_with_synthetic_adds(server: FakeApiServer,
                                                          api: client.ApiClient) -> None:
    server.apply(pod("p1"))
    stream = watch.Watch().stream(client.CoreV1Api(api).list_pod_for_all_namespaces,
                                  timeout_seconds=5)
    assert collect(stream, 1) == [("ADDED", "p1")]


def test_modified_out_of_a_field_selector_is_a_delete(server: FakeApiServer,
                                                      api: client.ApiClient) -> None:
    rv = str(server.apply(pod("p1", node="n1"))["metadata"]["resourceVersion"])
    later(lambda: server.apply(pod("p1", node="n2")))
    stream = watch.Watch().stream(client.CoreV1Api(api).list_pod_for_all_namespaces,
                                  field_selector="spec.nodeName=n1", resource_version=rv,
                                  timeout_seconds=5)
    assert collect(stream, 1) == [("DELETED", "p1")]


def test_bookmark_reaches_watches_that_asked_and_advances_the_client(
        server: FakeApiServer, api: client.ApiClient) -> None:
    rv = str(server.resource_version)
    server.apply(pod("elsewhere", "other"))  # moves the version without an event for "a"

    def bookmark() -> None:
        server.wait_for_watches(1)
        server.send_bookmark()

    later(bookmark, 0)
    w = watch.Watch()
    stream = w.stream(client.CoreV1Api(api).list_namespaced_pod, "a", resource_version=rv,
                      allow_watch_bookmarks=True, timeout_seconds=5)
    assert next(stream)["type"] == "BOOKMARK"
    assert w.resource_version == str(server.resource_version)
    w.stop()


def test_watch_ends_cleanly_at_timeout_seconds(server: FakeApiServer,
                                               api: client.ApiClient) -> None:
    began = time.monotonic()
    events = list(watch.Watch().stream(client.CoreV1Api(api).list_namespace,
                                       resource_version=str(server.resource_version),
                                       timeout_seconds=1))
    assert events == []
    assert 0.9 < time.monotonic() - began < 3


@pytest.mark.parametrize("gone_mode", ["event", "http"])
def test_watch_from_a_compacted_version_is_410_gone(gone_mode: Literal["event", "http"]) -> None:
    with FakeApiServer(gone_mode=gone_mode) as server, \
            client.ApiClient(client.Configuration(host=server.url)) as api:
        stale = str(server.resource_version)
        server.apply(namespace("a"))
        server.compact()
        with pytest.raises(ApiException) as err:
            list(watch.Watch().stream(client.CoreV1Api(api).list_namespace,
                                      resource_version=stale, timeout_seconds=5))
        assert err.value.status == 410


def test_expire_sends_an_error_event_with_code_410(server: FakeApiServer,
                                                   api: client.ApiClient) -> None:
    def expire() -> None:
        server.wait_for_watches(1)
        server.expire_watches()

    later(expire, 0)
    with pytest.raises(ApiException) as err:
        list(watch.Watch().stream(client.CoreV1Api(api).list_namespace,
                                  resource_version=str(server.resource_version),
                                  timeout_seconds=5))
    assert err.value.status == 410 and "Expired" in str(err.value.reason)


def test_dropped_watch_is_an_error_for_the_client(server: FakeApiServer,
                                                  api: client.ApiClient) -> None:
    def drop() -> None:
        server.wait_for_watches(1)
        server.drop_watches()

    later(drop, 0)
    began = time.monotonic()
    with pytest.raises(Exception):  # urllib3's ProtocolError: the stream ended mid-chunk
        list(watch.Watch().stream(client.CoreV1Api(api).list_namespace,
                                  resource_version=str(server.resource_version),
                                  timeout_seconds=5))
    assert time.monotonic() - began < 3


def test_stopped_server_refuses_and_restarts_with_its_state(server: FakeApiServer) -> None:
    server.apply(namespace("a"))
    cfg = client.Configuration(host=server.url)
    cfg.retries = 0
    with client.ApiClient(cfg) as api:
        core = client.CoreV1Api(api)
        core.list_namespace()  # leaves a kept-alive connection in the pool
        server.stop()
        with pytest.raises(Exception):
            core.list_namespace(_request_timeout=2)
        server.start()
        assert [n.metadata.name for n in core.list_namespace().items] == ["a"]


def test_request_log_records_watch_parameters(server: FakeApiServer,
                                              api: client.ApiClient) -> None:
    list(watch.Watch().stream(client.CoreV1Api(api).list_node, resource_version="1",
                              allow_watch_bookmarks=True, timeout_seconds=1))
    (req,) = [r for r in server.requests if r.is_watch]
    assert req.path == "/api/v1/nodes"
    assert req.resource_version == "1"
    assert req.params["allowWatchBookmarks"] == "true"
    assert req.params["timeoutSeconds"] == "1"
