"""Browser tests: the web tier driven in headless Chromium through Playwright.

Like the e2e suite, they talk only to base URLs from the environment, so they
run against any stack (scripts/e2e-local.sh runs them in ``make test``):

  E2E_API_URL, E2E_WEB_URL     base URLs (default http://127.0.0.1:8080 / :8000)
  E2E_ADMIN_USER/PASSWORD      a user with the admin role (required)
  CHROMIUM                     the browser binary (default /usr/bin/chromium, Debian's package)
  SCREENSHOT_DIR               where to save screenshots of the main pages (unset: none saved)
  E2E_TIMEOUT                  seconds to wait for asynchronous results (default 60)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from support.browsing import Site, log_in


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} must be set (see tests/browser/conftest.py)", pytrace=False)
    return value


@pytest.fixture(scope="session")
def site() -> Site:
    """The platform under test."""
    screenshots = os.environ.get("SCREENSHOT_DIR")
    return Site(
        api=os.environ.get("E2E_API_URL", "http://127.0.0.1:8080").rstrip("/"),
        web=os.environ.get("E2E_WEB_URL", "http://127.0.0.1:8000").rstrip("/"),
        admin_user=_required("E2E_ADMIN_USER"),
        admin_password=_required("E2E_ADMIN_PASSWORD"),
        timeout=float(os.environ.get("E2E_TIMEOUT", "60")),
        screenshots=Path(screenshots) if screenshots else None,
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless (Playwright downloads no browser of its own)."""
    executable = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).is_file():
        pytest.fail(f"no chromium at {executable}: run scripts/ensure-chromium.sh", pytrace=False)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    """A fresh browser context signed in as the admin user."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(site.timeout * 1000)
    page = context.new_page()
    log_in(page, site, site.admin_user, site.admin_password)
    yield page
    context.close()


@pytest.fixture(scope="session")
def shoot(site: Site) -> Callable[[Page, str], None]:
    """``shoot(page, name)`` saves a full-page screenshot when SCREENSHOT_DIR is set."""

    def save(page: Page, name: str) -> None:
        if site.screenshots is None:
            return
        site.screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(site.screenshots / f"{name}.png"), full_page=True)

    return save
