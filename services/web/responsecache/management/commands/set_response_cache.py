"""``manage.py set_response_cache``: turn the api's response cache on or off for a model name."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.models import Source
from config.cli import cli_user
from registry.models import ModelVersion
from responsecache.models import ResponseCachePolicy
from responsecache.services import clear, save_policy


def describe(policy: ResponseCachePolicy) -> str:
    """One line about a policy, as the command prints it."""
    if not policy.enabled:
        return f"{policy.model_name}: response cache off (generation {policy.generation})"
    return (
        f"{policy.model_name}: response cache on, TTL {policy.ttl_s} s, "
        f"up to {policy.max_entries} answers, generation {policy.generation}"
    )


class Command(BaseCommand):
    """Create or change a model name's response cache policy, or clear its cached answers."""

    help = (
        "Answer repeated inputs of NAME from the api's response cache (Redis, CACHE_REDIS_URL on the api). "
        "Without --disable the cache is turned on; options left out keep their current values."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare the command-line options."""
        parser.add_argument("--name", required=True, help="model name")
        parser.add_argument(
            "--ttl-s", type=int, help="seconds an answer is kept (default 300 for a new policy)"
        )
        parser.add_argument(
            "--max-entries", type=int, help="most answers kept for NAME (default 10000 for a new policy)"
        )
        parser.add_argument("--disable", action="store_true", help="turn the cache off for NAME")
        parser.add_argument(
            "--clear", action="store_true", help="stop serving every answer cached so far (a new generation)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Apply the options and print the resulting policy."""
        name = options["name"]
        if not ModelVersion.objects.filter(name=name).exists():
            raise CommandError(f"no model named {name!r} is registered")
        policy = ResponseCachePolicy.objects.filter(model_name=name).first() or ResponseCachePolicy(
            model_name=name
        )
        policy.enabled = not options["disable"]
        if options["ttl_s"] is not None:
            policy.ttl_s = options["ttl_s"]
        if options["max_entries"] is not None:
            policy.max_entries = options["max_entries"]
        try:
            policy.full_clean(exclude=["model_name"] if policy.pk else None)
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
            raise CommandError(problems) from None
        policy = save_policy(policy, actor=cli_user(), source=Source.CLI)
        if options["clear"]:
            policy = clear(policy, actor=cli_user(), source=Source.CLI)
        self.stdout.write(describe(policy))
