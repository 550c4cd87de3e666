"""Web-tier jobs on the real stack: CSV batches through the workers, training runs through the trainer.

The web side runs as it does in production, in its own processes: a
``manage.py shell`` calls the same service functions the pages call (so the
job row is committed and published by the web's Celery app), the inference
workers and the trainer consume from RabbitMQ, and the results are read back
from PostgreSQL.
"""

from __future__ import annotations

import csv
import json
import subprocess
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sklearn.datasets import load_breast_cancer

from support.polling import poll
from support.stack import MANAGE, Process, Stack

BATCH_CHUNK_ROWS = 100


@pytest.fixture(scope="module")
def trainer(stack: Stack) -> Process:
    """The trainer process of the shared stack (started once for this module)."""
    return stack.trainer or stack.start_trainer()


def web_shell(stack: Stack, code: str) -> str:
    """Run ``code`` in the web tier's Django shell with the stack's environment; return its stdout."""
    env = stack.service_env(
        WEB_JOB_CHUNK_ROWS=str(BATCH_CHUNK_ROWS), DJANGO_SETTINGS_MODULE="config.settings.local"
    )
    result = subprocess.run(
        [*MANAGE, "shell", "--verbosity", "0", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"manage.py shell failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def job_row(db: psycopg.Connection, job_id: str) -> tuple[str, int, int, str]:
    """(status, chunks_done, n_chunks, error) of a job."""
    row = db.execute(
        "SELECT status, chunks_done, n_chunks, error FROM jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert row is not None
    return row


def test_a_csv_batch_from_the_web_is_predicted_by_the_workers_and_equals_the_booster(
    stack: Stack, models, db: psycopg.Connection, tmp_path: Path
) -> None:
    model = models["binary"]
    rows = model.rows[:250]
    ids = [f"row-{uuid.uuid4().hex[:6]}" for _ in range(len(rows))]
    path = tmp_path / "batch.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        # Columns in another order than the model's, plus an id and an ignored extra column.
        names = list(model.booster.feature_names)
        writer.writerow(["id", "note", *reversed(names)])
        for key, row in zip(ids, rows.tolist(), strict=True):
            writer.writerow([key, "x", *(repr(value) for value in reversed(row))])

    job_id = web_shell(
        stack,
        "from jobs.services import read_batch, resolve_model, submit_batch\n"
        "mv = resolve_model('binary')\n"
        f"table = read_batch(open({str(path)!r}, 'rb'), mv)\n"
        "job = submit_batch(model_version=mv, table=table, input_name='batch.csv', created_by='it')\n"
        "print(job.id)\n",
    ).split()[-1]

    status = poll(lambda: job_row(db, job_id), lambda r: r[0] in ("succeeded", "failed"), 120)
    assert status == ("succeeded", 3, 3, "")
    created_by, input_name, api_key = db.execute(
        "SELECT created_by, input_name, api_key_id FROM jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert (created_by, input_name, api_key) == ("it", "batch.csv", None)

    out = web_shell(
        stack,
        "from jobs.models import Job\nfrom jobs.services import results_lines\n"
        f"print(''.join(results_lines(Job.objects.get(pk={job_id!r}))), end='')\n",
    )
    lines = list(csv.reader(out.splitlines()))
    assert lines[0] == ["id", "prediction"]
    assert [line[0] for line in lines[1:]] == ids
    got = np.asarray([float(line[1]) for line in lines[1:]], dtype=np.float32)
    assert np.array_equal(got, model.expected(rows))


def test_a_training_run_is_picked_up_by_the_trainer_and_registers_a_version(
    stack: Stack, trainer: Process, db: psycopg.Connection, tmp_path: Path
) -> None:
    data = load_breast_cancer()
    names = [f"x{i}" for i in range(data.data.shape[1])]
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "target"])
        writer.writerows(
            [*row, label] for row, label in zip(data.data.tolist(), data.target.tolist(), strict=True)
        )
    name = f"trained-{uuid.uuid4().hex[:6]}"

    run_id = web_shell(
        stack,
        "from django.core.files import File\nfrom training.services import start_run\n"
        f"run = start_run(model_name={name!r}, dataset=File(open({str(path)!r}, 'rb'), name='train.csv'), "
        "label_column='target', objective='binary:logistic', "
        "params={'num_boost_round': 30, 'max_depth': 3, 'eta': 0.3, 'validation_fraction': 0.2, "
        "'stage': 'production'}, include_feedback=False, created_by='it')\n"
        "print(run.pk)\n",
    ).split()[-1]

    def fetch() -> tuple:
        return db.execute(
            "SELECT status, progress, message, model_version_id FROM training_runs WHERE id = %s",
            (int(run_id),),
        ).fetchone()

    status, progress, message, version_id = poll(fetch, lambda r: r[0] in ("succeeded", "failed"), 180)
    assert status == "succeeded", f"{message}\n{trainer.tail()}"
    assert progress == 100
    version = db.execute(
        "SELECT name, stage, feature_names, metrics FROM model_versions WHERE id = %s", (version_id,)
    ).fetchone()
    assert version[:3] == (name, "production", names)
    metrics = version[3] if isinstance(version[3], dict) else json.loads(version[3])
    assert set(metrics) == {"auc", "logloss", "accuracy"}
    assert metrics["auc"] > 0.9
