"""``.env.example`` lists every variable the services read through the settings helpers."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
READ = re.compile(r"env_(?:str|int|float|bool|choice|secret)\(\s*\"([A-Z][A-Z0-9_]+)\"")


def test_every_variable_read_by_a_service_is_in_the_env_example() -> None:
    names: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        if "tests" not in path.parts:
            names.update(READ.findall(path.read_text()))
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert len(names) > 40, "the pattern no longer finds the settings helpers' calls"
    assert sorted(names - listed) == []
