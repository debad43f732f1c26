"""/docs in a real browser: Debian's chromium + chromium-driver via Selenium.

The service app runs under uvicorn on a free local port; Swagger UI (served from the
fastapi-offline package) must render FastAPI's OpenAPI 3.1 schema as operations, not
"Unable to render this definition", and load nothing from outside this server. With
FUSIONREC_SCREENSHOTS=DIR the page is also saved as DIR/docs.png.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from headless import chromium, console_errors, served, wait_for
from serving.conftest import make_settings

pytestmark = pytest.mark.browser

BROKEN = "Unable to render this definition"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from chromium()


@pytest.fixture
def service_url(store_url: str, models_dir: Path) -> Iterator[str]:
    """The real service app (a trained model over a DuckDB store) under uvicorn in a thread."""
    from fusionrec.serving.app import create_app

    with served(create_app(make_settings(store_url, models_dir))) as base:
        yield base


def test_swagger_ui_renders_the_openapi_schema(browser, service_url: str) -> None:
    browser.get(f"{service_url}/docs")
    # Rendered (operations shown) or failed (Swagger UI's error box): either ends the wait.
    wait_for(
        browser,
        "return document.querySelectorAll('.opblock').length > 0"
        f" || document.body.innerText.indexOf('{BROKEN}') >= 0",
        timeout=60,
    )
    text = browser.execute_script("return document.body.innerText")
    assert BROKEN not in text
    operations = browser.execute_script(
        "return Array.from(document.querySelectorAll('.opblock')).map(function (n) { return n.innerText; });"
    )
    assert any("/v1/recommendations" in op for op in operations), operations
    version = browser.execute_script(
        "return window.versions && window.versions.swaggerUI && window.versions.swaggerUI.version"
    )
    assert str(version).startswith("5."), version
    # Offline: every resource the page loaded came from this server.
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; });"
    )
    assert resources and all(url.startswith(service_url + "/") for url in resources), resources
    assert console_errors(browser) == []
    folder = os.environ.get("FUSIONREC_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / "docs.png"))
