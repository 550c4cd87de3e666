"""Helpers shared by the browser tests (tests/browser)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, expect


@dataclass(frozen=True)
class Site:
    """Where the platform under test answers, and who logs in."""

    api: str
    web: str
    admin_user: str
    admin_password: str
    timeout: float
    screenshots: Path | None

    def url(self, path: str) -> str:
        """Absolute web URL of ``path``."""
        return f"{self.web}{path}"


def log_in(page: Page, site: Site, username: str, password: str) -> None:
    """Sign in through the login form and wait for the landing page."""
    page.goto(site.url("/accounts/login/"))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    expect(page.locator("header .user")).to_contain_text(username)
