"""``manage.py create_api_key``: issue a key for the inference API."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apikeys.models import DEFAULT_RATE_LIMIT_PER_MINUTE, ApiKey
from apikeys.services import issue_key
from audit.models import Source
from config.cli import cli_user
from inference_common.keys import SCOPES, parse_scopes


class Command(BaseCommand):
    """Create an API key and print it once; only its prefix and SHA-256 digest are stored.

    The raw key is the last line of output, so scripts can capture it:
    ``KEY=$(manage.py create_api_key demo | tail -n1)``.
    """

    help = "Create an API key named NAME. The raw key is printed once, as the last line, and never stored."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare the command-line options."""
        parser.add_argument("name", help="who or what will use the key")
        parser.add_argument(
            "--scopes",
            default=",".join(SCOPES),
            help=f"comma-separated scopes out of {', '.join(SCOPES)} (default: all)",
        )
        parser.add_argument(
            "--rate-limit",
            type=int,
            default=DEFAULT_RATE_LIMIT_PER_MINUTE,
            help=f"requests per minute, 0 for unlimited (default: {DEFAULT_RATE_LIMIT_PER_MINUTE})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Validate the options, store the key and print it."""
        name = options["name"].strip()
        max_length = ApiKey._meta.get_field("name").max_length
        if not name or len(name) > max_length:
            raise CommandError(f"the key name must be 1-{max_length} characters")
        try:
            scopes = parse_scopes(options["scopes"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        rate_limit = options["rate_limit"]
        if rate_limit < 0:
            raise CommandError(
                "--rate-limit must be 0 (unlimited) or a positive number of requests per minute"
            )
        issued = issue_key(
            name=name,
            scopes=scopes,
            rate_limit_per_minute=rate_limit,
            created_by=cli_user(),
            source=Source.CLI,
        )
        limit = "unlimited" if rate_limit == 0 else f"{rate_limit}/min"
        self.stdout.write(
            self.style.SUCCESS(
                f"Created API key {name!r}: prefix {issued.api_key.prefix}, scopes {','.join(scopes)}, "
                f"rate limit {limit}. Store the key now; it cannot be shown again."
            )
        )
        # Last line, unstyled: the raw key alone, for scripts.
        self.stdout.write(issued.raw)
