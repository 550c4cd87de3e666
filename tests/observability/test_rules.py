"""Prometheus rules: promtool accepts them, their unit tests pass, every alert is tested and documented."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from observability.signals import (
    CONTRACT_METRICS,
    RABBITMQ_PREFIX,
    README,
    RULE_TESTS,
    RULES,
    SYNTHETIC_METRICS,
    base_name,
    load_yaml,
    metric_names,
    promtool,
    recorded_names,
    rules,
)

REQUIRED_ALERTS = {
    "InferenceApiErrorBudgetBurnFast",
    "InferenceApiErrorBudgetBurnSlow",
    "InferenceApiLatencySLOBurn",
    "InferenceQueueBacklogAge",
    "InferenceWorkerDown",
    "InferenceDeadLetterGrowth",
    "InferenceModelLoadFailures",
    "InferenceFeatureDrift",
}
RUNBOOK_BASE = "https://github.com/inference-platform/inference-platform/blob/main/observability/README.md#"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, check=False)


def _alerts() -> list[dict]:
    return [rule for rule in rules() if "alert" in rule]


def test_promtool_check_rules_accepts_every_rules_file() -> None:
    files = sorted(str(path) for path in RULES.glob("*.yaml"))
    assert files
    result = _promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    # Proves the check above can fail: an unbalanced expression and an alert without a name.
    broken = tmp_path / "broken.yaml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(rate(x[5m])\n")
    assert _promtool("check", "rules", str(broken)).returncode != 0


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    files = sorted(str(path) for path in RULE_TESTS.glob("*.test.yaml"))
    assert files
    result = _promtool("test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_of_the_issue_exist_and_nothing_else_is_unnamed() -> None:
    assert {rule["alert"] for rule in _alerts()} == REQUIRED_ALERTS


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS.glob("*.test.yaml"):
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing >= REQUIRED_ALERTS, REQUIRED_ALERTS - firing
    assert quiet >= REQUIRED_ALERTS, REQUIRED_ALERTS - quiet


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    for alert in _alerts():
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, alert["alert"]
        annotations = alert["annotations"]
        assert annotations["summary"].strip(), alert["alert"]
        assert annotations["description"].strip(), alert["alert"]
        assert annotations["runbook_url"] == RUNBOOK_BASE + alert["alert"].lower(), alert["alert"]


def _github_anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_every_runbook_link_lands_on_a_readme_heading() -> None:
    anchors = _github_anchors(README.read_text())
    for alert in _alerts():
        anchor = alert["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"{alert['alert']}: no heading for #{anchor} in observability/README.md"


def test_recording_rules_follow_the_level_metric_operations_convention() -> None:
    for name in recorded_names():
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name


def test_rules_name_only_metrics_of_the_contract() -> None:
    allowed = CONTRACT_METRICS | SYNTHETIC_METRICS | recorded_names()
    for rule in rules():
        for name in metric_names(rule["expr"]):
            where = rule.get("alert") or rule["record"]
            assert base_name(name) in allowed or name.startswith(RABBITMQ_PREFIX), f"{where}: {name}"
