"""The static floor of `bench_serving.py`: a bare FastAPI app answering precomputed bytes.

It serves the routes the benchmark calls (recommendations, events, popular, similar items), each
with the body fusionrec itself gave for that route, captured once before the timed runs, so an
answer costs what HTTP, uvicorn and FastAPI cost for a body of the same size and nothing more.
``uvicorn --app-dir benchmarks --factory serving_floor:app_from_env`` with
``BENCH_FLOOR_ANSWERS`` naming a JSON file of ``{"route name": "answer text"}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi import FastAPI, Response

ROUTES = ("recommendations", "events", "popular", "similar")


def create_floor(answers: dict[str, str]) -> FastAPI:
    """The app: every route answers its captured body, whatever the query."""
    missing = [name for name in ROUTES if name not in answers]
    if missing:
        raise ValueError(f"no captured answer for {', '.join(missing)}")
    body = {name: answers[name].encode() for name in ROUTES}
    app = FastAPI()

    def answer(name: str, status: int = 200) -> Response:
        return Response(body[name], status_code=status, media_type="application/json")

    @app.get("/v1/recommendations")
    async def recommendations() -> Response:
        return answer("recommendations")

    @app.post("/v1/events")
    async def events() -> Response:
        return answer("events", 202)

    @app.get("/v1/popular")
    async def popular() -> Response:
        return answer("popular")

    @app.get("/v1/items/{item_id}/similar")
    async def similar(item_id: str) -> Response:
        return answer("similar")

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(b'{"ready":true,"precomputed":true}', media_type="application/json")

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: the answers from the file named by BENCH_FLOOR_ANSWERS."""
    return create_floor(json.loads(Path(os.environ["BENCH_FLOOR_ANSWERS"]).read_text()))
