"""Pages `fusionrec serve` hosts besides the API: the dashboard and the API docs, both offline."""

from __future__ import annotations

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
    assert "/docs-static/swagger-ui-bundle.js" in page.text
    assert client.get("/docs-static/swagger-ui-bundle.js").status_code == 200
