"""Human review of uncertain or flagged predictions."""

from __future__ import annotations

from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    """The ``reviews`` app: review policies, the review queue and its decisions."""

    name = "reviews"
    verbose_name = "Human review"
