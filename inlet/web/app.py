"""The ASGI application: routes, Rucio logins in a signed session cookie, CSRF on every POST.

Every page needs a login (Rucio checks it; :mod:`inlet.web.access` turns the account's Rucio
attributes into a role). Pages are rendered on the server; ``?fragment=1`` renders only a
page's live part, which ``static/live.js`` fetches again when the SSE stream at ``/events``
says the catalogue changed, so a run moves on screen without a reload. ``/follow`` streams
file events to programs (:mod:`inlet.web.follow`), with its own logins for curl.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio
from rucio_inlet.catalog_states import RunState
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inlet.catalog.db import Catalog, open_catalog
from inlet.config import Settings
from inlet.errors import InletError
from inlet.web import actions, follow, metrics, sources
from inlet.web.access import Role, Viewer, role_of
from inlet.web.live import ChangeFeed
from inlet.web.rucio_rest import RucioRefused, RucioRest

log = logging.getLogger("inlet.web")
HERE = Path(__file__).parent
SESSION_COOKIE = "inlet_session"
#: What the browser may load: this server's own scripts, styles and images, nothing inline.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response (a plain ASGI wrapper: SSE keeps streaming)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class Web:
    """What the routes share: settings, the catalogue, Rucio, the live feed."""

    def __init__(self, settings: Settings, catalog: Catalog, rucio: RucioRest, feed: ChangeFeed) -> None:
        self.settings = settings
        self.catalog = catalog
        self.rucio = rucio
        self.feed = feed
        self.meter = sources.RateMeter()
        # /follow (inlet.web.follow): checked logins, Rucio's RSE names, catalogue query slots.
        self.logins = follow.Logins()
        self.known_rses = follow.KnownRSEs()
        self.follow_slots = anyio.CapacityLimiter(follow.QUERY_SLOTS)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["tier_rses"] = sources.tier_rses(settings)

    # -- sessions -------------------------------------------------------------------------------
    @staticmethod
    def viewer(request: Request) -> Viewer | None:
        s = request.session
        if not s.get("account") or not s.get("role"):
            return None
        try:
            return Viewer(str(s["account"]), Role(str(s["role"])))
        except ValueError:
            return None

    @staticmethod
    def csrf(request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = secrets.token_urlsafe(32)
            request.session["csrf"] = token
        return str(token)

    @staticmethod
    def check_csrf(request: Request, form: Any) -> bool:
        """The form's token is the session's, and a browser-sent Origin (if any) is this site."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
            return False
        sent, mine = str(form.get("csrf", "")), str(request.session.get("csrf", ""))
        return bool(mine) and secrets.compare_digest(sent, mine)

    def render(self, request: Request, name: str, viewer: Viewer | None, status: int = 200, **ctx: Any) -> Response:
        ctx.update(viewer=viewer, csrf=self.csrf(request), request=request)
        return self.templates.TemplateResponse(request, name, ctx, status_code=status)


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def _safe_next(value: str) -> str:
    """Only a path of this site (never //host or a scheme): no open redirect after login."""
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/runs"


Handler = Callable[[Web, Request, Viewer], Awaitable[Response]]


def page(name: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route that needs a login, timed and counted under NAME."""

    async def endpoint(request: Request) -> Response:
        web: Web = request.app.state.web
        viewer = web.viewer(request)
        if viewer is None:
            if request.method == "GET":
                return _login_redirect(request)
            return PlainTextResponse("log in first", status_code=401)
        start = time.perf_counter()
        response = await handler(web, request, viewer)
        metrics.SECONDS.labels(name).observe(time.perf_counter() - start)
        metrics.REQUESTS.labels(name, str(response.status_code)).inc()
        return response

    return endpoint


def _int(value: str | None, default: int, low: int = 0, high: int = 10**9) -> int:
    try:
        return max(low, min(high, int(value or default)))
    except ValueError:
        return default


# -- login ----------------------------------------------------------------------------------------
async def login_form(request: Request) -> Response:
    web: Web = request.app.state.web
    return web.render(request, "login.html", web.viewer(request), next=_safe_next(request.query_params.get("next", "")))


async def login(request: Request) -> Response:
    web: Web = request.app.state.web
    form = await request.form()
    nxt = _safe_next(str(form.get("next", "")))
    if not web.check_csrf(request, form):
        metrics.LOGINS.labels("csrf").inc()
        return web.render(request, "login.html", None, 400, next=nxt, error="the form expired: try again")
    token = str(form.get("token", "")).strip()
    account = str(form.get("account", "")).strip()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))

    def check() -> tuple[str, Role]:
        # Rucio checks the identity; the token it hands out is not kept (the web acts as itself).
        if token:
            who = web.rucio.whoami(token)
        else:
            if not (account and username and password):
                raise RucioRefused("give account, username and password, or a Rucio token")
            web.rucio.login_userpass(account, username, password)
            who = account
        return who, role_of(who, web.rucio.account_attributes(who), web.settings.web)

    try:
        who, role = await run_in_threadpool(check)
    except InletError as exc:
        metrics.LOGINS.labels("refused").inc()
        log.info("login refused for %r: %s", account or "(token)", exc.problem)
        return web.render(request, "login.html", None, 401, next=nxt, error=exc.problem, account=account)
    request.session.clear()  # nothing from before the login survives it (session fixation)
    request.session.update(account=who, role=role.value, csrf=secrets.token_urlsafe(32), since=int(time.time()))
    metrics.LOGINS.labels("ok").inc()
    log.info("%s logged in as %s", who, role.value)
    return RedirectResponse(nxt, status_code=303)


async def logout(request: Request) -> Response:
    web: Web = request.app.state.web
    form = await request.form()
    if web.check_csrf(request, form):
        request.session.clear()
    return RedirectResponse("/login", status_code=303)


# -- pages ----------------------------------------------------------------------------------------
def _fragment(request: Request) -> bool:
    return request.query_params.get("fragment") == "1"


async def runs_view(web: Web, request: Request, viewer: Viewer) -> Response:
    q = request.query_params
    state = q.get("state") or None
    if state and state.upper() not in RunState.__members__:
        state = None
    experiment = q.get("experiment") or None
    page_no = _int(q.get("page"), 0, 0, 10**6)

    def read() -> dict[str, Any]:
        with web.catalog.session() as s:
            return sources.runs_page(
                s, viewer, page=page_no, page_size=web.settings.web.page_size, state=state, experiment=experiment
            )

    data = await run_in_threadpool(read)
    name = "runs_live.html" if _fragment(request) else "runs.html"
    return web.render(
        request,
        name,
        viewer,
        data=data,
        state=state or "",
        experiment=experiment or "",
        states=[s.value for s in RunState],
    )


async def run_view(web: Web, request: Request, viewer: Viewer) -> Response:
    experiment = request.path_params["experiment"]
    number = _int(request.path_params["run_number"], -1, -1)

    def read() -> dict[str, Any] | None:
        with web.catalog.session() as s:
            return sources.run_detail(s, viewer, experiment, number, web.settings, web.rucio)

    data = await run_in_threadpool(read)
    if data is None:
        return web.render(request, "missing.html", viewer, 404, what="run")
    name = "run_live.html" if _fragment(request) else "run.html"
    return web.render(request, name, viewer, data=data, message=request.query_params.get("message", ""))


async def uploader_view(web: Web, request: Request, viewer: Viewer) -> Response:
    data = await run_in_threadpool(sources.uploader_page, web.settings, viewer)
    name = "uploader_live.html" if _fragment(request) else "uploader.html"
    return web.render(request, name, viewer, data=data)


async def listener_view(web: Web, request: Request, viewer: Viewer) -> Response:
    data = await run_in_threadpool(sources.listener_page, web.settings, viewer, web.meter)
    name = "listener_live.html" if _fragment(request) else "listener.html"
    return web.render(request, name, viewer, data=data, message=request.query_params.get("message", ""))


async def alarms_view(web: Web, request: Request, viewer: Viewer) -> Response:
    def read() -> dict[str, Any]:
        with web.catalog.session() as s:
            return sources.alarms_page(s, viewer)

    data = await run_in_threadpool(read)
    name = "alarms_live.html" if _fragment(request) else "alarms.html"
    return web.render(request, name, viewer, data=data)


async def rehearsals_view(web: Web, request: Request, viewer: Viewer) -> Response:
    if not viewer.sees_embargoed:
        return web.render(request, "rehearsals.html", viewer, data=None)
    data = await run_in_threadpool(sources.rehearsals_page, web.settings)
    return web.render(request, "rehearsals.html", viewer, data=data)


async def rehearsal_plot(web: Web, request: Request, viewer: Viewer) -> Response:
    path = sources.report_plot(web.settings, request.path_params["stamp"], request.path_params["plot"])
    if path is None or not viewer.sees_embargoed:
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path, media_type="image/png")


async def events_view(web: Web, request: Request, viewer: Viewer) -> Response:
    return EventSourceResponse(web.feed.stream(), ping=15)


# -- actions (data managers, CSRF-checked) ------------------------------------------------------
async def _action_guard(web: Web, request: Request, viewer: Viewer) -> tuple[Any, Response | None]:
    form = await request.form()
    if not web.check_csrf(request, form):
        metrics.ACTIONS.labels(request.url.path.rsplit("/", 1)[-1], "csrf").inc()
        return form, PlainTextResponse("the form expired or came from another site: reload the page", 403)
    if not viewer.may_act:
        metrics.ACTIONS.labels(request.url.path.rsplit("/", 1)[-1], "forbidden").inc()
        return form, PlainTextResponse("only data managers may do this", 403)
    return form, None


async def replay_action(web: Web, request: Request, viewer: Viewer) -> Response:
    _, refused = await _action_guard(web, request, viewer)
    if refused is not None:
        return refused
    dlq_id = request.path_params["dlq_id"]
    try:
        done = await run_in_threadpool(actions.replay_dead_letter, web.settings, dlq_id, viewer.account)
        message, outcome = f"replayed {done}", "ok"
    except InletError as exc:
        message, outcome = f"not replayed: {exc.problem}", "failed"
    metrics.ACTIONS.labels("replay", outcome).inc()
    return RedirectResponse(f"/listener?{urlencode({'message': message})}", status_code=303)


async def boost_action(web: Web, request: Request, viewer: Viewer) -> Response:
    _, refused = await _action_guard(web, request, viewer)
    if refused is not None:
        return refused
    experiment = request.path_params["experiment"]
    number = _int(request.path_params["run_number"], -1, -1)
    rule_id = request.path_params["rule_id"]

    def act() -> str:
        from rucio_inlet.catalog_models import Run
        from sqlalchemy import select

        with web.catalog.session() as s:
            run = s.scalars(select(Run).where(Run.experiment == experiment, Run.run_number == number)).one_or_none()
            if run is None or not run.dataset or not viewer.may_see_run(run.embargo_until):
                raise actions.ActionRefused("no such run")
            dataset = f"{run.scope}:{run.dataset}"
        actions.boost_rule(web.rucio, rule_id, dataset, viewer.account)
        return f"rule {rule_id} boosted"

    try:
        message, outcome = await run_in_threadpool(act), "ok"
    except InletError as exc:
        message, outcome = f"not boosted: {exc.problem}", "failed"
    metrics.ACTIONS.labels("boost", outcome).inc()
    return RedirectResponse(f"/runs/{experiment}/{number}?{urlencode({'message': message})}", status_code=303)


async def home(request: Request) -> Response:
    return RedirectResponse("/runs", status_code=303)


def create_app(
    settings: Settings, *, catalog: Catalog | None = None, rucio: RucioRest | None = None, live: bool = True
) -> Starlette:
    """The application; ``catalog``/``rucio`` given by tests and benchmarks, ``live=False`` without a broker."""
    cat = catalog or open_catalog(settings.catalog_url())
    feed = ChangeFeed(cat, settings.broker if live else None, heartbeat_ms=settings.listener.heartbeat_ms or 5000)
    web = Web(settings, cat, rucio or RucioRest(settings.rucio), feed)
    secret = settings.web.secret or secrets.token_urlsafe(48)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await feed.start()
        try:
            yield
        finally:
            await feed.stop()
            if catalog is None:
                cat.dispose()

    routes = [
        Route("/", home),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/runs", page("runs", runs_view)),
        Route("/runs/{experiment}/{run_number}", page("run", run_view)),
        Route("/runs/{experiment}/{run_number}/rules/{rule_id}/boost", page("boost", boost_action), methods=["POST"]),
        Route("/uploader", page("uploader", uploader_view)),
        Route("/listener", page("listener", listener_view)),
        Route("/listener/dlq/{dlq_id}/replay", page("replay", replay_action), methods=["POST"]),
        Route("/alarms", page("alarms", alarms_view)),
        Route("/rehearsals", page("rehearsals", rehearsals_view)),
        Route("/rehearsals/{stamp}/{plot}", page("rehearsal-plot", rehearsal_plot)),
        Route("/events", page("events", events_view)),
        Route("/follow", follow.follow_view),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie=SESSION_COOKIE,
            max_age=int(settings.web.session_hours * 3600),
            same_site="strict",
            https_only=settings.web.https_only,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.web = web
    return app
