"""Publishing Celery tasks from a web request, where a refused message must fail the job visibly.

The batch pages and the training pages both publish after the commit of the
row they create; when the broker refuses, that row is marked failed with the
reason this module words, so the user sees why nothing happens.
"""

from __future__ import annotations

from collections.abc import Callable

from celery import Celery


def publish(send: Callable[[Celery], object], *, app: Celery | None = None) -> str:
    """Call ``send(app)``; return "" when the broker accepted every message, else the reason it did not.

    ``app`` defaults to the project's Celery app (tests pass their own).
    """
    if app is None:
        # Imported here, not at module level: importing it builds the app from the broker env vars.
        from config.celery_app import app
    try:
        send(app)
    except Exception as exc:  # kombu/amqp raise many types; all mean "not accepted"
        return f"the message broker is unavailable ({type(exc).__name__}: {exc})"
    return ""
