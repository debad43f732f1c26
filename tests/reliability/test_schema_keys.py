"""Schemathesis against the OpenAPI schema, with API keys off (a --dev service) and on (an admin
key, and a read key that most operations refuse): generated requests never get a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from fusionrec.serving.app import create_app
from fusionrec.serving.service import Service
from reliability.figures import count
from serving.conftest import make_settings

READ, ADMIN = "r" * 24, "a" * 24
EXAMPLES = 15  # per operation and key: bounded, so the suite's time is too

KEYS = {
    "keys off": ({}, []),
    "keys on, admin key": ({READ: ["read"], ADMIN: ["admin"]}, [ADMIN]),
    "keys on, read key": ({READ: ["read"], ADMIN: ["admin"]}, [READ]),
}


@pytest.mark.parametrize("keys", list(KEYS))
def test_generated_requests_never_get_a_server_error(store_url: str, models_dir: Path, keys: str) -> None:
    api_keys, sent = KEYS[keys]
    overrides = {"api_keys": api_keys} if api_keys else {}
    service = Service(make_settings(store_url, models_dir, train_model="most_popular", **overrides))
    service.start()
    headers = {"X-API-Key": sent[0]} if sent else {}
    tried, errors, refused = 0, 0, 0
    try:
        app = create_app(service=service)
        # the schema itself needs the admin scope when keys are on
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"X-API-Key": ADMIN})
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
            )
            def check(case: schemathesis.Case) -> None:
                nonlocal tried, errors, refused
                tried += 1
                response = case.call(headers=headers)
                errors += response.status_code >= 500
                refused += response.status_code in (401, 403)
                case.validate_response(response, checks=[not_a_server_error])

            check()
    finally:
        service.close()
        count("schemathesis", cases=tried, server_errors=errors, failures=errors)
    assert tried >= 5 * len(operations) and errors == 0
    if keys == "keys on, admin key":  # the key really went with every request
        assert refused == 0
    if keys == "keys on, read key":
        assert refused > 0
