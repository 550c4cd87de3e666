"""Every tier logs JSON lines in one format, and lines written for a request carry its trace id.

The real process models run here: gunicorn (master and workers) for the api
and the web, Celery (main process and prefork pool) for the worker and the
trainer. A request sent with a known W3C ``traceparent`` must show up with
that trace id in the api's access line and in the worker's line for its batch.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from support.stack import Process, Stack, wait_until

KEYS = {"timestamp", "level", "logger", "message", "service", "trace_id", "span_id", "process"}


def _parse(log: Path) -> list[dict]:
    """Every line of ``log`` as JSON; fails naming the first line that is not a JSON object."""
    lines = []
    for number, text in enumerate(log.read_text(errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            pytest.fail(f"{log.name}:{number} is not JSON: {text!r}")
        assert isinstance(line, dict), f"{log.name}:{number} is not an object: {text!r}"
        missing = KEYS - set(line)
        assert not missing, f"{log.name}:{number} lacks {sorted(missing)}: {text!r}"
        lines.append(line)
    return lines


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _lines_of_trace(log: Path, trace_id: str) -> list[dict]:
    return [line for line in _parse(log) if line["trace_id"] == trace_id]


def _wait_for_trace(process: Process, trace_id: str, logger: str, timeout: float = 30) -> list[dict]:
    """Lines of ``trace_id`` in the process log, once ``logger`` wrote one of them."""
    found: list[dict] = []

    def logged() -> bool:
        found[:] = _lines_of_trace(process.log, trace_id)
        return any(line["logger"] == logger for line in found)

    wait_until(logged, timeout, process)
    return found


@pytest.fixture(scope="module")
def web(stack: Stack) -> Iterator[Process]:
    """The web tier under gunicorn with two workers, as in a pod (its URL in ``env["URL"]``)."""
    process, url = stack.start_web()
    process.env = {**process.env, "URL": url}
    try:
        yield process
    finally:
        process.stop()


def test_it_logs_only_json_lines_from_the_api_and_its_access_line_carries_the_request_trace(
    stack, api, models
):
    trace_id, traceparent = _traceparent()
    rows = models["binary"].rows[:2]
    response = api.post(
        f"{api.base}/v1/models/binary:predict",
        json={"instances": rows.tolist()},
        headers={"traceparent": traceparent},
    )
    assert response.status_code == 200, response.text
    lines = _wait_for_trace(stack.api, trace_id, "gunicorn.access")
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert len(access) == 1, lines
    (line,) = access
    assert line["service"] == "api"
    assert line["level"] == "INFO"
    assert line["http_method"] == "POST"
    assert line["http_path"] == "/v1/models/binary:predict"
    assert line["http_status"] == 200
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert len(line["span_id"]) == 16
    assert line["span_id"] != traceparent.split("-")[2]
    # The bearer key never reaches a log line.
    assert api.headers["Authorization"].split()[1] not in stack.api.log.read_text()
    # The master's start-up lines and the workers' are JSON too (parsing checks every line).
    services = {line["service"] for line in _parse(stack.api.log)}
    assert services == {"api"}
    assert {line["logger"] for line in _parse(stack.api.log)} >= {"gunicorn.error", "gunicorn.access"}


def test_it_logs_only_json_lines_from_the_worker_and_its_batch_line_carries_the_request_trace(
    stack, api, models
):
    trace_id, traceparent = _traceparent()
    rows = models["regression"].rows[:1]
    response = api.post(
        f"{api.base}/v1/models/regression:predict",
        json={"instances": rows.tolist()},
        headers={"traceparent": traceparent},
    )
    assert response.status_code == 200, response.text
    worker = stack.workers[0]
    lines = _wait_for_trace(worker, trace_id, "inference_worker.batching")
    assert all(line["service"] == "worker" for line in lines)
    (batch,) = [line for line in lines if line["message"].startswith("served a batch")]
    assert batch["batch_size"] == 1
    assert batch["queue"].endswith(".predict")
    # Written in a pool process (not the Celery main process): tracing survived the fork.
    main_pid = worker.popen.pid
    assert all(line["process"] != main_pid for line in lines), lines
    everything = _parse(worker.log)
    assert any(" ready." in line["message"] for line in everything)
    # Lines outside any span carry empty ids rather than missing keys.
    assert any(line["trace_id"] == "" and line["span_id"] == "" for line in everything)
    # Raw feature values are never logged.
    assert repr(float(rows[0][0])) not in worker.log.read_text()


def test_probe_and_scrape_requests_stay_out_of_the_access_log(stack):
    before = len(_parse(stack.api.log))
    for path in ("/healthz", "/readyz", "/metrics"):
        assert requests.get(f"{stack.url}{path}", timeout=10).status_code == 200
    requests.get(f"{stack.url}/v2/models/no-such-model", timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = _parse(stack.api.log)[before:]
        if any(line.get("http_path") == "/v2/models/no-such-model" for line in new):
            break
        time.sleep(0.2)
    paths = [line.get("http_path") for line in new if line["logger"] == "gunicorn.access"]
    assert paths == ["/v2/models/no-such-model"]


def test_the_web_tier_logs_json_lines_with_the_request_trace_and_counts_requests_across_workers(web):
    url = web.env["URL"]
    trace_id, traceparent = _traceparent()
    page = requests.get(f"{url}/accounts/login/", headers={"traceparent": traceparent}, timeout=10)
    assert page.status_code == 200
    lines = _wait_for_trace(web, trace_id, "gunicorn.access")
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert [line["http_path"] for line in access] == ["/accounts/login/"]
    assert all(line["service"] == "web" for line in _parse(web.log))

    # Several requests land on both gunicorn workers; /metrics adds them all up.
    for _ in range(6):
        assert requests.get(f"{url}/accounts/login/", timeout=10).status_code == 200
    metrics = requests.get(f"{url}/metrics", timeout=10)
    assert metrics.status_code == 200
    total = _sample(metrics.text, "django_http_requests_total_by_view_transport_method_total", 'view="login"')
    assert total >= 7
    assert "django_http_requests_latency_seconds_by_view_method_bucket{" in metrics.text


def test_the_web_metrics_answer_a_scrape_by_pod_ip_without_a_login(web):
    url = web.env["URL"]
    # Prometheus addresses the pod by IP: that Host is not in ALLOWED_HOSTS.
    response = requests.get(
        f"{url}/metrics", headers={"Host": "10.1.2.3:8000"}, timeout=10, allow_redirects=False
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")


def test_the_trainer_logs_only_json_lines(stack):
    trainer = stack.trainer or stack.start_trainer()
    lines = _parse(trainer.log)
    assert any(" ready." in line["message"] for line in lines)
    assert {line["service"] for line in lines} == {"trainer"}


def _sample(text: str, name: str, label: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
