"""Signing in to the dashboard from a browser: a browser cannot send an ``X-API-Key`` header when a
manager opens a page, so `/dashboard/login` takes the admin key in a form and keeps it in a cookie
that only the dashboard's own pages receive (HttpOnly: no script reads it; SameSite=Strict: no other
site's page sends it). The key never travels in an address, so it stays out of access logs."""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fusionrec.serving.security import DASHBOARD_COOKIE, ApiKeys

router = APIRouter(prefix="/dashboard", include_in_schema=False)

_FORM = """<!doctype html>
<meta charset="utf-8"><title>fusionrec dashboard: sign in</title>
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input{{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.5rem 0}}
.error{{color:#b00020}}</style>
<h1>fusionrec dashboard</h1>
<p>Sign in with an API key that has the <code>admin</code> scope
(<code>[serving] api_keys</code> of fusionrec.toml).</p>
{error}
<form method="post" action="/dashboard/login">
<label>API key <input type="password" name="key" autocomplete="current-password" autofocus></label>
<input type="submit" value="Open the dashboard">
</form>
"""


@router.get("/login")
async def login_form() -> HTMLResponse:
    """The sign-in form."""
    return HTMLResponse(_FORM.format(error=""))


@router.post("/login")
async def login(request: Request) -> Response:
    """An admin key from the form: a cookie for the dashboard's pages and a redirect to them."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (fields.get("key") or [""])[0].strip()
    keys: ApiKeys = request.app.state.api_keys
    scopes = keys.scopes(key) if key else None
    if scopes is None or "admin" not in scopes:
        message = '<p class="error">That key is unknown or lacks the admin scope.</p>'
        return HTMLResponse(_FORM.format(error=message), status_code=401)
    answer = RedirectResponse("/dashboard/", status_code=303)
    answer.set_cookie(
        DASHBOARD_COOKIE,
        key,
        httponly=True,
        samesite="strict",
        path="/dashboard",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post("/logout")
async def logout() -> Response:
    """Forget the key: back to the sign-in form."""
    answer = RedirectResponse("/dashboard/login", status_code=303)
    answer.delete_cookie(DASHBOARD_COOKIE, path="/dashboard")
    return answer


def signed_out_page(detail: str) -> str:
    """What a browser gets on a dashboard page without a valid key: the form, with the reason."""
    return _FORM.format(error=f'<p class="error">{escape(detail)}</p>')
