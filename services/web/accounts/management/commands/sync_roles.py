"""``manage.py sync_roles``: bring the role groups back in line with ``accounts.roles``."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand

from accounts.roles import ROLE_PERMISSIONS, sync_roles


class Command(BaseCommand):
    """Create the four role groups and set exactly their permissions (idempotent)."""

    help = (
        "Create or update the groups admin, reviewer, analyst and viewer with the permissions of each role."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Sync and list each role with its number of permissions."""
        sync_roles(apps)
        for role, permissions in ROLE_PERMISSIONS.items():
            self.stdout.write(f"{role}: {len(permissions)} permissions")
