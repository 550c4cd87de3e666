"""``/healthz`` and ``/readyz``: what probes and load balancers see."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection
from django.test import Client


def test_it_answers_liveness_without_touching_the_database(client: Client) -> None:
    # No django_db mark: pytest-django fails the test if the view queries the database.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_it_is_ready_when_the_database_answers(client: Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.content == b"ok"


@pytest.mark.django_db
def test_it_is_not_ready_when_the_database_is_down(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert b"database unavailable" in response.content


def test_it_answers_probes_addressed_to_the_pod_ip(client: Client) -> None:
    # Kubelet sends Host: <pod ip>:<port>, which is not in ALLOWED_HOSTS.
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")

    assert response.status_code == 200


def test_it_still_validates_the_host_of_other_requests(client: Client) -> None:
    response = client.get("/admin/login/", HTTP_HOST="10.1.2.3:8000")

    assert response.status_code == 400
