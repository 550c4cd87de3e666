"""Black-box e2e fixtures: everything comes from the environment.

The same suite runs against the local process stack (scripts/e2e-local.sh, in
``make test``) and against a kind cluster (``make e2e-kind``).

  E2E_API_URL, E2E_WEB_URL     base URLs (default http://127.0.0.1:8080 / :8000)
  E2E_API_KEY                  a key with the predict and jobs scopes (required)
  E2E_MODEL                    a model with a production version (default breast-cancer)
  E2E_ADMIN_USER/PASSWORD      a staff login for the audit-trail checks (required)
  E2E_TIMEOUT                  seconds to wait for asynchronous results (default 60)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pytest
import requests


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} must be set for the e2e suite (see tests/e2e/conftest.py)", pytrace=False)
    return value


@dataclass(frozen=True)
class Target:
    """Where the platform under test answers, and how to authenticate."""

    api: str
    web: str
    key: str
    model: str
    admin_user: str
    admin_password: str
    timeout: float

    def auth(self, key: str | None = None) -> dict[str, str]:
        """Authorization header for ``key`` (default: the suite's key)."""
        return {"Authorization": f"Bearer {key or self.key}"}


@pytest.fixture(scope="session")
def target() -> Target:
    """The platform under test."""
    return Target(
        api=os.environ.get("E2E_API_URL", "http://127.0.0.1:8080").rstrip("/"),
        web=os.environ.get("E2E_WEB_URL", "http://127.0.0.1:8000").rstrip("/"),
        key=_required("E2E_API_KEY"),
        model=os.environ.get("E2E_MODEL", "breast-cancer"),
        admin_user=_required("E2E_ADMIN_USER"),
        admin_password=_required("E2E_ADMIN_PASSWORD"),
        timeout=float(os.environ.get("E2E_TIMEOUT", "60")),
    )


@pytest.fixture(scope="session")
def n_features(target: Target) -> int:
    """Feature count of the model, read from its v2 metadata."""
    body = requests.get(f"{target.api}/v2/models/{target.model}", headers=target.auth(), timeout=30).json()
    return int(body["inputs"][0]["shape"][1])


@pytest.fixture(scope="session")
def admin(target: Target) -> requests.Session:
    """A session logged in to the Django admin (for the audit trail)."""
    session = requests.Session()
    login = f"{target.web}/admin/login/"
    page = session.get(login, timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, "admin login page has no CSRF token"
    response = session.post(
        login,
        data={
            "csrfmiddlewaretoken": token.group(1),
            "username": target.admin_user,
            "password": target.admin_password,
            "next": "/admin/",
        },
        headers={"Referer": login},
        timeout=30,
    )
    assert response.status_code == 200
    assert "logout" in response.text.lower(), "admin login failed: check E2E_ADMIN_USER/PASSWORD"
    return session
