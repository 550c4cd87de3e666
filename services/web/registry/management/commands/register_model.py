"""``manage.py register_model``: add an XGBoost model file to the registry."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import Source
from config.cli import cli_user
from inference_common.settings import ConfigError, model_store
from registry.models import Stage
from registry.services import RegistryError, baseline_from_csv, register_model


class Command(BaseCommand):
    """Register a booster saved with ``save_model`` (.json or .ubj) as a new version.

    The last line of output is the version alone, so scripts can capture it:
    ``VERSION=$(manage.py register_model --name iris --file m.ubj | tail -n1)``.
    """

    help = (
        "Register an XGBoost model file (.json or .ubj) as a new version of NAME, copying it "
        "into MODEL_STORE under its sha256. Prints the version as the last line."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Let this command's own ``--version`` replace Django's (which prints Django's version)."""
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare the command-line options."""
        parser.add_argument("--name", required=True, help="model name, as used in the inference URLs")
        parser.add_argument("--file", required=True, type=Path, help="booster saved with save_model()")
        parser.add_argument(
            "--version", help="version string (default: one more than the highest numeric version)"
        )
        parser.add_argument(
            "--stage",
            choices=[Stage.PRODUCTION, Stage.STAGING],
            default=Stage.STAGING,
            help="production archives the current production version (default: staging)",
        )
        parser.add_argument("--description", default="", help="free text shown in the admin")
        parser.add_argument(
            "--baseline",
            type=Path,
            metavar="DATA.CSV",
            help="CSV of reference rows (header: the model's feature names; other columns ignored) "
            "from which the drift baseline is built (default: the first rows the workers serve)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Validate, store and record the model; print what was registered, then the version."""
        try:
            store = model_store()
            baseline = None
            if options["baseline"] is not None:
                baseline = baseline_from_csv(options["baseline"], options["file"])
            registration = register_model(
                name=options["name"],
                path=options["file"],
                store=store,
                version=options["version"],
                stage=options["stage"],
                description=options["description"],
                created_by=cli_user(),
                source=Source.CLI,
                baseline=baseline,
            )
        except (RegistryError, ConfigError) as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"cannot store the model file: {exc}") from exc
        model_version = registration.model_version
        if registration.demoted is not None:
            self.stdout.write(
                f"Archived {registration.demoted.name} version {registration.demoted.version} "
                "(was production)"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered {model_version.name} version {model_version.version} ({model_version.stage}): "
                f"{model_version.n_features} features, objective {model_version.objective}, "
                f"{model_version.n_outputs} output(s), artifact {store / model_version.artifact_path}"
            )
        )
        if baseline is not None:
            self.stdout.write(
                f"Stored a drift baseline from {baseline['n_rows']} rows of {options['baseline']}"
            )
        # Last line, unstyled: the version alone, for scripts.
        self.stdout.write(model_version.version)
