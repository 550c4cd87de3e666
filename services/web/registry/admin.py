"""Admin for registered model versions.

Versions are created by ``manage.py register_model`` (it needs the model
file), and their artifact columns never change after that. Stages change
through actions that apply the same one-production-version rule as the
``set_model_stage`` command.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from audit.models import Source
from audit.services import record
from registry.models import ModelVersion, Stage
from registry.services import RegistryError, rollback, set_stage

REGISTER_HELP = (
    "New versions are registered from a model file with "
    "`python services/web/manage.py register_model --name NAME --file MODEL.ubj`."
)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """List, search and restage model versions; the artifact fields are read-only."""

    list_display = (
        "name",
        "version",
        "stage",
        "objective",
        "n_features",
        "n_outputs",
        "created_at",
        "created_by",
    )
    list_filter = ("stage", "objective", "name")
    search_fields = ("name", "version", "sha256", "description")
    date_hierarchy = "created_at"
    ordering = ("name", "-created_at")
    fieldsets = (
        (None, {"fields": ("name", "version", "stage", "description"), "description": REGISTER_HELP}),
        (
            "Artifact",
            {
                "fields": (
                    "artifact_path",
                    "sha256",
                    "objective",
                    "n_features",
                    "n_outputs",
                    "feature_names",
                )
            },
        ),
        ("Provenance", {"fields": ("created_at", "created_by")}),
    )
    # Only the description is edited here; the stage goes through the actions
    # so that promotion always archives the previous production version.
    readonly_fields = (
        "name",
        "version",
        "stage",
        "artifact_path",
        "sha256",
        "objective",
        "n_features",
        "n_outputs",
        "feature_names",
        "created_at",
        "created_by",
    )
    # Stage changes and edits go through registry.services / audit.services so that
    # every admin action leaves an AuditEvent with source=admin.
    actions = ("promote_to_production", "move_to_staging", "archive", "roll_back")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Versions need a model file, so they are added with the register_model command."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        """Versions are archived, not deleted: prediction records point at them."""
        return False

    def save_model(self, request: HttpRequest, obj: ModelVersion, form: Any, change: bool) -> None:
        """Save the description and leave an audit event naming the changed fields."""
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            record(
                "model.update",
                obj,
                actor=request.user.get_username(),
                source=Source.ADMIN,
                name=obj.name,
                version=obj.version,
                changed=sorted(form.changed_data),
            )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Show how to register a version above the list."""
        return super().changelist_view(request, {"subtitle": REGISTER_HELP, **(extra_context or {})})

    def _restage(self, request: HttpRequest, queryset: QuerySet[ModelVersion], stage: str) -> None:
        for model_version in queryset:
            try:
                demoted = set_stage(
                    model_version, stage, actor=request.user.get_username(), source=Source.ADMIN
                )
            except RegistryError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            if demoted is not None:
                self.message_user(request, f"Archived {demoted} (was production).", messages.INFO)
            self.message_user(request, f"{model_version.name} v{model_version.version} is now {stage}.")

    @admin.action(description="Promote the selected version to production", permissions=["promote"])
    def promote_to_production(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        """Promote one version; the current production version of its name is archived."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        self._restage(request, queryset, Stage.PRODUCTION)

    @admin.action(description="Move the selected versions to staging", permissions=["promote"])
    def move_to_staging(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        """Move versions to staging (a production one leaves its name without production)."""
        self._restage(request, queryset, Stage.STAGING)

    @admin.action(description="Archive the selected versions", permissions=["promote"])
    def archive(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        """Archive versions; their artifacts stay in MODEL_STORE."""
        self._restage(request, queryset, Stage.ARCHIVED)

    @admin.action(
        description="Roll the selected model names back to their previous production version",
        permissions=["promote"],
    )
    def roll_back(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        """Restore each selected name's previous production version (the current one is archived)."""
        for name in sorted(set(queryset.values_list("name", flat=True))):
            try:
                restored = rollback(name, actor=request.user.get_username(), source=Source.ADMIN)
            except RegistryError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(request, f"{name} v{restored.version} is production again.")

    def has_promote_permission(self, request: HttpRequest) -> bool:
        """Stage actions need registry.promote_modelversion, like the web pages."""
        return request.user.has_perm("registry.promote_modelversion")
