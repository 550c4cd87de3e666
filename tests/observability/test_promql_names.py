"""The PromQL name extraction the dashboard, rule and contract tests rely on."""

from __future__ import annotations

from observability.signals import base_name, metric_names


def test_it_finds_metrics_but_not_functions_labels_keywords_or_numbers() -> None:
    expr = (
        'sum by (le, queue) (rate(foo_seconds_bucket{queue=~"a.*",job="x"}[$__rate_interval]))'
        " / on (queue) group_left (model) bar_total offset 5m > bool 1e3 and 0.25 < baz"
    )
    assert metric_names(expr) == {"foo_seconds_bucket", "bar_total", "baz"}


def test_it_keeps_recording_rule_names_and_ignores_strings_and_grafana_variables() -> None:
    expr = 'label_replace(job:errors:ratio_rate5m{model=~"$model"}, "x", "$1", "y", "(not_a_metric)")'
    assert metric_names(expr) == {"job:errors:ratio_rate5m"}


def test_it_reads_aggregations_with_a_trailing_by_clause() -> None:
    assert metric_names("max(psi) by (feature) > 0.25") == {"psi"}


def test_it_strips_histogram_suffixes_only() -> None:
    assert base_name("x_seconds_bucket") == "x_seconds"
    assert base_name("x_seconds_count") == "x_seconds"
    assert base_name("x_total") == "x_total"
