"""The OpenTelemetry collector config: complete pipelines in the right processor order."""

from __future__ import annotations

from typing import Any

import pytest

from observability.signals import COLLECTOR_CONFIG, load_yaml


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """observability/otel-collector/config.yaml, parsed."""
    return load_yaml(COLLECTOR_CONFIG)


def test_every_component_a_pipeline_names_is_defined(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"]
    assert "traces" in pipelines
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline[kind]:
                assert component in config[kind], f"{name}.{kind}: {component} is not defined"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]


def test_every_defined_component_is_used(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"].values()
    for kind in ("receivers", "processors", "exporters"):
        used = {component for pipeline in pipelines for component in pipeline[kind]}
        # debug is the chart's traces exporter when no backend is configured.
        spare = {"debug"} if kind == "exporters" else set()
        assert set(config[kind]) == used | spare, kind


def test_memory_limiter_comes_first_and_batch_last_in_every_pipeline(config: dict[str, Any]) -> None:
    for name, pipeline in config["service"]["pipelines"].items():
        processors = pipeline["processors"]
        assert processors[0] == "memory_limiter", name
        assert processors[-1] == "batch", name
        assert {"k8sattributes", "resourcedetection"} <= set(processors), name


def test_it_receives_otlp_on_the_standard_ports(config: dict[str, Any]) -> None:
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def test_traces_go_to_the_backend_from_the_environment(config: dict[str, Any]) -> None:
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp"]
    assert config["exporters"]["otlp"]["endpoint"].startswith("${env:OTEL_TRACES_BACKEND_ENDPOINT")
    assert "prometheus" in config["exporters"]
    assert "debug" in config["exporters"]


def test_spans_get_kubernetes_and_host_attributes(config: dict[str, Any]) -> None:
    extracted = set(config["processors"]["k8sattributes"]["extract"]["metadata"])
    assert {"k8s.pod.name", "k8s.namespace.name", "k8s.deployment.name", "k8s.node.name"} <= extracted
    detection = config["processors"]["resourcedetection"]
    assert detection["detectors"] == ["env", "system"]
    # Attributes the services set themselves (service.name, service.version) win.
    assert detection["override"] is False


def test_memory_limiter_keeps_headroom_below_the_container_limit(config: dict[str, Any]) -> None:
    limiter = config["processors"]["memory_limiter"]
    assert 0 < limiter["limit_percentage"] <= 90
    assert 0 < limiter["spike_limit_percentage"] < limiter["limit_percentage"]
