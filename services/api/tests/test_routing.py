"""Canary, shadow and pinned routing: which version answers, and what is copied where."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from flask import Flask
from sqlalchemy import Engine, update

from inference_api import create_app
from inference_api.metrics import SHADOW_PUBLISH_FAILURES
from inference_api.registry import Registry, process_draw
from inference_common.contract import PredictRequest, Queues
from inference_common.schema import (
    ROUTE_CANARY,
    ROUTE_PINNED,
    ROUTE_PRODUCTION,
    ROUTE_SHADOW,
    model_versions,
)


class Draws:
    """A fixed sequence of draws, so canary routing is deterministic."""

    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0)


def _add_version(engine: Engine, version: str, stage: str, traffic: int = 0, n_features: int = 4) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            model_versions.insert().values(
                name="iris",
                version=version,
                stage=stage,
                artifact_path=f"{version}.json",
                sha256="2" * 64,
                feature_names=[f"f{i}" for i in range(n_features)],
                n_features=n_features,
                objective="multi:softprob",
                n_outputs=3,
                traffic_percent=traffic,
                created_at=datetime.now(UTC),
            )
        )
    return int(result.inserted_primary_key[0])


def _set_stage(engine: Engine, version: str, stage: str, traffic: int = 0) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(model_versions)
            .where(model_versions.c.name == "iris", model_versions.c.version == version)
            .values(stage=stage, traffic_percent=traffic)
        )


def test_it_routes_unversioned_requests_to_production_without_a_canary_or_shadow(engine):
    route = Registry(engine, 0.0, Draws()).route("iris")
    assert (route.model.version, route.route, route.shadow) == ("1", ROUTE_PRODUCTION, None)


def test_a_canary_takes_the_draws_below_its_traffic_share(engine):
    _add_version(engine, "3", "canary", traffic=30)
    registry = Registry(engine, 0.0, Draws(0.0, 0.2999, 0.3, 0.99))
    routes = [registry.route("iris") for _ in range(4)]
    assert [(r.model.version, r.route) for r in routes] == [
        ("3", ROUTE_CANARY),
        ("3", ROUTE_CANARY),
        ("1", ROUTE_PRODUCTION),
        ("1", ROUTE_PRODUCTION),
    ]


@pytest.mark.parametrize(("traffic", "expected"), [(0, ("1", ROUTE_PRODUCTION)), (100, ("3", ROUTE_CANARY))])
def test_a_canary_at_the_ends_of_the_range_takes_none_or_all(engine, traffic, expected):
    _add_version(engine, "3", "canary", traffic=traffic)
    registry = Registry(engine, 0.0, Draws(*[0.0, 0.5, 0.999999] * 2))
    assert {(r.model.version, r.route) for r in (registry.route("iris") for _ in range(3))} == {expected}


def test_a_named_version_is_pinned_and_never_shadowed(engine):
    _add_version(engine, "3", "canary", traffic=100)
    _add_version(engine, "4", "shadow")
    registry = Registry(engine, 0.0, Draws())
    for version in ("1", "2", "3"):
        route = registry.route("iris", version)
        assert (route.model.version, route.route, route.shadow) == (version, ROUTE_PINNED, None)


def test_a_shadow_gets_a_copy_of_production_and_canary_requests(engine):
    _add_version(engine, "3", "canary", traffic=50)
    _add_version(engine, "4", "shadow")
    registry = Registry(engine, 0.0, Draws(0.1, 0.9))
    canary, production = registry.route("iris"), registry.route("iris")
    assert (canary.route, production.route) == (ROUTE_CANARY, ROUTE_PRODUCTION)
    assert canary.shadow is not None
    assert canary.shadow.version == "4"
    assert production.shadow == canary.shadow


def test_a_canary_or_shadow_with_another_feature_count_is_skipped_and_logged_once(engine, caplog):
    _add_version(engine, "3", "canary", traffic=100, n_features=5)
    _add_version(engine, "4", "shadow", n_features=3)
    registry = Registry(engine, 0.0, Draws())
    with caplog.at_level(logging.WARNING, logger="inference_api.registry"):
        routes = [registry.route("iris") for _ in range(3)]
    assert {(r.model.version, r.route, r.shadow) for r in routes} == {("1", ROUTE_PRODUCTION, None)}
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2, warnings
    assert any("canary iris v3: it takes 5 features" in text for text in warnings)


def test_a_stage_change_takes_effect_within_the_cache_ttl(engine):
    _add_version(engine, "3", "canary", traffic=100)
    registry = Registry(engine, 0.3, Draws(*[0.5] * 10))
    assert registry.route("iris").route == ROUTE_CANARY
    _set_stage(engine, "3", "staging")
    # Still cached: the web tier's change reaches the api only after one ttl.
    assert registry.route("iris").route == ROUTE_CANARY
    time.sleep(0.35)
    assert registry.route("iris").route == ROUTE_PRODUCTION
    _set_stage(engine, "3", "canary", traffic=10)
    time.sleep(0.35)
    assert registry.route("iris").route == ROUTE_PRODUCTION


def test_the_process_draw_gives_the_stated_share_and_differs_between_processes(engine):
    _add_version(engine, "3", "canary", traffic=30)
    registry = Registry(engine, 60.0)
    n = 20_000
    share = sum(registry.route("iris").route == ROUTE_CANARY for _ in range(n)) / n
    # Binomial sd is sqrt(0.3 * 0.7 / 20000) = 0.0032; 0.015 is over 4.5 sd.
    assert abs(share - 0.30) < 0.015
    first, second = process_draw(), process_draw()
    assert [first() for _ in range(5)] != [second() for _ in range(5)]


# -- what the api publishes -------------------------------------------------------
@pytest.fixture
def quick_app(engine: Engine, tmp_path) -> Flask:
    """An api with no worker behind it that gives up waiting quickly."""
    app = create_app(
        {
            "database_url": str(engine.url),
            "broker_url": f"filesystem://{tmp_path}/broker",
            "cache_ttl_s": 0.0,
            "sync_timeout_s": 0.2,
            "queues": Queues("routing-test"),
        }
    )
    yield app
    app.extensions["inference"].dispatcher.close()


def _request_id(response) -> str:
    return response.get_json()["error"].rsplit("request id ", 1)[1].rstrip(")")


def test_it_publishes_a_fire_and_forget_shadow_copy_with_the_primary(quick_app, engine, keys, published):
    shadow_id = _add_version(engine, "4", "shadow")
    rows = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5]]
    response = quick_app.test_client().post(
        "/v2/models/iris/infer",
        json={"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": rows}]},
        headers={"Authorization": f"Bearer {keys.full}"},
    )
    assert response.status_code == 504  # no worker: the client waited for the primary only
    primary_id = _request_id(response)
    # The file broker reads messages back in file-name order, not publish order:
    # tell the two apart by their route.
    messages = sorted(published("routing-test"), key=lambda message: message[0]["route"] == ROUTE_SHADOW)
    (primary, primary_props), (shadow, shadow_props) = messages
    assert primary["request_id"] == primary_id
    assert (primary["route"], primary["shadow_of"]) == (ROUTE_PRODUCTION, None)
    assert primary_props.get("reply_to")
    copy = shadow
    assert (copy["route"], copy["shadow_of"], copy["model_version_id"]) == (
        ROUTE_SHADOW,
        primary_id,
        shadow_id,
    )
    assert copy["version"] == "4"
    assert copy["request_id"] != primary_id
    # Both carry the rows as float32 bytes (rows_b64), read back through the contract as the worker does.
    for message in (primary, copy):
        assert "rows" not in message
    expected = np.asarray(rows, dtype=np.float32)
    for message in (primary, copy):
        np.testing.assert_array_equal(PredictRequest.model_validate(message).matrix(), expected)
    # Celery fills an empty reply_to with its own id; what matters is that the
    # copy does not name the api's reply queue (the worker also never answers
    # a shadow copy).
    assert shadow_props.get("reply_to") != primary_props["reply_to"]


def test_a_pinned_request_is_published_alone_with_route_pinned(quick_app, engine, keys, published):
    _add_version(engine, "4", "shadow")
    response = quick_app.test_client().post(
        "/v1/models/iris/versions/2:predict",
        json={"instances": [[1, 2, 3, 4]]},
        headers={"Authorization": f"Bearer {keys.full}"},
    )
    assert response.status_code == 504
    [(primary, properties)] = published("routing-test")
    assert (primary["route"], primary["version"]) == (ROUTE_PINNED, "2")
    # Transient: a sync request is answered or failed while its caller waits (dispatch.TRANSIENT_TASKS).
    assert properties["delivery_mode"] == 1


def test_a_failed_shadow_publish_is_counted_and_never_raised(quick_app, engine, keys, tmp_path, monkeypatch):
    from inference_api import inference
    from inference_api.dispatch import BrokerUnavailableError
    from inference_common.contract import PredictRequest

    _add_version(engine, "4", "shadow")
    shadow = Registry(engine, 0.0).route("iris").shadow
    dispatcher = quick_app.extensions["inference"].dispatcher

    # Fault injection: the broker refuses the copy (a real refusal needs a broker outage).
    def refuse(*args, **kwargs):
        raise BrokerUnavailableError("ConnectionRefusedError")

    monkeypatch.setattr(dispatcher, "publish", refuse)
    primary = PredictRequest(
        request_id="p1",
        model="iris",
        version="1",
        model_version_id=1,
        n_features=4,
        rows=[[1, 2, 3, 4]],
        enqueued_at=time.time(),
    )
    before = SHADOW_PUBLISH_FAILURES._value.get()
    with quick_app.app_context():
        inference._publish_shadow(shadow, primary)
    assert SHADOW_PUBLISH_FAILURES._value.get() == before + 1
