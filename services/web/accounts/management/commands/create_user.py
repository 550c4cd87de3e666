"""``manage.py create_user``: create or update a login with one role, for demos and first deployments.

The password never appears on the command line (where ``ps`` and shell
history would show it): it comes from ``DJANGO_USER_PASSWORD`` or a file
(``--password-file``, e.g. a mounted Kubernetes secret).
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.roles import ADMIN, ROLES

PASSWORD_ENV = "DJANGO_USER_PASSWORD"


class Command(BaseCommand):
    """Create USERNAME with one role, or update the password and role of an existing user."""

    help = (
        f"Create or update USERNAME with a role ({', '.join(ROLES)}). The password is read from "
        f"${PASSWORD_ENV} or --password-file. Running it again updates the password and role."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare the command-line options."""
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES, help="the user's only role group")
        parser.add_argument(
            "--superuser", action="store_true", help="also make the user a superuser (implies staff)"
        )
        parser.add_argument("--email", default="", help="e-mail address (optional)")
        parser.add_argument(
            "--allow-weak-password",
            action="store_true",
            help="skip AUTH_PASSWORD_VALIDATORS (throwaway demo and test stacks only)",
        )
        parser.add_argument(
            "--password-file", type=Path, help=f"file whose first line is the password (else ${PASSWORD_ENV})"
        )

    def _password(self, options: dict[str, Any]) -> str:
        path: Path | None = options["password_file"]
        if path is not None:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise CommandError(f"cannot read --password-file {path}: {exc.strerror}") from exc
            password = lines[0] if lines else ""
        else:
            password = os.environ.get(PASSWORD_ENV, "")
        if not password:
            raise CommandError(f"no password: set ${PASSWORD_ENV} or pass --password-file")
        return password

    def handle(self, *args: Any, **options: Any) -> None:
        """Create or update the user; print whether it was created, as the last line."""
        username = options["username"].strip()
        if not username:
            raise CommandError("the username must not be empty")
        password = self._password(options)
        role = options["role"]
        user_model = get_user_model()
        try:
            group = Group.objects.get(name=role)
        except Group.DoesNotExist:
            raise CommandError(f"group {role!r} does not exist; run `manage.py migrate` first") from None
        with transaction.atomic():
            user, created = user_model.objects.get_or_create(**{user_model.USERNAME_FIELD: username})
            if not options["allow_weak_password"]:
                try:
                    validate_password(password, user)
                except ValidationError as exc:
                    raise CommandError("password rejected: " + " ".join(exc.messages)) from exc
            user.set_password(password)
            if options["email"]:
                user.email = options["email"]
            user.is_active = True
            # Admins reach the Django admin too; superuser status is only ever added on request.
            user.is_staff = role == ADMIN or options["superuser"] or user.is_superuser
            if options["superuser"]:
                user.is_superuser = True
            user.save()
            # One role per user: the groups are the roles, so others are dropped.
            user.groups.remove(*user.groups.filter(name__in=ROLES).exclude(pk=group.pk))
            user.groups.add(group)
        verb = "Created" if created else "Updated"
        extra = " (superuser)" if user.is_superuser else ""
        self.stdout.write(self.style.SUCCESS(f"{verb} user {username!r} with role {role}{extra}"))
