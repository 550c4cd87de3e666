"""PNG plots of a run's results.json; runs in the bench venv (matplotlib), stdlib otherwise.

Usage: ``python benchmarks/plot.py OUT_DIR`` (reads OUT_DIR/results.json, writes three PNGs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _label(p: dict[str, Any]) -> str:
    label = f"{p['system']} {p['api']}"
    return label if p["system"] == "naive" else f"{label} batching {p['batching']}"


#: One line style per system, so the platform's lines stand apart from the peers' at a glance.
STYLES = {"platform": "-", "naive": "--", "mlserver": ":"}


def _style(label: str) -> str:
    return STYLES.get(label.split()[0], "-")


def _series(points: list[dict], model: str) -> dict[str, list[dict]]:
    series: dict[str, list[dict]] = {}
    for p in points:
        if p["model"] == model and p["mode"] == "open":
            series.setdefault(_label(p), []).append(p)
    return series


def main(out: Path) -> None:
    """Write throughput.png, latency.png and inprocess.png into ``out``."""
    results = json.loads((out / "results.json").read_text())
    models = list(results.get("models", {}))
    points = results["points"]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for label, series in _series(points, model).items():
            ax.plot(
                [p["offered_rps"] for p in series],
                [p["achieved_rps"] for p in series],
                marker="o",
                linestyle=_style(label),
                label=label,
            )
        top = max((p["offered_rps"] for p in points), default=1)
        ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="achieved = offered")
        ax.set(title=f"{model} model: throughput", xlabel="offered load (req/s)", ylabel="answered (req/s)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)

    fig, axes = plt.subplots(2, len(models), figsize=(6 * len(models), 8), squeeze=False)
    for col, model in enumerate(models):
        for row, key in enumerate(("p50_ms", "p99_ms")):
            ax = axes[row][col]
            for label, series in _series(points, model).items():
                ax.plot(
                    [p["offered_rps"] for p in series],
                    [p[key] for p in series],
                    marker="o",
                    linestyle=_style(label),
                    label=label,
                )
            ax.set(
                title=f"{model} model: {key[:3]} latency",
                xlabel="offered load (req/s)",
                ylabel="ms",
                yscale="log",
            )
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for model, series in results["inprocess"].items():
        ax.plot([p["batch"] for p in series], [p["rows_s"] for p in series], marker="o", label=model)
    ax.set(
        title="in-process limit (inplace_predict, 1 thread)",
        xlabel="batch size (rows)",
        ylabel="rows/s",
        xscale="log",
        yscale="log",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "inprocess.png", dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
