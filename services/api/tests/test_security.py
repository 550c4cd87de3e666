"""Presented API keys never reach a log record, whatever the answer.

The integration suite checks the access log of a served request
(tests/integration/test_logs.py) and every span (test_traces.py); this covers
the refusal paths too, with every logger at DEBUG.
"""

from __future__ import annotations

import logging

import pytest


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_it_never_logs_a_presented_key_on_any_answer(client, keys, caplog):
    unknown = "ipk_0badc0de_" + "s3cr3t" * 6
    # Keys are ipk_<prefix>_<secret>; the secret is base64url, so it may hold "_" itself.
    wrong_secret = "_".join(keys.full.split("_", 2)[:2]) + "_" + "x" * 43
    presented = [keys.full, keys.predict_only, keys.revoked, keys.limited, unknown, wrong_secret]
    caplog.set_level(logging.DEBUG)
    statuses = set()
    for key in presented:
        for method, path, body in (
            ("post", "/v1/models/iris:predict", {"instances": "bad"}),
            ("post", "/v2/models/iris/infer", {"inputs": []}),
            ("post", "/v1/models/missing:predict", {"instances": [[1, 2, 3, 4]]}),
            ("post", "/v1/models/iris/jobs", {"instances": "bad"}),
            ("get", "/v1/jobs/00000000-0000-0000-0000-000000000000", None),
        ):
            response = getattr(client, method)(path, json=body, headers=_auth(key))
            statuses.add(response.status_code)
    # Served, refused for scope, revoked, unknown, rate-limited: the paths were all taken.
    assert {400, 401, 403, 404, 429} <= statuses, statuses
    assert caplog.records, "nothing was captured: the check below would be vacuous"
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__}" for r in caplog.records)
    for key in presented:
        secret = key.split("_", 2)[2]
        assert secret not in logged


@pytest.mark.parametrize("header", ["Bearer ipk_deadbeef_" + "p" * 40, "Basic dXNlcjpwYXNzd29yZA=="])
def test_an_invalid_key_is_not_echoed_in_the_error_body(client, header):
    response = client.post("/v1/models/iris:predict", json={}, headers={"Authorization": header})
    assert response.status_code == 401
    assert header.split()[1] not in response.get_data(as_text=True)
