"""The four roles, as Django groups, and the permissions each one grants.

Views check permissions (``app_label.codename``), never group names, so a
deployment can build its own groups from the same permissions. The migration
``accounts.0001_roles`` creates these groups; ``manage.py sync_roles`` brings
an existing database back in line after this mapping changes.
"""

from __future__ import annotations

from typing import Any

ADMIN, REVIEWER, ANALYST, VIEWER = "admin", "reviewer", "analyst", "viewer"
ROLES = (ADMIN, REVIEWER, ANALYST, VIEWER)

#: Read access every role has: models, predictions, reviews, batches, training runs.
_VIEW = (
    "registry.view_modelversion",
    "predictions.view_predictionrecord",
    "reviews.view_reviewitem",
    "reviews.view_reviewpolicy",
    "jobs.view_job",
    "training.view_trainingrun",
)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    VIEWER: _VIEW,
    ANALYST: (*_VIEW, "predictions.export_predictionrecord", "jobs.add_job"),
    REVIEWER: (*_VIEW, "reviews.decide_reviewitem"),
    ADMIN: (
        *_VIEW,
        "predictions.export_predictionrecord",
        "jobs.add_job",
        "reviews.decide_reviewitem",
        "reviews.change_reviewpolicy",
        "reviews.add_reviewpolicy",
        "registry.add_modelversion",
        "registry.change_modelversion",
        "registry.promote_modelversion",
        "training.add_trainingrun",
        "apikeys.view_apikey",
        "apikeys.add_apikey",
        "apikeys.revoke_apikey",
        "audit.view_auditevent",
    ),
}


def sync_roles(apps: Any) -> None:
    """Create the role groups and set exactly the permissions of ``ROLE_PERMISSIONS``.

    ``apps`` is the app registry (the historical one inside a migration).
    Permissions are created first: on a fresh database they would otherwise
    only appear after the last migration (post_migrate).
    """
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        permissions = []
        for name in names:
            app_label, codename = name.split(".", 1)
            permissions.append(
                permission_model.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(permissions)
