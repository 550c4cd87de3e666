"""Read-only admin for the audit trail: events are evidence, so nobody edits them."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Lists and filters events; adding, changing and deleting are refused."""

    list_display = ("created_at", "actor", "source", "action", "object_repr")
    list_filter = ("source", "action", "object_type")
    search_fields = ("actor", "object_repr", "object_id")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Events are written by the services only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        """Events never change."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        """Events are kept."""
        return False
