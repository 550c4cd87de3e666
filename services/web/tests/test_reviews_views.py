"""The human review queue: listing, deciding once, policies, and feedback for training."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from functools import partial

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from predictions.models import PredictionRecord
from registry.models import ModelVersion
from reviews import services
from reviews.models import ReviewItem, ReviewPolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_version(make_version: Callable[..., ModelVersion]) -> Callable[..., ModelVersion]:
    """The shared ``make_version`` with the named features the review items carry."""
    return partial(make_version, feature_names=["age", "balance"])


def make_item(
    version: ModelVersion, request_id: str, outputs: object, score: float, **extra: object
) -> ReviewItem:
    """A queued row, with the audit row it belongs to."""
    record = PredictionRecord.objects.get_or_create(
        request_id=request_id,
        defaults={
            "model_version": version,
            "protocol": "v2",
            "n_rows": 1,
            "inputs_digest": "a" * 64,
            "latency_ms": 3.0,
            "predict_ms": 1.0,
            "batch_size": 1,
            "device": "cpu",
            "status": "ok",
        },
    )[0]
    fields = {"features": [41.0, 1200.5], "reason": "score in band [0.4, 0.6]", "row_index": 0, **extra}
    return ReviewItem.objects.create(
        prediction=record, model_version=version, outputs=outputs, score=score, **fields
    )


@pytest.fixture
def item(make_version: Callable[..., ModelVersion]) -> ReviewItem:
    """A pending item of a binary classifier whose answer is class 1 (p = 0.55)."""
    return make_item(make_version(), "req-1", [0.55], 0.55)


def decide(client: Client, item: ReviewItem, **data: str) -> object:
    """POST a decision about ``item``."""
    return client.post(reverse("reviews:decide", args=[item.pk]), data)


def test_it_lists_pending_items_oldest_first_with_the_backlog(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    version = make_version()
    first = make_item(version, "req-1", [0.5], 0.5)
    second = make_item(version, "req-2", [0.45], 0.45)
    make_item(version, "req-3", [0.4], 0.4, status="accepted", label=0.0)
    login(client, "viewer")
    response = client.get(reverse("reviews:list"))
    assert response.status_code == 200
    assert list(response.context["page"]) == [first, second]
    assert response.context["backlog_total"] == 2
    body = response.content.decode()
    assert reverse("predictions:detail", args=["req-1"]) in body
    assert "0.4500" in body


def test_it_filters_the_queue_by_model_and_status(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    churn, fraud = make_version(), make_version(name="fraud")
    make_item(churn, "req-1", [0.5], 0.5)
    fraud_item = make_item(fraud, "req-2", [0.5], 0.5)
    decided = make_item(fraud, "req-3", [0.5], 0.5, status="overridden", label=1.0)
    login(client, "viewer")
    assert list(client.get(reverse("reviews:list"), {"model": "fraud"}).context["page"]) == [fraud_item]
    page = client.get(reverse("reviews:list"), {"model": "fraud", "status": "overridden"}).context["page"]
    assert list(page) == [decided]
    assert len(client.get(reverse("reviews:list"), {"status": "any"}).context["page"]) == 3


def test_the_item_page_names_each_feature(
    login: Callable[..., User], client: Client, item: ReviewItem
) -> None:
    login(client, "viewer")
    response = client.get(reverse("reviews:detail", args=[item.pk]))
    assert response.status_code == 200
    assert response.context["features"] == [("age", 41.0), ("balance", 1200.5)]
    assert response.context["model_answer"] == 1.0
    # A viewer sees the item but no decision form.
    assert reverse("reviews:decide", args=[item.pk]) not in response.content.decode()


def test_a_user_without_permission_cannot_see_the_queue(
    login: Callable[..., User], client: Client, item: ReviewItem
) -> None:
    login(client, None)
    assert client.get(reverse("reviews:list")).status_code == 403
    assert client.get(reverse("reviews:detail", args=[item.pk])).status_code == 403
    assert client.get(reverse("reviews:policies")).status_code == 403


def test_a_viewer_cannot_decide(login: Callable[..., User], client: Client, item: ReviewItem) -> None:
    login(client, "viewer")
    assert decide(client, item, decision="accept").status_code == 403
    item.refresh_from_db()
    assert item.status == "pending"


@pytest.mark.parametrize(
    ("objective", "outputs", "expected"),
    [
        ("binary:logistic", [0.55], 1.0),
        ("binary:logistic", [0.49], 0.0),
        ("binary:logistic", 0.5, 1.0),
        ("binary:logitraw", [-0.2], 0.0),
        ("multi:softprob", [0.2, 0.5, 0.3], 1.0),
        ("multi:softprob", [[0.1, 0.2, 0.7]], 2.0),
        ("reg:squarederror", [12.75], 12.75),
    ],
)
def test_the_model_answer_is_the_class_or_value(objective: str, outputs: object, expected: float) -> None:
    assert services.model_answer(objective, outputs) == expected


def test_a_reviewer_accepts_the_model_answer_and_it_is_audited(
    login: Callable[..., User], client: Client, item: ReviewItem
) -> None:
    login(client, "reviewer", "rita")
    response = decide(client, item, decision="accept")
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.status, item.label, item.decided_by) == ("accepted", 1.0, "rita")
    assert item.decided_at is not None
    event = AuditEvent.objects.get(action="review.decide")
    assert (event.actor, event.source, event.object_id) == ("rita", "web", str(item.pk))
    assert event.detail["decision"] == "accepted"
    assert event.detail["label"] == 1.0


def test_a_multiclass_accept_stores_the_argmax(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    item = make_item(make_version(objective="multi:softprob", n_outputs=3), "r", [0.2, 0.3, 0.5], 0.5)
    login(client, "reviewer")
    decide(client, item, decision="accept")
    item.refresh_from_db()
    assert item.label == 2.0


def test_an_override_stores_the_label_and_reason(
    login: Callable[..., User], client: Client, item: ReviewItem
) -> None:
    login(client, "reviewer")
    response = decide(client, item, decision="override", label="0", reason="customer stayed")
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.status, item.label, item.decision_reason) == ("overridden", 0.0, "customer stayed")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"label": "", "reason": "why"}, "needs the correct label"),
        ({"label": "abc", "reason": "why"}, "Enter a number"),
        ({"label": "nan", "reason": "why"}, "Enter a number"),
        ({"label": "1", "reason": "  "}, "Say why"),
    ],
)
def test_an_override_needs_a_numeric_label_and_a_reason(
    login: Callable[..., User], client: Client, item: ReviewItem, data: dict, message: str
) -> None:
    login(client, "reviewer")
    response = decide(client, item, decision="override", **data)
    assert response.status_code == 400
    assert message in response.content.decode()
    item.refresh_from_db()
    assert item.status == "pending"


def test_a_decided_item_cannot_be_decided_again(
    login: Callable[..., User], client: Client, item: ReviewItem
) -> None:
    login(client, "reviewer", "first")
    decide(client, item, decision="accept")
    response = decide(client, item, decision="override", label="0", reason="late")
    assert response.status_code == 409
    assert "already accepted by first" in response.content.decode()
    item.refresh_from_db()
    assert (item.status, item.label) == ("accepted", 1.0)
    assert AuditEvent.objects.filter(action="review.decide").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_at_once_make_exactly_one_decision(
    make_version: Callable[..., ModelVersion],
) -> None:
    item = make_item(make_version(), "req-race", [0.55], 0.55)
    users = [User.objects.create_user(f"r{n}") for n in range(4)]
    barrier = threading.Barrier(len(users))
    outcomes: list[str] = []

    def attempt(user: User) -> None:
        barrier.wait()
        try:
            services.decide(item.pk, user=user, accept=False, label=0.0, reason=user.username)
            outcomes.append("won")
        except services.AlreadyDecidedError:
            outcomes.append("lost")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    item.refresh_from_db()
    assert item.decided_by == item.decision_reason
    assert AuditEvent.objects.filter(action="review.decide").count() == 1


def test_deciding_requires_post(login: Callable[..., User], client: Client, item: ReviewItem) -> None:
    login(client, "reviewer")
    assert client.get(reverse("reviews:decide", args=[item.pk])).status_code == 405


def test_the_decision_form_carries_a_csrf_token(
    login: Callable[..., User], client: Client, item: ReviewItem
) -> None:
    login(client, "reviewer")
    body = client.get(reverse("reviews:detail", args=[item.pk])).content.decode()
    assert body.count("csrfmiddlewaretoken") >= 2


def test_csrf_is_enforced_on_decisions(login: Callable[..., User], item: ReviewItem) -> None:
    client = Client(enforce_csrf_checks=True)
    login(client, "reviewer")
    assert decide(client, item, decision="accept").status_code == 403
    item.refresh_from_db()
    assert item.status == "pending"


def test_feedback_rows_return_decided_items_of_the_model_as_training_data(
    make_version: Callable[..., ModelVersion],
) -> None:
    old = make_version(version="1", feature_names=["x"], n_features=1)
    new = make_version(version="2")
    other = make_version(name="fraud")
    make_item(new, "r1", [0.7], 0.7, status="accepted", label=1.0, features=[1.0, 2.0])
    make_item(new, "r2", [0.45], 0.45, status="overridden", label=1.0, features=[3.0, 4.0])
    make_item(new, "r3", [0.5], 0.5)  # pending: not feedback yet
    make_item(old, "r4", [0.5], 0.5, status="accepted", label=1.0, features=[9.0])  # other columns
    make_item(other, "r5", [0.5], 0.5, status="accepted", label=0.0)
    ReviewItem.objects.filter(prediction_id="r2").update(decided_at="2026-01-02T00:00:00Z")
    ReviewItem.objects.filter(prediction_id="r1").update(decided_at="2026-01-01T00:00:00Z")
    features, labels, names = services.feedback_rows("churn")
    assert names == ["age", "balance"]
    assert features == [[1.0, 2.0], [3.0, 4.0]]
    assert labels == [1.0, 1.0]
    assert services.feedback_rows("unknown") == ([], [], [])


def test_feedback_rows_use_default_names_for_an_unnamed_booster(
    make_version: Callable[..., ModelVersion],
) -> None:
    version = make_version(feature_names=[])
    make_item(version, "r1", [0.2], 0.2, status="accepted", label=0.0)
    assert services.feedback_rows("churn") == ([[41.0, 1200.5]], [0.0], ["f0", "f1"])


def policy_post(client: Client, url: str, **data: object) -> object:
    """POST a policy form."""
    defaults = {"model_name": "churn", "enabled": "on", "band_low": "0.4", "band_high": "0.6"}
    return client.post(url, {**defaults, **data})


def test_an_admin_creates_and_edits_a_policy_with_rules(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    make_version()
    login(client, "admin", "ada")
    rules = [{"field": "score", "op": ">=", "value": 0.95}, {"field": "balance", "op": "<", "value": 0}]
    response = policy_post(client, reverse("reviews:policy_create"), rules_json=json.dumps(rules))
    assert response.status_code == 302
    policy = ReviewPolicy.objects.get(model_name="churn")
    assert (policy.band_low, policy.band_high, policy.updated_by) == (0.4, 0.6, "ada")
    assert policy.rules == [
        {"field": "score", "op": ">=", "value": 0.95},
        {"field": "balance", "op": "<", "value": 0.0},
    ]
    response = policy_post(
        client, reverse("reviews:policy_edit", args=["churn"]), band_low="0.3", rules_json="[]"
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.band_low, policy.rules) == (0.3, [])
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["review_policy.create", "review_policy.change"]
    listing = client.get(reverse("reviews:policies")).content.decode()
    assert "churn" in listing
    assert reverse("reviews:policy_edit", args=["churn"]) in listing


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"band_low": "0.7", "band_high": "0.2"}, "must not be below its low end"),
        ({"rules_json": "[{"}, "Not valid JSON"),
        ({"rules_json": '{"field": "score"}'}, "must be a JSON list"),
        ({"rules_json": '[{"field": "height", "op": ">", "value": 1}]'}, "neither"),
        ({"rules_json": '[{"field": "score", "op": "=~", "value": 1}]'}, "op must be one of"),
        ({"rules_json": '[{"field": "score", "op": ">", "value": "1"}]'}, "finite number"),
        ({"rules_json": '[{"field": "score", "op": ">", "value": true}]'}, "finite number"),
        ({"rules_json": '[{"field": "score", "op": ">", "value": 1, "x": 2}]'}, "exactly the keys"),
        ({"model_name": "nope"}, "No model named"),
    ],
)
def test_it_rejects_an_invalid_policy(
    login: Callable[..., User],
    make_version: Callable[..., ModelVersion],
    client: Client,
    data: dict,
    message: str,
) -> None:
    make_version()
    login(client, "admin")
    response = policy_post(client, reverse("reviews:policy_create"), **data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ReviewPolicy.objects.exists()


def test_a_reviewer_cannot_change_policies(
    login: Callable[..., User], make_version: Callable[..., ModelVersion], client: Client
) -> None:
    make_version()
    ReviewPolicy.objects.create(model_name="churn", band_low=0.4, band_high=0.6)
    login(client, "reviewer")
    assert client.get(reverse("reviews:policies")).status_code == 200
    assert client.get(reverse("reviews:policy_create")).status_code == 403
    assert (
        policy_post(client, reverse("reviews:policy_edit", args=["churn"]), band_low="0").status_code == 403
    )
    assert ReviewPolicy.objects.get().band_low == 0.4
