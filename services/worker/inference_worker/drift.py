"""Input and output drift of the model versions a worker process serves.

Every pool process keeps, per model version, the bin counts of the rows it
served recently (binned with the edges of the version's baseline, see
``inference_common.drift``) and, every ``WORKER_DRIFT_EVAL_ROWS`` rows,
sets ``inference_worker_feature_drift_psi{model,version,feature}`` to the
population stability index of each feature and of the output score
(``feature="__output__"``) over the last ``WORKER_DRIFT_WINDOW_ROWS`` rows.

What is observed: every row a version predicted for sync requests and job
chunks, including shadow copies, which are real inputs for the shadow
version (and only counted for it); of a job chunk larger than the window,
an even sample of a window's rows (``predict_chunk``). Refused requests are
not predicted, so they are not counted either.

Baselines: the one stored with the version (``model_versions.baseline``,
from the training data or ``register_model --baseline``). A version without
one collects its first full window of raw rows, builds a ``first_window``
baseline from them and writes it with ``UPDATE ... WHERE baseline IS NULL``:
the first process to finish wins and every other process adopts the stored
one, so all workers compare against the same reference. Apart from that
first window no rows are kept, only counts.

The window is a ring of count blocks (about 1/20 of the window each), so it
slides in steps of a block and holds at least the last window's rows. The
gauges use ``multiprocess_mode="max"``: /metrics shows the worst value any
pool process last computed for a version.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, update

from inference_common import settings as env
from inference_common.drift import (
    OUTPUT_FEATURE,
    SOURCE_FIRST_WINDOW,
    BaselineError,
    bin_counts_columns,
    build_baseline,
    counts_width,
    output_scores,
    psi_rows,
    validate_baseline,
)
from inference_common.schema import model_versions

from . import metrics
from .models import LoadedModel

logger = logging.getLogger(__name__)

#: Blocks per window: the window slides in steps of about 1/BLOCKS of its rows.
BLOCKS = 20
#: How often a process without a baseline looks for one another process stored.
BASELINE_TTL_S = 30.0
#: Versions whose windows one process keeps (least recently served dropped first).
MAX_VERSIONS = 16


@dataclass(frozen=True)
class DriftSettings:
    """The drift monitor's settings, from the worker's environment."""

    window_rows: int
    eval_rows: int

    @classmethod
    def from_env(cls, source: Mapping[str, str] | None = None) -> DriftSettings:
        """Read and validate the settings; raise ConfigError on bad values."""
        return cls(
            window_rows=env.env_int("WORKER_DRIFT_WINDOW_ROWS", 2000, minimum=10, env=source),
            eval_rows=env.env_int("WORKER_DRIFT_EVAL_ROWS", 200, minimum=1, env=source),
        )


@dataclass
class _Block:
    rows: int
    counts: np.ndarray


@dataclass
class _Version:
    """The drift state of one model version in this process."""

    name: str
    version: str
    feature_names: list[str]
    baseline: dict[str, Any] | None = None
    edges: list[np.ndarray] = field(default_factory=list)
    #: The baseline's expected shares, one zero-padded row per feature (output last): the shape of ``totals``.
    expected_matrix: np.ndarray | None = None
    blocks: deque[_Block] = field(default_factory=deque)
    current: _Block | None = None
    totals: np.ndarray | None = None
    rows: int = 0
    since_eval: int = 0
    # Raw rows kept only while there is no baseline yet (the first window).
    pending: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    pending_rows: int = 0
    checked_at: float = float("-inf")

    @property
    def labels(self) -> list[str]:
        """Feature labels of the gauges, output last."""
        return [*self.feature_names, OUTPUT_FEATURE]


class DriftMonitor:
    """Sliding-window drift of every version this process serves; see the module docstring."""

    def __init__(
        self,
        engine: Engine | None,
        window_rows: int = 2000,
        eval_rows: int = 200,
        *,
        baseline_ttl_s: float = BASELINE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.window_rows = window_rows
        self.eval_rows = eval_rows
        self._block_rows = max(1, window_rows // BLOCKS)
        self._ttl = baseline_ttl_s
        self._clock = clock
        self._versions: OrderedDict[int, _Version] = OrderedDict()
        self._lock = threading.Lock()
        #: Observations that failed (logged, never raised into the request path).
        self.errors = 0

    def observe(
        self,
        model_version_id: int,
        name: str,
        version: str,
        feature_names: Sequence[str] | None,
        inputs: np.ndarray,
        outputs: np.ndarray,
    ) -> None:
        """Count ``inputs`` (n, n_features) and the model's ``outputs`` for them; never raises."""
        try:
            with self._lock:
                self._observe(model_version_id, name, version, feature_names, inputs, outputs)
        except Exception:
            self.errors += 1
            # The first failure with its traceback, then a reminder now and then.
            if self.errors == 1 or self.errors % 1000 == 0:
                logger.exception("drift monitoring failed (%d failures so far)", self.errors)

    def psi(self, model_version_id: int) -> dict[str, float]:
        """The PSI per feature (and ``__output__``) of the current window; empty without a baseline."""
        with self._lock:
            state = self._versions.get(model_version_id)
            if state is None or state.baseline is None or state.totals is None or state.rows == 0:
                return {}
            return self._scores(state)

    def baseline_of(self, model_version_id: int) -> dict[str, Any] | None:
        """The baseline this process compares ``model_version_id`` with, if it has one."""
        state = self._versions.get(model_version_id)
        return state.baseline if state is not None else None

    def _observe(
        self,
        model_version_id: int,
        name: str,
        version: str,
        feature_names: Sequence[str] | None,
        inputs: np.ndarray,
        outputs: np.ndarray,
    ) -> None:
        rows = np.asarray(inputs, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] == 0:
            return
        n = int(rows.shape[0])
        scores = output_scores(outputs, n)
        state = self._state(model_version_id, name, version, feature_names, rows.shape[1])
        if state.baseline is None and self._clock() - state.checked_at >= self._ttl:
            self._load_baseline(model_version_id, state)
        if state.baseline is None:
            self._collect_first_window(model_version_id, state, rows, scores)
            return
        if len(state.edges) != rows.shape[1] + 1:
            raise BaselineError(f"{name} v{version}: the baseline does not describe {rows.shape[1]} features")
        self._count(state, rows, scores)
        metrics.DRIFT_WINDOW_ROWS.labels(name, version).set(state.rows)
        state.since_eval += n
        if state.since_eval >= self.eval_rows:
            state.since_eval = 0
            for feature, value in self._scores(state).items():
                metrics.FEATURE_DRIFT_PSI.labels(name, version, feature).set(value)

    def _state(
        self, model_version_id: int, name: str, version: str, names: Sequence[str] | None, width: int
    ) -> _Version:
        state = self._versions.get(model_version_id)
        if state is None:
            known = list(names) if names and len(names) == width else [f"f{i}" for i in range(width)]
            state = _Version(name=name, version=version, feature_names=known)
            self._versions[model_version_id] = state
            while len(self._versions) > MAX_VERSIONS:
                self._versions.popitem(last=False)
        self._versions.move_to_end(model_version_id)
        return state

    def _load_baseline(self, model_version_id: int, state: _Version) -> None:
        """Adopt the stored baseline (and registry feature names), if there is one."""
        state.checked_at = self._clock()
        if self.engine is None:
            return
        with self.engine.connect() as conn:
            row = conn.execute(
                select(model_versions.c.feature_names, model_versions.c.baseline).where(
                    model_versions.c.id == model_version_id
                )
            ).first()
        if row is None:
            return
        if isinstance(row.feature_names, list) and len(row.feature_names) == len(state.feature_names):
            state.feature_names = [str(name) for name in row.feature_names]
        if row.baseline is not None:
            self._adopt(state, row.baseline)

    def _adopt(self, state: _Version, baseline: Any) -> None:
        try:
            validate_baseline(baseline, state.feature_names)
        except BaselineError as exc:
            # A baseline that does not fit is as good as none; the first window replaces nothing
            # stored, so the operator's fix (re-registering with a good one) stays possible.
            logger.warning("ignoring the drift baseline of %s v%s: %s", state.name, state.version, exc)
            return
        entries = [*baseline["features"], baseline["output"]]
        state.baseline = baseline
        state.edges = [np.asarray(entry["edges"], dtype=np.float64) for entry in entries]
        state.expected_matrix = np.zeros((len(entries), counts_width(state.edges)))
        for i, entry in enumerate(entries):
            expected = np.asarray(entry["expected"], dtype=np.float64)
            state.expected_matrix[i, : expected.size] = expected
        state.pending, state.pending_rows = [], 0
        logger.info(
            "drift of %s v%s is measured against its %s baseline (%s rows)",
            state.name,
            state.version,
            baseline.get("source"),
            baseline.get("n_rows"),
        )

    def _collect_first_window(
        self, model_version_id: int, state: _Version, rows: np.ndarray, scores: np.ndarray
    ) -> None:
        state.pending.append((rows.copy(), scores.copy()))
        state.pending_rows += int(rows.shape[0])
        metrics.DRIFT_WINDOW_ROWS.labels(state.name, state.version).set(state.pending_rows)
        if state.pending_rows < self.window_rows:
            return
        matrix = np.concatenate([block for block, _ in state.pending])
        outputs = np.concatenate([score for _, score in state.pending])
        baseline = build_baseline(matrix, outputs, state.feature_names, SOURCE_FIRST_WINDOW)
        state.pending, state.pending_rows = [], 0
        if self.engine is None:
            self._adopt(state, baseline)
            return
        with self.engine.begin() as conn:
            written = conn.execute(
                update(model_versions)
                .where(model_versions.c.id == model_version_id, model_versions.c.baseline.is_(None))
                .values(baseline=baseline)
            ).rowcount
        if written:
            logger.info("stored a first-window drift baseline for %s v%s", state.name, state.version)
            self._adopt(state, baseline)
        else:
            # Another process stored one first: compare with the same reference as it does.
            self._load_baseline(model_version_id, state)

    def _count(self, state: _Version, rows: np.ndarray, scores: np.ndarray) -> None:
        counts = bin_counts_columns(state.edges, np.column_stack([rows, scores]))
        n = int(rows.shape[0])
        if state.totals is None:
            state.totals = np.zeros_like(counts)
        state.totals += counts
        state.rows += n
        if state.current is None:
            state.current = _Block(0, np.zeros_like(counts))
        state.current.rows += n
        state.current.counts += counts
        if state.current.rows >= self._block_rows:
            state.blocks.append(state.current)
            state.current = None
        # Drop the oldest blocks while the rest still hold a full window.
        while state.blocks and state.rows - state.blocks[0].rows >= self.window_rows:
            oldest = state.blocks.popleft()
            state.totals -= oldest.counts
            state.rows -= oldest.rows

    def _scores(self, state: _Version) -> dict[str, float]:
        assert state.totals is not None
        assert state.expected_matrix is not None
        values = psi_rows(state.expected_matrix, state.totals)
        return dict(zip(state.labels, values.tolist(), strict=True))


_monitor: DriftMonitor | None = None
_monitor_pid: int | None = None
_failed_pid: int | None = None


def monitor(engine: Engine) -> DriftMonitor:
    """The drift monitor of the current process over the registry ``engine``, created after fork.

    ``engine`` is the one the process loads its models with (created after
    fork too), so baselines come from the same registry as the boosters.
    """
    global _monitor, _monitor_pid
    if _monitor is None or _monitor_pid != os.getpid() or _monitor.engine is not engine:
        settings = DriftSettings.from_env()
        _monitor = DriftMonitor(engine, settings.window_rows, settings.eval_rows)
        _monitor_pid = os.getpid()
    return _monitor


def observe(engine: Engine, model: LoadedModel, inputs: np.ndarray, outputs: np.ndarray) -> None:
    """Feed one predict call of ``model`` to this process's monitor; never raises into the request path."""
    global _failed_pid
    if _failed_pid == os.getpid():
        return
    try:
        current = monitor(engine)
    except Exception:
        # A bad setting does not fix itself: say so once, then stay out of the way.
        _failed_pid = os.getpid()
        logger.exception("drift monitoring is off in this process: it could not start")
        return
    names = model.booster.feature_names
    current.observe(model.model_version_id, model.name, model.version, names, inputs, outputs)
