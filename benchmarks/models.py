"""The two benchmark models and their rows, trained the same way on every run (fixed seeds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xgboost
from sklearn.datasets import make_classification

#: name -> (trees, depth, features), as issue #8 fixes them.
SPECS = {"small": (100, 6, 20), "large": (500, 8, 100)}
#: Enough rows for the largest in-process batch (65536) and for the async jobs.
ROWS = 65536
TRAIN_ROWS = 4000


@dataclass(frozen=True)
class BenchModel:
    """A trained binary classifier, where it is saved, and rows to send it."""

    name: str
    trees: int
    depth: int
    features: int
    booster: xgboost.Booster
    path: Path
    rows: np.ndarray

    def expected(self, rows: np.ndarray) -> np.ndarray:
        """The model's own prediction: what every system under test must answer."""
        return self.booster.inplace_predict(rows)


def train_all(folder: Path) -> dict[str, BenchModel]:
    """Train the small and large models (one thread, seeded) and save them as ``<name>.ubj``."""
    folder.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, (trees, depth, features) in SPECS.items():
        x, y = make_classification(
            n_samples=ROWS, n_features=features, n_informative=min(features, 12), random_state=8
        )
        x = x.astype(np.float32)
        names = [f"f{i}" for i in range(features)]
        matrix = xgboost.DMatrix(x[:TRAIN_ROWS], label=y[:TRAIN_ROWS], feature_names=names)
        params = {"objective": "binary:logistic", "max_depth": depth, "nthread": 1, "seed": 8}
        booster = xgboost.train(params, matrix, trees)
        path = folder / f"{name}.ubj"
        booster.save_model(path)
        result[name] = BenchModel(name, trees, depth, features, booster, path, x)
    return result
