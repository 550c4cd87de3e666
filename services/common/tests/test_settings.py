"""Typed env helpers fail loudly and name the variable."""

from __future__ import annotations

import pytest

from inference_common.settings import (
    ConfigError,
    broker_url,
    database_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_secret,
    env_str,
)


def test_it_reads_typed_values_and_defaults():
    env = {"N": " 12 ", "F": "0.5", "B": "yes", "C": "CUDA", "S": "x"}
    assert env_int("N", 1, env=env) == 12
    assert env_int("MISSING", 7, env=env) == 7
    assert env_float("F", 1.0, env=env) == 0.5
    assert env_bool("B", False, env=env) is True
    assert env_bool("MISSING", True, env=env) is True
    assert env_choice("C", "auto", ("auto", "cpu", "cuda"), env=env) == "cuda"
    assert env_str("S", env=env) == "x"


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: env_int("API_PORT", 1, env={"API_PORT": "80a"}), "API_PORT must be an integer"),
        (lambda: env_int("N", 1, minimum=2, env={"N": "1"}), "N must be >= 2"),
        (lambda: env_int("N", 1, maximum=2, env={"N": "3"}), "N must be <= 2"),
        (lambda: env_float("F", 1.0, env={"F": "fast"}), "F must be a number"),
        (lambda: env_bool("B", False, env={"B": "maybe"}), "B must be a boolean"),
        (lambda: env_choice("D", "auto", ("auto", "cpu"), env={"D": "tpu"}), "D must be one of auto, cpu"),
        (lambda: env_str("REQUIRED", env={}), "REQUIRED is required"),
    ],
)
def test_it_refuses_bad_values_naming_the_variable(call, needle):
    with pytest.raises(ConfigError, match=needle):
        call()


def test_a_secret_can_come_from_a_file(tmp_path):
    secret = tmp_path / "url"
    secret.write_text("postgres://u:p@db/x\n")
    assert env_secret("DATABASE_URL", env={"DATABASE_URL_FILE": str(secret)}) == "postgres://u:p@db/x"
    assert database_url({"DATABASE_URL_FILE": str(secret)}) == "postgres://u:p@db/x"


def test_a_secret_set_twice_or_unreadable_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        env_secret("X", env={"X": "a", "X_FILE": str(tmp_path / "f")})
    with pytest.raises(ConfigError, match="cannot be read"):
        env_secret("X", env={"X_FILE": str(tmp_path / "missing")})


def test_unset_urls_fall_back_to_the_embedded_stack():
    assert broker_url({}).startswith("filesystem://")
    assert database_url({}).startswith("sqlite:///")
