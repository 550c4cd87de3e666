"""Grafana dashboards: valid, on a datasource variable, PromQL that promtool parses, contract names only."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from observability.signals import (
    CONTRACT_METRICS,
    DASHBOARDS,
    RABBITMQ_PREFIX,
    SYNTHETIC_METRICS,
    base_name,
    dashboard_exprs,
    dashboards,
    metric_names,
    panels,
    promtool,
    recorded_names,
)

EXPECTED = {"platform-overview.json", "api.json", "workers-and-models.json", "rabbitmq.json"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_it_ships_the_four_dashboards() -> None:
    assert set(dashboards()) == EXPECTED


def test_every_dashboard_has_a_unique_uid_a_title_and_tags() -> None:
    boards = dashboards().values()
    uids = [board["uid"] for board in boards]
    assert len(set(uids)) == len(uids), uids
    for board in boards:
        assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"]), board["uid"]
        assert board["title"].startswith("Inference platform / ")
        assert "inference-platform" in board["tags"]
        assert isinstance(board["schemaVersion"], int)
    assert len({board["title"] for board in boards}) == len(EXPECTED)


def test_every_dashboard_picks_its_prometheus_through_a_datasource_variable() -> None:
    for name, board in dashboards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", name
        assert variables["datasource"]["query"] == "prometheus", name
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == DATASOURCE, f"{name}: {panel['title']}"
            for target in panel["targets"]:
                assert target.get("datasource", DATASOURCE) == DATASOURCE, f"{name}: {panel['title']}"


def test_every_panel_has_a_title_and_only_promql_targets() -> None:
    for name, board in dashboards().items():
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), name
        for panel in panels(board):
            assert panel["title"], name
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["expr"].strip(), f"{name}: {panel['title']} {target['refId']}"


def test_every_expr_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses expressions only inside rule files: wrap each expr in a recording rule,
    # with Grafana's variables replaced by what Grafana would send.
    lines = ["groups:", "  - name: dashboards", "    rules:"]
    for index, (_, expr) in enumerate(dashboard_exprs()):
        concrete = expr.replace("$__rate_interval", "5m").replace("$model", ".*")
        assert "$" not in concrete, expr
        # A JSON string is a YAML double-quoted scalar: the expr arrives byte for byte.
        lines += [f"      - record: dashboard:expr{index}", f"        expr: {json.dumps(concrete)}"]
    path = tmp_path / "dashboards.rules.yaml"
    path.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_name_only_metrics_of_the_contract() -> None:
    allowed = CONTRACT_METRICS | SYNTHETIC_METRICS | recorded_names()
    for where, expr in dashboard_exprs():
        for name in metric_names(expr):
            assert base_name(name) in allowed or name.startswith(RABBITMQ_PREFIX), f"{where}: {name}"


def test_no_dashboard_hard_codes_an_instance_pod_or_namespace() -> None:
    for where, expr in dashboard_exprs():
        assert not re.search(r'\b(instance|pod|namespace|node)\s*=~?\s*"[^"$]', expr), f"{where}: {expr}"
        assert not re.search(r"\d+\.\d+\.\d+\.\d+", expr), f"{where}: {expr}"
    for path in DASHBOARDS.glob("*.json"):
        assert "ip-inference-platform" not in path.read_text(), path.name


def test_the_workers_dashboard_shows_feature_drift_per_feature() -> None:
    board = dashboards()["workers-and-models.json"]
    drift = [
        panel
        for panel in panels(board)
        if any("inference_worker_feature_drift_psi" in t["expr"] for t in panel.get("targets", []))
    ]
    assert drift, "no drift panel"
    assert any("feature" in target["expr"] for panel in drift for target in panel["targets"])
    steps = drift[0]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps][1:] == [0.1, 0.25]
