"""Routes called with the request alone keep FastAPI's errors, documentation and refusal of misuse."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from fusionrec.serving.routes.query import only_declared_query, query_parameters
from fusionrec.serving.routes.request_only import request_only, request_only_get
from fusionrec.serving.routes.schemas import RelatedQuery


def _app() -> FastAPI:
    router = APIRouter(prefix="/v1")

    @request_only_get(router, "/things/{thing}", openapi_extra={"parameters": query_parameters(RelatedQuery)})
    async def thing(request: Request) -> JSONResponse:
        """One thing."""
        await only_declared_query(request)
        if request.path_params["thing"] == "missing":
            raise HTTPException(404, detail="no such thing")
        return JSONResponse({"thing": request.path_params["thing"], "k": request.query_params.get("k")})

    app = FastAPI()
    app.include_router(router)
    return app


def test_the_endpoint_answers_and_its_errors_are_fastapis() -> None:
    client = TestClient(_app())
    assert client.get("/v1/things/a", params={"k": 3}).json() == {"thing": "a", "k": "3"}
    assert client.get("/v1/things/missing").json() == {"detail": "no such thing"}
    refused = client.get("/v1/things/a", params={"kk": 3})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["query", "kk"]
    operation = client.app.openapi()["paths"]["/v1/things/{thing}"]["get"]
    assert operation["summary"] == "Thing"
    assert {"k"} <= {p["name"] for p in operation["parameters"]}


def test_an_endpoint_that_takes_more_than_the_request_is_refused() -> None:
    router = APIRouter()

    async def two(request: Request, k: int = 10) -> JSONResponse:
        return JSONResponse({})

    def plain(request: Request) -> JSONResponse:
        return JSONResponse({})

    for endpoint in (two, plain):
        with pytest.raises(TypeError, match="must be `async def f"):
            request_only_get(router, f"/{endpoint.__name__}")(endpoint)  # type: ignore[arg-type]


def test_a_post_endpoint_reads_its_own_body_and_documents_it() -> None:
    router = APIRouter(prefix="/v1")
    body = {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}

    @request_only(router, "POST", "/notes", status_code=202, openapi_extra={"requestBody": body})
    async def note(request: Request) -> JSONResponse:
        """Store a note."""
        return JSONResponse({"got": (await request.json())["text"]}, status_code=202)

    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    answer = client.post("/v1/notes", json={"text": "hi"})
    assert answer.status_code == 202 and answer.json() == {"got": "hi"}
    assert client.get("/v1/notes").status_code == 405  # registered for its method alone
    operation = app.openapi()["paths"]["/v1/notes"]["post"]
    assert operation["requestBody"] == body and "202" in operation["responses"]
