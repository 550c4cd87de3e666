"""``manage.py set_model_stage``: promote, stage or archive a registered version."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import Source
from config.cli import cli_user
from registry.models import ModelVersion, Stage
from registry.services import RegistryError, set_stage


class Command(BaseCommand):
    """Move a model version to another stage; promotion archives the previous production version."""

    help = (
        "Set the stage of NAME version V. Promoting to production archives the current production "
        "version of NAME in the same transaction."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Let this command's own ``--version`` replace Django's (which prints Django's version)."""
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare the command-line options."""
        parser.add_argument("--name", required=True, help="model name")
        parser.add_argument("--version", required=True, help="version to move")
        parser.add_argument("--stage", required=True, choices=Stage.values, help="target stage")
        parser.add_argument(
            "--traffic-percent",
            type=int,
            help="share (1-100) of unversioned requests a canary takes; required with --stage canary",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Change the stage and report what changed."""
        name, version, stage = options["name"], options["version"], options["stage"]
        try:
            model_version = ModelVersion.objects.get(name=name, version=version)
        except ModelVersion.DoesNotExist:
            raise CommandError(f"{name} version {version} is not registered") from None
        percent = options["traffic_percent"]
        if model_version.stage == stage and (
            stage != Stage.CANARY or percent == model_version.traffic_percent
        ):
            self.stdout.write(f"{name} version {version} is already {stage}; nothing changed")
            return
        was_production = model_version.stage == Stage.PRODUCTION
        try:
            demoted = set_stage(
                model_version, stage, traffic_percent=percent, actor=cli_user(), source=Source.CLI
            )
        except RegistryError as exc:
            raise CommandError(str(exc)) from exc
        if demoted is not None:
            self.stdout.write(f"Archived {name} version {demoted.version} (was production)")
        self.stdout.write(self.style.SUCCESS(f"{name} version {version} is now {stage}"))
        if was_production:
            # Not an error (retiring a model is legitimate), but requests that
            # name no version will now fail until another version is promoted.
            self.stderr.write(
                self.style.WARNING(f"{name} has no production version now; unversioned requests will fail")
            )
