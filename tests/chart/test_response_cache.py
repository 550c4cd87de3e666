"""The api's response cache in the chart: off by default, an external Redis by Secret, egress to it only."""

from __future__ import annotations

from chart.rendering import Manifests, env_of, pod_spec, render, render_error


def _api_env(manifests: Manifests) -> dict[str, dict]:
    (container,) = pod_spec(manifests.get("Deployment", "api"))["containers"]
    return env_of(container)


def _api_egress(manifests: Manifests) -> list[dict]:
    return manifests.get("NetworkPolicy", "api")["spec"]["egress"]


def test_the_cache_is_off_by_default_and_the_api_reaches_no_redis() -> None:
    manifests = render("default")
    assert not [name for name in manifests.config("api") if name.startswith("CACHE_")]
    assert "CACHE_REDIS_URL" not in _api_env(manifests)
    assert not any(port["port"] == 6379 for rule in _api_egress(manifests) for port in rule.get("ports", []))


def test_an_external_redis_url_comes_from_its_secret_and_only_the_api_may_reach_it() -> None:
    manifests = render("external")
    config = manifests.config("api")
    assert "CACHE_REDIS_URL" not in config, "a URL with a password never goes into a ConfigMap"
    assert _api_env(manifests)["CACHE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "inference-cache",
        "key": "cache-redis-url",
    }
    assert config["CACHE_KEY_PREFIX"] == "ip-inference-platform:rc"
    assert (config["CACHE_REDIS_TIMEOUT_S"], config["CACHE_MAX_ENTRY_BYTES"]) == ("0.1", "1048576")
    assert {
        "ports": [{"port": 6380, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.20.2.0/24"}}],
    } in _api_egress(manifests)
    worker = manifests.get("NetworkPolicy", "worker")["spec"]["egress"]
    assert not any(port["port"] == 6380 for rule in worker for port in rule.get("ports", []))


def test_a_url_without_a_password_may_be_a_plain_value() -> None:
    manifests = render(
        "default",
        "api.responseCache.enabled=true",
        "api.responseCache.url=redis://redis.cache.svc:6379/2",
        "api.responseCache.keyPrefix=prod",
    )
    config = manifests.config("api")
    assert (config["CACHE_REDIS_URL"], config["CACHE_KEY_PREFIX"]) == (
        "redis://redis.cache.svc:6379/2",
        "prod",
    )
    assert {"ports": [{"port": 6379, "protocol": "TCP"}]} in _api_egress(manifests)


def test_turning_it_on_without_a_redis_is_refused() -> None:
    error = render_error("api.responseCache.enabled=true")
    assert "api.responseCache.enabled needs api.responseCache.existingSecret" in error


def test_a_url_that_is_not_redis_is_refused_by_the_schema() -> None:
    assert "responseCache" in render_error("api.responseCache.url=http://cache:6379")
