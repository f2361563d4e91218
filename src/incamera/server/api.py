"""The REST API: meetings, health. Every error is JSON ``{"error": code, "detail": reason}``.

``code`` is a stable machine-readable word; ``detail`` is an English sentence for people.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import structlog
from anyio import to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=NO_STORE)


class CreateMeetingRequest(BaseModel):
    """Body of ``POST /api/meetings`` (the body itself is optional)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=TITLE_MAX_LENGTH)
    # End-to-end encryption is the default; ``false`` needs the administrator policy
    # ``e2ee.allow_unencrypted``.
    e2ee: bool = Field(default=True, strict=True)

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
    }


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
    meeting = await context.registry.create(payload.title, e2ee=payload.e2ee)
    if not meeting.e2ee:
        log.warning("meeting created WITHOUT end-to-end encryption (administrator policy)")
    return JSONResponse(
        meeting_json(meeting, context.base_url),
        status_code=201,
        headers={**NO_STORE, "location": f"/api/meetings/{meeting.id}"},
    )


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
]
