"""Numbers behind the dashboard: traffic per model version, queue and review backlogs.

Everything is computed in Python from bounded queries (one pass over at most
``MAX_ROWS`` audit rows of the window) so it runs the same on PostgreSQL and
SQLite; percentiles come from numpy over each time bucket's latencies.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.db.models import Count
from django.utils import timezone
from kombu import Connection

from inference_common.broker import FILESYSTEM_SCHEME, connection_url, is_filesystem
from inference_common.contract import Queues
from inference_common.settings import broker_url
from predictions.models import PredictionRecord
from registry.models import ModelVersion
from reviews.models import ReviewItem, ReviewStatus

log = logging.getLogger(__name__)

#: Most audit rows one dashboard computation reads (the newest of the window).
MAX_ROWS = 200_000
#: Seconds to wait for the broker before showing the backlog as unavailable.
BROKER_TIMEOUT_S = 2.0
#: Statuses the worker writes; anything but ``ok`` counts as an error.
STATUS_OK = "ok"
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Window:
    """A time range the dashboard shows and the width of its buckets."""

    key: str
    span: dt.timedelta
    bucket: dt.timedelta


WINDOWS = {
    window.key: window
    for window in (
        Window("1h", dt.timedelta(hours=1), dt.timedelta(minutes=1)),
        Window("6h", dt.timedelta(hours=6), dt.timedelta(minutes=5)),
        Window("24h", dt.timedelta(hours=24), dt.timedelta(minutes=15)),
        Window("7d", dt.timedelta(days=7), dt.timedelta(hours=2)),
    )
}
DEFAULT_WINDOW = "1h"


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _summary(latencies: np.ndarray, errors: np.ndarray, minutes: float) -> dict[str, Any]:
    count = int(latencies.size)
    summary: dict[str, Any] = {
        "requests": count,
        "per_min": _round(count / minutes if minutes else 0.0),
        "errors": int(errors.sum()),
        "error_rate": _round(errors.mean() if count else None, 4),
        "error_pct": _round(errors.mean() * 100 if count else None, 2),
    }
    values = np.percentile(latencies, PERCENTILES) if count else [None] * len(PERCENTILES)
    for percentile, value in zip(PERCENTILES, values, strict=True):
        summary[f"p{percentile}_ms"] = _round(value)
    return summary


def traffic(window: Window, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Throughput, latency percentiles and error rate per model version, per time bucket.

    Returns ``{"buckets": [unix seconds...], "versions": [{"id", "label",
    "series": {"per_min", "p50_ms", "p95_ms", "p99_ms", "error_rate"}: lists
    aligned with buckets (None where a bucket had no request), "summary":
    {...whole window...}}], "truncated": bool}``.
    """
    now = now or timezone.now()
    bucket_s = window.bucket.total_seconds()
    # Buckets aligned to the bucket width, so a refresh does not shift them.
    end = (int(now.timestamp() // bucket_s) + 1) * bucket_s
    start = end - window.span.total_seconds() - bucket_s
    n_buckets = round((end - start) / bucket_s)
    rows = list(
        PredictionRecord.objects.filter(created_at__gte=dt.datetime.fromtimestamp(start, dt.UTC))
        .order_by("-created_at")
        .values_list("created_at", "latency_ms", "status", "model_version_id")[:MAX_ROWS]
    )
    buckets = [start + index * bucket_s for index in range(n_buckets)]
    result: dict[str, Any] = {
        "window": window.key,
        "bucket_seconds": bucket_s,
        "buckets": buckets,
        "versions": [],
        "truncated": len(rows) >= MAX_ROWS,
        "rows": len(rows),
    }
    if not rows:
        return result
    times = np.fromiter((row[0].timestamp() for row in rows), dtype=np.float64, count=len(rows))
    latencies = np.fromiter((row[1] for row in rows), dtype=np.float64, count=len(rows))
    errors = np.fromiter((row[2] != STATUS_OK for row in rows), dtype=bool, count=len(rows))
    version_ids = np.fromiter((row[3] for row in rows), dtype=np.int64, count=len(rows))
    index = np.clip(((times - start) // bucket_s).astype(np.int64), 0, n_buckets - 1)
    labels = {
        version.pk: version
        for version in ModelVersion.objects.filter(pk__in={int(v) for v in np.unique(version_ids)})
    }
    minutes = window.span.total_seconds() / 60
    for version_id in sorted(labels, key=lambda pk: (labels[pk].name, labels[pk].version)):
        version = labels[version_id]
        mine = version_ids == version_id
        series: dict[str, list[float | None]] = {
            key: [None] * n_buckets for key in ("per_min", "p50_ms", "p95_ms", "p99_ms", "error_rate")
        }
        for bucket in np.unique(index[mine]):
            selected = mine & (index == bucket)
            bucket_summary = _summary(latencies[selected], errors[selected], bucket_s / 60)
            for key in series:
                series[key][int(bucket)] = bucket_summary[key]
        result["versions"].append(
            {
                "id": version_id,
                "name": version.name,
                "version": version.version,
                "stage": version.stage,
                "label": f"{version.name} v{version.version}",
                "series": series,
                "summary": _summary(latencies[mine], errors[mine], minutes),
            }
        )
    return result


def review_backlog() -> dict[str, Any]:
    """Pending review items in total and per model name."""
    per_model = {
        row["model_version__name"]: row["count"]
        for row in ReviewItem.objects.filter(status=ReviewStatus.PENDING)
        .values("model_version__name")
        .annotate(count=Count("id"))
        .order_by("model_version__name")
    }
    return {"total": sum(per_model.values()), "per_model": per_model}


def _filesystem_counts(url: str, names: dict[str, str]) -> dict[str, int]:
    folder = Path(url[len(FILESYSTEM_SCHEME) :] or "var/broker")
    # kombu's filesystem transport names each message "<ms>_<uuid>.<queue>.msg".
    wanted = {f"{queue}.msg": label for label, queue in names.items()}
    counts = dict.fromkeys(names, 0)
    if folder.is_dir():
        for entry in os.scandir(folder):
            label = wanted.get(entry.name.partition(".")[2])
            if label is not None and entry.is_file():
                counts[label] += 1
    return counts


def _amqp_counts(url: str, names: dict[str, str], timeout: float) -> dict[str, int]:
    counts: dict[str, int] = {}
    with Connection(url, connect_timeout=timeout, transport_options={"confirm_publish": False}) as conn:
        conn.connect()
        for label, queue in names.items():
            # A passive declare only asks; a 404 (queue not declared yet)
            # closes the channel, so each queue gets its own.
            channel = conn.channel()
            try:
                _, message_count, _ = channel.queue_declare(queue=queue, passive=True)
                counts[label] = int(message_count)
            except conn.channel_errors:
                counts[label] = 0
            finally:
                try:
                    channel.close()
                except conn.channel_errors + conn.connection_errors:
                    pass
    return counts


def queue_backlog(timeout: float = BROKER_TIMEOUT_S) -> dict[str, Any]:
    """Ready messages in the predict, jobs, training and dead-letter queues, or unavailable.

    The dashboard must render when the broker is down, so any failure to
    reach it becomes ``{"available": False, "error": ...}``, never an exception.
    """
    queues = Queues(os.environ.get("BROKER_QUEUE_PREFIX", "inference") or "inference")
    names = {
        "predict": queues.predict,
        "jobs": queues.jobs,
        "training": queues.training,
        "dead_letter": queues.dead_letter,
    }
    try:
        url = broker_url()
        if is_filesystem(url):
            counts = _filesystem_counts(url, names)
        else:
            counts = _amqp_counts(connection_url(url), names, timeout)
    # Any failure, whatever the transport raises: a dashboard tile must never turn into a 500.
    except Exception as exc:
        log.warning("queue backlog unavailable: %s", exc)
        return {"available": False, "error": type(exc).__name__, "queues": dict.fromkeys(names)}
    return {"available": True, "error": "", "queues": counts}
