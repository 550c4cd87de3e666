"""``manage.py revoke_api_key``: stop a key from being accepted."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apikeys.models import ApiKey
from apikeys.services import revoke_key
from audit.models import Source
from config.cli import cli_user


class Command(BaseCommand):
    """Revoke the key with the given prefix (the part after ``ipk_``)."""

    help = "Revoke the API key with PREFIX (shown in the admin and by create_api_key)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare the command-line arguments."""
        parser.add_argument("prefix", help="the key's prefix, e.g. 1a2b3c4d")

    def handle(self, *args: Any, **options: Any) -> None:
        """Mark the key revoked; revoking twice is harmless and keeps the first time."""
        prefix = options["prefix"].strip()
        try:
            api_key = ApiKey.objects.get(prefix=prefix)
        except ApiKey.DoesNotExist:
            raise CommandError(f"no API key with prefix {prefix!r}") from None
        if revoke_key(api_key, actor=cli_user(), source=Source.CLI):
            self.stdout.write(self.style.SUCCESS(f"Revoked API key {api_key.name!r} ({api_key.prefix})"))
        else:
            self.stdout.write(
                f"API key {api_key.name!r} ({api_key.prefix}) was already revoked at {api_key.revoked_at}"
            )
