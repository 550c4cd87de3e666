"""Celery tasks of the trainer process (``celery -A config.celery_app worker --queues <prefix>.training``)."""

from __future__ import annotations

from celery import Task

from config.celery_app import TRAIN_TASK, app
from training.trainer import run_training


@app.task(bind=True, name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def train_model(self: Task, run_id: int) -> str:
    """Train training run ``run_id`` and register its model; returns the run's final status.

    Takes the run's id, never the row: the task reads the current state, and
    a redelivered message for a finished run does nothing.
    """
    hard_limit = self.time_limit or self.app.conf.task_time_limit
    return run_training(run_id, time_limit_s=float(hard_limit) if hard_limit else None)
