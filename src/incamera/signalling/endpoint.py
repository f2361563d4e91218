"""The WebSocket endpoint ``/api/meetings/{meeting_id}/ws`` (Starlette).

The ``Origin`` header is checked before the upgrade: the public URL's origin and loopback
origins (any port) are accepted, every other origin is refused (HTTP 403). Clients that are
not browsers may omit ``Origin``. Each accepted connection gets a :class:`Connection`
(an outbox with its own writer task, so a slow client never blocks a broadcast) and a
:class:`~incamera.signalling.session.Session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from incamera.config import is_loopback_host
from incamera.rooms.access import Joiner, is_guest_id

from . import messages as m
from .conferences import Conferences
from .session import CLOSE_FORBIDDEN_ORIGIN, CLOSE_HELLO_TIMEOUT, Session

log = structlog.get_logger(__name__)

HELLO_TIMEOUT = 10.0  # seconds from the upgrade to the first message
MAX_QUEUED = 2000  # messages waiting for a slow client before it is disconnected
CLOSE_TOO_SLOW = 4429


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return parts.scheme, host.lower(), port or (443 if parts.scheme == "https" else 80)


def origin_allowed(origin: str | None, public_url: str) -> bool:
    """Whether a WebSocket from a page on ``origin`` may connect."""
    if origin is None:
        return True  # not a browser: the Origin check protects browsers' users only
    got = _origin(origin)
    if got is None:
        return False
    if got == _origin(public_url):
        return True
    return is_loopback_host(got[1].strip("[]"))


class Connection:
    """An :class:`~incamera.signalling.conference.Outbox` on a Starlette WebSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._queue: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue()
        self._closing = False
        self.writer = asyncio.get_running_loop().create_task(self._write())

    @property
    def closing(self) -> bool:
        return self._closing

    def send(self, message: m.Message) -> None:
        if self._closing:
            return
        if self._queue.qsize() >= MAX_QUEUED:
            self.close(CLOSE_TOO_SLOW, "too slow")
            return
        self._queue.put_nowait(m.encode(message))

    def close(self, code: int, reason: str = "") -> None:
        if not self._closing:
            self._closing = True
            self._queue.put_nowait((code, reason))

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, tuple):
                    code, reason = item
                    with contextlib.suppress(Exception):
                        await self.websocket.close(code, reason)
                    return
                await self.websocket.send_text(item)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the peer is gone; the reader notices too

    async def finish(self) -> None:
        self._closing = True
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer


async def _joiner(websocket: WebSocket) -> Joiner:
    """Who is connecting: the session cookie's account (else a guest), the browser's
    ``incamera_guest`` id, the peer address."""
    from incamera.server.app import GUEST_COOKIE
    from incamera.server.auth_routes import principal

    guest_id = websocket.cookies.get(GUEST_COOKIE)
    return Joiner(
        principal=await principal(websocket),
        source=websocket.client.host if websocket.client else "unknown",
        guest_id=guest_id if is_guest_id(guest_id) else None,
    )


async def websocket_endpoint(websocket: WebSocket) -> None:
    from incamera.server.context import ServerContext

    context = ServerContext.of(websocket.app)
    conferences: Conferences = websocket.app.state.conferences
    if not origin_allowed(websocket.headers.get("origin"), context.base_url):
        log.info("websocket refused: foreign origin")
        await websocket.close(CLOSE_FORBIDDEN_ORIGIN)  # before accept: HTTP 403
        return
    joiner = await _joiner(websocket)
    await websocket.accept()
    connection = Connection(websocket)
    session = Session(
        websocket.path_params["meeting_id"],
        connection,
        conferences,
        time.monotonic,
        gate=getattr(websocket.app.state, "admission", None),
        joiner=joiner,
    )
    loop = asyncio.get_running_loop()
    hello_deadline = loop.time() + HELLO_TIMEOUT
    try:
        while not session.finished:
            try:
                if session.joined:
                    message = await websocket.receive()
                else:
                    timeout = max(0.0, hello_deadline - loop.time())
                    message = await asyncio.wait_for(websocket.receive(), timeout)
            except TimeoutError:
                connection.close(CLOSE_HELLO_TIMEOUT, "no hello")
                break
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            await session.receive(data)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        session.closed()
        if connection.closing:
            # Let the queued messages (an error, then the close) go out first.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(connection.writer), 2.0)
        await connection.finish()
