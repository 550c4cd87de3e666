"""``manage.py selftest --api-url URL``: one real prediction through the whole platform.

Used by the chart's ``helm test`` hook and by operators after an install:
it trains a tiny model, registers it (staging, so production traffic is
untouched), issues a short-lived key, predicts through the api over both
protocols, checks the answers equal the model's own predict, and revokes the key.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.error
import urllib.request
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

import numpy as np
import xgboost
from django.core.management.base import BaseCommand, CommandError

from apikeys.services import issue_key, revoke_key
from audit.models import Source
from config.cli import cli_user
from inference_common.settings import model_store
from registry.services import register_model

MODEL_NAME = "selftest"


def _post(url: str, body: dict[str, Any], key: str, timeout: float) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class Command(BaseCommand):
    """Check the platform end to end with a throwaway model version and key."""

    help = "Register a tiny model, predict through the api (v1 and v2) and verify the answers."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare the command-line options."""
        parser.add_argument("--api-url", required=True, help="base URL of the api, e.g. http://api:8080")
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for answers")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the check; raise CommandError with the reason if anything differs."""
        api = options["api_url"].rstrip("/")
        timeout = options["timeout"]
        rng = np.random.default_rng(7)
        features = rng.normal(size=(64, 4)).astype(np.float32)
        labels = (features[:, 0] + features[:, 1] > 0).astype(np.float32)
        booster = xgboost.train(
            {"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
            xgboost.DMatrix(features, label=labels),
            5,
        )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "selftest.ubj"
            booster.save_model(path)
            version = register_model(
                name=MODEL_NAME,
                path=path,
                store=model_store(),
                description="helm test",
                created_by=cli_user(),
                source=Source.CLI,
            ).model_version.version
        issued = issue_key(
            name=f"selftest-{version}",
            scopes=["predict"],
            rate_limit_per_minute=0,
            created_by=cli_user(),
            source=Source.CLI,
        )
        try:
            rows = features[:3]
            expected = booster.predict(xgboost.DMatrix(rows))
            v2_url = f"{api}/v2/models/{MODEL_NAME}/versions/{version}/infer"
            v2_body = {
                "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": rows.ravel().tolist()}]
            }
            # The api caches the registry for a few seconds: wait for the new version.
            deadline = time.monotonic() + timeout
            while True:
                status, body = _post(v2_url, v2_body, issued.raw, timeout)
                if status != 404 or time.monotonic() > deadline:
                    break
                time.sleep(1)
            if status != 200:
                raise CommandError(f"v2 infer answered {status}: {body}")
            v2 = np.asarray(body["outputs"][0]["data"], dtype=np.float32)
            status, body = _post(
                f"{api}/v1/models/{MODEL_NAME}/versions/{version}:predict",
                {"instances": rows.tolist()},
                issued.raw,
                timeout,
            )
            if status != 200:
                raise CommandError(f"v1 predict answered {status}: {body}")
            v1 = np.asarray(body["predictions"], dtype=np.float32)
            if not (np.array_equal(v1, expected) and np.array_equal(v2, expected)):
                raise CommandError(f"answers differ from the model's own predict: {v1} {v2} != {expected}")
        finally:
            revoke_key(issued.api_key, actor=cli_user(), source=Source.CLI)
        self.stdout.write(f"{MODEL_NAME} version {version}: v1 and v2 answers equal the model's own predict")
        self.stdout.write("selftest passed")
