"""Fuzz every operation of /openapi.json with schemathesis, with a valid key and without one.

Each generated case is sent twice (authorized, then anonymous) to the real
api in front of a real worker, RabbitMQ and PostgreSQL. No answer may be a
5xx, use a status the spec does not list, or violate its response schema.
Generation is derandomized (a fixed seed): a failure reproduces on re-run.
"""

from __future__ import annotations

import collections

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from inference_api.openapi import build_spec

# Loaded from the api's own builder at collection time (schemathesis's lazy,
# fixture-based loader does not work with pytest 9); the first test proves the
# running api serves exactly this document.
SPEC = build_spec()
schema = schemathesis.openapi.from_dict(SPEC)

#: Examples per operation; each is sent twice (with and without a key).
EXAMPLES_PER_OPERATION = 75
#: Requests actually sent, by (method path, authorized): the count test reads it.
SENT: collections.Counter[tuple[str, bool]] = collections.Counter()
#: Statuses of those requests, to show how deep the fuzzing reached (200s went through a worker).
STATUSES: collections.Counter[tuple[str, int]] = collections.Counter()
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def test_it_serves_the_document_that_is_fuzzed(fuzz_stack) -> None:
    assert requests.get(f"{fuzz_stack.url}/openapi.json", timeout=10).json() == SPEC


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_it_answers_every_generated_request_within_its_schema(case, fuzz_stack, fuzz_key, models) -> None:
    operation = f"{case.method.upper()} {case.path}"
    # Random names only ever reach the 404 branch: every other case names a real
    # model (and version), so generated bodies meet real decoding and a real worker.
    params = case.path_parameters or {}
    if "name" in params and sum(n for (op, _), n in SENT.items() if op == operation) % 4 < 2:
        params["name"] = "binary"
        if "version" in params:
            params["version"] = models["binary"].version
    anonymous = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    authorized = {**anonymous, "Authorization": f"Bearer {fuzz_key}"}
    # Set on the case itself: schemathesis drops a ``headers=`` override from cases it
    # generated to test a missing security scheme, and those would never carry the key.
    case.headers = authorized
    response = case.call_and_validate(base_url=fuzz_stack.url, checks=CHECKS, timeout=30)
    SENT[(operation, True)] += 1
    STATUSES[("key", response.status_code)] += 1
    case.headers = anonymous
    response = case.call_and_validate(base_url=fuzz_stack.url, checks=CHECKS, timeout=30)
    SENT[(operation, False)] += 1
    STATUSES[("anon", response.status_code)] += 1


def test_it_sent_at_least_2000_requests_across_all_operations() -> None:
    found = [result.ok() for result in schema.get_all_operations()]
    operations = {f"{op.method.upper()} {op.path}" for op in found}
    total = sum(SENT.values())
    # Requests with a method an operation does not have (schemathesis checks the 405s) count too.
    undocumented = sum(n for (op, _), n in SENT.items() if op not in operations)
    summary = ", ".join(f"{op}: {SENT[(op, True)]}+{SENT[(op, False)]}" for op in sorted(operations))
    print(f"\nschemathesis sent {total} requests ({undocumented} with undocumented methods)")
    print(f"key+anon per operation: {summary}")
    print(f"statuses: {dict(sorted(STATUSES.items()))}")
    assert total >= 2000
    # Every operation was fuzzed both with a valid key and without one.
    assert all(SENT[(op, True)] and SENT[(op, False)] for op in operations), summary
