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


def test_an_empty_value_falls_back_to_the_default():
    env = {"S": "", "N": "  ", "F": ""}
    assert env_str("S", "fallback", env=env) == "fallback"
    assert env_int("N", 5, env=env) == 5
    assert env_float("F", 2.5, env=env) == 2.5


def test_an_empty_boolean_means_false_even_with_a_true_default():
    # "FLAG=" in an env file is an explicit "off", unlike a missing variable.
    assert env_bool("FLAG", True, env={"FLAG": ""}) is False
    assert env_bool("FLAG", True, env={"FLAG": " OFF "}) is False
    assert env_bool("FLAG", False, env={"FLAG": "On"}) is True


def test_a_default_outside_the_bounds_is_refused_too():
    with pytest.raises(ConfigError, match="W must be >= 1, got 0"):
        env_int("W", 0, minimum=1, env={})
    with pytest.raises(ConfigError, match=r"T must be >= 0\.1, got 0\.0"):
        env_float("T", 0.0, minimum=0.1, env={})


def test_a_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_a_file_secret_is_stripped_and_a_missing_secret_uses_its_default(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("  s3cret \n\n")
    assert env_secret("TOKEN", env={"TOKEN_FILE": str(secret)}) == "s3cret"
    assert env_secret("TOKEN", "dflt", env={}) == "dflt"
    assert env_secret("TOKEN", env={"TOKEN": "direct"}) == "direct"
    with pytest.raises(ConfigError, match="TOKEN is required"):
        env_secret("TOKEN", env={})


def test_an_unreadable_secret_file_names_the_variable_and_path(tmp_path):
    folder = tmp_path / "a-directory"
    folder.mkdir()
    with pytest.raises(ConfigError) as caught:
        env_secret("BROKER_URL", env={"BROKER_URL_FILE": str(folder)})
    assert str(caught.value).startswith(f"BROKER_URL_FILE={folder} cannot be read: ")


def test_the_broker_url_can_be_a_mounted_secret(tmp_path):
    secret = tmp_path / "broker"
    secret.write_text("amqp://u:p@rabbit:5672/vh\n")
    assert broker_url({"BROKER_URL_FILE": str(secret)}) == "amqp://u:p@rabbit:5672/vh"
    with pytest.raises(ConfigError, match="not both"):
        broker_url({"BROKER_URL_FILE": str(secret), "BROKER_URL": "amqp://other"})
