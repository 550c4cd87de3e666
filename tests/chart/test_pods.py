"""Production hygiene of every pod the chart renders, in every ci/ profile."""

from __future__ import annotations

import re

from chart.rendering import (
    RELEASE,
    RESTRICTED_VOLUME_TYPES,
    Manifests,
    is_long_running,
    pod_labels,
    pod_spec,
    render,
)

STANDARD_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
}


def _containers(workload: dict) -> list[tuple[str, dict]]:
    spec = pod_spec(workload)
    return [("container", c) for c in spec["containers"]] + [
        ("initContainer", c) for c in spec.get("initContainers", [])
    ]


def test_long_running_containers_have_resources_and_all_three_probes(manifests: Manifests) -> None:
    components = set()
    for workload in filter(is_long_running, manifests.workloads()):
        components.add(pod_labels(workload)["app.kubernetes.io/component"])
        for container in pod_spec(workload)["containers"]:
            where = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert probe in container, f"{where} has no {probe}"
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{where} lacks cpu/memory {part}"
    assert {"api", "web", "trainer", "worker"} <= components


def test_hook_jobs_and_test_pods_have_resources_and_run_to_completion_without_probes(
    manifests: Manifests,
) -> None:
    # Exempt from probes by design: hook Jobs and helm test Pods (run once to completion)
    # and initContainers (Kubernetes does not probe them). They still get resources.
    one_off = [w for w in manifests.workloads() if not is_long_running(w)]
    assert one_off, "expected the migration Job and the helm test Pods"
    for workload in one_off:
        assert "helm.sh/hook" in workload["metadata"].get("annotations", {}), workload["metadata"]["name"]
        assert pod_spec(workload)["restartPolicy"] == "Never"
        for _, container in _containers(workload):
            assert {"requests", "limits"} <= set(container["resources"]), container["name"]
            assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    for workload in filter(is_long_running, manifests.workloads()):
        for init in pod_spec(workload).get("initContainers", []):
            assert {"requests", "limits"} <= set(init["resources"]), init["name"]


def test_every_container_meets_the_restricted_pod_security_standard(manifests: Manifests) -> None:
    for workload in manifests.workloads():
        spec = pod_spec(workload)
        pod_ctx = spec.get("securityContext", {})
        name = workload["metadata"]["name"]
        assert pod_ctx.get("runAsNonRoot") is True, name
        assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), f"{name} sets {key}"
        for volume in spec.get("volumes", []):
            kind = set(volume) - {"name"}
            assert kind <= RESTRICTED_VOLUME_TYPES, f"{name} volume {volume['name']} is {kind}"
        for _, container in _containers(workload):
            ctx = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert ctx["runAsNonRoot"] is True, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert not ctx["capabilities"].get("add"), where
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where
            assert not ctx.get("privileged"), where
            assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 0)) != 0, where
            for port in container.get("ports", []):
                assert "hostPort" not in port, where


def test_every_object_and_pod_carries_the_standard_labels(manifests: Manifests) -> None:
    for doc in manifests:
        labels = doc["metadata"].get("labels", {})
        assert set(labels) >= STANDARD_LABELS, f"{doc['kind']}/{doc['metadata']['name']}: {labels}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    for workload in manifests.workloads():
        assert set(pod_labels(workload)) >= STANDARD_LABELS, workload["metadata"]["name"]


def test_one_name_per_service_in_component_label_and_otel_service_name() -> None:
    manifests = render("keda")
    for suffix, service in [
        ("api", "api"),
        ("web", "web"),
        ("trainer", "trainer"),
        ("worker", "worker"),
        ("worker-gpu", "worker"),
    ]:
        deployment = manifests.get("Deployment", suffix)
        assert pod_labels(deployment)["app.kubernetes.io/component"] == service
        assert manifests.config(suffix)["OTEL_SERVICE_NAME"] == service
    pools = {
        pod_labels(manifests.get("Deployment", s))["inference-platform/pool"]
        for s in ("worker", "worker-gpu")
    }
    assert pools == {"cpu", "gpu"}


def test_only_the_collector_mounts_a_service_account_token(manifests: Manifests) -> None:
    for workload in manifests.workloads():
        spec = pod_spec(workload)
        component = pod_labels(workload)["app.kubernetes.io/component"]
        assert spec["automountServiceAccountToken"] is (component == "otel-collector"), workload["metadata"][
            "name"
        ]
        assert spec["enableServiceLinks"] is False


def test_deployments_spread_their_own_pods_over_zones_and_nodes(manifests: Manifests) -> None:
    for deployment in manifests.of_kind("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        constraints = pod_spec(deployment)["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in constraints} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }
        for constraint in constraints:
            assert constraint["labelSelector"]["matchLabels"] == selector


def test_every_deployment_has_a_disruption_budget_selecting_its_pods() -> None:
    manifests = render("keda")
    budgets = [pdb["spec"]["selector"]["matchLabels"] for pdb in manifests.of_kind("PodDisruptionBudget")]
    for deployment in manifests.of_kind("Deployment"):
        assert deployment["spec"]["selector"]["matchLabels"] in budgets, deployment["metadata"]["name"]
    # Single-replica StatefulSets get none: a budget would block node drains forever.
    assert len(budgets) == len(manifests.of_kind("Deployment"))


def test_pods_roll_when_their_own_config_changes_and_only_then() -> None:
    def checksums(*sets: str) -> dict[str, str]:
        manifests = render("keda", *sets)
        result = {}
        for workload in manifests.of_kind("Deployment") + manifests.of_kind("StatefulSet"):
            annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
            if "checksum/config" in annotations:
                result[workload["metadata"]["name"].removeprefix(f"{RELEASE}-inference-platform-")] = (
                    annotations["checksum/config"]
                )
        return result

    base = checksums()
    assert {"api", "web", "trainer", "worker", "worker-gpu", "rabbitmq", "otel-collector"} <= set(base)
    for override, rolled in [
        ("api.config.workers=4", {"api"}),
        ("web.config.workers=4", {"web"}),
        # The trainer loads the same Django settings as web: shared settings roll both.
        ("web.config.logLevel=debug", {"web", "trainer"}),
        ("web.config.traceUiUrl=https://jaeger.example.com/trace/{trace_id}", {"web", "trainer"}),
        ("trainer.config.threads=4", {"trainer"}),
        ("worker.config.batchMaxSize=32", {"worker"}),
        ("workerGpu.config.batchMaxSize=512", {"worker-gpu"}),
        ("rabbitmq.consumerTimeoutSeconds=9000", {"rabbitmq"}),
        ("otelCollector.traces.endpoint=tempo:4317", {"otel-collector"}),
        ("rabbitmq.queuePrefix=other", {"api", "web", "trainer", "worker", "worker-gpu"}),
    ]:
        changed = {name for name, value in checksums(override).items() if value != base[name]}
        assert changed == rolled, override


def test_images_default_to_the_app_version_and_pin_third_party_tags() -> None:
    manifests = render("default")
    images = {
        c["image"]
        for w in manifests.workloads()
        for c in pod_spec(w)["containers"] + pod_spec(w).get("initContainers", [])
    }
    assert "ghcr.io/inference-platform/api:0.1.0" in images
    assert "ghcr.io/inference-platform/web:0.1.0" in images
    assert "ghcr.io/inference-platform/worker:0.1.0" in images
    for image in images:
        tag = image.rsplit(":", 1)[1]
        assert tag not in ("", "latest"), image
    gpu = render("keda").get("Deployment", "worker-gpu")
    assert pod_spec(gpu)["containers"][0]["image"] == "ghcr.io/inference-platform/worker:0.1.0-cuda"


def test_names_stay_valid_for_long_release_names() -> None:
    long_name = "a-release-name-that-is-much-longer-than-anyone-should-ever-choose"
    manifests = render("keda", f"fullnameOverride={long_name}")
    for doc in manifests:
        name = doc["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        # Services are DNS labels; a StatefulSet's revision label adds 11 characters to its name.
        assert len(name) <= (52 if doc["kind"] == "StatefulSet" else 63), name
    names = [(d["kind"], d["metadata"]["name"]) for d in manifests]
    assert len(names) == len(set(names)), "truncation made two objects collide"
