"""The chart ships observability/: the collector config, dashboards, rules and ServiceMonitors."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from chart.rendering import RELEASE, ROOT, render, yaml_documents

OBSERVABILITY = ROOT / "observability"
MONITORING = (
    "serviceMonitor.enabled=true",
    "prometheusRule.enabled=true",
    "grafana.dashboards.enabled=true",
)


def _yaml(path) -> Any:
    (document,) = yaml_documents(path.read_text())
    return document


def _dashboard_maps(manifests) -> dict[str, dict]:
    prefix = f"{RELEASE}-inference-platform-dashboard-"
    return {
        cm["metadata"]["name"].removeprefix(prefix): cm
        for cm in manifests.of_kind("ConfigMap")
        if cm["metadata"]["name"].startswith(prefix)
    }


def test_the_chart_copies_of_observability_match_the_sources() -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "sync-observability.sh"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_plain_install_renders_no_monitoring_objects() -> None:
    manifests = render("default")
    assert not manifests.of_kind("ServiceMonitor")
    assert not manifests.of_kind("PrometheusRule")
    assert not _dashboard_maps(manifests)
    assert not manifests.find("Service", "worker-metrics")


@pytest.mark.parametrize("option", MONITORING)
def test_each_option_renders_only_its_own_objects(option: str) -> None:
    manifests = render("default", option)
    assert bool(manifests.of_kind("ServiceMonitor")) is (option == MONITORING[0])
    assert bool(manifests.of_kind("PrometheusRule")) is (option == MONITORING[1])
    assert bool(_dashboard_maps(manifests)) is (option == MONITORING[2])


def test_the_prometheus_rule_holds_exactly_the_rules_file() -> None:
    manifests = render("default", "prometheusRule.enabled=true", "prometheusRule.labels.release=kps")
    (rule,) = manifests.of_kind("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    source = _yaml(OBSERVABILITY / "prometheus" / "rules" / "inference-platform.rules.yaml")
    assert rule["spec"] == {"groups": source["groups"]}
    # Helm must not have evaluated the alert templates ({{ $labels.queue }}).
    assert "{{ $labels.queue }}" in manifests.text


def test_dashboards_are_configmaps_for_the_grafana_sidecar_with_the_json_of_observability() -> None:
    maps = _dashboard_maps(render("default", "grafana.dashboards.enabled=true"))
    sources = {path.stem: path for path in (OBSERVABILITY / "grafana" / "dashboards").glob("*.json")}
    assert set(maps) == set(sources) == {"platform-overview", "api", "workers-and-models", "rabbitmq"}
    for name, cm in maps.items():
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(cm["data"][f"{name}.json"]) == json.loads(sources[name].read_text())
    custom = _dashboard_maps(
        render(
            "default",
            "grafana.dashboards.enabled=true",
            "grafana.dashboards.label=dashboards",
            "grafana.dashboards.labelValue=inference",
            "grafana.dashboards.namespace=monitoring",
        )
    )
    for cm in custom.values():
        assert cm["metadata"]["labels"]["dashboards"] == "inference"
        assert "grafana_dashboard" not in cm["metadata"]["labels"]
        assert cm["metadata"]["namespace"] == "monitoring"


def test_service_monitors_scrape_api_web_workers_rabbitmq_and_the_collector() -> None:
    manifests = render("keda")
    monitors = {
        m["metadata"]["name"].removeprefix(f"{RELEASE}-inference-platform-"): m
        for m in manifests.of_kind("ServiceMonitor")
    }
    assert set(monitors) == {"api", "web", "worker", "rabbitmq", "otel-collector"}
    services = manifests.of_kind("Service")
    for name, monitor in monitors.items():
        selector = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        ports = {p["name"] for s in selected for p in s["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports, (name, endpoint)
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (worker_endpoint,) = monitors["worker"]["spec"]["endpoints"]
    assert (worker_endpoint["port"], worker_endpoint["path"]) == ("metrics", "/metrics")
    paths = {e["path"]: e.get("params") for e in monitors["rabbitmq"]["spec"]["endpoints"]}
    assert paths["/metrics/detailed"]["family"] == ["queue_coarse_metrics", "queue_consumer_count"]


def test_every_worker_pool_serves_metrics_on_9808_through_a_headless_service() -> None:
    manifests = render("keda")
    service = manifests.get("Service", "worker-metrics")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"][0]["port"] == 9808
    pools = [
        d for d in manifests.of_kind("Deployment") if d["metadata"]["name"].endswith(("worker", "worker-gpu"))
    ]
    assert len(pools) == 2
    for pool in pools:
        labels = pool["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        (container,) = pool["spec"]["template"]["spec"]["containers"]
        assert {"name": "metrics", "containerPort": 9808, "protocol": "TCP"} in container["ports"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["metrics"] == "/tmp/metrics"
    for suffix in ("worker", "worker-gpu"):
        config = manifests.config(suffix)
        assert config["WORKER_METRICS_PORT"] == "9808"
        assert config["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/metrics"


def test_the_collector_runs_the_observability_config() -> None:
    source = _yaml(OBSERVABILITY / "otel-collector" / "config.yaml")
    rendered = _yaml_text(render("default").config("otel-collector")["config.yaml"])
    # Without a backend: the same config, minus the otlp exporter, traces to debug.
    assert rendered["processors"]["k8sattributes"]["filter"]["namespace"] == "inference"
    assert "otlp" not in rendered["exporters"]
    assert rendered["service"]["pipelines"]["traces"]["exporters"] == ["debug"]
    assert rendered["receivers"] == source["receivers"]
    assert rendered["service"]["pipelines"]["metrics"] == source["service"]["pipelines"]["metrics"]
    for key in ("memory_limiter", "resourcedetection", "batch"):
        assert rendered["processors"][key] == source["processors"][key]

    manifests = render("production", "otelCollector.traces.headers.x-token=abc")
    with_backend = _yaml_text(manifests.config("otel-collector")["config.yaml"])
    assert with_backend["service"]["pipelines"] == source["service"]["pipelines"]
    assert with_backend["exporters"]["otlp"]["headers"] == {"x-token": "abc"}
    (container,) = manifests.get("Deployment", "otel-collector")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OTEL_TRACES_BACKEND_ENDPOINT"] == "tempo-distributor.observability.svc:4317"
    assert env["OTEL_TRACES_BACKEND_INSECURE"] == "true"


def test_rabbitmq_enables_its_prometheus_plugin() -> None:
    config = render("default").config("rabbitmq")
    assert "rabbitmq_prometheus" in config["enabled_plugins"]
    assert "prometheus.tcp.port = 15692" in config["rabbitmq.conf"]


def _yaml_text(text: str) -> Any:
    (document,) = yaml_documents(text)
    return document
