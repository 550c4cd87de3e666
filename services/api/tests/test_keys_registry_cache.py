"""The key store, the registry view and the TTL cache they share."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import update

from inference_api.auth import KeyStore, Principal, require_scope
from inference_api.cache import TTLCache
from inference_api.config import ApiSettings
from inference_api.errors import ApiError
from inference_api.registry import Registry
from inference_common.schema import api_keys, model_versions
from inference_common.settings import ConfigError


class Loader:
    """Counts loads and returns a value that changes with every load."""

    def __init__(self) -> None:
        self.calls: list[object] = []

    def __call__(self, key):
        self.calls.append(key)
        return f"{key}#{len(self.calls)}"


def test_the_cache_loads_once_per_key_within_its_ttl():
    loader = Loader()
    cache = TTLCache(60.0, loader)
    assert cache.get("a") == "a#1"
    assert cache.get("a") == "a#1"
    assert cache.get("b") == "b#2"
    assert loader.calls == ["a", "b"]


def test_a_zero_ttl_disables_the_cache():
    loader = Loader()
    cache = TTLCache(0.0, loader)
    assert [cache.get("a"), cache.get("a")] == ["a#1", "a#2"]


def test_an_entry_is_reloaded_after_it_expires():
    loader = Loader()
    cache = TTLCache(0.01, loader)
    assert cache.get("a") == "a#1"
    time.sleep(0.02)
    assert cache.get("a") == "a#2"


def test_one_thread_reloads_an_expired_entry_while_the_others_keep_the_old_value():
    reloading, release = threading.Event(), threading.Event()
    calls = []

    def load(key):
        calls.append(key)
        if len(calls) == 2:  # the reload: held until the test lets it finish
            reloading.set()
            assert release.wait(5)
        return f"{key}#{len(calls)}"

    cache = TTLCache(0.01, load)
    assert cache.get("a") == "a#1"
    time.sleep(0.02)
    with ThreadPoolExecutor(1) as pool:
        reload = pool.submit(cache.get, "a")
        assert reloading.wait(5)
        # Expired, but another thread is reloading it: the old value, no second query.
        assert [cache.get("a"), cache.get("a")] == ["a#1", "a#1"]
        release.set()
        assert reload.result(5) == "a#2"
    assert cache.get("a") == "a#2"
    assert calls == ["a", "a"]


def test_a_failed_reload_raises_in_its_thread_and_the_next_call_tries_again():
    outcomes = iter(["v1", RuntimeError("database down"), "v2"])

    def load(key):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    cache = TTLCache(0.01, load)
    assert cache.get("a") == "v1"
    time.sleep(0.02)
    with pytest.raises(RuntimeError, match="database down"):
        cache.get("a")
    assert cache.get("a") == "v2"


def test_a_missing_value_is_cached_like_any_other():
    calls = []

    def load(key):
        calls.append(key)

    cache = TTLCache(60.0, load)
    assert cache.get("unknown") is None
    assert cache.get("unknown") is None
    assert calls == ["unknown"]


def test_a_full_cache_starts_over_instead_of_growing():
    loader = Loader()
    cache = TTLCache(60.0, loader, max_entries=2)
    cache.get("a")
    cache.get("b")
    cache.get("c")  # clears a and b
    assert cache.get("c") == "c#3"
    assert cache.get("a") == "a#4"


def test_the_store_resolves_a_key_to_its_principal(engine, make_key):
    raw = make_key("svc", ["predict"], limit=30)
    principal = KeyStore(engine, 0).authenticate(f"Bearer {raw}")
    assert principal.name == "svc"
    assert principal.scopes == frozenset({"predict"})
    assert principal.rate_limit_per_minute == 30
    # The scheme is case-insensitive and stray spaces around the token are ignored.
    assert KeyStore(engine, 0).authenticate(f"bearer   {raw} ") == principal


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_api_key"),
        ("", "missing_api_key"),
        ("Bearer ", "invalid_api_key"),
        ("Token abc", "invalid_api_key"),
        ("Bearer not-a-key", "invalid_api_key"),
        ("Bearer ipk_ffffffff_unknown", "invalid_api_key"),
    ],
)
def test_the_store_refuses_missing_and_malformed_headers(engine, header, code):
    with pytest.raises(ApiError) as caught:
        KeyStore(engine, 0).authenticate(header)
    assert (caught.value.status, caught.value.code) == (401, code)


def test_a_revocation_is_seen_within_the_cache_ttl(engine, make_key):
    raw = make_key("svc", ["predict"])
    uncached, cached = KeyStore(engine, 0), KeyStore(engine, 60)
    cached.authenticate(f"Bearer {raw}")
    with engine.begin() as conn:
        conn.execute(update(api_keys).where(api_keys.c.name == "svc").values(revoked=True))
    with pytest.raises(ApiError) as caught:
        uncached.authenticate(f"Bearer {raw}")
    assert caught.value.code == "revoked_api_key"
    # Within its ttl a cached store still accepts the key: the documented price of caching.
    assert cached.authenticate(f"Bearer {raw}").name == "svc"


def test_a_revoked_key_with_a_wrong_secret_is_just_invalid(engine, make_key):
    raw = make_key("old", ["predict"], revoked=True)
    with pytest.raises(ApiError) as caught:
        KeyStore(engine, 0).authenticate(f"Bearer {raw}x")
    assert caught.value.code == "invalid_api_key"


def test_a_missing_scope_is_403_naming_the_scope():
    principal = Principal(1, "k", frozenset({"jobs"}), 0)
    require_scope(principal, "jobs")
    with pytest.raises(ApiError) as caught:
        require_scope(principal, "predict")
    assert (caught.value.status, caught.value.code) == (403, "insufficient_scope")
    assert caught.value.message == "this API key lacks the 'predict' scope"


def test_the_registry_resolves_production_and_explicit_versions(engine):
    registry = Registry(engine, 0)
    production = registry.resolve("iris")
    assert (production.version, production.stage, production.n_features) == ("1", "production", 4)
    assert production.feature_names == ("a", "b", "c", "d")
    assert production.output_shape == [-1, 3]
    assert registry.resolve("iris", "2").stage == "staging"
    assert registry.resolve("draft", "1").output_shape == [-1]
    assert [info.version for info in registry.versions("iris")] == ["1", "2"]


@pytest.mark.parametrize(
    ("name", "version", "code"),
    [
        ("nope", None, "model_not_found"),
        ("iris", "9", "version_not_found"),
        ("draft", None, "no_production_version"),
    ],
)
def test_the_registry_refuses_what_it_cannot_resolve(engine, name, version, code):
    with pytest.raises(ApiError) as caught:
        Registry(engine, 0).resolve(name, version)
    assert (caught.value.status, caught.value.code) == (404, code)


def test_a_promotion_is_seen_once_the_cache_expires(engine):
    registry = Registry(engine, 0)
    with engine.begin() as conn:
        conn.execute(
            update(model_versions).where(model_versions.c.name == "draft").values(stage="production")
        )
    assert registry.resolve("draft").version == "1"


def test_api_settings_read_env_with_defaults_and_refuse_bad_values():
    settings = ApiSettings.from_env({"API_MAX_SYNC_ROWS": "10", "BROKER_QUEUE_PREFIX": "t1"})
    assert settings.max_sync_rows == 10
    assert settings.queues.predict == "t1.predict"
    assert settings.sync_timeout_s == 30.0
    assert settings.ratelimit_storage_uri == "memory://"
    assert settings.with_overrides({"cache_ttl_s": 0}).cache_ttl_s == 0
    with pytest.raises(ConfigError, match="API_MAX_BODY_BYTES must be >= 1024"):
        ApiSettings.from_env({"API_MAX_BODY_BYTES": "10"})
    with pytest.raises(TypeError):
        settings.with_overrides({"no_such_setting": 1})
