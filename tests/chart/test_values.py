"""values.yaml, values.schema.json, the ci/ profiles and the chart README agree and are checked."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from chart.rendering import CHART, CI_VALUES, render_error, run_helm, yaml_documents

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES_TEXT = (CHART / "values.yaml").read_text()


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _objects(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    node = _resolve(node)
    found = []
    if "properties" in node:
        found.append((path or "/", node))
        for key, child in node["properties"].items():
            found += _objects(child, f"{path}/{key}")
    if isinstance(node.get("items"), dict):
        found += _objects(node["items"], f"{path}[]")
    return found


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("api.replicaCount=abc", "at '/api/replicaCount': got string, want integer"),
        ("worker.config.concurrency=two", "at '/worker/config/concurrency': got string, want integer"),
        ("keda.enabled=yes", "at '/keda/enabled': got string, want boolean"),
        ("workerGpu.config.device=gpu", "at '/workerGpu/config/device'"),
        ("modelStore.type=nfs", "at '/modelStore/type'"),
        ("worker.autoscaling.minReplicas=-1", "at '/worker/autoscaling/minReplicas'"),
        ("rabbitmq.auth.username=a@b", "at '/rabbitmq/auth/username'"),
    ],
)
def test_schema_rejects_values_of_the_wrong_type_or_outside_their_range(override: str, message: str) -> None:
    error = render_error(override)
    assert "don't meet the specifications of the schema" in error
    assert message in error


@pytest.mark.parametrize(
    "override", ["api.bogus=1", "bogus=1", "worker.config.deviec=cpu", "networkPolicy.egress=x"]
)
def test_schema_rejects_unknown_keys(override: str) -> None:
    assert "additional properties" in render_error(override)


def test_every_object_the_schema_controls_refuses_unknown_keys_and_has_a_description() -> None:
    objects = _objects(SCHEMA)
    assert len(objects) > 40
    for path, node in objects:
        assert node.get("additionalProperties") is False, path
        for key, child in node["properties"].items():
            assert child.get("description") or _resolve(child).get("description"), f"{path}/{key}"


def test_values_file_points_editors_at_the_schema() -> None:
    assert VALUES_TEXT.splitlines()[0] == "# yaml-language-server: $schema=values.schema.json"
    for path in CI_VALUES:
        assert path.read_text().splitlines()[0] == "# yaml-language-server: $schema=../values.schema.json"


def test_every_value_the_schema_controls_has_a_comment_above_it() -> None:
    # Children of Kubernetes objects passed through (securityContext, resources.requests, ...)
    # are data; every key of the chart's own structure is commented.
    stack: list[tuple[int, dict[str, Any] | None]] = []
    lines = VALUES_TEXT.splitlines()
    missing = []
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w./-]*):", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else SCHEMA
        properties = parent.get("properties", {}) if parent else {}
        child = _resolve(properties[key]) if key in properties else None
        if child is not None and key not in ("requests", "limits"):
            previous = next(text for text in reversed(lines[:number]) if text.strip())
            if not previous.strip().startswith("#"):
                missing.append(f"line {number + 1}: {line.strip()}")
        stack.append((indent, child))
    assert not missing, missing


def test_values_yaml_defines_every_key_the_schema_allows() -> None:
    values = yaml_documents(VALUES_TEXT)[0]

    def walk(node: dict[str, Any], data: Any, path: str) -> list[str]:
        node = _resolve(node)
        if "properties" not in node or not isinstance(data, dict):
            return []
        gaps = []
        for key, child in node["properties"].items():
            if key == "global":
                continue
            if key not in data:
                gaps.append(f"{path}.{key}")
            else:
                gaps += walk(child, data[key], f"{path}.{key}")
        return gaps

    # `helm lint --strict` fails on a template reading a key values.yaml lacks.
    assert walk(SCHEMA, values, "") == []


@pytest.mark.parametrize("values_file", [None, *CI_VALUES], ids=lambda p: p.name if p else "no-file")
def test_helm_lint_strict_passes(values_file) -> None:
    args = ["lint", "--strict", str(CHART)] + (["-f", str(values_file)] if values_file else [])
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_chart_declares_its_kubernetes_and_app_versions() -> None:
    chart = yaml_documents((CHART / "Chart.yaml").read_text())[0]
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.29.0-0"
    assert chart["appVersion"] == "0.1.0"
    assert not chart.get("dependencies"), "backing services are templated here, not pulled from other charts"


def test_readme_values_table_lists_every_top_level_key() -> None:
    readme = (CHART / "README.md").read_text()
    section = readme.split("\n## Values\n", 1)[1].split("\n#", 1)[0]
    table_keys = set(re.findall(r"^\| `([A-Za-z]+)` \|", section, re.MULTILINE))
    top_level = set(yaml_documents(VALUES_TEXT)[0])
    assert top_level - table_keys == set(), "README values table misses these keys"
    assert table_keys - top_level == set(), "README values table lists keys values.yaml lacks"
    assert "pod-security.kubernetes.io/enforce: restricted" in readme
