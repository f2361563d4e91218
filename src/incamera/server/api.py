"""The REST API: meetings, invitations, the audit log, health. Every error is JSON
``{"error": code, "detail": reason}``.

``code`` is a stable machine-readable word; ``detail`` is an English sentence for people.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from anyio import to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from incamera.identity.principal import SignedInAccount
from incamera.rooms.access import (
    AccessPolicy,
    Limit,
    PinHasher,
    PolicyError,
    SlidingWindow,
    new_secret,
    secret_digest,
    secret_matches,
)
from incamera.store import DatabaseUnavailable

from .context import ServerContext
from .meetings import TITLE_MAX_LENGTH, Meeting, MeetingClosed, MeetingNotFound

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 16 * 1024
NO_STORE = {"cache-control": "no-store"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def creation_window(per_hour: int) -> SlidingWindow:
    """Meetings created per creator (account, or address when not signed in) per hour."""
    return SlidingWindow(Limit(per_hour, 3600.0))


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=NO_STORE)


class CreateMeetingRequest(BaseModel):
    """Body of ``POST /api/meetings`` (the body itself is optional)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=TITLE_MAX_LENGTH)
    # End-to-end encryption is the default; ``false`` needs the administrator policy
    # ``e2ee.allow_unencrypted``.
    e2ee: bool = Field(default=True, strict=True)
    # The initial access policy: lobby, locked, pin (digits), members_only, guests_allowed.
    policy: dict[str, Any] | None = None

    @field_validator("title")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        return value or None


async def read_json_body(request: Request) -> Any | None:
    """The parsed JSON body, or None when there is none. Raises ``ApiError`` with a reason."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")
    if not bytes(body).strip():
        return None
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "request body must be application/json")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "malformed_json",
            f"request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
        ) from None


def _validation_detail(exc: ValidationError) -> str:
    reasons = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "body"
        reasons.append(f"{where}: {error['msg']}")
    return "; ".join(reasons)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def meeting_json(meeting: Meeting, base_url: str) -> dict[str, Any]:
    return {
        "id": meeting.id,
        "title": meeting.title,
        "e2ee": meeting.e2ee,
        "join_url": f"{base_url}/m/{meeting.id}",
        "created_at": _iso(meeting.created_at),
        "closes_at": _iso(meeting.closes_at),
        "participants": len(meeting.participants),
        "policy": meeting.access_policy.public(),
    }


def pins_of(app: Any) -> PinHasher:
    """The app's PIN hasher (argon2id), shared with the conferences."""
    pins: PinHasher = app.state.pins
    return pins


def audit_of(app: Any) -> Any:
    """The app's :class:`~incamera.server.audit.AuditLog` (None if not set up)."""
    return getattr(app.state, "audit", None)


async def _principal(request: Request) -> Any:
    from .auth_routes import principal

    return await principal(request)


async def create_meeting(request: Request) -> Response:
    context = ServerContext.of(request.app)
    data = await read_json_body(request)
    try:
        payload = CreateMeetingRequest.model_validate({} if data is None else data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", _validation_detail(exc)) from None
    if not payload.e2ee and not context.settings.e2ee.allow_unencrypted:
        raise ApiError(
            403,
            "e2ee_required",
            "meetings on this server are end-to-end encrypted; an administrator policy "
            "(e2ee.allow_unencrypted) is needed for a meeting without it",
        )
    access_policy = AccessPolicy()
    if payload.policy:
        pins = pins_of(request.app)
        changes = payload.policy
        try:
            access_policy = await to_thread.run_sync(lambda: AccessPolicy().changed(changes, pins))
        except PolicyError as exc:
            raise ApiError(422, "invalid_request", f"policy: {exc}") from None
    who = await _principal(request)
    owner = who.account_id if isinstance(who, SignedInAccount) else None
    if owner is None and context.settings.meetings.creators == "accounts":
        raise ApiError(
            403,
            "account_required",
            "only signed-in people can create meetings on this server: sign in first",
        )
    creations: SlidingWindow = request.app.state.creations
    creator = f"account:{owner}" if owner else f"address:{_source(request)}"
    now = time.monotonic()
    wait = creations.retry_after(creator, now)
    if wait:
        raise ApiError(
            429,
            "too_many_meetings",
            f"too many meetings created; try again in {math.ceil(wait / 60)} minute(s)",
        )
    creations.add(creator, now)
    moderator_key = new_secret()
    meeting = await context.registry.create(
        payload.title,
        e2ee=payload.e2ee,
        access_policy=access_policy,
        moderator_key_hash=secret_digest(moderator_key),
        owner_account_id=owner,
    )
    if not meeting.e2ee:
        log.warning("meeting created WITHOUT end-to-end encryption (administrator policy)")
    audit = audit_of(request.app)
    if audit is not None:
        audit.record(
            "meeting_created",
            meeting_id=meeting.id,
            actor=owner,
            details={"e2ee": meeting.e2ee, "policy": access_policy.public()},
            source_ip=request.client.host if request.client else None,
        )
    body = meeting_json(meeting, context.base_url)
    # The moderator key is shown here only: it is stored as a digest.
    body["moderator_url"] = f"{context.base_url}/m/{meeting.id}#mod={moderator_key}"
    body["owner"] = owner
    return JSONResponse(
        body,
        status_code=201,
        headers={**NO_STORE, "location": f"/api/meetings/{meeting.id}"},
    )


class CreateInvitationRequest(BaseModel):
    """Body of ``POST /api/meetings/<id>/invitations``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=TITLE_MAX_LENGTH)
    role: Literal["participant", "moderator"] = "participant"
    expires_in_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600, strict=True)


async def _moderates(request: Request, meeting: Meeting) -> bool:
    """Whether the request carries the meeting's moderator key (``Authorization: Bearer``)
    or comes from its signed-in owner with the session's CSRF token."""
    authorization = request.headers.get("authorization", "")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() == "bearer" and key:
        return secret_matches(key.strip(), meeting.moderator_key_hash)
    if meeting.owner_account_id is None:
        return False
    from incamera.identity import csrf

    from .auth_routes import current_session

    who = await _principal(request)
    if not isinstance(who, SignedInAccount) or who.account_id != meeting.owner_account_id:
        return False
    session = await current_session(request)
    try:
        csrf.check(session.csrf_token if session else None, request.headers.get(csrf.HEADER))
    except csrf.CsrfRejected:
        return False
    return True


async def create_invitation(request: Request) -> Response:
    context = ServerContext.of(request.app)
    meeting_id = request.path_params["meeting_id"]
    try:
        meeting = await context.registry.get(meeting_id)
    except MeetingNotFound:
        raise ApiError(404, MeetingNotFound.code, "no meeting with this id") from None
    if not meeting.is_open(context.registry.now()):
        raise ApiError(410, MeetingClosed.code, "this meeting has ended")
    if not await _moderates(request, meeting):
        raise ApiError(
            403,
            "forbidden",
            "only a moderator can invite: send the moderator key as 'Authorization: Bearer "
            "<key>', or be the meeting's signed-in owner (with the X-CSRF-Token header)",
        )
    data = await read_json_body(request)
    try:
        payload = CreateInvitationRequest.model_validate({} if data is None else data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", _validation_detail(exc)) from None
    token = new_secret()
    expires_at = context.registry.now() + timedelta(seconds=payload.expires_in_seconds)
    await context.registry.add_invitation(meeting.id, token, payload.role, payload.name, expires_at)
    return JSONResponse(
        {
            "url": f"{context.base_url}/m/{meeting.id}#invite={token}",
            "role": payload.role,
            "name": payload.name,
            "expires_at": _iso(expires_at),
        },
        status_code=201,
        headers=NO_STORE,
    )


async def admin_audit(request: Request) -> Response:
    """``GET /api/admin/audit?kind=&meeting=&since=&limit=``: administrators only."""
    who = await _principal(request)
    if not isinstance(who, SignedInAccount):
        raise ApiError(401, "not_signed_in", "sign in as an administrator first")
    if not who.is_admin:
        raise ApiError(403, "forbidden", "only administrators can read the audit log")
    audit = audit_of(request.app)
    if audit is None:
        raise ApiError(503, "unavailable", "the audit log is not running")
    query = request.query_params
    since: datetime | None = None
    if query.get("since"):
        try:
            since = datetime.fromisoformat(query["since"].replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, "invalid_request", "since: not an ISO 8601 time") from None
        if since.tzinfo is None:
            raise ApiError(400, "invalid_request", "since: give a time zone (e.g. Z)")
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise ApiError(400, "invalid_request", "limit: not a number") from None
    if not 1 <= limit <= 1000:
        raise ApiError(400, "invalid_request", "limit: from 1 to 1000")
    events = await audit.query(
        kind=query.get("kind") or None,
        meeting_id=query.get("meeting") or None,
        since=since,
        limit=limit,
    )
    return JSONResponse({"events": [e.as_json() for e in events]}, headers=NO_STORE)


async def get_meeting(request: Request) -> Response:
    context = ServerContext.of(request.app)
    meeting_id = request.path_params["meeting_id"]
    try:
        meeting = await context.registry.get(meeting_id)
    except MeetingNotFound:
        raise ApiError(404, MeetingNotFound.code, "no meeting with this id") from None
    if not meeting.is_open(context.registry.now()):
        raise ApiError(410, MeetingClosed.code, "this meeting has ended")
    return JSONResponse(meeting_json(meeting, context.base_url), headers=NO_STORE)


async def healthz(request: Request) -> Response:
    """Readiness: 200 once start-up finished and the database answers, else 503."""
    context = ServerContext.of(request.app)
    if not context.ready:
        return JSONResponse({"status": "starting"}, status_code=503, headers=NO_STORE)
    try:
        await to_thread.run_sync(context.database.ping)
    except DatabaseUnavailable as exc:
        log.warning("health check: database unavailable", cause=str(exc))
        return JSONResponse(
            {"status": "unavailable", "reason": "database unavailable"},
            status_code=503,
            headers=NO_STORE,
        )
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/api/meetings", create_meeting, methods=["POST"]),
    Route("/api/meetings/{meeting_id}", get_meeting, methods=["GET"]),
    Route("/api/meetings/{meeting_id}/invitations", create_invitation, methods=["POST"]),
    Route("/api/admin/audit", admin_audit, methods=["GET"]),
]
