"""The dashboard: traffic per model version, queue and review backlogs, vendored uPlot charts."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from kombu import Connection

from dashboard import services
from inference_common.broker import connection_url, transport_options
from predictions.models import PredictionRecord
from registry.models import ModelVersion
from reviews.models import ReviewItem

pytestmark = pytest.mark.django_db

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def make_records(version: ModelVersion, latencies: list[float], ago: dt.timedelta, errors: int = 0) -> None:
    """Audit rows with ``latencies``, written ``ago`` before now; the first ``errors`` failed."""
    created_at = timezone.now() - ago
    for index, latency in enumerate(latencies):
        record = PredictionRecord.objects.create(
            request_id=f"{version.pk}-{ago.total_seconds()}-{index}",
            model_version=version,
            protocol="v2",
            n_rows=1,
            inputs_digest="a" * 64,
            latency_ms=latency,
            predict_ms=1.0,
            batch_size=1,
            device="cpu",
            status="error" if index < errors else "ok",
        )
        PredictionRecord.objects.filter(pk=record.pk).update(created_at=created_at)


@pytest.fixture(autouse=True)
def offline_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty filesystem broker, so no test reaches RabbitMQ unless it says so."""
    folder = tmp_path / "broker"
    monkeypatch.setenv("BROKER_URL", f"filesystem://{folder}")
    monkeypatch.setenv("BROKER_QUEUE_PREFIX", "dash")
    return folder


def by_label(data: dict) -> dict[str, dict]:
    """The traffic entries of data.json keyed by "name vX"."""
    return {version["label"]: version for version in data["traffic"]["versions"]}


def test_the_dashboard_renders_for_a_viewer_and_refuses_others(
    login: Callable[..., User], client: Client
) -> None:
    login(client, "viewer")
    assert client.get(reverse("dashboard:index")).status_code == 200
    assert client.get(reverse("dashboard:data")).status_code == 200
    other = Client()
    login(other, None)
    assert other.get(reverse("dashboard:index")).status_code == 403
    assert other.get(reverse("dashboard:data")).status_code == 403


def test_data_json_has_throughput_latency_percentiles_and_error_rate_per_version(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    churn1, churn2 = make_version(stage="production"), make_version(version="2", stage="canary")
    latencies = [float(value) for value in range(1, 101)]
    make_records(churn1, latencies, dt.timedelta(minutes=10), errors=5)
    make_records(churn2, [50.0, 70.0], dt.timedelta(minutes=3))
    make_records(churn2, [1000.0], dt.timedelta(hours=3))  # outside the 1h window
    login(client, "viewer")
    data = client.get(reverse("dashboard:data"), {"window": "1h"}).json()
    versions = by_label(data)
    assert set(versions) == {"churn v1", "churn v2"}
    summary = versions["churn v1"]["summary"]
    assert summary["requests"] == 100
    assert summary["errors"] == 5
    assert summary["error_rate"] == 0.05
    assert summary["p50_ms"] == pytest.approx(np.percentile(latencies, 50))
    assert summary["p95_ms"] == pytest.approx(np.percentile(latencies, 95))
    assert summary["p99_ms"] == pytest.approx(np.percentile(latencies, 99))
    assert summary["per_min"] == pytest.approx(100 / 60, abs=1e-3)
    assert versions["churn v2"]["summary"]["requests"] == 2
    assert versions["churn v2"]["stage"] == "canary"
    # One-minute buckets: all 100 rows of v1 sit in one bucket, the others are empty.
    series = versions["churn v1"]["series"]
    assert len(series["per_min"]) == len(data["traffic"]["buckets"])
    assert [value for value in series["per_min"] if value is not None] == [100.0]
    assert [value for value in series["error_rate"] if value is not None] == [0.05]
    assert data["traffic"]["bucket_seconds"] == 60


def test_a_wider_window_includes_older_predictions(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    version = make_version()
    make_records(version, [5.0], dt.timedelta(minutes=5))
    make_records(version, [9.0, 9.0], dt.timedelta(days=2))
    login(client, "viewer")
    requests = {
        window: by_label(client.get(reverse("dashboard:data"), {"window": window}).json())["churn v1"][
            "summary"
        ]["requests"]
        for window in ("1h", "24h", "7d")
    }
    assert requests == {"1h": 1, "24h": 1, "7d": 3}


def test_an_unknown_window_falls_back_to_the_default(login: Callable[..., User], client: Client) -> None:
    login(client, "viewer")
    assert client.get(reverse("dashboard:data"), {"window": "1y"}).json()["traffic"]["window"] == "1h"


def test_the_row_cap_bounds_the_query(
    login: Callable[..., User],
    make_version: Callable[..., ModelVersion],
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services, "MAX_ROWS", 3)
    make_records(make_version(), [1.0] * 5, dt.timedelta(minutes=1))
    login(client, "viewer")
    traffic = client.get(reverse("dashboard:data")).json()["traffic"]
    assert traffic["truncated"] is True
    assert traffic["versions"][0]["summary"]["requests"] == 3


def test_the_page_shows_the_numbers_as_a_table_and_the_review_backlog(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    version = make_version(stage="production")
    make_records(version, [10.0, 20.0, 30.0, 40.0], dt.timedelta(minutes=2), errors=1)
    record = PredictionRecord.objects.filter(model_version=version).first()
    for row in range(3):
        ReviewItem.objects.create(
            prediction=record,
            row_index=row,
            model_version=version,
            features=[1.0],
            outputs=[0.5],
            score=0.5,
            reason="band",
        )
    ReviewItem.objects.filter(row_index=2).update(status="accepted", label=1.0)
    login(client, "viewer")
    body = client.get(reverse("dashboard:index")).content.decode()
    backlog = re.search(r'data-testid="review-backlog"><a href="/reviews/">(\d+)</a>', body)
    assert backlog is not None
    assert backlog.group(1) == "2"
    table = body[body.index('data-testid="traffic-table"') :]
    row = re.search(r"<td>churn v1</td>(.*?)</tr>", table, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
    assert cells[0] == "4"
    assert cells[5] == "1"
    assert cells[6] == "25.0%"
    assert client.get(reverse("dashboard:data")).json()["reviews"] == {"total": 2, "per_model": {"churn": 2}}


def test_the_page_loads_uplot_and_its_own_script_from_static_files_only(
    login: Callable[..., User], client: Client
) -> None:
    login(client, "viewer")
    body = client.get(reverse("dashboard:index")).content.decode()
    scripts = re.findall(r"<script([^>]*)>", body)
    assert scripts, "the charts need their scripts"
    # No inline script and nothing from a CDN: every script is a same-origin static file.
    assert all(re.search(r'src="/static/', attributes) for attributes in scripts)
    assert '/static/vendor/uplot/uPlot.iife.min.js"' in body
    assert '/static/dashboard/dashboard.js"' in body
    assert 'href="/static/vendor/uplot/uPlot.min.css"' in body


def test_the_vendored_uplot_is_served(client: Client) -> None:
    # Fetched by scripts/fetch-web-assets.sh (make web-assets); served by whitenoise.
    response = client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert response.status_code == 200
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"uPlot" in content


def test_the_queue_backlog_counts_filesystem_broker_messages(
    login: Callable[..., User], client: Client, offline_broker: Path
) -> None:
    url = f"filesystem://{offline_broker}"
    with Connection(connection_url(url), transport_options=transport_options(url)) as conn:
        predict = conn.SimpleQueue("dash.predict")
        for n in range(3):
            predict.put({"n": n})
        conn.SimpleQueue("dash.dlq").put({"n": 0})
    login(client, "viewer")
    queues = client.get(reverse("dashboard:data")).json()["queues"]
    assert queues == {
        "available": True,
        "error": "",
        "queues": {"predict": 3, "jobs": 0, "training": 0, "dead_letter": 1},
    }


def test_the_queue_backlog_counts_rabbitmq_messages(
    login: Callable[..., User], client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"dash-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("BROKER_URL", RABBITMQ_URL)
    monkeypatch.setenv("BROKER_QUEUE_PREFIX", prefix)
    with Connection(RABBITMQ_URL) as conn:
        queue = conn.SimpleQueue(f"{prefix}.jobs")
        try:
            for n in range(4):
                queue.put({"n": n})
            login(client, "viewer")
            deadline = time.monotonic() + 10
            while True:
                queues = client.get(reverse("dashboard:data")).json()["queues"]
                # RabbitMQ's count can lag a publish by a moment; poll, never sleep blindly.
                if queues["queues"]["jobs"] == 4 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            queue.queue(conn.default_channel).delete()
    assert queues == {
        "available": True,
        "error": "",
        "queues": {"predict": 0, "jobs": 4, "training": 0, "dead_letter": 0},
    }


def test_an_unreachable_broker_shows_unavailable_not_an_error(
    login: Callable[..., User], client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 1 on localhost refuses at once: the dashboard must answer, quickly.
    monkeypatch.setenv("BROKER_URL", "amqp://guest:guest@127.0.0.1:1//")
    login(client, "viewer")
    started = time.monotonic()
    response = client.get(reverse("dashboard:index"))
    assert response.status_code == 200
    assert time.monotonic() - started < 10
    assert "unavailable" in response.content.decode()
    queues = client.get(reverse("dashboard:data")).json()["queues"]
    assert queues["available"] is False
    assert queues["queues"] == {"predict": None, "jobs": None, "training": None, "dead_letter": None}
