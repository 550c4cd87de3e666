"""Starting training runs from the web: record the run, enqueue it after the commit."""

from __future__ import annotations

import logging
from functools import partial
from typing import IO

from celery import Celery
from django.db import transaction
from django.utils import timezone

from audit.models import Source
from audit.services import record
from config.celery_app import TRAIN_TASK
from config.publishing import publish
from training.models import RunStatus, TrainingRun

logger = logging.getLogger(__name__)


def enqueue(run_id: int, *, app: Celery | None = None) -> bool:
    """Publish the training task of ``run_id``; fail the run visibly if the broker refuses it."""
    # By name: the route to the training queue comes from the app's task_routes.
    refusal = publish(lambda celery: celery.send_task(TRAIN_TASK, args=[run_id], retry=True), app=app)
    if not refusal:
        return True
    logger.warning("enqueueing training run %s failed: %s", run_id, refusal)
    TrainingRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.FAILED,
        message=f"{refusal}; the run was not queued, start it again later",
        finished_at=timezone.now(),
    )
    return False


def start_run(
    *,
    model_name: str,
    dataset: IO[bytes],
    label_column: str,
    objective: str,
    params: dict[str, object],
    include_feedback: bool,
    created_by: str,
) -> TrainingRun:
    """Store the upload and a queued run (audited); the task is published once that is committed.

    The trainer reads the run by id, so publishing before the commit could
    hand it a run that does not exist yet.
    """
    with transaction.atomic():
        run = TrainingRun.objects.create(
            model_name=model_name,
            dataset=dataset,
            label_column=label_column,
            objective=objective,
            params=params,
            include_feedback=include_feedback,
            created_by=created_by,
        )
        record(
            "training.start",
            run,
            actor=created_by,
            source=Source.WEB,
            model_name=model_name,
            objective=objective,
            params=params,
            include_feedback=include_feedback,
        )
        transaction.on_commit(partial(enqueue, run.pk))
    return run
