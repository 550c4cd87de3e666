"""The demo: train a model, register it, start the stack, predict through both protocols.

Run by ``make demo``. Works on a machine with no services: without
BROKER_URL/DATABASE_URL the stack uses SQLite and a file-based broker.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import xgboost
from sklearn.datasets import load_breast_cancer

ROOT = Path(__file__).resolve().parents[1]
MANAGE = [sys.executable, str(ROOT / "services" / "web" / "manage.py")]
API = f"http://127.0.0.1:{os.environ.get('API_PORT', '8080')}"
WEB = f"http://127.0.0.1:{os.environ.get('WEB_PORT', '8000')}"
MODEL_NAME = "breast-cancer"


def manage(*args: str, env: dict[str, str] | None = None) -> str:
    """Run a Django management command and return its last output line."""
    result = subprocess.run([*MANAGE, *args], check=True, capture_output=True, text=True, env=env)
    return result.stdout.strip().splitlines()[-1]


def train(path: Path) -> tuple[xgboost.Booster, np.ndarray]:
    """Train a small binary classifier on scikit-learn's bundled data set."""
    data = load_breast_cancer()
    names = [name.replace(" ", "_") for name in data.feature_names]
    matrix = xgboost.DMatrix(data.data, label=data.target, feature_names=names)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "nthread": 1}, matrix, 50
    )
    booster.save_model(path)
    return booster, data.data.astype(np.float32)


def post(path: str, body: dict, key: str) -> dict:
    """POST JSON with the demo key and return the decoded answer."""
    request = urllib.request.Request(
        API + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def prepare() -> tuple[xgboost.Booster, np.ndarray, str, str]:
    """Train and register the demo model, create a key and an admin login.

    Returns the booster, its rows, the raw API key and the admin password.
    """
    work = ROOT / "var" / "demo"
    work.mkdir(parents=True, exist_ok=True)
    model_file = work / "breast_cancer.json"
    booster, rows = train(model_file)
    print(f"trained {model_file.relative_to(ROOT)} (50 trees, 30 features)")

    subprocess.run([*MANAGE, "migrate", "--noinput", "-v", "0"], check=True)
    version = manage(
        "register_model", "--name", MODEL_NAME, "--file", str(model_file), "--stage", "production"
    )
    print(f"registered {MODEL_NAME} version {version} (production)")
    key = manage("create_api_key", "demo", "--scopes", "predict,jobs")
    print(f"created API key demo: {key}")
    password = secrets.token_urlsafe(12)
    env = {**os.environ, "DJANGO_SUPERUSER_PASSWORD": password}
    manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; U = get_user_model(); "
        "u = U.objects.filter(username='admin').first() or U(username='admin', email='admin@example.com'); "
        "u.is_staff = u.is_superuser = True; import os; "
        "u.set_password(os.environ['DJANGO_SUPERUSER_PASSWORD']); u.save()",
        env=env,
    )
    return booster, rows, key, password


def main(argv: list[str]) -> int:
    """Run the demo end to end (``--prepare-only``: set up and print shell exports, start nothing)."""
    if "--prepare-only" in argv:
        # Progress lines go to stderr so `eval "$(demo.py --prepare-only)"` sees only exports.
        sys.stdout, real_stdout = sys.stderr, sys.stdout
        _, _, key, password = prepare()
        sys.stdout = real_stdout
        print(f"export E2E_API_KEY={key} E2E_MODEL={MODEL_NAME}")
        print(f"export E2E_ADMIN_USER=admin E2E_ADMIN_PASSWORD={password}")
        return 0
    booster, rows, key, password = prepare()
    subprocess.run([str(ROOT / "scripts" / "stack.sh"), "up"], check=True)

    sample = rows[:3]
    expected = booster.predict(xgboost.DMatrix(sample, feature_names=booster.feature_names))
    v1 = post(f"/v1/models/{MODEL_NAME}:predict", {"instances": sample.tolist()}, key)
    v2 = post(
        f"/v2/models/{MODEL_NAME}/infer",
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(sample.shape),
                    "datatype": "FP32",
                    "data": sample.reshape(-1).tolist(),
                }
            ]
        },
        key,
    )
    print("\nKServe v1   POST /v1/models/breast-cancer:predict")
    print("  predictions:", [round(p, 6) for p in v1["predictions"]])
    print("Open Inference Protocol v2   POST /v2/models/breast-cancer/infer")
    print("  outputs:    ", [round(p, 6) for p in v2["outputs"][0]["data"]])
    print("model's own predict:", [round(float(p), 6) for p in expected])
    same = np.allclose(v1["predictions"], expected, rtol=0, atol=0) and np.allclose(
        v2["outputs"][0]["data"], expected, rtol=0, atol=0
    )
    print("identical to the model's own predict:", same)

    print(f"\nAPI:        {API}   (try: curl {API}/v2/models/{MODEL_NAME} -H 'Authorization: Bearer {key}')")
    print(f"OpenAPI:    {API}/openapi.json")
    print(f"Metrics:    {API}/metrics")
    print(f"Web UI:     {WEB}/   (user admin, password {password}; admin at /admin/)")
    print(f"Batches:    {WEB}/batches/   Training: {WEB}/models/train/   (trainer log: var/run/trainer.log)")
    print("Stop the stack with: make down")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
