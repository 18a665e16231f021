"""Who may use the plugin's pages (the Privacy page, the dashboards), checked on every request through
Airflow's auth manager (Airflow does not authenticate plugin apps), before the request is routed or its
body read; and protection of forms against cross-site requests.

* The caller is the user of the Airflow session: the JWT in the ``Authorization: Bearer`` header or in
  the UI's ``_token`` cookie, resolved by the auth manager (no or an expired token: 401).
* The auth manager must allow the page's custom view ("Plus Privacy", "Plus Dashboards"; FAB and other
  role-based managers: grant it to the role); with the simple auth manager, whose custom views any viewer
  may see, the user's role must also be one of the page's roles (``PLUS_PRIVACY_ROLES``, default ADMIN;
  ``PLUS_DASHBOARD_ROLES``, default every role). Otherwise: 403.
* A POST must carry the form's CSRF token (an HMAC of the user and the day under the API's JWT secret)
  and come from this origin (Origin, else Referer); a forged cross-site POST gets 403.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse

from plus_analytics.config import settings


@dataclass(frozen=True)
class Page:
    """A page of the plugin: the custom view the auth manager grants, and the simple auth manager's roles."""

    resource: str
    roles: Callable[[], tuple[str, ...]]
    refusal: str


PRIVACY = Page("Plus Privacy", lambda: settings().privacy_roles, "the Privacy page is for the DPO's role only")
DASHBOARDS = Page("Plus Dashboards", lambda: settings().dashboard_roles, "the dashboards are not for your role")

#: What a request asks of the auth manager, by its HTTP method.
METHODS = {"GET": "GET", "HEAD": "GET", "POST": "POST", "PUT": "PUT", "DELETE": "DELETE"}


async def caller(request: Request):
    """The authenticated Airflow user making the request (401 without a valid session)."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in to Airflow first")
    try:
        return await resolve_user_from_token(token)
    except HTTPException as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "your Airflow session is not valid: log in again") from exc


def allowed(user, method: str, page: Page = PRIVACY) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    if not get_auth_manager().is_authorized_custom_view(method=method, resource_name=page.resource, user=user):
        return False
    role = getattr(user, "role", None)  # the simple auth manager's users carry one role
    return role is None or str(role).upper() in page.roles()


def require(user, method: str, page: Page = PRIVACY) -> None:
    if not allowed(user, method, page):
        raise HTTPException(status.HTTP_403_FORBIDDEN, page.refusal)


def protect(app: FastAPI, page: Page, title: str, base_headers: dict) -> Callable:
    """Guard every request to ``app`` for ``page`` (:func:`guard`) and answer its HTTP errors the same way;
    returns the error response maker ``(request, status, detail, headers=None)`` for the app's own use."""

    def refuse(request: Request, status_code: int, detail: str, headers: dict | None = None):
        """An error as a short page (a browser) or JSON (anything else); never echoes the request."""
        headers = {**base_headers, **(headers or {})}
        if "text/html" in request.headers.get("accept", ""):
            body = f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><p>{html.escape(detail)}</p>"
            return HTMLResponse(body, status_code=status_code, headers=headers)
        return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)

    guard(app, page, refuse)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return refuse(request, exc.status_code, str(exc.detail), exc.headers)

    return refuse


def guard(app: FastAPI, page: Page, refuse: Callable) -> None:
    """Check every request to ``app`` before routing and before its body is read: no valid Airflow session,
    401; a user the page is not for, 403 (``refuse(request, status, detail, headers)`` makes the response).
    A caller who fails learns nothing of the routes or their forms. Routes find the user in
    ``request.state.user``."""

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        try:
            user = await caller(request)
            require(user, METHODS.get(request.method, "POST"), page)
        except HTTPException as exc:
            return refuse(request, exc.status_code, str(exc.detail), exc.headers)
        request.state.user = user
        return await call_next(request)


@lru_cache(maxsize=1)
def _csrf_key() -> bytes:
    from airflow.configuration import conf

    secret = conf.get("api_auth", "jwt_secret", fallback="") or ""
    return hashlib.sha256(b"plus-privacy-csrf\x00" + secret.encode()).digest() if secret else secrets.token_bytes(32)


def csrf_token(user, day: dt.date | None = None) -> str:
    day = day or dt.datetime.now(dt.UTC).date()
    return hmac.new(_csrf_key(), f"{user.get_id()}:{day.isoformat()}".encode(), hashlib.sha256).hexdigest()


def check_post(request: Request, user, token: str | None) -> None:
    """A state-changing request must come from this origin and carry this user's form token (today's or
    yesterday's, so a form opened before midnight UTC still works)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    here = f"{request.url.scheme}://{request.url.netloc}"
    if not origin or f"{urlsplit(origin).scheme}://{urlsplit(origin).netloc}" != here:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")
    today = dt.datetime.now(dt.UTC).date()
    valid = {csrf_token(user, today), csrf_token(user, today - dt.timedelta(days=1))}
    if not token or not any(hmac.compare_digest(token, v) for v in valid):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the form has expired or was not issued to you: reload the page")
