"""The dashboard's web application (Starlette): the page, its JSON and the requests' CSV, each
built from the URL's filters; a token on every request when the bind is not loopback.

    /                  the page
    /api/dashboard     every figure on the page, as JSON
    /api/report        what ``nearline usage --json`` prints for the same window and filters
    /requests.csv      the page's requests table
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
import time
from collections.abc import Callable
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from nearline.accounting.report import dashboard as board
from nearline.app.dashboard import Filters, parse_filters
from nearline.errors import ConfigError, NearlineError
from nearline.web.page import render

log = logging.getLogger(__name__)

Load = Callable[[Filters], board.Dashboard]
"""Builds the dashboard for a page's filters (this machine's ledger, or the team's)."""
COOKIE = "nearline_dashboard"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def host_name(header: str) -> str:
    """The host of a Host header, without its port."""
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def refuse(status: int, message: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers=HEADERS)


def gate(request: Request, token: str | None) -> Response | None:
    """None when the request may be answered. Without a token (a loopback bind) only a
    loopback Host is served (no page of another site reaches it through DNS rebinding); with
    one, its ``token`` query (which sets a cookie and comes back without it), the cookie or
    ``Authorization: Bearer``, compared in constant time."""
    if token is None:
        if host_name(request.headers.get("host", "")) not in LOOPBACK_HOSTS:
            return refuse(403, "this dashboard answers only on its loopback address")
        return None
    given = request.query_params.get("token")
    if given is None:
        given = request.cookies.get(COOKIE)
    if given is None:
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else None
    if given is None:
        return refuse(
            401, "this dashboard needs its token: open the URL `nearline dashboard` printed"
        )
    if not hmac.compare_digest(given.encode(), token.encode()):
        return refuse(403, "wrong token for this dashboard")
    if "token" in request.query_params:
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + ("?" + urlencode(rest) if rest else "")
        answer = RedirectResponse(target, status_code=303, headers=HEADERS)
        answer.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return answer
    return None


def csv_text(d: board.Dashboard) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(board.REQUEST_COLUMNS)
    writer.writerows([board.cell_text(c) for c in row] for row in d.requests)
    return out.getvalue()


def make_app(load: Load, *, token: str | None = None) -> Starlette:
    """The application; ``token``: asked of every request (None: a loopback bind)."""

    def answer(request: Request, respond: Callable[[board.Dashboard], Response]) -> Response:
        stop = gate(request, token)
        if stop is not None:
            return stop
        t0 = time.perf_counter()
        try:
            found = respond(load(parse_filters(request.query_params)))
            found.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.1f}"
            return found
        except ConfigError as exc:
            return refuse(400, str(exc))
        except NearlineError as exc:
            return refuse(503, str(exc))
        except Exception:
            log.exception("the dashboard failed")
            return refuse(500, "the dashboard failed; see its log")

    def page(request: Request) -> Response:
        return answer(request, lambda d: HTMLResponse(render(d), headers=HEADERS))

    def api(request: Request) -> Response:
        return answer(request, lambda d: JSONResponse(board.dashboard_dict(d), headers=HEADERS))

    def report(request: Request) -> Response:
        return answer(
            request,
            lambda d: Response(
                json.dumps(d.report, indent=2), media_type="application/json", headers=HEADERS
            ),
        )

    def requests_csv(request: Request) -> Response:
        return answer(
            request,
            lambda d: Response(
                csv_text(d),
                media_type="text/csv",
                headers={**HEADERS, "Content-Disposition": 'attachment; filename="requests.csv"'},
            ),
        )

    routes = [
        Route("/", page),
        Route("/api/dashboard", api),
        Route("/api/report", report),
        Route("/requests.csv", requests_csv),
    ]
    return Starlette(routes=routes)
