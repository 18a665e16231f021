"""The dashboards' FastAPI app, mounted by the plugin at ``/plus-dashboards`` inside Airflow's API server
(Browse > Dashboards in the UI). It reads only the published analytics database
(:mod:`plus_analytics.marts.dashboards`), so it keeps working while DAGs run and publish.

Routes (the caller is checked before any route runs, see :func:`plus_analytics.console.security.protect`):

  GET /                          the dashboards (filters: from, to, product)
  GET /api/marts.json            the marts served, with an example request each
  GET /api/{mart}.json|.csv      a mart's rows with the same filters, for the Plus apps' own dashboards
  GET /static/...                plotly.js (from the plotly package: no CDN) and the page's script and style
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from importlib import resources

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from plus_analytics.console import security

HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                      "img-src 'self' data:; frame-ancestors 'self'"}
STATIC = {"dashboards.js": "text/javascript", "dashboards.css": "text/css"}

app = FastAPI(title="Plus Dashboards", description="Usage dashboards", docs_url=None, redoc_url=None, openapi_url=None)


security.protect(app, security.DASHBOARDS, "Dashboards", HEADERS)


@contextmanager
def _published(request: Request):
    """A session on the published database and the request's filters (400 for a bad filter, 503 before
    anything is published)."""
    from plus_analytics.config import Paths
    from plus_analytics.marts import dashboards as d

    try:
        session = d.Published(Paths.from_env())
    except d.NotPublished as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "60"}) from None
    with session as pub:
        q = request.query_params
        try:
            filters = d.Filters.parse(q.get("from"), q.get("to"), q.get("product"), pub.build.covered)
        except d.BadFilter as exc:
            raise HTTPException(400, str(exc)) from None
        yield pub, filters


@app.get("/", response_class=HTMLResponse)
async def page(request: Request):
    import jinja2

    from plus_analytics.config import Paths
    from plus_analytics.marts import dashboards as d

    with _published(request) as (pub, filters):
        charts = d.charts(pub, filters)
    build = pub.build
    blocked = d.gate_blocked(Paths.from_env(), build)
    env = jinja2.Environment(loader=jinja2.PackageLoader("plus_analytics.console"), autoescape=True)
    body = env.get_template("dashboards.html").render(
        charts=charts, charts_json=json.dumps([{"id": c["id"], "figure": c["figure"]} for c in charts]), build=build,
        blocked=blocked, filters=filters, products=("all", *d.PRODUCTS), user=request.state.user.get_name(),
        marts=sorted(d.MARTS))
    return HTMLResponse(body, headers=HEADERS)


@app.get("/api/marts.json")
async def marts(request: Request):
    from plus_analytics.marts import dashboards as d

    base = str(request.base_url).rstrip("/")
    return JSONResponse({"marts": [{"name": m, "json": f"{base}/api/{m}.json?from=2026-11-01&to=2026-11-30&product=all",
                                    "csv": f"{base}/api/{m}.csv?from=2026-11-01&to=2026-11-30&product=all"}
                                   for m in sorted(d.MARTS)]}, headers=HEADERS)


@app.get("/api/{name}")
async def mart(request: Request, name: str):
    from plus_analytics.marts import dashboards as d

    mart_name, _, ext = name.rpartition(".")
    if mart_name not in d.MARTS or ext not in ("json", "csv"):
        raise HTTPException(404, f"no such mart: the marts served are {', '.join(sorted(d.MARTS))} (.json or .csv)")
    with _published(request) as (pub, filters):
        columns, rows = pub.mart(mart_name, filters)
    build = pub.build
    if ext == "csv":
        return Response(d.as_csv(columns, rows), media_type="text/csv",
                        headers={**HEADERS, "Content-Disposition": f"attachment; filename={mart_name}.csv",
                                 "X-Plus-Build": build.build_id})
    return JSONResponse({"mart": mart_name, "build_id": build.build_id, "published_at": build.published_at.isoformat(),
                         "k_anonymity": build.k, "filters": {"from": filters.first.isoformat(), "to": filters.last.isoformat(),
                                                             "product": filters.product},
                         "columns": columns, "rows": d.as_json_rows(columns, rows)}, headers=HEADERS)


@app.get("/static/{name}")
async def static(request: Request, name: str):
    if name == "plotly.min.js":
        body = (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
        media = "text/javascript"
    elif name in STATIC:
        body = (resources.files("plus_analytics.console") / "static" / name).read_bytes()
        media = STATIC[name]
    else:
        raise HTTPException(404, "no such file")
    return Response(body, media_type=media, headers={**HEADERS, "Cache-Control": "private, max-age=3600"})
