"""The Markdown report of a run, written from results.json only: every figure in it was measured."""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path
from typing import Any

from benchmarks.profile import top_functions
from benchmarks.stats import mean_ci, ratio

#: The api label of a many-rows configuration ends in ``x<rows per request>``.
MANY_ROWS = re.compile(r"x(\d+)$")

METHOD = """\
- In-process limit: the same booster's `inplace_predict` on the same rows, one thread, batch sizes
  1 to 65536.
- Platform: gunicorn api (1 process x 32 threads, the default: one process per CPU of a pod) and
  one Celery worker (concurrency 2) on RabbitMQ and
  PostgreSQL with their own database, vhost and queue prefix; worker micro-batching on
  (WORKER_BATCH_MAX_SIZE={batch_size}, WORKER_BATCH_MAX_WAIT_MS={batch_ms:g}{batch_note}) and off
  (WORKER_BATCH_MAX_SIZE=1). Every request
  is authenticated and audited (one PostgreSQL row per prediction): work the peers do not do. The
  api runs as the chart runs it: no access log line per request (API_ACCESS_LOG=false).
- Naive Celery: Flask under gunicorn (2 processes x 8 threads) publishing one task per request and
  blocking on `.get()` from the `rpc://` backend; a Celery worker (concurrency 2) with default
  settings (benchmarks/naive_celery.py).
- MLServer: its XGBoost runtime over v2 REST, inference in the server process
  (`parallel_workers: 0`: faster here than a pool of inference processes, which the run also
  measures; the pool needs uvloop 0.19, pinned), adaptive batching on (max_batch_size
  {batch_size}, max_batch_time {mlserver_batch_ms:g} ms) and off.
- Load: single-row requests over HTTP/1.1 keep-alive on 127.0.0.1, from one asyncio client on the
  same cores (benchmarks/load.py: pre-encoded requests, about 0.15 ms of CPU per request; the CPU
  table below measures it). Open loop: Poisson arrivals at {rates} req/s for {seconds:g} s each
  ({fixed_seconds:g} s at {fixed_rps:g} req/s, the p50/p99 comparison point),
  latency from the scheduled send time (no coordinated omission), at most 64 requests in flight
  (more are dropped and counted; after a point with dropped or failed requests the run waits 3 s
  for the backlog to drain). Closed loop: {concurrency} clients back to back for {seconds:g} s,
  {repeats} times: the saturation throughput, given as mean +- the half-width of its 95% confidence
  interval over the repeats. Async jobs: one job of {job_rows} rows and one ten times larger, each
  as a v1 JSON body and as a v2 body framed with binary tensors, timed from submit until the client,
  long-polling (`GET /v1/jobs/{{id}}?wait=60`, answered as the job ends), gets the `succeeded`
  answer (which carries the predictions); each job runs 3 times and the run of median time is
  reported (all three times are in the jobs table).
  OMP_NUM_THREADS=1 everywhere.
- Errors are every answer other than 200 and count as no throughput; each point's last error is
  under Notes. A platform 429 is its admission control (API_MAX_INFLIGHT_PER_KEY: at most 30
  requests of one key in flight per api process by default): the benchmark sends everything with
  one key, as one client would.
- Open-loop points are single runs, on a machine shared with the load generator (and with
  whatever else the load average shows): read small latency differences with care."""


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


def saturation(points: list[dict], model: str, label: str) -> tuple[float, float]:
    """Mean closed-loop throughput of a configuration over its repeats, and its 95% CI half-width."""
    runs = [
        p["achieved_rps"]
        for p in points
        if p["model"] == model and config_label(p) == label and p["mode"] == "closed"
    ]
    return mean_ci([math.nan if r is None else r for r in runs])


def _sat(value: tuple[float, float]) -> str:
    mean, half = value
    return _f(mean) if math.isnan(half) else f"{_f(mean)} +- {_f(half)}"


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
            a, b = saturation(points, model, ours), saturation(points, model, theirs)
            fa, fb = _find(points, model, ours, "open", fixed), _find(points, model, theirs, "open", fixed)
            if math.isnan(a[0]) or math.isnan(b[0]):
                continue
            sat = f"{_sat(a)} vs {_sat(b)}"
            r = ratio(a[0], b[0])
            p50 = p99 = "n/a"
            if fa and fb:
                p50, p99 = _times(fa["p50_ms"], fb["p50_ms"]), _times(fa["p99_ms"], fb["p99_ms"])
            lines.append(f"| {model} | {ours} / {theirs} | {sat} | **{_f(r, 2)}** | {p50} | {p99} |")
    for job in results["jobs"]:
        limit = max((p["rows_s"] for p in results["inprocess"].get(job["model"], [])), default=math.nan)
        if "rows_s" in job:
            lines.append(
                f"| {job['model']} | async job of {job['rows']:,} rows ({job.get('body', 'json')}) rows/s "
                f"/ in-process limit (batching {job['batching']}) | "
                f"{_f(job['rows_s'], 0)} vs {_f(limit, 0)} | **{_f(ratio(job['rows_s'], limit), 3)}** | | |"
            )
    return lines


def large_requests(results: dict[str, Any]) -> list[str]:
    """Binary tensors against JSON: single rows at the fixed load, and requests of many rows."""
    points, fixed = results["points"], results["settings"]["fixed_rps"]
    lines = [
        "## Binary tensor extension and large requests",
        "",
        "Framed v2 requests (`Inference-Header-Content-Length`, raw little-endian FP32 after the JSON "
        "header, output asked for in binary: tritonclient's default) against JSON bodies. Rows/s counts "
        "the rows predicted: requests/s x rows per request.",
        "",
        "| model | configuration | rows per request | req/s | rows/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows_before = len(lines)
    for model in results.get("models", {}):
        for label in ("platform v2 batching on", "platform v2 binary batching on"):
            point = _find(points, model, label, "open", fixed)
            if point:
                lines.append(
                    f"| {model} | {label} (open loop, {fixed:g} req/s) | 1 | {_f(point['achieved_rps'])} "
                    f"| {_f(point['achieved_rps'])} | {_f(point['p50_ms'])} | {_f(point['p99_ms'])} |"
                )
        for p in points:
            many = MANY_ROWS.search(p["api"])
            if many and p["model"] == model and p["mode"] == "closed" and p.get("repeat", 0) == 0:
                per = int(many.group(1))
                mean, half = saturation(points, model, config_label(p))
                lines.append(
                    f"| {model} | {config_label(p)} (closed loop) | {per} | {_sat((mean, half))} "
                    f"| {_f(mean * per, 0)} | {_f(p['p50_ms'])} | {_f(p['p99_ms'])} |"
                )
    return [*lines, ""] if len(lines) > rows_before else []


#: ``api`` of the points of MLServer with a pool of inference processes (benchmarks/run.py).
MLSERVER_POOL = re.compile(r"^v2 parallel workers (\d+)$")


def mlserver_pool_section(results: dict[str, Any]) -> list[str]:
    """MLServer's inference in its server process (every other part) against a pool of processes."""
    points, fixed = results["points"], results["settings"]["fixed_rps"]
    pools = sorted({p["api"] for p in points if p["system"] == "mlserver" and MLSERVER_POOL.match(p["api"])})
    if not pools:
        return []
    lines = [
        "## MLServer's configuration",
        "",
        "Every other MLServer point runs inference in the server process (`parallel_workers: 0`). "
        "Here the same models with a pool of inference processes, each point set against the "
        "same configuration without the pool (points minutes apart, not interleaved).",
        "",
        f"| model | batching | parallel workers | saturation req/s | p50 at {fixed:g} req/s "
        f"| p99 at {fixed:g} req/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for model in results.get("models", {}):
        for batching in ("on", "off"):
            for api in ("v2", *pools):
                label = f"mlserver {api} batching {batching}"
                mean = saturation(points, model, label)
                point = _find(points, model, label, "open", fixed)
                if math.isnan(mean[0]) and point is None:
                    continue
                workers = MLSERVER_POOL.match(api)
                p50, p99 = (point["p50_ms"], point["p99_ms"]) if point else (None, None)
                lines.append(
                    f"| {model} | {batching} | {workers.group(1) if workers else 0} | {_sat(mean)} | "
                    f"{_f(p50)} ms | {_f(p99)} ms |"
                )
    return [*lines, ""]


def _median(values: list[float]) -> float:
    measured = [value for value in values if not math.isnan(value)]
    return statistics.median(measured) if measured else math.nan


def _bold(value: float) -> str:
    return "n/a" if math.isnan(value) else f"**{value:.2f}**"


def _round_ratios(entry: dict[str, Any], peer: str, figure: str) -> list[float]:
    """Platform / ``peer`` per round of an interleaved entry, for one figure (``rps``, ``p99_ms``)."""
    return [ratio(r["platform"][figure], r[peer][figure]) for r in entry["rounds"]]


def paired_medians(entry: dict[str, Any], peer: str) -> dict[str, float]:
    """Median per-round figures of ``peer`` against the platform in one interleaved entry.

    Saturation: ``throughput`` (platform / peer req/s, above 1 the platform is faster). Fixed load:
    ``p50`` and ``p99`` (platform / peer latency, above 1 the platform is slower). A round in
    which either side measured nothing (nan, zero) is shown but left out of the median.
    """
    if entry["kind"] == "saturation":
        return {"throughput": _median(_round_ratios(entry, peer, "rps"))}
    return {f"p{q}": _median(_round_ratios(entry, peer, f"p{q}_ms")) for q in (50, 99)}


def _peer_rows(entries: list[dict[str, Any]], figure: str, digits: int) -> Any:
    """Per entry and peer: the row's first cells, the per-round pairs, the per-round ratios."""
    for entry in entries:
        for peer, label in entry["peers"].items():
            pairs = ", ".join(
                f"{_f(r['platform'][figure], digits)} / {_f(r[peer][figure], digits)}"
                for r in entry["rounds"]
            )
            ratios = ", ".join(_f(value, 2) for value in _round_ratios(entry, peer, figure))
            yield entry, peer, f"| {entry['model']} | {entry['platform']} | {label} | {pairs} | {ratios} |"


def paired_section(results: dict[str, Any]) -> list[str]:
    """The interleaved comparisons: per round the figures and the ratio, and the median ratio."""
    paired = results.get("paired", [])
    saturation = [entry for entry in paired if entry["kind"] == "saturation"]
    fixed = [entry for entry in paired if entry["kind"] == "fixed"]
    lines: list[str] = []
    if saturation:
        lines += [
            "## Single-row saturation, interleaved",
            "",
            "The headline's ratios compare points taken minutes apart, and this machine's speed drifts "
            "by tens of percent within minutes. Here the platform, MLServer and the naive design ran at "
            "the same time and took turns: one closed-loop point each per round, the order alternating "
            "(forward, backward, backward, forward), so that all saw the same machine. Each round gives "
            "one ratio per peer; above 1 the platform is faster.",
            "",
            "| model | platform | peer | rounds: platform / peer req/s | ratio per round | median ratio |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for entry, peer, cells in _peer_rows(saturation, "rps", 0):
            lines.append(f"{cells} {_bold(paired_medians(entry, peer)['throughput'])} |")
        lines.append("")
    if fixed:
        rps = fixed[0]["rps"]
        lines += [
            f"## Latency at {rps:g} req/s, interleaved",
            "",
            f"The p50/p99 comparison point the same way: open-loop Poisson arrivals at {rps:g} req/s, the "
            "same arrivals for every system of a round, one point each per round in alternating order. "
            "The factor is platform / peer latency: above 1 the platform is slower. A point with errors "
            "or dropped requests says so in the last column.",
            "",
            "| model | platform | peer | rounds: platform / peer p99 ms | p99 factor per round "
            "| median p50 factor | median p99 factor | errors + dropped |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for entry, peer, cells in _peer_rows(fixed, "p99_ms", 1):
            failed = sum(
                r[side].get("errors", 0) + r[side].get("dropped", 0)
                for r in entry["rounds"]
                for side in ("platform", peer)
            )
            medians = paired_medians(entry, peer)
            lines.append(f"{cells} {_bold(medians['p50'])} | {_bold(medians['p99'])} | {failed} |")
        lines.append("")
    return lines


def cache_section(results: dict[str, Any]) -> list[str]:
    """The response cache: every request a hit, every request a miss, and the cache off."""
    points, fixed = results["points"], results["settings"]["fixed_rps"]
    lines = [
        "## Response cache",
        "",
        "Single-row v1 requests with the model's cache policy on: *hit* repeats rows answered before "
        "(the api answers from Redis, nothing reaches the queue), *miss* sends rows never seen (the worker "
        "answers, the api stores the answer), *off* is the same model without a policy.",
        "",
        f"| model | cache | saturation req/s | p50 at {fixed:g} req/s | p99 at {fixed:g} req/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    before = len(lines)
    for model in results.get("models", {}):
        for name, label in (
            ("hit", "platform v1 cache hit batching on"),
            ("miss", "platform v1 cache miss batching on"),
            ("off", "platform v1 batching on"),
        ):
            sat = saturation(points, model, label)
            point = _find(points, model, label, "open", fixed)
            if math.isnan(sat[0]) and point is None:
                continue
            p50 = _f(point["p50_ms"]) if point else "n/a"
            p99 = _f(point["p99_ms"]) if point else "n/a"
            lines.append(f"| {model} | {name} | {_sat(sat)} | {p50} ms | {p99} ms |")
    return [*lines, ""] if len(lines) > before else []


def cpu_section(results: dict[str, Any], out: Path | None = None) -> list[str]:
    """CPU per request per component, and the py-spy tables of the api and the worker.

    With ``out``, the tables are read again from the collapsed stacks kept there, so a
    regenerated report shows what the files hold.
    """
    if not results.get("cpu"):
        return []
    lines = [
        "## Where the time goes",
        "",
        "CPU time per answered request, per group of processes, during one more closed-loop point "
        "(read from /proc before and after). On two cores, 2000 ms of CPU per second is all there "
        "is: the sum of a row is what one request costs the machine.",
        "",
        "| model | configuration | req/s | CPU ms per request, by process group | total ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for entry in results["cpu"]:
        parts = ", ".join(f"{name} {v['ms_per_request']:.2f}" for name, v in entry["cpu"].items())
        total = sum(v["ms_per_request"] for v in entry["cpu"].values())
        label = config_label(entry)
        lines.append(f"| {entry['model']} | {label} | {_f(entry['achieved_rps'])} | {parts} | {total:.2f} |")
    for name, profile in results.get("profiles", {}).items():
        if out is not None and (out / profile["file"]).exists():
            profile = {**top_functions(out / profile["file"]), "file": profile["file"]}
        if not profile.get("samples"):
            continue
        lines += [
            "",
            f"### py-spy: {name} ({profile['samples']:,} samples of threads holding the GIL; "
            f"stacks in [{profile['file']}]({profile['file']}), for speedscope or flamegraph.pl)",
            "",
            "| function (module) | inclusive | | function (module) | self |",
            "| --- | --- | --- | --- | --- |",
        ]
        for (inc_name, inc), (own_name, own) in zip(profile["inclusive"], profile["self"], strict=False):
            lines.append(f"| `{inc_name}` | {inc:.1%} | | `{own_name}` | {own:.1%} |")
    return [*lines, ""]


def gpu_section(results: dict[str, Any]) -> list[str]:
    """Which device the platform's worker ran on; the cuda figures only exist where a GPU was."""
    device = results["settings"].get("worker_device", "cpu")
    if device == "cpu":
        text = (
            "The worker ran with `WORKER_DEVICE=cpu`. This machine has no GPU, so the worker's `cuda` "
            "path was not measured in this run. On a GPU machine, `BENCH_WORKER_DEVICE=cuda make bench` "
            "runs the same platform section with the worker on the GPU (figures labelled with the device "
            "in results.json)."
        )
    else:
        text = f"The worker ran with `WORKER_DEVICE={device}`: every platform figure above is on that device."
    return ["## GPU", "", text, ""]


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
            batch_note=": an idle pool process takes a request at once, batches form while all are busy"
            if s["batch_ms"] == 0
            else " ms",
            mlserver_batch_ms=s.get("mlserver_batch_ms", s["batch_ms"]),
            rates=", ".join(f"{r:g}" for r in s["rates"]),
            seconds=s["seconds_per_point"],
            fixed_rps=s["fixed_rps"],
            fixed_seconds=max(s["seconds_per_point"], s.get("fixed_seconds", s["seconds_per_point"])),
            concurrency=s["concurrency"],
            repeats=s.get("repeats", 1),
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
        *paired_section(results),
        *large_requests(results),
        *cache_section(results),
        *mlserver_pool_section(results),
        *cpu_section(results, out),
        *gpu_section(results),
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
        "| model | batching | body | rows | seconds (median) | every run (s) | rows/s | status | equal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for j in results["jobs"]:
        runs = ", ".join(_f(seconds, 2) for seconds in j.get("runs_s", [])) or "n/a"
        lines.append(
            f"| {j['model']} | {j.get('batching')} | {j.get('body', 'json')} | {j['rows']} "
            f"| {_f(j.get('seconds'), 2)} | {runs} "
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


if __name__ == "__main__":
    # python -m benchmarks.report docs/benchmarks: rewrite README.md from results.json (no new run).
    import json
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/benchmarks")
    write_report(json.loads((folder / "results.json").read_text()), folder)
