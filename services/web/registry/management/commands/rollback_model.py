"""``manage.py rollback_model``: put the previous production version back."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.models import Source
from config.cli import cli_user
from registry.services import RegistryError, rollback


class Command(BaseCommand):
    """Restore the version of NAME that was in production before the current one."""

    help = (
        "Roll NAME back to its previous production version (from the audit trail); the current "
        "production version is archived in the same transaction."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare the command-line options."""
        parser.add_argument("--name", required=True, help="model name")

    def handle(self, *args: Any, **options: Any) -> None:
        """Roll back and print the restored version as the last line."""
        try:
            restored = rollback(options["name"], actor=cli_user(), source=Source.CLI)
        except RegistryError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(f"{restored.name} version {restored.version} is production again")
        )
        self.stdout.write(restored.version)
