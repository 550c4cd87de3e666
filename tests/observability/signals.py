"""Read the observability sources (dashboards, rules, collector config) and the metric names they use.

Shared by tests/observability (static checks, promtool) and tests/integration/test_metrics_contract.py
(every name used must be exposed by a real scrape). YAML is read with the PyYAML of the chart tools'
environment (.tools/venv, requirements/tools.txt), like tests/chart: .venv has no PyYAML.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "observability"
DASHBOARDS = OBSERVABILITY / "grafana" / "dashboards"
RULES = OBSERVABILITY / "prometheus" / "rules"
RULE_TESTS = OBSERVABILITY / "prometheus" / "tests"
COLLECTOR_CONFIG = OBSERVABILITY / "otel-collector" / "config.yaml"
README = OBSERVABILITY / "README.md"
TOOLS_PYTHON = ROOT / ".tools" / "venv" / "bin" / "python"

# The metric names contract of issue #6: what each tier exposes on /metrics.
API_METRICS = frozenset(
    {
        "inference_api_requests_total",
        "inference_api_request_duration_seconds",
        "inference_api_publish_failures_total",
        "inference_api_routed_requests_total",
        "inference_api_shadow_publish_failures_total",
    }
)
# django-prometheus' standard names (the ones the dashboards use).
WEB_METRICS = frozenset(
    {
        "django_http_requests_total_by_view_transport_method_total",
        "django_http_responses_total_by_status_view_method_total",
        "django_http_requests_latency_seconds_by_view_method",
    }
)
WORKER_METRICS = frozenset(
    {
        "inference_worker_tasks_total",
        "inference_worker_queue_wait_seconds",
        "inference_worker_batch_size",
        "inference_worker_predict_duration_seconds",
        "inference_worker_model_load_duration_seconds",
        "inference_worker_model_load_failures_total",
        "inference_worker_feature_drift_psi",
        "inference_worker_drift_window_rows",
    }
)
CONTRACT_METRICS = API_METRICS | WEB_METRICS | WORKER_METRICS
# Queue depth and broker health come from RabbitMQ's own rabbitmq_prometheus plugin.
RABBITMQ_PREFIX = "rabbitmq_"
# Series Prometheus itself writes for every target; no exporter exposes them.
SYNTHETIC_METRICS = frozenset({"up"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
)
_KEYWORDS |= {"inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
# An identifier not preceded by a word character or a dot (so 1e3 and 0.25 are no names).
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and labels excluded)."""
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group(1)
        rest = text[match.end() :].lstrip()
        # A name followed by "(" is a function or an aggregation operator.
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def base_name(name: str) -> str:
    """The family name of a series name (histogram _bucket/_sum/_count stripped)."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def load_yaml(path: Path) -> Any:
    """Parse one YAML file with the tools environment's PyYAML."""
    if not TOOLS_PYTHON.exists():
        pytest.fail(
            f"{TOOLS_PYTHON.relative_to(ROOT)} is missing: run "
            "`python3 -m venv .tools/venv && .tools/venv/bin/pip install -r requirements/tools.txt`"
        )
    script = "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"
    result = subprocess.run(
        [str(TOOLS_PYTHON), "-c", script, str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"could not parse {path}: {result.stderr}")
    return json.loads(result.stdout)


def promtool() -> str:
    """Path of promtool (PROMTOOL overrides); fails the test with how to install it."""
    tool = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not tool or (not Path(tool).exists() and not shutil.which(tool)):
        pytest.fail("promtool is missing: run scripts/ensure-promtool.sh (or set PROMTOOL=/path/to/promtool)")
    return tool


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) of every panel target and every query variable of every dashboard."""
    found = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found.append((f"{name}: {panel['title']} {target.get('refId')}", target.get("expr", "")))
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                query = variable["query"]
                query = query.get("query", "") if isinstance(query, dict) else query
                # label_values(metric, label) names a metric too.
                inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
                found.append((f"{name}: variable {variable['name']}", inner.group(1) if inner else query))
    return found


def rule_groups() -> list[dict[str, Any]]:
    """The rule groups of every rules file."""
    groups = []
    for path in sorted(RULES.glob("*.yaml")):
        groups.extend(load_yaml(path)["groups"])
    return groups


def rules() -> list[dict[str, Any]]:
    """Every recording and alerting rule."""
    return [rule for group in rule_groups() for rule in group["rules"]]


def recorded_names() -> set[str]:
    """Names the recording rules define."""
    return {rule["record"] for rule in rules() if "record" in rule}


def used_metric_names() -> dict[str, set[str]]:
    """Every metric family a dashboard or rule selects (minus recording rules), with where it is used."""
    recorded = recorded_names()
    used: dict[str, set[str]] = {}
    sources = [*dashboard_exprs(), *((rule.get("alert") or rule["record"], rule["expr"]) for rule in rules())]
    for where, expr in sources:
        for name in metric_names(expr):
            if name not in recorded:
                used.setdefault(base_name(name), set()).add(where)
    return used
