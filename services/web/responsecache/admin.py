"""Admin of response cache policies; every change goes through ``responsecache.services`` (audited)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.models import Source
from audit.services import record
from responsecache.forms import AdminResponseCachePolicyForm
from responsecache.models import ResponseCachePolicy
from responsecache.services import clear, save_policy
from responsecache.views import CHANGE_PERMISSION


@admin.register(ResponseCachePolicy)
class ResponseCachePolicyAdmin(admin.ModelAdmin):
    """Per model name: cache on or off, TTL, size bound; the generation only moves forward."""

    form = AdminResponseCachePolicyForm
    list_display = ("model_name", "enabled", "ttl_s", "max_entries", "generation", "updated_at", "updated_by")
    list_filter = ("enabled",)
    search_fields = ("model_name",)
    readonly_fields = ("generation", "updated_at", "updated_by")
    actions = ("clear_answers",)

    def get_readonly_fields(self, request: HttpRequest, obj: ResponseCachePolicy | None = None) -> Any:
        """The model name is fixed once a policy exists."""
        fixed = ("model_name",) if obj is not None else ()
        return (*fixed, *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: ResponseCachePolicy, form: Any, change: bool) -> None:
        """Save with an audit event (source=admin)."""
        save_policy(obj, actor=request.user.get_username(), source=Source.ADMIN)

    def delete_model(self, request: HttpRequest, obj: ResponseCachePolicy) -> None:
        """Deleting a policy turns the cache off for its model name; audited."""
        with transaction.atomic():
            record(
                "response_cache_policy.delete",
                obj,
                actor=request.user.get_username(),
                source=Source.ADMIN,
                model_name=obj.model_name,
            )
            obj.delete()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ResponseCachePolicy]) -> None:
        """Bulk deletes are audited one policy at a time."""
        for policy in queryset:
            self.delete_model(request, policy)

    @admin.action(description="Clear the cached answers of the selected models", permissions=["change"])
    def clear_answers(self, request: HttpRequest, queryset: QuerySet[ResponseCachePolicy]) -> None:
        """Start a new generation for each selected model name."""
        for policy in queryset:
            cleared = clear(policy, actor=request.user.get_username(), source=Source.ADMIN)
            self.message_user(
                request,
                f"Cleared the cached answers of {cleared.model_name} (generation {cleared.generation}).",
                messages.SUCCESS,
            )

    # The policy decides what answers a model's clients, like a stage change:
    # the registry's permissions apply, so the roles need no new ones.
    def has_module_permission(self, request: HttpRequest) -> bool:
        """Shown to whoever may see the registry."""
        return request.user.has_perm("registry.view_modelversion")

    def has_view_permission(self, request: HttpRequest, obj: ResponseCachePolicy | None = None) -> bool:
        """Whoever may see the registry may see the policies."""
        return request.user.has_perm("registry.view_modelversion")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Needs the permission that changes stages."""
        return request.user.has_perm(CHANGE_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj: ResponseCachePolicy | None = None) -> bool:
        """Needs the permission that changes stages."""
        return request.user.has_perm(CHANGE_PERMISSION)

    def has_delete_permission(self, request: HttpRequest, obj: ResponseCachePolicy | None = None) -> bool:
        """Needs the permission that changes stages."""
        return request.user.has_perm(CHANGE_PERMISSION)
