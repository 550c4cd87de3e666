"""Create the role groups admin, reviewer, analyst and viewer with their permissions."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def create_roles(apps: Any, schema_editor: Any) -> None:
    """Create or update the four groups (see ``accounts.roles``)."""
    from accounts.roles import sync_roles

    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("apikeys", "0002_revoke_permission"),
        ("audit", "0001_initial"),
        ("jobs", "0002_web_batches"),
        ("predictions", "0002_route_shadow_of"),
        ("registry", "0002_canary_shadow_metrics"),
        ("reviews", "0001_initial"),
        ("training", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
