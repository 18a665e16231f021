"""The console's FastAPI app, mounted by the plugin at ``/plus-privacy`` inside Airflow's API server.

Routes (the caller is checked before any route runs or any of the request is read, see
:func:`plus_analytics.console.security.protect`):

  GET  /                      the Privacy page (requests, evidence by layer, chain, retention, consent, intake form)
  GET  /report.json|.csv      the same content for systems (requests CSV; evidence CSV at /evidence.csv)
  GET  /certificates/{id}.json|.html, /public-key.pem   signed erasure certificates and the key that verifies them
  POST /requests              register a deletion request (form), then trigger plus_erasure with its id only
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from plus_analytics.console import security
from plus_analytics.erasure.report import LAYERS

BANGKOK = ZoneInfo("Asia/Bangkok")
REQUEST_ID = re.compile(r"^DSR-\d{8}-[a-p]{10}$")
LEDGER_WAIT = 15.0  # seconds the page waits for a writer of the ledger (an intake, an erasure step)
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'self'"}

app = FastAPI(title="Plus Privacy", description="The DPO's console", docs_url=None, redoc_url=None, openapi_url=None)


_error = security.protect(app, security.PRIVACY, "Privacy", HEADERS)


def _when(value) -> str:
    """A UTC timestamp shown in UTC and in Bangkok time."""
    if not isinstance(value, dt.datetime):
        return "" if value is None else str(value)
    utc = value.replace(tzinfo=dt.UTC)
    return f"{utc:%Y-%m-%d %H:%M} UTC · {utc.astimezone(BANGKOK):%Y-%m-%d %H:%M} Bangkok"


def _templates():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("plus_analytics.console"), autoescape=True)
    env.filters["when"] = _when
    return env


def _data() -> dict:
    from plus_analytics.config import Paths
    from plus_analytics.erasure.report import collect
    from plus_analytics.storage import locks

    paths = Paths.from_env()
    if not paths.privacy_db.exists():
        from plus_analytics.erasure.report import LIMITS, ORDER

        return {"generated_at": dt.datetime.now(dt.UTC).replace(tzinfo=None), "limits": LIMITS, "requests": [],
                "evidence": [], "chain_intact": True, "chain_records": 0, "retention": [], "retention_by_day": [],
                "consent_changes": [], "consent_exclusions": [], "counts": dict.fromkeys(ORDER, 0), "evidence_head_hash": ""}
    try:
        with locks.zone(read=paths.zones("ledger", "stg"), timeout=LEDGER_WAIT) as con:
            return collect(con, paths.analytics_db)
    except locks.ZoneBusy:
        raise HTTPException(503, "the privacy ledger is being written (an erasure step or an intake): reload in a moment",
                            headers={"Retry-After": "5"}) from None


def _certificates() -> set[str]:
    from plus_analytics.config import Paths

    folder = Paths.from_env().reports / "dpo" / "certificates"
    return {p.stem for p in folder.glob("DSR-*.json")} if folder.exists() else set()


def _page(request: Request, user, message: str | None = None, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    data = _data()
    body = _templates().get_template("privacy.html").render(
        data=data, layers=LAYERS, certificates=_certificates(), csrf=security.csrf_token(user), user=user.get_name(),
        message=message, error=error, kinds=sorted(_kinds()), max_deadline=_max_deadline())
    return HTMLResponse(body, status_code=status_code, headers=HEADERS)


def _kinds():
    from plus_analytics.erasure.intake import ID_KINDS

    return ID_KINDS


def _max_deadline() -> int:
    from plus_analytics.erasure.intake import MAX_DEADLINE_DAYS

    return MAX_DEADLINE_DAYS


@app.get("/", response_class=HTMLResponse)
async def page(request: Request, registered: str | None = None):
    user = request.state.user
    message = None
    if registered and REQUEST_ID.match(registered):
        message = f"Request {registered} registered; plus_erasure was started for it. Its status updates below."
    return _page(request, user, message=message)


@app.get("/report.json")
async def report_json(request: Request):
    from plus_analytics.erasure.report import to_json

    return Response(to_json(_data()), media_type="application/json", headers=HEADERS)


@app.get("/report.csv")
async def report_csv(request: Request):
    from plus_analytics.erasure.report import requests_csv

    return Response(requests_csv(_data()), media_type="text/csv",
                    headers={**HEADERS, "Content-Disposition": "attachment; filename=deletion_requests.csv"})


@app.get("/evidence.csv")
async def evidence_csv(request: Request):
    data = _data()
    buf = io.StringIO()
    fields = ["seq", "request_id", "event", "layer", "location", "rows_removed", "check_result", "detail", "recorded_at"]
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(data["evidence"])
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={**HEADERS, "Content-Disposition": "attachment; filename=erasure_evidence.csv"})


@app.get("/certificates/{name}")
async def certificate(request: Request, name: str):
    from plus_analytics.config import Paths

    stem, _, ext = name.rpartition(".")
    if not REQUEST_ID.match(stem) or ext not in ("json", "html", "payload", "sig"):
        raise HTTPException(404, "no such certificate")
    path = Paths.from_env().reports / "dpo" / "certificates" / name
    if not path.exists():
        raise HTTPException(404, "no certificate for that request yet (it is issued once the request is verified)")
    media = {"json": "application/json", "html": "text/html", "payload": "application/octet-stream",
             "sig": "application/octet-stream"}[ext]
    return Response(path.read_bytes(), media_type=media, headers=HEADERS)


@app.get("/public-key.pem")
async def public_key(request: Request):
    from plus_analytics.config import Paths

    path = Paths.from_env().reports / "dpo" / "certificate_public_key.pem"
    if not path.exists():
        raise HTTPException(404, "no certificate has been issued yet")
    return PlainTextResponse(path.read_text(), headers=HEADERS)


@app.post("/requests")
async def register(request: Request, id_kind: str = Form(max_length=32), identifier: str = Form(max_length=400),
                   requester: str = Form(max_length=400), deadline_days: str = Form(max_length=4),
                   csrf: str = Form(default="", max_length=100)):
    """Register a deletion request: validated, normalized and pseudonymized here; only the request id
    goes to Airflow. A rejected request is never registered, and the page never repeats the identifier."""
    user = request.state.user
    security.check_post(request, user, csrf)
    from plus_analytics import steps
    from plus_analytics.context import context
    from plus_analytics.erasure.intake import InvalidRequest
    from plus_analytics.erasure.intake import Request as ErasureRequest

    try:
        days = int(deadline_days)
    except ValueError:
        return _page(request, user, error="the deadline must be a whole number of days", status_code=400)
    try:
        [rid] = steps.erasure.register([ErasureRequest(id_kind, identifier, requester, days)], context())
    except InvalidRequest as exc:
        return _page(request, user, error=f"not registered: {exc}", status_code=400)
    triggered = _trigger_erasure(user, rid)
    if not triggered:
        return _page(request, user, message=f"Request {rid} registered. You may not start plus_erasure yourself: the "
                                            f"daily run will take it.")
    return RedirectResponse(f"./?registered={rid}", status_code=303, headers=HEADERS)


def _trigger_erasure(user, request_id: str) -> bool:
    """Start plus_erasure for the new request (its conf holds the request id and nothing else), if the user
    may trigger it."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.utils.types import DagRunTriggeredByType

    if not get_auth_manager().is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN,
                                                details=DagDetails(id="plus_erasure"), user=user):
        return False
    trigger_dag("plus_erasure", triggered_by=DagRunTriggeredByType.UI, triggering_user_name=user.get_name(),
                run_id=f"privacy__{request_id}", conf={"request_id": request_id},
                logical_date=dt.datetime.now(dt.UTC))
    return True


@app.exception_handler(RequestValidationError)
async def invalid_form(request: Request, exc: RequestValidationError):
    """A malformed form: say which field, never echo what was typed (FastAPI's default would)."""
    fields = sorted({str(e["loc"][-1]) for e in exc.errors()})
    return _error(request, 422, f"not registered: the form's {', '.join(fields)} field(s) are missing or too long")
