"""The Markdown report of a run, written from results.json only: every figure in it was measured."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks.stats import ratio

METHOD = """\
- In-process limit: the same booster's `inplace_predict` on the same rows, one thread, batch sizes
  1 to 65536.
- Platform: gunicorn api (2 processes) and one Celery worker (concurrency 2) on RabbitMQ and
  PostgreSQL with their own database, vhost and queue prefix; worker micro-batching on
  (WORKER_BATCH_MAX_SIZE={batch_size}, {batch_ms:g} ms) and off (WORKER_BATCH_MAX_SIZE=1). Every request
  is authenticated and audited (one PostgreSQL row per prediction): work the peers do not do.
- Naive Celery: Flask under gunicorn (2 processes x 8 threads) publishing one task per request and
  blocking on `.get()` from the `rpc://` backend; a Celery worker (concurrency 2) with default
  settings (benchmarks/naive_celery.py).
- MLServer: its XGBoost runtime over v2 REST, `parallel_workers: 0` (uvloop bug with the worker
  pool), adaptive batching on (max_batch_size {batch_size}, max_batch_time {batch_ms:g} ms) and off.
- Load: single-row requests over HTTP on 127.0.0.1, from a threaded generator on the same cores.
  Open loop: Poisson arrivals at {rates} req/s for {seconds:g} s each, latency from the scheduled
  send time (no coordinated omission), at most 64 requests in flight (more are dropped and
  counted). Closed loop: {concurrency} clients back to back for {seconds:g} s: the saturation
  throughput. Async jobs: one job of {job_rows} rows, from submit to `succeeded`.
  OMP_NUM_THREADS=1 everywhere.
- Errors are every answer other than 200 and count as no throughput; each point's last error is
  under Notes. A platform 429 is its admission control (API_MAX_INFLIGHT_PER_KEY: at most 30
  requests of one key in flight per api process by default): the benchmark sends everything with
  one key, as one client would.
- One short point per setting, on a machine shared with the load generator (and with whatever
  else the load average shows): repeat the run before reading much into small differences."""


def _times(a: float | None, b: float | None) -> str:
    """``a vs b ms (xR)``: a platform latency against a peer's."""
    none = math.nan
    return f"{_f(a)} vs {_f(b)} ms (x{_f(ratio(a or none, b or none), 2)})"


def _f(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def config_label(point: dict[str, Any]) -> str:
    """``platform v1 batching on``, ``naive v1``, ``mlserver v2 batching off``."""
    label = f"{point['system']} {point['api']}"
    return label if point["system"] == "naive" else f"{label} batching {point['batching']}"


def _find(points: list[dict], model: str, label: str, mode: str, rate: float | None = None) -> dict | None:
    for point in points:
        same = point["model"] == model and config_label(point) == label and point["mode"] == mode
        if same and (rate is None or point["offered_rps"] == rate):
            return point
    return None


def headline(results: dict[str, Any]) -> list[str]:
    """The ratios issue #8 asks for, per model, each from points of this same run."""
    points, fixed = results["points"], results["settings"]["fixed_rps"]
    lines = [
        f"| model | comparison | saturation req/s (closed loop, {results['settings']['concurrency']} "
        f"clients) | ratio | p50 at {fixed:g} req/s | p99 at {fixed:g} req/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    pairs = [
        ("platform v1 batching on", "mlserver v2 batching on"),
        ("platform v2 batching on", "mlserver v2 batching on"),
        ("platform v1 batching off", "mlserver v2 batching off"),
        ("platform v1 batching on", "naive v1"),
        ("platform v1 batching off", "naive v1"),
        ("platform v1 batching on", "platform v1 batching off"),
    ]
    for model in results.get("models", {}):
        for ours, theirs in pairs:
            a, b = _find(points, model, ours, "closed"), _find(points, model, theirs, "closed")
            fa, fb = _find(points, model, ours, "open", fixed), _find(points, model, theirs, "open", fixed)
            if not (a and b):
                continue
            sat = f"{_f(a['achieved_rps'])} vs {_f(b['achieved_rps'])}"
            r = ratio(a["achieved_rps"], b["achieved_rps"])
            p50 = p99 = "n/a"
            if fa and fb:
                p50, p99 = _times(fa["p50_ms"], fb["p50_ms"]), _times(fa["p99_ms"], fb["p99_ms"])
            lines.append(f"| {model} | {ours} / {theirs} | {sat} | **{_f(r, 2)}** | {p50} | {p99} |")
    for job in results["jobs"]:
        limit = max((p["rows_s"] for p in results["inprocess"].get(job["model"], [])), default=math.nan)
        if "rows_s" in job:
            lines.append(
                f"| {job['model']} | async job rows/s / in-process limit (batching {job['batching']}) | "
                f"{_f(job['rows_s'], 0)} vs {_f(limit, 0)} | **{_f(ratio(job['rows_s'], limit), 3)}** | | |"
            )
    return lines


def write_report(results: dict[str, Any], out: Path) -> None:
    """Write ``out/README.md`` from the measured results."""
    m, s = results["machine"], results["settings"]
    load_start = ", ".join(f"{v:.2f}" for v in results["load_start"])
    load_end = ", ".join(f"{v:.2f}" for v in results["load_end"])
    lines = [
        "# Benchmark: the platform against the in-process limit, a naive Celery design and MLServer",
        "",
        f"Generated by `make bench` ({results['started_at']}, {results['elapsed_s']:.0f} s). "
        "Every number below was measured in this one run; `results.json` holds the raw points.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory']}; {m['os']}; Python {m['python']}",
        f"- load average (1, 5, 15 min) at start: {load_start}; at end: {load_end}. The load generator, "
        "RabbitMQ, PostgreSQL and every server share these cores; other work on the machine shows here.",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "",
        "## Method",
        "",
        "- Models: binary classifiers trained on the same synthetic data each run (seeded): "
        + "; ".join(
            f"{n}: {v['trees']} trees, depth {v['depth']}, {v['features']} features"
            for n, v in results.get("models", {}).items()
        )
        + ".",
        *METHOD.format(
            batch_size=s["batch_size"],
            batch_ms=s["batch_ms"],
            rates=", ".join(f"{r:g}" for r in s["rates"]),
            seconds=s["seconds_per_point"],
            concurrency=s["concurrency"],
            job_rows=s["job_rows"],
        ).splitlines(),
        "- Each system's answers for the first rows are compared with the model's own prediction "
        "(table at the end).",
        "",
        "## Headline ratios",
        "",
        "A ratio above 1 means the platform is faster (throughput); for latency the factor is "
        "platform/peer, so above 1 means the platform is slower.",
        "",
        *headline(results),
        "",
        "![throughput against offered load](throughput.png)",
        "",
        "![latency percentiles against offered load](latency.png)",
        "",
        "![in-process limit](inprocess.png)",
        "",
        "## In-process limit (rows/s)",
        "",
        "| batch | " + " | ".join(results["inprocess"]) + " |",
        "| --- |" + " --- |" * len(results["inprocess"]),
    ]
    sizes = [p["batch"] for p in next(iter(results["inprocess"].values()), [])]
    for index, size in enumerate(sizes):
        cells = [_f(points[index]["rows_s"], 0) for points in results["inprocess"].values()]
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## All load points",
        "",
        "| model | system | mode | offered req/s | achieved req/s | p50 ms | p90 ms | p99 ms "
        "| errors | dropped |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in results["points"]:
        offered = "closed" if p["mode"] == "closed" else _f(p["offered_rps"], 0)
        lines.append(
            f"| {p['model']} | {config_label(p)} | {p['mode']} | {offered} | {_f(p['achieved_rps'])} "
            f"| {_f(p['p50_ms'])} | {_f(p['p90_ms'])} | {_f(p['p99_ms'])} | {p['errors']} | {p['dropped']} |"
        )
    lines += [
        "",
        "## Async jobs",
        "",
        "| model | batching | rows | seconds | rows/s | status | answers equal |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for j in results["jobs"]:
        lines.append(
            f"| {j['model']} | {j.get('batching')} | {j['rows']} | {_f(j.get('seconds'), 2)} "
            f"| {_f(j.get('rows_s'), 0)} | {j.get('status', j.get('error'))} | {j.get('equal', 'n/a')} |"
        )
    lines += [
        "",
        "## Answers checked",
        "",
        "| system | model | rows | equal to the model's own prediction |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {c['system']} | {c['model']} | {c['rows']} | {c['equal']} |" for c in results["checks"]]
    errors = [p for p in results["points"] if p.get("last_error")]
    if results["notes"] or errors:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in results["notes"]]
        lines += [
            f"- {p['model']} {config_label(p)} {p['mode']} {p['offered_rps']:g}: "
            f"last error `{p['last_error'][:200]}`"
            for p in errors
        ]
    (out / "README.md").write_text("\n".join(lines) + "\n")
