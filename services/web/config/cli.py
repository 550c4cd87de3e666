"""Helpers shared by the management commands of several apps."""

from __future__ import annotations

import getpass
import os


def cli_user() -> str:
    """``cli:<login>`` for created_by columns; the uid when there is no login name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        # Containers often run as a uid without a passwd entry.
        user = f"uid{os.getuid()}"
    return f"cli:{user}"
