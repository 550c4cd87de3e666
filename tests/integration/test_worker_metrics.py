"""The worker's /metrics: every metric of the contract, labelled by model, and counts that add up.

The shared stack's worker runs two prefork pool processes; its main process
serves their aggregated samples, so a count that equals the requests sent
proves that no child's samples were lost.
"""

from __future__ import annotations

import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.polling import poll
from support.stack import manage

#: (sample name, labels) -> value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of a Prometheus text exposition."""
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


def label_sets(samples: Samples, name: str) -> list[dict[str, str]]:
    """The label sets ``name`` is exposed with."""
    return [dict(got) for (n, got) in samples if n == name]


def _unique_model(register_version, train_binary, models) -> tuple[str, str]:
    """A production version of a model name no other test uses: its series start at zero."""
    name = f"metrics{uuid.uuid4().hex[:8]}"
    trained = register_version(name, train_binary(3), models["binary"].rows, stage="production")
    return name, trained.version


def test_it_exposes_each_worker_metric_labelled_by_model_and_the_counts_add_up(
    api, stack, models, register_version, train_binary
):
    name, version = _unique_model(register_version, train_binary, models)
    queue = f"{stack.prefix}.predict"
    before = scrape(stack.worker_metrics_url)
    sent = 6
    for index in range(sent):
        rows = models["binary"].rows[index : index + 2].tolist()
        response = api.post(f"{api.base}/v1/models/{name}:predict", json={"instances": rows})
        assert response.status_code == 200, response.text

    ours = {"model": name, "version": version}
    after = poll(
        lambda: scrape(stack.worker_metrics_url),
        lambda s: value(s, "inference_worker_tasks_total", outcome="ok", **ours) >= sent,
        timeout=20,
    )
    assert value(after, "inference_worker_tasks_total", **ours) == sent
    assert label_sets(after, "inference_worker_tasks_total")
    ok = [s for s in label_sets(after, "inference_worker_tasks_total") if s.items() >= ours.items()]
    assert ok == [{"task": "inference.predict", "device": "cpu", "outcome": "ok", **ours}]

    wait_count = value(after, "inference_worker_queue_wait_seconds_count", queue=queue, **ours)
    assert wait_count == sent
    assert value(after, "inference_worker_queue_wait_seconds_sum", queue=queue, **ours) > 0

    # Every request is in exactly one batch: the batch sizes observed meanwhile add up to the requests.
    batch_sum = value(after, "inference_worker_batch_size_sum", queue=queue) - value(
        before, "inference_worker_batch_size_sum", queue=queue
    )
    batches = value(after, "inference_worker_batch_size_count", queue=queue) - value(
        before, "inference_worker_batch_size_count", queue=queue
    )
    assert batch_sum == sent
    assert 1 <= batches <= sent

    device = {**ours, "device": "cpu"}
    predicts = value(after, "inference_worker_predict_duration_seconds_count", **device)
    assert 1 <= predicts <= sent
    assert value(after, "inference_worker_predict_duration_seconds_sum", **device) > 0
    # Loaded once per pool process that served it (two at most), not once per request.
    loads = value(after, "inference_worker_model_load_duration_seconds_count", **device)
    assert 1 <= loads <= 2
    assert value(after, "inference_worker_model_load_failures_total", **ours) == 0


def test_a_model_that_fails_to_load_is_counted(api, infra, stack, models, db, tmp_path):
    name = f"brokenmetrics{uuid.uuid4().hex[:8]}"
    path = tmp_path / "broken.json"
    # A unique attribute gives this artifact its own sha256, so no other version shares the file.
    booster = models["regression"].booster.copy()
    booster.set_attr(purpose=f"broken-{name}")
    booster.save_model(path)
    args = ["register_model", "--name", name, "--file", str(path), "--stage", "production"]
    version = manage(infra.env, *args)
    artifact = db.execute("SELECT artifact_path FROM model_versions WHERE name = %s", (name,)).fetchone()[0]
    (infra.model_store / artifact).write_text("{ not a model")

    attempts = 2
    for _ in range(attempts):
        response = api.post(
            f"{api.base}/v1/models/{name}:predict", json={"instances": models["regression"].rows[:1].tolist()}
        )
        assert response.status_code == 500

    ours = {"model": name, "version": version}
    after = poll(
        lambda: scrape(stack.worker_metrics_url),
        lambda s: value(s, "inference_worker_tasks_total", outcome="error", **ours) >= attempts,
        timeout=20,
    )
    # A failed load is not cached: each request tried (and failed) again.
    assert value(after, "inference_worker_model_load_failures_total", **ours) == attempts
    assert value(after, "inference_worker_tasks_total", outcome="error", **ours) == attempts
    assert value(after, "inference_worker_tasks_total", outcome="ok", **ours) == 0
    assert value(after, "inference_worker_model_load_duration_seconds_count", **ours) == 0


def test_job_chunks_are_counted_with_their_queue_wait(api, stack, models, register_version, train_binary):
    # Its own model name: chunks of other tests' jobs, still finishing, cannot
    # move these series (the counts below must be exact).
    name, version = _unique_model(register_version, train_binary, models)
    ours: dict[str, str] = {"model": name, "version": version}
    queue = f"{stack.prefix}.jobs"
    before = scrape(stack.worker_metrics_url)
    body = {"instances": models["binary"].rows[:250].tolist()}
    response = api.post(f"{api.base}/v1/models/{name}/jobs", json=body)
    assert response.status_code == 202, response.text
    chunks = response.json()["chunks"]

    def chunk_delta(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    task = {"task": "inference.predict_chunk", **ours}

    def done(samples: Samples) -> bool:
        return chunk_delta(samples, "inference_worker_tasks_total", **task) >= chunks

    after = poll(lambda: scrape(stack.worker_metrics_url), done, timeout=60)
    ok = chunk_delta(after, "inference_worker_tasks_total", outcome="ok", device="cpu", **task)
    assert ok == chunks
    assert chunk_delta(after, "inference_worker_queue_wait_seconds_count", queue=queue, **ours) == chunks


@pytest.mark.parametrize(
    "name",
    [
        "inference_worker_tasks_total",
        "inference_worker_queue_wait_seconds_bucket",
        "inference_worker_batch_size_bucket",
        "inference_worker_predict_duration_seconds_bucket",
        "inference_worker_model_load_duration_seconds_bucket",
    ],
)
def test_the_served_metrics_use_only_bounded_labels(api, stack, models, name):
    api.post(f"{api.base}/v1/models/binary:predict", json={"instances": models["binary"].rows[:1].tolist()})
    samples = poll(lambda: scrape(stack.worker_metrics_url), lambda s: bool(label_sets(s, name)), timeout=20)
    allowed = {"task", "model", "version", "device", "outcome", "queue", "le"}
    for labels in label_sets(samples, name):
        assert set(labels) <= allowed, labels
