"""Pages `fusionrec serve` hosts besides the API: the dashboard and the API docs, both offline."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_dashboard_page_script_and_data_are_served(client: TestClient) -> None:
    page = client.get("/dashboard/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    script = client.get("/dashboard/plotly.min.js")
    assert script.status_code == 200 and len(script.content) > 100_000  # shipped with the package, no CDN
    data = client.get("/dashboard/api/data")
    assert data.status_code == 200 and isinstance(data.json(), dict)


def test_api_docs_work_offline(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    # Every script, stylesheet and icon comes from this server, none from the network.
    sources = re.findall(r"""<(?:script|link)\b[^>]*\b(?:src|href)=["']([^"']+)["']""", page.text, re.I)
    assert sorted(sources) == [
        "/docs-static/favicon.png",
        "/docs-static/swagger-ui-bundle.js",
        "/docs-static/swagger-ui.css",
    ]
    assert not re.search(r"""(?:src|href|url)\s*[=:]\s*["']https?://""", page.text, re.I)
    assert '"validatorUrl": null' in page.text  # Swagger UI must not call validator.swagger.io
    for name, size in (("swagger-ui-bundle.js", 500_000), ("swagger-ui.css", 50_000), ("favicon.png", 100)):
        served = client.get(f"/docs-static/{name}")
        assert served.status_code == 200 and len(served.content) > size, name
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")  # what Swagger UI 5 reads
