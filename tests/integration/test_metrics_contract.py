"""Every metric a dashboard or an alert rule names is really exposed by a running tier.

A stack of its own (api, one-process worker with a small drift window, and the web tier under
gunicorn) gets real traffic: sync predictions over v1 and v2, an async job, a model whose file
is corrupt (model-load failures), enough rows for a drift score, a web page. Then every
/metrics is scraped, RabbitMQ's own rabbitmq_prometheus plugin included, and each name used in
observability/ (recording rules resolved, histogram suffixes stripped) must be in a scrape.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from observability.signals import CONTRACT_METRICS, SYNTHETIC_METRICS, base_name, used_metric_names
from support.polling import poll
from support.stack import Stack, manage

RABBITMQ_METRICS_URL = os.environ.get("TEST_RABBITMQ_METRICS_URL", "http://127.0.0.1:15692")
# The families the chart's ServiceMonitor asks the plugin for (per-queue depth and consumers).
RABBITMQ_DETAILED = "/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count"
DRIFT_WINDOW_ROWS = 20


def _exposed(url: str) -> set[str]:
    """Sample names and their family names (histogram suffixes stripped) of one scrape."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:200]}"
    names = set()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            names |= {sample.name, base_name(sample.name)}
    return names


@pytest.fixture(scope="module")
def contract_stack(infra, run_id: str) -> Iterator[tuple[Stack, str]]:
    """api, worker (drift window of 20 rows) and web of their own; (stack, web url)."""
    stack = Stack(env=infra.env, logs=infra.logs, prefix=f"contract-{run_id}")
    web = None
    try:
        stack.start_worker(
            concurrency=1,
            WORKER_DRIFT_WINDOW_ROWS=str(DRIFT_WINDOW_ROWS),
            WORKER_DRIFT_EVAL_ROWS="10",
        )
        stack.start_api(workers=2)
        web, web_url = stack.start_web(DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost")
        yield stack, web_url
    finally:
        if web is not None:
            web.stop()
        stack.stop()


@pytest.fixture(scope="module")
def scrapes(contract_stack, keys, models, infra, db, tmp_path_factory) -> dict[str, set[str]]:
    """Send the traffic every metric needs, then scrape each tier once (name -> exposed names)."""
    stack, web_url = contract_stack
    client = requests.Session()
    client.headers["Authorization"] = f"Bearer {keys.full}"
    binary = models["binary"]

    # Sync predictions over both protocols; enough rows to fill the first drift window (the
    # baseline, as "binary" was registered without one) and the next (the compared one).
    for start in range(0, 6 * DRIFT_WINDOW_ROWS, 10):
        rows = binary.rows[start % len(binary.rows) : start % len(binary.rows) + 10].tolist()
        response = client.post(f"{stack.url}/v1/models/{binary.name}:predict", json={"instances": rows})
        assert response.status_code == 200, response.text
    row = binary.rows[0].tolist()
    v2 = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": row}]}
    response = client.post(f"{stack.url}/v2/models/{binary.name}/infer", json=v2)
    assert response.status_code == 200, response.text

    # An async job, run to the end.
    response = client.post(f"{stack.url}/v1/models/{binary.name}/jobs", json={"instances": [row] * 5})
    assert response.status_code == 202, response.text
    job_url = f"{stack.url}/v1/jobs/{response.json()['id']}"
    poll(lambda: client.get(job_url).json(), lambda job: job.get("status") == "succeeded", timeout=60)

    # A version whose file is corrupt: its load fails (inference_worker_model_load_failures_total).
    name = f"contractbroken{uuid.uuid4().hex[:8]}"
    path = Path(tmp_path_factory.mktemp("contract")) / "broken.json"
    booster = models["regression"].booster.copy()
    booster.set_attr(purpose=f"broken-{name}")
    booster.save_model(path)
    manage(infra.env, "register_model", "--name", name, "--file", str(path), "--stage", "production")
    artifact = db.execute("SELECT artifact_path FROM model_versions WHERE name = %s", (name,)).fetchone()[0]
    (infra.model_store / artifact).write_text("{ not a model")
    rows = models["regression"].rows[:1].tolist()
    assert client.post(f"{stack.url}/v1/models/{name}:predict", json={"instances": rows}).status_code == 500

    # A web page through Django's middleware (the login page needs no session).
    assert requests.get(f"{web_url}/accounts/login/", timeout=10).status_code == 200

    worker_url = stack.worker_metrics_url
    # The drift score appears once the second window is compared with the first.
    poll(lambda: _exposed(worker_url), lambda names: "inference_worker_feature_drift_psi" in names, 30)
    return {
        "api": _exposed(f"{stack.url}/metrics"),
        "web": _exposed(f"{web_url}/metrics"),
        "worker": _exposed(worker_url),
        "rabbitmq": _exposed(f"{RABBITMQ_METRICS_URL}/metrics"),
        "rabbitmq detailed": _exposed(f"{RABBITMQ_METRICS_URL}{RABBITMQ_DETAILED}"),
    }


def test_every_metric_a_dashboard_or_rule_names_is_exposed(scrapes: dict[str, set[str]]) -> None:
    exposed = set().union(*scrapes.values())
    used = used_metric_names()
    # Sanity: the parser found the dashboards' and rules' names at all.
    assert {"inference_api_requests_total", "rabbitmq_detailed_queue_messages_ready"} <= set(used)
    missing = {
        name: sorted(where)[:3] for name, where in used.items() if name not in exposed | SYNTHETIC_METRICS
    }
    assert not missing, f"used in observability/ but exposed by no tier: {missing}"


def test_every_metric_of_the_contract_is_exposed_by_its_tier(scrapes: dict[str, set[str]]) -> None:
    missing = sorted(name for name in CONTRACT_METRICS if name not in set().union(*scrapes.values()))
    assert not missing, missing
    assert "inference_api_requests_total" in scrapes["api"]
    assert "inference_worker_tasks_total" in scrapes["worker"]
    assert "django_http_requests_latency_seconds_by_view_method" in scrapes["web"]
    # Queue depth comes from RabbitMQ's plugin, never from our services.
    assert "rabbitmq_detailed_queue_messages_ready" in scrapes["rabbitmq detailed"]
    for tier in ("api", "web", "worker"):
        assert not any(name.startswith("rabbitmq_") for name in scrapes[tier]), tier
