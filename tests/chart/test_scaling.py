"""Autoscaling, graceful scale-down and the GPU pool."""

from __future__ import annotations

import re

from chart.rendering import (
    CRD_KINDS,
    RELEASE,
    Manifests,
    pod_spec,
    render,
    render_error,
)

BUILT_IN_API_VERSIONS = {
    "v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "autoscaling/v2",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}


def _worker_pools(manifests: Manifests) -> list[dict]:
    return [
        d
        for d in manifests.of_kind("Deployment")
        if d["metadata"]["name"].split("-inference-platform-")[1].startswith("worker")
    ]


def _suffix(doc: dict) -> str:
    return doc["metadata"]["name"].removeprefix(f"{RELEASE}-inference-platform-")


def _consumer_timeout_ms(manifests: Manifests) -> int:
    conf = manifests.config("rabbitmq")["rabbitmq.conf"]
    match = re.search(r"^consumer_timeout = (\d+)$", conf, re.MULTILINE)
    assert match, conf
    return int(match.group(1))


def test_worker_grace_period_outlasts_its_hard_time_limit(manifests: Manifests) -> None:
    pools = _worker_pools(manifests)
    assert pools
    for deployment in pools:
        config = manifests.config(_suffix(deployment))
        soft, hard = int(config["WORKER_SOFT_TIME_LIMIT"]), int(config["WORKER_TIME_LIMIT"])
        assert soft < hard
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] > hard


def test_grace_period_follows_the_time_limit_it_is_computed_from() -> None:
    deployment = render("default", "worker.config.timeLimitSeconds=300").get("Deployment", "worker")
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] == 330


def test_worker_runs_the_image_entrypoint_so_celery_receives_sigterm_itself(manifests: Manifests) -> None:
    for deployment in _worker_pools(manifests):
        container = pod_spec(deployment)["containers"][0]
        assert "command" not in container
        assert "args" not in container


def test_rabbitmq_consumer_timeout_exceeds_the_longest_worker_time_limit(manifests: Manifests) -> None:
    if not manifests.find("ConfigMap", "rabbitmq"):
        assert manifests.find("StatefulSet", "rabbitmq") is None  # external broker: its own setting
        return
    longest = max(int(manifests.config(_suffix(d))["WORKER_TIME_LIMIT"]) for d in _worker_pools(manifests))
    if manifests.find("Deployment", "trainer"):
        trainer = manifests.config("trainer")
        hard = int(trainer["TRAINER_SOFT_TIME_LIMIT_S"]) + int(trainer["TRAINER_HARD_TIME_LIMIT_GRACE_S"])
        longest = max(longest, hard)
    assert _consumer_timeout_ms(manifests) > longest * 1000


def test_a_consumer_timeout_at_or_below_the_worker_time_limit_is_refused() -> None:
    assert "must exceed worker.config.timeLimitSeconds" in render_error("rabbitmq.consumerTimeoutSeconds=90")
    error = render_error(
        "rabbitmq.consumerTimeoutSeconds=200", "workerGpu.config.timeLimitSeconds=300", profile="keda"
    )
    assert "workerGpu.config.timeLimitSeconds" in error


def test_a_hard_time_limit_not_above_the_soft_limit_is_refused() -> None:
    error = render_error("worker.config.timeLimitSeconds=60")
    assert "must exceed worker.config.softTimeLimitSeconds" in error


def test_a_plain_install_needs_no_operator_or_crd() -> None:
    manifests = render("default")
    assert not manifests.kinds() & CRD_KINDS
    assert {d["apiVersion"] for d in manifests} <= BUILT_IN_API_VERSIONS
    assert not manifests.of_kind("HorizontalPodAutoscaler")


def test_keda_scales_each_worker_pool_on_both_queues_and_lets_the_gpu_pool_reach_zero() -> None:
    manifests = render("keda")
    scaled = {_suffix(d): d for d in manifests.of_kind("ScaledObject")}
    assert set(scaled) == {"worker", "worker-gpu"}
    auth_names = {d["metadata"]["name"] for d in manifests.of_kind("TriggerAuthentication")}
    for suffix, obj in scaled.items():
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] == manifests.get("Deployment", suffix)["metadata"]["name"]
        triggers = spec["triggers"]
        assert [t["metadata"]["queueName"] for t in triggers] == ["inference.predict", "inference.jobs"]
        for trigger in triggers:
            assert trigger["type"] == "rabbitmq"
            assert trigger["metadata"]["mode"] == "QueueLength"
            assert int(trigger["metadata"]["value"]) > 0
            assert trigger["authenticationRef"]["name"] in auth_names
            # No credentials in the ScaledObject itself.
            assert "@" not in trigger["metadata"].get("host", "")
    assert scaled["worker-gpu"]["spec"]["minReplicaCount"] == 0
    assert scaled["worker"]["spec"]["minReplicaCount"] >= 1
    # KEDA owns the worker HPAs: the chart renders none for them.
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in manifests.of_kind("HorizontalPodAutoscaler")}
    assert not any("worker" in name for name in targets)
    # Replicas start at the autoscaler's minimum (0 for the GPU pool, no GPU node needed to install).
    assert manifests.get("Deployment", "worker-gpu")["spec"]["replicas"] == 0


def test_keda_reads_the_broker_credentials_from_secrets() -> None:
    manifests = render("keda")
    secrets = {d["metadata"]["name"]: d for d in manifests.of_kind("Secret")}
    (auth,) = manifests.of_kind("TriggerAuthentication")
    parameters = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
    assert parameters == {"username", "password"}
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in secrets[ref["name"]]["data"]


def test_keda_with_an_external_broker_takes_the_management_url_from_the_secret() -> None:
    manifests = render("external", "keda.enabled=true")
    (auth,) = manifests.of_kind("TriggerAuthentication")
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": "inference-broker", "key": "management-url"}
    ]


def test_without_keda_a_cpu_hpa_is_the_worker_fallback() -> None:
    manifests = render("production")
    hpas = {_suffix(h): h for h in manifests.of_kind("HorizontalPodAutoscaler")}
    assert set(hpas) == {"api", "web", "worker"}
    for suffix, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": manifests.get("Deployment", suffix)["metadata"]["name"],
        }
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert hpa["spec"]["minReplicas"] >= 1
    # Scale-down is slow and one pod at a time: each leaving worker finishes its tasks.
    assert hpas["worker"]["spec"]["behavior"]["scaleDown"]["policies"] == [
        {"type": "Pods", "value": 1, "periodSeconds": 60}
    ]
    assert not manifests.kinds() & CRD_KINDS


def test_an_hpa_for_the_gpu_pool_keeps_at_least_one_pod() -> None:
    manifests = render("default", "workerGpu.enabled=true", "workerGpu.autoscaling.enabled=true")
    assert manifests.get("HorizontalPodAutoscaler", "worker-gpu")["spec"]["minReplicas"] == 1


def test_the_gpu_pool_requests_gpus_and_is_scheduled_on_gpu_nodes() -> None:
    manifests = render("keda")
    spec = pod_spec(manifests.get("Deployment", "worker-gpu"))
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["runtimeClassName"] == "nvidia"
    assert manifests.config("worker-gpu")["WORKER_DEVICE"] == "cuda"
    # The CPU pool stays off GPU nodes' resources.
    cpu = pod_spec(manifests.get("Deployment", "worker"))
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"]
    assert "tolerations" not in cpu
    assert manifests.config("worker")["WORKER_DEVICE"] == "cpu"


def test_kind_profile_lands_the_gpu_pool_on_the_tainted_node_without_requesting_a_gpu() -> None:
    manifests = render("kind")
    spec = pod_spec(manifests.get("Deployment", "worker-gpu"))
    container = spec["containers"][0]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert manifests.config("worker-gpu")["WORKER_DEVICE"] == "auto"
    # scripts/kind.sh builds and loads <service>:dev; nothing is pulled.
    assert container["image"] == "ghcr.io/inference-platform/worker:dev"
    assert container["imagePullPolicy"] == "Never"
    scaled = {_suffix(d): d["spec"]["minReplicaCount"] for d in manifests.of_kind("ScaledObject")}
    assert scaled == {"worker": 1, "worker-gpu": 1}
