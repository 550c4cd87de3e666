"""``create_api_key`` and ``revoke_api_key``: keys are shown once and only their digest is stored."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.management import CommandError

from apikeys.models import ApiKey
from inference_common.keys import hash_key, parse_prefix, verify_key

pytestmark = pytest.mark.django_db


def test_it_prints_the_raw_key_last_and_stores_only_its_hash(run_command: Callable[..., list[str]]) -> None:
    lines = run_command("create_api_key", "ci-bot")

    raw = lines[-1]
    prefix = parse_prefix(raw)
    assert prefix is not None
    api_key = ApiKey.objects.get(prefix=prefix)
    assert api_key.key_hash == hash_key(raw)
    assert verify_key(raw, api_key.key_hash)
    assert api_key.name == "ci-bot"
    assert api_key.scopes == ["jobs", "predict"]
    assert api_key.rate_limit_per_minute == 600
    assert api_key.revoked is False
    assert api_key.created_by.startswith("cli:")
    assert f"prefix {prefix}" in lines[-2]


def test_it_never_stores_the_raw_key(run_command: Callable[..., list[str]]) -> None:
    raw = run_command("create_api_key", "ci-bot")[-1]
    secret = raw.split("_", 2)[2]

    stored = ApiKey.objects.values().get()

    assert all(secret not in str(value) for value in stored.values())


def test_it_gives_every_key_its_own_prefix(run_command: Callable[..., list[str]]) -> None:
    keys = {run_command("create_api_key", "same-name")[-1] for _ in range(5)}

    assert len(keys) == 5
    assert ApiKey.objects.values("prefix").distinct().count() == 5


def test_it_stores_the_requested_scopes_and_rate_limit(run_command: Callable[..., list[str]]) -> None:
    raw = run_command("create_api_key", "batch", "--scopes", " jobs ", "--rate-limit", "0")[-1]

    api_key = ApiKey.objects.get(prefix=parse_prefix(raw))
    assert api_key.scopes == ["jobs"]
    assert api_key.rate_limit_per_minute == 0


@pytest.mark.parametrize("scopes", ["admin", "predict,delete", "", " , "])
def test_it_rejects_unknown_or_empty_scopes(scopes: str, run_command: Callable[..., list[str]]) -> None:
    with pytest.raises(CommandError, match="scope"):
        run_command("create_api_key", "bad", "--scopes", scopes)

    assert not ApiKey.objects.exists()


def test_it_rejects_a_negative_rate_limit(run_command: Callable[..., list[str]]) -> None:
    with pytest.raises(CommandError, match="rate-limit"):
        run_command("create_api_key", "bad", "--rate-limit", "-5")


def test_it_rejects_an_overlong_name(run_command: Callable[..., list[str]]) -> None:
    with pytest.raises(CommandError, match="1-100 characters"):
        run_command("create_api_key", "x" * 101)


def test_it_revokes_a_key_by_prefix(run_command: Callable[..., list[str]]) -> None:
    prefix = parse_prefix(run_command("create_api_key", "leaked")[-1])
    assert prefix is not None

    lines = run_command("revoke_api_key", prefix)

    api_key = ApiKey.objects.get(prefix=prefix)
    assert api_key.revoked is True
    assert api_key.revoked_at is not None
    assert "Revoked" in lines[-1]


def test_it_keeps_the_first_revocation_time_when_revoked_twice(run_command: Callable[..., list[str]]) -> None:
    prefix = parse_prefix(run_command("create_api_key", "leaked")[-1])
    assert prefix is not None
    run_command("revoke_api_key", prefix)
    first = ApiKey.objects.get(prefix=prefix).revoked_at

    lines = run_command("revoke_api_key", prefix)

    assert ApiKey.objects.get(prefix=prefix).revoked_at == first
    assert "already revoked" in lines[-1]


def test_it_rejects_an_unknown_prefix(run_command: Callable[..., list[str]]) -> None:
    with pytest.raises(CommandError, match="no API key with prefix"):
        run_command("revoke_api_key", "deadbeef")
