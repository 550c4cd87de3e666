"""NetworkPolicies: deny by default, then only the flows of the design."""

from __future__ import annotations

from typing import Any

from chart.rendering import RELEASE, Manifests, pod_labels, render

RELEASE_SELECTOR = {"app.kubernetes.io/name": "inference-platform", "app.kubernetes.io/instance": RELEASE}


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def _policies_for(manifests: Manifests, component: str, pool: str | None = None) -> list[dict[str, Any]]:
    labels = {**RELEASE_SELECTOR, "app.kubernetes.io/component": component}
    if pool:
        labels["inference-platform/pool"] = pool
    return [p for p in manifests.of_kind("NetworkPolicy") if _selects(p, labels)]


def _egress_ports(manifests: Manifests, component: str) -> set[int]:
    ports = set()
    for policy in _policies_for(manifests, component):
        for rule in policy["spec"].get("egress", []):
            ports |= {p["port"] for p in rule.get("ports", [])}
    return ports


def _ingress_sources(manifests: Manifests, component: str, port: int) -> list[dict[str, Any]]:
    sources = []
    for policy in _policies_for(manifests, component):
        for rule in policy["spec"].get("ingress", []):
            if port in {p["port"] for p in rule.get("ports", [])}:
                sources.extend(rule.get("from", [{"anywhere": True}]))
    return sources


def _from_components(sources: list[dict[str, Any]]) -> set[str]:
    return {
        s["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for s in sources
        if "podSelector" in s and "namespaceSelector" not in s
    }


def test_every_pod_of_the_release_starts_from_deny_all(manifests: Manifests) -> None:
    (deny,) = [
        p for p in manifests.of_kind("NetworkPolicy") if p["metadata"]["name"].endswith("default-deny")
    ]
    assert deny["spec"]["podSelector"]["matchLabels"] == RELEASE_SELECTOR
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    for workload in manifests.workloads():
        assert _selects(deny, pod_labels(workload)), workload["metadata"]["name"]


def test_every_pod_may_resolve_names_through_kube_dns() -> None:
    manifests = render("default")
    (dns,) = [p for p in manifests.of_kind("NetworkPolicy") if p["metadata"]["name"].endswith("allow-dns")]
    (rule,) = dns["spec"]["egress"]
    assert {(p["port"], p["protocol"]) for p in rule["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert rule["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}


def test_each_component_may_only_reach_the_ports_of_the_design() -> None:
    manifests = render("default")
    dns = {53}
    assert _egress_ports(manifests, "api") == dns | {5672, 5432, 4317, 4318}
    assert _egress_ports(manifests, "web") == dns | {5672, 5432, 4317, 4318}
    assert _egress_ports(manifests, "trainer") == dns | {5672, 5432, 4317, 4318}
    assert _egress_ports(manifests, "worker") == dns | {5672, 5432, 4317, 4318}
    assert _egress_ports(manifests, "migrations") == dns | {5432}
    assert _egress_ports(manifests, "test") == dns | {8080, 5432}
    assert _egress_ports(manifests, "rabbitmq") == dns
    assert _egress_ports(manifests, "postgresql") == dns
    assert _egress_ports(manifests, "otel-collector") == dns | {443, 6443}


def test_backing_services_accept_only_their_clients() -> None:
    manifests = render("default")
    # web publishes training runs and batch chunks; the trainer consumes the training queue.
    assert _from_components(_ingress_sources(manifests, "rabbitmq", 5672)) == {
        "api",
        "web",
        "trainer",
        "worker",
    }
    assert _from_components(_ingress_sources(manifests, "postgresql", 5432)) == {
        "api",
        "web",
        "trainer",
        "worker",
        "migrations",
        "test",
    }
    assert _from_components(_ingress_sources(manifests, "otel-collector", 4317)) == {
        "api",
        "web",
        "trainer",
        "worker",
    }
    # Metrics ports only from the Prometheus namespace.
    for component, port in [("rabbitmq", 15692), ("otel-collector", 8889), ("worker", 9808)]:
        sources = _ingress_sources(manifests, component, port)
        assert sources == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ]
    # Workers and the trainer listen on nothing; the management UI is not reachable without KEDA.
    assert not _ingress_sources(manifests, "worker", 8080)
    assert not _ingress_sources(manifests, "trainer", 8000)
    assert not _ingress_sources(manifests, "rabbitmq", 15672)


def test_api_and_web_accept_clients_from_anywhere_unless_restricted() -> None:
    assert _ingress_sources(render("default"), "api", 8080) == [{"anywhere": True}]
    assert _ingress_sources(render("default"), "web", 8000) == [{"anywhere": True}]
    production = render("production")
    nginx = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    # Prometheus scrapes web's /metrics on the web port.
    assert _ingress_sources(production, "web", 8000) == [nginx, monitoring]
    api_sources = _ingress_sources(production, "api", 8080)
    assert nginx in api_sources
    assert "test" in _from_components(api_sources)  # helm test still reaches the api


def test_keda_may_read_queue_depth_from_the_management_api() -> None:
    sources = _ingress_sources(render("keda"), "rabbitmq", 15672)
    assert sources == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "keda-operator"}},
        }
    ]
    amqp = _ingress_sources(render("keda", "keda.protocol=amqp"), "rabbitmq", 5672)
    assert any("namespaceSelector" in s for s in amqp)


def test_external_services_are_reached_only_on_their_configured_cidrs_and_ports() -> None:
    manifests = render("external")
    assert not [
        p
        for p in manifests.of_kind("NetworkPolicy")
        if p["metadata"]["name"].endswith(("-rabbitmq", "-postgresql"))
    ]
    (worker,) = [
        p for p in _policies_for(manifests, "worker", "cpu") if p["metadata"]["name"].endswith("-worker")
    ]
    rules = worker["spec"]["egress"]
    assert {
        "ports": [{"port": 5671, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}],
    } in rules
    assert {
        "ports": [{"port": 5432, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.20.1.0/24"}}],
    } in rules


def test_collector_reaches_the_api_server_and_trace_backend_through_configured_peers() -> None:
    (policy,) = [
        p
        for p in render("production").of_kind("NetworkPolicy")
        if p["metadata"]["name"].endswith("otel-collector")
    ]
    egress = policy["spec"]["egress"]
    assert {
        "ports": [{"port": 443, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}],
    } in egress
    assert {
        "ports": [{"port": 4317, "protocol": "TCP"}],
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
    } in egress


def test_network_policies_can_be_turned_off() -> None:
    assert not render("default", "networkPolicy.enabled=false").of_kind("NetworkPolicy")
