"""Review decisions, policy rule validation and the feedback the training job learns from."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import Source
from audit.services import record
from registry.models import ModelVersion
from reviews.models import ReviewItem, ReviewStatus

#: Comparison operators a policy rule may use (the worker evaluates the same set).
RULE_OPS = ("<", "<=", ">", ">=", "==", "!=")
#: The pseudo-field of a rule that compares the row's score instead of a feature.
SCORE_FIELD = "score"
#: Decided statuses: the labelled feedback.
DECIDED = (ReviewStatus.ACCEPTED, ReviewStatus.OVERRIDDEN)


class AlreadyDecidedError(Exception):
    """The item was decided by someone else first (or was never pending)."""


def feature_names_of(version: ModelVersion) -> list[str]:
    """The version's feature names, or XGBoost's defaults (f0, f1, ...) for an unnamed booster."""
    names = [str(name) for name in version.feature_names or []]
    if len(names) == version.n_features:
        return names
    return [f"f{index}" for index in range(version.n_features)]


def _flat_outputs(outputs: Any) -> list[float]:
    # The worker stores a row's outputs as a number or a (possibly nested) list.
    if isinstance(outputs, int | float):
        return [float(outputs)]
    flat: list[float] = []
    for value in outputs or []:
        flat.extend(_flat_outputs(value))
    return flat


def model_answer(objective: str, outputs: Any) -> float:
    """The label the model gave a row: what "accept" stores.

    Binary classifiers: class 1 when the probability is at least 0.5 (for
    ``binary:logitraw``, whose output is a margin, when it is at least 0).
    Multi-class probabilities: the index of the highest one. Anything else
    (regression, ``multi:softmax`` class ids): the value itself.
    """
    values = _flat_outputs(outputs)
    if not values:
        raise ValueError("the item has no outputs to accept")
    if len(values) > 1:
        return float(max(range(len(values)), key=values.__getitem__))
    value = values[0]
    if objective.startswith("binary:"):
        threshold = 0.0 if objective == "binary:logitraw" else 0.5
        return 1.0 if value >= threshold else 0.0
    return value


def decide(
    item_id: int, *, user: Any, accept: bool, label: float | None = None, reason: str = ""
) -> ReviewItem:
    """Accept the model's answer or override it with ``label``; raise AlreadyDecidedError if not pending.

    The update is conditional on ``status = pending`` so that when two
    reviewers submit at once exactly one wins; the loser sees AlreadyDecidedError.
    """
    item = ReviewItem.objects.select_related("model_version").get(pk=item_id)
    if accept:
        status = ReviewStatus.ACCEPTED
        decided_label = model_answer(item.model_version.objective, item.outputs)
    else:
        if label is None or not math.isfinite(label):
            raise ValueError("an override needs a finite label")
        if not reason.strip():
            raise ValueError("an override needs a reason")
        status, decided_label = ReviewStatus.OVERRIDDEN, float(label)
    username = user.get_username()
    with transaction.atomic():
        updated = ReviewItem.objects.filter(pk=item_id, status=ReviewStatus.PENDING).update(
            status=status,
            label=decided_label,
            decision_reason=reason.strip(),
            decided_by=username,
            decided_at=timezone.now(),
        )
        if not updated:
            raise AlreadyDecidedError(f"review item {item_id} was already decided")
        item.refresh_from_db()
        record(
            "review.decide",
            item,
            actor=username,
            source=Source.WEB,
            decision=status,
            label=decided_label,
            reason=item.decision_reason,
            request_id=item.prediction_id,
            row_index=item.row_index,
        )
    return item


def validate_rules(rules: Any, feature_names: Iterable[str]) -> list[dict[str, Any]]:
    """Check ``rules`` against the rule shape and return them normalised; raise ValidationError.

    A rule is ``{"field": <feature name or "score">, "op": <one of RULE_OPS>,
    "value": <number>}``; nothing else is allowed in it.
    """
    allowed = {SCORE_FIELD, *feature_names}
    if not isinstance(rules, list):
        raise ValidationError("Rules must be a JSON list of objects.")
    clean: list[dict[str, Any]] = []
    for number, rule in enumerate(rules, start=1):
        if not isinstance(rule, dict) or set(rule) != {"field", "op", "value"}:
            raise ValidationError(f'Rule {number} must have exactly the keys "field", "op" and "value".')
        field, op, value = rule["field"], rule["op"], rule["value"]
        if field not in allowed:
            raise ValidationError(
                f'Rule {number}: field {field!r} is neither "score" nor a feature of this model '
                f"({', '.join(sorted(allowed - {SCORE_FIELD})) or 'no features'})."
            )
        if op not in RULE_OPS:
            raise ValidationError(f"Rule {number}: op must be one of {' '.join(RULE_OPS)}.")
        # bool is an int subclass; True is not a threshold anyone means.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValidationError(f"Rule {number}: value must be a finite number.")
        clean.append({"field": field, "op": op, "value": float(value)})
    return clean


def feedback_rows(model_name: str) -> tuple[list[list[float]], list[float], list[str]]:
    """Decided review items of ``model_name`` as training data: (features, labels, feature names).

    The feature names are those of the newest version that has decided items;
    items of versions with other features (a changed schema) are left out,
    since their columns would not line up. Oldest decisions first.
    """
    items = list(
        ReviewItem.objects.filter(model_version__name=model_name, status__in=DECIDED, label__isnull=False)
        .select_related("model_version")
        .order_by("decided_at", "id")
    )
    if not items:
        return [], [], []
    newest = max((item.model_version for item in items), key=lambda v: (v.created_at, v.pk))
    names = feature_names_of(newest)
    features: list[list[float]] = []
    labels: list[float] = []
    for item in items:
        if feature_names_of(item.model_version) != names or len(item.features) != len(names):
            continue
        features.append([float(value) for value in item.features])
        labels.append(float(item.label))
    return features, labels, names
