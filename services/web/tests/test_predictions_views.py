"""The prediction audit log pages: search, pagination, detail with trace link, CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from functools import partial

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from apikeys.models import ApiKey
from predictions import views
from predictions.models import PredictionRecord
from registry.models import ModelVersion
from reviews.models import ReviewItem

pytestmark = pytest.mark.django_db

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def make_record(make_record: Callable[..., PredictionRecord]) -> Callable[..., PredictionRecord]:
    """The shared ``make_record`` with outputs, timings and a route these pages show and filter on."""
    return partial(
        make_record,
        inputs_digest="a" * 64,
        outputs=[0.25],
        outputs_digest="b" * 64,
        latency_ms=12.5,
        predict_ms=1.5,
        batch_size=4,
        route="production",
    )


@pytest.fixture
def records(
    make_version: Callable[..., ModelVersion], make_record: Callable[..., PredictionRecord]
) -> dict[str, PredictionRecord]:
    """Four rows across two models, two keys, two statuses and routes, spread over three days."""
    churn1, churn2, fraud = make_version(), make_version(version="2"), make_version(name="fraud")
    key = ApiKey.objects.create(name="billing", prefix="pfx12345", key_hash="f" * 64, scopes=["predict"])
    other = ApiKey.objects.create(name="crm", prefix="pfx99999", key_hash="e" * 64, scopes=["predict"])
    base = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    return {
        "a": make_record(churn1, "req-a", api_key=key, trace_id=TRACE, created_at=base),
        "b": make_record(
            churn2, "req-b", api_key=other, route="canary", created_at=base + dt.timedelta(days=1)
        ),
        "c": make_record(
            fraud,
            "req-c",
            status="error",
            error="model_error: boom",
            route="pinned",
            created_at=base + dt.timedelta(days=2),
        ),
        "d": make_record(churn1, "req-d", api_key=key, created_at=base + dt.timedelta(days=2, hours=1)),
    }


def listed(client: Client, **params: str) -> list[str]:
    """Request ids on the first page of /predictions/ for ``params``."""
    response = client.get(reverse("predictions:list"), params)
    assert response.status_code == 200
    return [record.request_id for record in response.context["page"]]


def test_it_lists_predictions_newest_first_for_a_viewer(
    login: Callable[..., User], client: Client, records: dict
) -> None:
    login(client, "viewer")
    assert listed(client) == ["req-d", "req-c", "req-b", "req-a"]
    body = client.get(reverse("predictions:list")).content.decode()
    assert "pfx12345" in body
    assert TRACE in body
    assert "churn v1" in body


def test_it_refuses_a_user_without_the_view_permission(
    login: Callable[..., User], client: Client, records: dict
) -> None:
    login(client, None)
    assert client.get(reverse("predictions:list")).status_code == 403
    assert client.get(reverse("predictions:detail", args=["req-a"])).status_code == 403
    assert client.get(reverse("predictions:export")).status_code == 403


def test_it_sends_an_anonymous_visitor_to_the_login_page(client: Client, records: dict) -> None:
    response = client.get(reverse("predictions:list"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "churn"}, ["req-d", "req-b", "req-a"]),
        ({"model": "churn", "version": "2"}, ["req-b"]),
        ({"key": "billing"}, ["req-d", "req-a"]),
        ({"key": "pfx99999"}, ["req-b"]),
        ({"status": "error"}, ["req-c"]),
        ({"route": "canary"}, ["req-b"]),
        ({"since": "2026-03-02T00:00", "until": "2026-03-03T12:30"}, ["req-c", "req-b"]),
        ({"trace_id": TRACE.upper()}, ["req-a"]),
        ({"request_id": "req-c"}, ["req-c"]),
    ],
)
def test_it_filters_by_each_field(
    login: Callable[..., User], client: Client, records: dict, params: dict, expected: list
) -> None:
    login(client, "viewer")
    assert listed(client, **params) == expected


def test_it_rejects_a_malformed_trace_id_instead_of_listing_everything(
    login: Callable[..., User], client: Client, records: dict
) -> None:
    login(client, "viewer")
    response = client.get(reverse("predictions:list"), {"trace_id": "not-a-trace"})
    assert list(response.context["page"]) == []
    assert "32 hexadecimal digits" in response.content.decode()


@override_settings(PAGE_SIZE=2)
def test_it_paginates_and_keeps_the_filters_in_page_links(
    login: Callable[..., User], client: Client, records: dict
) -> None:
    login(client, "viewer")
    response = client.get(reverse("predictions:list"), {"model": "churn"})
    assert [r.request_id for r in response.context["page"]] == ["req-d", "req-b"]
    body = response.content.decode()
    assert 'href="?model=churn&amp;page=2"' in body
    assert listed(client, model="churn", page="2") == ["req-a"]


@override_settings(TRACE_UI_URL="https://jaeger.example/trace/{trace_id}")
def test_the_detail_page_links_to_the_trace_in_a_new_tab(
    login: Callable[..., User], client: Client, records: dict
) -> None:
    login(client, "viewer")
    body = client.get(reverse("predictions:detail", args=["req-a"])).content.decode()
    assert f'href="https://jaeger.example/trace/{TRACE}" target="_blank" rel="noopener"' in body
    assert "a" * 64 in body
    assert "b" * 64 in body
    assert "12.50 ms" in body
    assert "View trace" in body


@override_settings(TRACE_UI_URL="")
def test_the_detail_page_hides_the_trace_link_without_a_trace_ui(
    login: Callable[..., User], client: Client, records: dict
) -> None:
    login(client, "viewer")
    assert "View trace" not in client.get(reverse("predictions:detail", args=["req-a"])).content.decode()


@override_settings(TRACE_UI_URL="https://jaeger.example/trace/{trace_id}")
def test_the_detail_page_hides_the_trace_link_for_a_record_without_trace(
    login: Callable[..., User], client: Client, records: dict
) -> None:
    login(client, "viewer")
    assert "View trace" not in client.get(reverse("predictions:detail", args=["req-b"])).content.decode()


def test_the_detail_page_links_a_primary_and_its_shadow_both_ways(
    login: Callable[..., User],
    make_version: Callable[..., ModelVersion],
    make_record: Callable[..., PredictionRecord],
    client: Client,
    records: dict,
) -> None:
    shadow_version = make_version(version="9", stage="shadow")
    make_record(shadow_version, "req-a-shadow", route="shadow", shadow_of="req-a")
    login(client, "viewer")
    primary = client.get(reverse("predictions:detail", args=["req-a"])).content.decode()
    assert reverse("predictions:detail", args=["req-a-shadow"]) in primary
    shadow = client.get(reverse("predictions:detail", args=["req-a-shadow"])).content.decode()
    assert "Shadow of" in shadow
    assert reverse("predictions:detail", args=["req-a"]) in shadow


def test_the_detail_page_shows_the_error_and_review_items(
    login: Callable[..., User], client: Client, records: dict
) -> None:
    record = records["c"]
    ReviewItem.objects.create(
        prediction=record,
        row_index=0,
        model_version=record.model_version,
        features=[1.0, 2.0],
        outputs=[0.5],
        score=0.5,
        reason="score 0.5 in band [0.4, 0.6]",
    )
    login(client, "viewer")
    body = client.get(reverse("predictions:detail", args=["req-c"])).content.decode()
    assert "model_error: boom" in body
    assert "score 0.5 in band [0.4, 0.6]" in body


def test_the_detail_page_truncates_huge_outputs(
    login: Callable[..., User],
    make_record: Callable[..., PredictionRecord],
    client: Client,
    records: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(views, "OUTPUTS_MAX_CHARS", 50)
    make_record(records["a"].model_version, "req-big", outputs=[[0.123456789] * 10] * 10)
    login(client, "viewer")
    response = client.get(reverse("predictions:detail", args=["req-big"]))
    assert len(response.context["outputs"]) == 50
    assert "Outputs truncated" in response.content.decode()


def test_an_unknown_request_id_is_a_404(login: Callable[..., User], client: Client, records: dict) -> None:
    login(client, "viewer")
    assert client.get(reverse("predictions:detail", args=["nope"])).status_code == 404


def export(client: Client, **params: str) -> list[list[str]]:
    """The CSV export for ``params``, parsed."""
    response = client.get(reverse("predictions:export"), params)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="predictions-')
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_an_analyst_exports_the_filtered_rows_as_csv(
    login: Callable[..., User], client: Client, records: dict
) -> None:
    login(client, "analyst")
    rows = export(client, model="churn", key="billing")
    assert rows[0] == list(views.EXPORT_COLUMNS)
    assert [row[1] for row in rows[1:]] == ["req-d", "req-a"]
    first = dict(zip(rows[0], rows[2], strict=True))
    assert first["api_key_prefix"] == "pfx12345"
    assert first["trace_id"] == TRACE
    assert first["version"] == "1"


def test_a_viewer_cannot_export(login: Callable[..., User], client: Client, records: dict) -> None:
    login(client, "viewer")
    assert client.get(reverse("predictions:export")).status_code == 403
    assert "Export CSV" not in client.get(reverse("predictions:list")).content.decode()


def test_the_export_neutralises_spreadsheet_formulas(
    login: Callable[..., User], make_record: Callable[..., PredictionRecord], client: Client, records: dict
) -> None:
    make_record(records["a"].model_version, "req-evil", status="error", error='=HYPERLINK("http://x")')
    login(client, "analyst")
    rows = export(client, request_id="req-evil")
    error = dict(zip(rows[0], rows[1], strict=True))["error"]
    assert error == '\'=HYPERLINK("http://x")'
    assert views.safe_cell("-1+2") == "'-1+2"
    assert views.safe_cell("@x") == "'@x"
    assert views.safe_cell(-1.5) == -1.5


def test_the_export_stops_at_its_row_cap(
    login: Callable[..., User], client: Client, records: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "EXPORT_MAX_ROWS", 2)
    login(client, "analyst")
    rows = export(client)
    assert len(rows) == 1 + 2
    assert [row[1] for row in rows[1:]] == ["req-d", "req-c"]


def test_state_is_never_changed_by_post(login: Callable[..., User], client: Client, records: dict) -> None:
    login(client, "admin")
    assert client.post(reverse("predictions:list")).status_code == 405


def test_the_time_filters_round_trip_through_the_datetime_local_inputs(
    login: Callable[..., User], client: Client, records: dict
) -> None:
    login(client, "viewer")
    body = client.get(reverse("predictions:list"), {"since": "2026-03-02T00:00"}).content.decode()
    assert 'type="datetime-local" name="since" value="2026-03-02T00:00"' in body
