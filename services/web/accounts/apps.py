"""Accounts, roles and the page layout every product page extends."""

from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """The ``accounts`` app: login/logout, the four role groups, base templates."""

    name = "accounts"
    verbose_name = "Accounts and roles"
