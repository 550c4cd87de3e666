"""Queue uncertain or rule-flagged predictions for human review.

The web tier owns the policy (table ``review_policies``, one per model name)
and the queue (``review_items``). The worker applies the policy when it
writes the audit rows of sync requests, in the same transaction, so a row is
queued exactly when its prediction is recorded: a redelivered message finds
both already there and adds nothing.

Score of a row: its output for single-output models (a probability or a
value), its highest class probability for multi-output models.
"""

from __future__ import annotations

import logging
import math
import operator
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from inference_common.schema import (
    REVIEW_PENDING,
    ROUTE_JOB,
    ROUTE_SHADOW,
    model_versions,
    review_policies,
)

logger = logging.getLogger(__name__)

#: Rule operators a policy may use, as the web tier documents them.
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

#: The rule field that names the row's score instead of a feature.
SCORE_FIELD = "score"


@dataclass(frozen=True)
class Rule:
    """``field op value``: field is a feature name or ``score``."""

    field: str
    op: str
    value: float

    def describe(self) -> str:
        """Text for the review item's reason, e.g. ``rule f2 > 3.0``."""
        return f"rule {self.field} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Policy:
    """The enabled review policy of one model name.

    A band with both bounds missing is no band: a policy may consist of
    rules only, and that must not queue every prediction.
    """

    band_low: float | None
    band_high: float | None
    rules: tuple[Rule, ...]

    @property
    def has_band(self) -> bool:
        """True when at least one bound is set."""
        return self.band_low is not None or self.band_high is not None

    def in_band(self, score: float) -> bool:
        """Inclusive on both ends; a missing bound is open."""
        if not self.has_band:
            return False
        low_ok = self.band_low is None or _f32(score) >= _f32(self.band_low)
        high_ok = self.band_high is None or _f32(score) <= _f32(self.band_high)
        return low_ok and high_ok

    def band_text(self) -> str:
        """The band as ``[low, high]`` with open bounds shown as infinities."""
        low = "-inf" if self.band_low is None else f"{self.band_low:g}"
        high = "inf" if self.band_high is None else f"{self.band_high:g}"
        return f"[{low}, {high}]"


def _f32(value: float) -> np.float32:
    """``value`` as the float32 the model computes in.

    Inputs and outputs are float32; comparing them with a bound written as
    0.6 in float64 would put an output of exactly 0.6 (float32) outside a band
    that includes 0.6.
    """
    with np.errstate(over="ignore"):
        return np.float32(value)


def parse_rules(raw: Any, model_name: str) -> tuple[Rule, ...]:
    """Valid rules of a policy; malformed ones are logged and ignored, not fatal.

    The web form validates rules, but the table can be edited by other means,
    and one bad rule must not stop the audit rows from being written.
    """
    rules: list[Rule] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            field, op, value = str(item["field"]), str(item["op"]), float(item["value"])
        except (KeyError, TypeError, ValueError):
            logger.warning("ignoring malformed review rule %r of model %s", item, model_name)
            continue
        if op not in OPERATORS or not field or not math.isfinite(value):
            logger.warning("ignoring invalid review rule %r of model %s", item, model_name)
            continue
        rules.append(Rule(field, op, value))
    return tuple(rules)


def scores(outputs: np.ndarray) -> np.ndarray:
    """One score per row: the output itself, or the highest class probability."""
    array = np.asarray(outputs, dtype=np.float64)
    if array.ndim == 1:
        return array
    return array.reshape(array.shape[0], -1).max(axis=1)


def reasons(policy: Policy, score: float, features: np.ndarray, feature_names: Sequence[str]) -> list[str]:
    """Why a row should be reviewed; empty when it should not."""
    found: list[str] = []
    if policy.in_band(score):
        found.append(f"score {score:.4g} in uncertainty band {policy.band_text()}")
    index = {name: i for i, name in enumerate(feature_names)}
    for rule in policy.rules:
        if rule.field == SCORE_FIELD:
            observed = score
        elif rule.field in index and index[rule.field] < features.shape[0]:
            observed = float(features[index[rule.field]])
        else:
            continue
        if OPERATORS[rule.op](_f32(observed), _f32(rule.value)):
            found.append(rule.describe())
    return found


class _Timed:
    """A value with the monotonic time it expires."""

    __slots__ = ("expires", "value")

    def __init__(self, value: Any, expires: float) -> None:
        self.value = value
        self.expires = expires


class ReviewFlagger:
    """Builds the review items of a set of audit rows, reading policies through a cache.

    Policies are cached per model name for ``ttl`` seconds (a policy edited in
    the web tier applies within one ttl); a version's name and feature names
    never change, so they are cached for the life of the process.
    """

    def __init__(self, ttl: float, max_rows_per_request: int) -> None:
        self._ttl = ttl
        self._max_rows = max_rows_per_request
        self._policies: dict[str, _Timed] = {}
        self._versions: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def _version(self, conn: Connection, model_version_id: int) -> tuple[str, tuple[str, ...]] | None:
        with self._lock:
            known = self._versions.get(model_version_id)
        if known is not None:
            return known
        row = conn.execute(
            select(model_versions.c.name, model_versions.c.feature_names).where(
                model_versions.c.id == model_version_id
            )
        ).first()
        if row is None:
            return None
        facts = (row.name, tuple(row.feature_names or ()))
        with self._lock:
            if len(self._versions) > 10_000:
                self._versions.clear()
            self._versions[model_version_id] = facts
        return facts

    def _policy(self, conn: Connection, model_name: str) -> Policy | None:
        now = time.monotonic()
        with self._lock:
            hit = self._policies.get(model_name)
        if hit is not None and hit.expires > now:
            return hit.value
        row = conn.execute(select(review_policies).where(review_policies.c.model_name == model_name)).first()
        policy = None
        if row is not None and row.enabled:
            policy = Policy(row.band_low, row.band_high, parse_rules(row.rules, model_name))
        if self._ttl > 0:
            with self._lock:
                if len(self._policies) > 10_000:
                    self._policies.clear()
                self._policies[model_name] = _Timed(policy, now + self._ttl)
        return policy

    def items(self, conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """``review_items`` values for the rows of ``rows`` that the policy flags.

        Only answered sync requests are reviewed: shadow copies were never
        shown to anyone, and job chunks are bulk scoring. At most
        ``max_rows_per_request`` rows of one request are queued, so a large
        request cannot flood the reviewers.
        """
        values: list[dict[str, Any]] = []
        if self._max_rows <= 0:
            return values
        now = datetime.now(UTC)
        for row in rows:
            if row.status != "ok" or row.outputs is None or row.job_id is not None:
                continue
            if row.route in (ROUTE_SHADOW, ROUTE_JOB):
                continue
            facts = self._version(conn, row.model_version_id)
            if facts is None:
                continue
            name, feature_names = facts
            policy = self._policy(conn, name)
            if policy is None:
                continue
            outputs = np.asarray(row.outputs)
            row_scores = scores(outputs)
            queued = 0
            for index, score in enumerate(row_scores.tolist()):
                why = reasons(policy, score, row.inputs[index], feature_names)
                if not why:
                    continue
                values.append(
                    {
                        "request_id": row.request_id,
                        "row_index": index,
                        "model_version_id": row.model_version_id,
                        "features": row.inputs[index].tolist(),
                        "outputs": np.atleast_1d(outputs[index]).tolist(),
                        "score": score,
                        "reason": "; ".join(why),
                        "status": REVIEW_PENDING,
                        "created_at": now,
                    }
                )
                queued += 1
                if queued >= self._max_rows:
                    logger.info("request %s: review queue capped at %d rows", row.request_id, self._max_rows)
                    break
        return values
