"""Typed environment helpers that fail loudly on a bad value.

Every service reads its configuration through these, so a typo in a
deployment (``API_PORT=80a``) stops the process at start with a message that
names the variable, instead of surfacing later as a confusing runtime error.
Secrets may also come from a file named by ``<NAME>_FILE`` (Kubernetes and
Docker secrets are mounted as files).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A configuration variable is missing or has a value that cannot be used."""


def _raw(name: str, env: Mapping[str, str] | None) -> str | None:
    source = os.environ if env is None else env
    return source.get(name)


def env_str(name: str, default: str | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """Return ``name`` as a string; raise ConfigError if unset and no default."""
    value = _raw(name, env)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default
    return value


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Return ``name`` as an int within the optional bounds."""
    value = _raw(name, env)
    if value is None or value.strip() == "":
        result = default
    else:
        try:
            result = int(value.strip())
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and result < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {result}")
    if maximum is not None and result > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {result}")
    return result


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    env: Mapping[str, str] | None = None,
) -> float:
    """Return ``name`` as a float, optionally bounded below."""
    value = _raw(name, env)
    if value is None or value.strip() == "":
        result = default
    else:
        try:
            result = float(value.strip())
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if minimum is not None and result < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {result}")
    return result


def env_bool(name: str, default: bool, *, env: Mapping[str, str] | None = None) -> bool:
    """Return ``name`` as a bool; accepts 1/0, true/false, yes/no, on/off."""
    value = _raw(name, env)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {value!r}")


def env_choice(
    name: str, default: str, choices: Sequence[str], *, env: Mapping[str, str] | None = None
) -> str:
    """Return ``name`` if it is one of ``choices``."""
    value = env_str(name, default, env=env).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def env_secret(name: str, default: str | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """Return a secret from ``<name>_FILE`` (a mounted file) or from ``name``.

    Setting both is refused: it is ambiguous which one the operator meant.
    """
    file_var = f"{name}_FILE"
    path = _raw(file_var, env)
    direct = _raw(name, env)
    if path and direct:
        raise ConfigError(f"set either {name} or {file_var}, not both")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{file_var}={path} cannot be read: {exc.strerror}") from None
    return env_str(name, default, env=env)


def repo_root() -> Path:
    """The repository root, used for the default paths of the local stack."""
    return Path(__file__).resolve().parents[3]


def model_store(env: Mapping[str, str] | None = None) -> Path:
    """Directory that holds registered model artifacts (``MODEL_STORE``)."""
    return Path(env_str("MODEL_STORE", str(repo_root() / "var" / "models"), env=env))


def broker_url(env: Mapping[str, str] | None = None) -> str:
    """``BROKER_URL``, or the embedded file-based transport when unset."""
    default = f"filesystem://{repo_root() / 'var' / 'broker'}"
    return env_secret("BROKER_URL", default, env=env)


def database_url(env: Mapping[str, str] | None = None) -> str:
    """``DATABASE_URL``, or the embedded SQLite database when unset."""
    default = f"sqlite:///{repo_root() / 'var' / 'db.sqlite3'}"
    return env_secret("DATABASE_URL", default, env=env)
