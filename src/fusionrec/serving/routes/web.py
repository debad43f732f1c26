"""The files a shop's web pages load from the service: the JavaScript client and widget at
``/sdk/fusionrec.js``, and (with ``demo_shop``, which `fusionrec demo` sets) a demo shop page at
``/demo-shop`` that uses it.

Both are static files shipped in the package (``serving/web``); they hold no key and no data, so
they are served without one. The demo page is off by default: a shop's own service has no use for it.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)
# Pages load the script on every visit: a short cache keeps them quick and lets a new version in soon.
SCRIPT_CACHE = "public, max-age=300"


@cache
def asset(name: str) -> str:
    """A file of ``serving/web`` as text (read once per process)."""
    return (files("fusionrec.serving") / "web" / name).read_text(encoding="utf-8")


@router.get("/sdk/fusionrec.js")
async def sdk() -> Response:
    """The dependency-free client and recommendation-strip widget."""
    return Response(
        asset("fusionrec.js"),
        media_type="application/javascript; charset=utf-8",
        headers={"Cache-Control": SCRIPT_CACHE},
    )


@router.get("/demo-shop")
async def demo_shop(request: Request) -> HTMLResponse:
    """A demo shop page showing a recommendation strip (only when the service was started with
    ``demo_shop``)."""
    if not request.app.state.service.settings.demo_shop:
        raise HTTPException(404, detail="Not Found")
    return HTMLResponse(asset("demo-shop.html"))
