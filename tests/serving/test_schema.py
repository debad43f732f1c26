"""Schemathesis against the OpenAPI schema: generated requests never get a 5xx."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from fusionrec.serving.app import create_app
from fusionrec.serving.service import Service
from serving.conftest import make_settings


def test_no_server_errors(store_url: str, models_dir: Path) -> None:
    service = Service(make_settings(store_url, models_dir, train_model="most_popular"))
    service.start()
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(service=service))
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=[not_a_server_error])

            check()
        assert service.metrics.window(3600).requests >= 10 * len(operations)  # the cases really ran
    finally:
        service.close()
