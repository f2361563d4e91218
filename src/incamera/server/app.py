"""The ASGI application: routes, middleware, static web app and the start-up sequence.

Start-up (``lifespan``), in order: create the data directory, migrate the database,
release meetings the previous run left occupied, start the meeting sweeper, start the
media plane (``media_plane``), then report ready on ``/healthz``. Shutdown runs the
same steps backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from incamera.config import Settings, is_loopback_host
from incamera.identity.secret_box import SecretKeyError
from incamera.media import fanout_kernel
from incamera.rooms.access import Argon2PinHasher, is_guest_id
from incamera.signalling.conferences import Conferences
from incamera.signalling.endpoint import websocket_endpoint
from incamera.store import Database, MeetingStore
from incamera.store.audit import AuditStore

from . import api, auth_routes, metrics
from .admission import Admission
from .audit import AuditLog
from .context import ServerContext
from .logs import redact_path
from .meetings import ClosePolicy, is_meeting_id
from .registry import MeetingRegistry
from .security import SecurityHeadersMiddleware, origin_of

log = structlog.get_logger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
MEETING_PAGE = "meeting.html"
GUEST_COOKIE = "incamera_guest"  # a browser's random id: what blocks a removed guest
GUEST_COOKIE_MAX_AGE = 30 * 24 * 3600
HOUSEKEEPING_INTERVAL = 600.0  # seconds between audit/invitation purges


def sweep_interval(policy: ClosePolicy) -> float:
    """How often closing times are checked: often enough for short grace periods."""
    return max(1.0, min(30.0, policy.empty_grace.total_seconds() / 4))


def _tap_path(settings: Settings) -> str | None:
    """The test-only media tap's file (needs ``testing.hooks``; see media/tap.py)."""
    tap = settings.testing.media_tap_path
    if tap is None or not settings.testing.hooks:
        return None
    log.warning("TEST HOOK: the media workers record every forwarded packet", path=str(tap))
    return str(tap)


@contextlib.asynccontextmanager
async def media_plane(app: Starlette) -> AsyncIterator[None]:
    """Start the media plane with the server and stop it with the server.

    One SFU worker process per ``settings.media.workers``, each on its own UDP port from
    ``port_min``; the supervisor restarts a crashed worker (see docs/architecture.md).
    """
    from incamera.media.supervisor import Supervisor, WorkerRestarted

    context = ServerContext.of(app)
    media = context.settings.media
    conferences: Conferences = app.state.conferences

    def on_event(worker_id: int, event: object) -> None:
        conferences.on_media_event(worker_id, event)
        if isinstance(event, WorkerRestarted):
            log.warning(
                "media worker restarted",
                worker=worker_id,
                exit_code=event.exit_code,
                lost_routers=len(event.lost_routers),
            )

    supervisor = Supervisor(
        workers=media.workers,
        listen_ip=media.listen_ip,
        port_min=media.port_min,
        port_max=media.port_max,
        announced_ips=tuple(media.announced_ips),
        on_event=on_event,
        allowed_remote_networks=tuple(media.allowed_remote_networks),
        tap_path=_tap_path(context.settings),
    )
    await supervisor.start()
    context.media = supervisor
    kernel = fanout_kernel.choice()  # the workers inherit this process's environment
    log.info(
        "media plane started",
        workers=len(supervisor.workers),
        ports=[w.port for w in supervisor.workers.values()],
        fanout_kernel=kernel,
    )
    if kernel != "c":
        log.warning(
            "media workers forward with the slower Python kernel",
            why="the C fan-out kernel is not built (install gcc and python3-dev, reinstall)"
            if not fanout_kernel.available()
            else f"{fanout_kernel.ENV}=python",
        )
    try:
        yield
    finally:
        await conferences.close()
        context.media = None
        await supervisor.stop()


async def housekeeping(app: Starlette, interval: float = HOUSEKEEPING_INTERVAL) -> None:
    """Forever: purge audit events past retention and expired invitations, forget old
    rate-limit state."""
    context = ServerContext.of(app)
    audit: AuditLog = app.state.audit
    admission: Admission = app.state.admission
    while True:
        try:
            await audit.purge()
            await context.registry.purge_invitations()
            admission.prune()
        except Exception:
            log.exception("housekeeping failed")
        await asyncio.sleep(interval)


def sso_logout_origins(settings: Settings) -> tuple[str, ...]:
    """Where signing out may continue: the single sign-on provider's origin, when signing
    out there too is configured (auth_routes.signout)."""
    oidc = settings.oidc
    if oidc.issuer is None or not oidc.end_provider_session:
        return ()
    return (origin_of(oidc.issuer),)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    context = ServerContext.of(app)
    context.settings.data_dir.mkdir(parents=True, exist_ok=True)
    await to_thread.run_sync(context.database.upgrade)
    try:  # sign-in needs the secret key: a bad key file stops the start, with its reason
        identity = await to_thread.run_sync(auth_routes.identity_of, app)
    except SecretKeyError as exc:
        log.error("cannot start", reason=str(exc))
        raise
    sealed = await to_thread.run_sync(identity.accounts.seal_stored_seeds)
    if sealed:
        log.info("second-factor seeds sealed with the secret key", count=sealed)
    await context.registry.recover()
    audit: AuditLog = app.state.audit
    audit.start()
    sweeper = asyncio.create_task(
        context.registry.run_sweeper(sweep_interval(context.registry.policy)),
        name="incamera-meeting-sweeper",
    )
    keeper = asyncio.create_task(housekeeping(app), name="incamera-housekeeping")
    try:
        async with media_plane(app):
            context.ready = True
            log.info("server ready")
            try:
                yield
            finally:
                context.ready = False
                log.info("server stopping")
    finally:
        for task in (sweeper, keeper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await audit.close()
        await to_thread.run_sync(context.database.close)


class AccessLogMiddleware:
    """Logs method, path (ids redacted), status and duration; never the client address."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            log.debug(
                "http request",
                method=scope["method"],
                path=redact_path(scope["path"]),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )


def allowed_hosts(settings: Settings) -> list[str]:
    """Host header values accepted: the public host and loopback names (blocks DNS
    rebinding against a server on localhost)."""
    hosts = {"localhost", "127.0.0.1", "::1", "[::1]"}
    public = urlsplit(settings.base_url).hostname
    if public:
        hosts.add(public)
        hosts.add(f"[{public}]" if ":" in public else public)
    if not is_loopback_host(settings.bind_host):
        hosts.add(settings.bind_host)
    return sorted(hosts)


async def meeting_page(request: Request) -> Response:
    """``/m/<id>``: the meeting web app (it asks the API whether the meeting exists).

    Sets the ``incamera_guest`` cookie (a random 128-bit id, HttpOnly, SameSite=Lax) when
    the browser has none: a moderator's block of a guest is a block of this id."""
    page = WEB_DIR / MEETING_PAGE
    if not is_meeting_id(request.path_params["meeting_id"]) or not page.is_file():
        raise HTTPException(404)
    response = FileResponse(page, headers={"cache-control": "no-cache"})
    if not is_guest_id(request.cookies.get(GUEST_COOKIE)):
        response.set_cookie(
            GUEST_COOKIE,
            secrets.token_urlsafe(16),
            max_age=GUEST_COOKIE_MAX_AGE,
            path="/",
            secure=ServerContext.of(request.app).base_url.startswith("https://"),
            httponly=True,
            samesite="lax",
        )
    return response


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, api.ApiError)
    return api.error_response(exc.status, exc.code, exc.detail)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/") or request.url.path == "/healthz":
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return api.error_response(exc.status_code, code, str(exc.detail))
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)


class CatchAllMiddleware:
    """Turns an unhandled exception into a JSON 500 *inside* the middleware stack, so the
    response still gets the security headers (Starlette's own error handler sits outside
    every middleware). Logs the error without the client address or ids."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_and_track(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_track)
        except Exception:
            log.exception("unhandled error", path=redact_path(scope["path"]))
            if started:
                raise
            response = api.error_response(500, "internal_error", "internal server error")
            await response(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    """The ASGI app for ``settings``. The database is opened and migrated on start-up."""
    database = Database(settings.db_url)
    policy = ClosePolicy(
        empty_grace=timedelta(seconds=settings.meetings.empty_grace_seconds),
        unused_ttl=timedelta(seconds=settings.meetings.unused_ttl_seconds),
    )
    context = ServerContext(
        settings=settings,
        database=database,
        registry=MeetingRegistry(MeetingStore(database), policy),
    )
    routes = [
        *api.routes,
        *auth_routes.routes,
        *metrics.routes,
        WebSocketRoute("/api/meetings/{meeting_id}/ws", websocket_endpoint),
        Route("/m/{meeting_id}", meeting_page, methods=["GET", "HEAD"]),
        Mount("/", app=StaticFiles(directory=WEB_DIR, html=True), name="web"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(AccessLogMiddleware),
            Middleware(
                SecurityHeadersMiddleware,
                base_url=settings.base_url,
                form_targets=sso_logout_origins(settings),
            ),
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings)),
            Middleware(CatchAllMiddleware),
        ],
        exception_handlers={
            api.ApiError: _api_error,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
    )
    app.state.context = context
    app.state.pins = Argon2PinHasher()
    app.state.creations = api.creation_window(settings.meetings.creations_per_hour)
    app.state.audit = AuditLog(AuditStore(database), settings.audit)
    app.state.admission = Admission.build(
        context.registry, settings.access, app.state.audit, app.state.pins
    )
    app.state.conferences = Conferences(
        context.registry,
        lambda: context.media,
        test_hooks=settings.testing.hooks,
        pins=app.state.pins,
        audit=app.state.audit.record,
    )
    return app
