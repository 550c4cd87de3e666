"""Where the time goes: CPU seconds per component and py-spy profiles of the platform under load.

``CpuMeter`` reads each process's user+system time from /proc before and after a load point, so
the report can say how many milliseconds of CPU one request costs in the api, the worker, the
broker and database, and the load generator itself. ``Profiler`` runs ``py-spy record`` (sampling
only the threads that hold the GIL, i.e. running Python) on the api and worker processes during a
point and turns the collapsed stacks into the report's tables of the most expensive functions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def processes_named(*needles: str) -> list[int]:
    """Processes whose command line contains one of ``needles`` (the broker's and database's)."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(needle in cmdline for needle in needles):
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (processes that are gone count 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


class CpuMeter:
    """CPU seconds per named group of processes between ``start`` and ``stop``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._before: dict[str, float] = {}

    def start(self) -> None:
        """Take the first reading."""
        self._before = {name: cpu_seconds(pids) for name, pids in self.groups.items()}

    def stop(self, requests: int, elapsed_s: float) -> dict[str, dict[str, float]]:
        """Per group: CPU ms per request and the share of one core used."""
        result = {}
        for name, pids in self.groups.items():
            used = cpu_seconds(pids) - self._before[name]
            result[name] = {
                "ms_per_request": used * 1000 / requests if requests else 0.0,
                "cores": used / elapsed_s if elapsed_s else 0.0,
            }
        return result


class Profiler:
    """``py-spy record`` on groups of processes for one load point; collapsed stacks kept per group."""

    def __init__(self, py_spy: Path, out: Path, rate_hz: int = 200) -> None:
        self.py_spy = py_spy
        self.out = out
        self.rate_hz = rate_hz
        self._running: list[tuple[str, Path, subprocess.Popen]] = []

    @property
    def available(self) -> bool:
        """True when py-spy is installed (make bench installs it in the bench venv)."""
        return self.py_spy.exists() or shutil.which(str(self.py_spy)) is not None

    def start(self, groups: dict[str, list[int]], seconds: float) -> None:
        """Sample every process of every group for ``seconds``."""
        self.out.mkdir(parents=True, exist_ok=True)
        for name, pids in groups.items():
            for pid in pids:
                raw = self.out / f".{name}-{pid}.folded"
                args = [str(self.py_spy), "record", "--pid", str(pid)]
                args += ["--duration", str(max(1, round(seconds)))]
                args += ["--rate", str(self.rate_hz), "--format", "raw", "--gil", "--nonblocking"]
                args += ["--output", str(raw)]
                popen = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self._running.append((name, raw, popen))

    def stop(self) -> dict[str, Path]:
        """Wait for the samplers; merge each group's stacks into ``<group>.folded``; return those files."""
        merged: dict[str, list[str]] = {}
        for name, raw, popen in self._running:
            try:
                popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                popen.kill()
            if raw.exists():
                merged.setdefault(name, []).extend(raw.read_text().splitlines())
                raw.unlink()
        self._running = []
        files = {}
        for name, lines in merged.items():
            path = self.out / f"{name}.folded"
            path.write_text("\n".join(lines) + "\n")
            files[name] = path
        return files


def _frame_name(frame: str) -> str:
    """``function (path/to/module.py:12)`` -> ``function (module.py)``: one row per function."""
    function, _, location = frame.partition(" (")
    module = location.split(":", 1)[0].rsplit("/", 1)[-1]
    return f"{function} ({module})" if module else function


def top_functions(folded: Path, limit: int = 15, trunk: float = 0.6) -> dict[str, Any]:
    """The functions with the largest inclusive and self share of the samples in a collapsed-stack file.

    Frames on more than ``trunk`` of the samples (thread bootstrap, the server's and the pool's
    loops, the framework's dispatch) are the trunk every stack shares: they say nothing about
    where the time goes and are left out of the inclusive list.
    """
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_frame_name(frame) for frame in stack.split(";")]
        for name in set(frames):
            inclusive[name] += samples
        own[frames[-1]] += samples
    if not total:
        return {"samples": 0, "inclusive": [], "self": []}
    telling = [(n, c) for n, c in inclusive.most_common() if c <= trunk * total]
    return {
        "samples": total,
        "inclusive": [(n, c / total) for n, c in telling[:limit]],
        "self": [(n, c / total) for n, c in own.most_common(limit)],
    }
