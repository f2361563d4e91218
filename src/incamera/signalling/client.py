"""An asyncio client of the signalling protocol (``docs/protocol.md``), for tests and bots.

It speaks the protocol over the ``websockets`` library and leaves WebRTC to the caller:
publishing goes through :meth:`SignallingClient.publish` (or the callable from
:meth:`SignallingClient.publisher`, which fits ``AiortcPeer.publish``), and ``subscribe``
offers are answered by the ``on_subscribe`` callable given to :meth:`SignallingClient.join`
(e.g. ``AiortcPeer.subscribe_offer``), one at a time and in order.

The client keeps the meeting's state as the server reports it: ``participants``, ``chat``,
``tracks`` (receive-pc mid -> whose track), ``active_speaker``, ``quality``; every server
message is also appended to ``received``. :meth:`wait_for` waits for a condition on them.

For end-to-end encrypted meetings it carries the MLS delivery messages but does no MLS
itself: ``e2ee`` (from ``welcome``), ``mls_tasks``, ``mls_commits``, ``mls_welcomes`` and
``mls_messages`` collect what the server sends (base64url: ``messages.b64decode``), and
:meth:`SignallingClient.mls_key_package`, :meth:`~SignallingClient.mls_create`,
:meth:`~SignallingClient.mls_commit` and :meth:`~SignallingClient.mls_message` send the
client's MLS messages as given.

Lobby and moderation: :meth:`SignallingClient.join` returns on ``lobby_wait`` too
(``waiting`` is then true, ``lobby_position`` the place in the queue);
:meth:`~SignallingClient.wait_admitted` waits for the ``welcome`` (or raises the ``denied``
error). ``policy``, ``lobby`` (moderators), ``moderated``, ``removed`` and ``ended`` keep
what the server said; :meth:`~SignallingClient.admit`, :meth:`~SignallingClient.deny`,
:meth:`~SignallingClient.moderate`, :meth:`~SignallingClient.mute_all`,
:meth:`~SignallingClient.set_policy`, :meth:`~SignallingClient.set_role`,
:meth:`~SignallingClient.end_meeting`, :meth:`~SignallingClient.invite`,
:meth:`~SignallingClient.list_access`, :meth:`~SignallingClient.revoke_invitation` and
:meth:`~SignallingClient.unblock` send the moderator requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from . import messages as m
from .errors import SignallingError

log = structlog.get_logger(__name__)

OfferHandler = Callable[[str], Awaitable[str]]
_MEETING_PAGE = re.compile(r"^/m/([A-Za-z0-9_-]+)/?$")


def websocket_url(url: str) -> tuple[str, str]:
    """``(ws url, origin)`` for a meeting link (``http(s)://host/m/<id>``) or a ws(s) URL."""
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        scheme = "https" if parts.scheme == "wss" else "http"
        return url, f"{scheme}://{parts.netloc}"
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not a meeting URL: {url!r}")
    match = _MEETING_PAGE.match(parts.path)
    if match is None:
        raise ValueError(f"not a meeting link (/m/<id>): {url!r}")
    ws_scheme = "wss" if parts.scheme == "https" else "ws"
    path = f"/api/meetings/{match.group(1)}/ws"
    return urlunsplit((ws_scheme, parts.netloc, path, "", "")), f"{parts.scheme}://{parts.netloc}"


def default_sources(offer_sdp: str) -> dict[str, str]:
    """Sources for a publish offer: each audio m-section is ``mic``, each video ``camera``."""
    sources: dict[str, str] = {}
    kind: str | None = None
    for line in offer_sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        elif line.startswith("a=mid:") and kind in ("audio", "video"):
            sources[line[6:].strip()] = "mic" if kind == "audio" else "camera"
    return sources


class SignallingClient:
    def __init__(self, ws: ClientConnection, on_subscribe: OfferHandler | None) -> None:
        self.ws = ws
        self.on_subscribe = on_subscribe
        self.welcome: m.Welcome | None = None
        self.participant: m.Participant | None = None
        self.participants: dict[str, m.Participant] = {}
        self.chat: list[m.ChatMessage] = []
        self.tracks: dict[str, m.TrackInfo] = {}
        self.active_speaker: str | None = None
        self.quality: dict[str, str] = {}
        self.e2ee: m.E2eeInfo | None = None
        self.mls_tasks: list[m.MlsTask] = []
        self.mls_commits: list[m.MlsCommitPosted] = []
        self.mls_welcomes: list[m.MlsWelcome] = []
        self.mls_messages: list[m.MlsMessagePosted] = []
        self.policy: m.AccessInfo | None = None
        self.lobby: list[m.LobbyEntry] = []  # moderators: who waits
        self.lobby_position: int | None = None  # while this client waits in the lobby
        self.moderated: list[m.Moderated] = []
        self.removed: m.Removed | None = None
        self.ended: m.MeetingEnded | None = None
        self.received: list[Any] = []
        self.errors: list[m.Error] = []  # errors that answer no request
        self.answered_offers = 0
        self.close_code: int | None = None
        self._rids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[m.Reply]] = {}
        self._changed = asyncio.Event()
        self._subscribe_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._welcomed: asyncio.Future[m.Welcome] = asyncio.get_running_loop().create_future()
        # ``welcome`` or ``lobby_wait``: the answer to ``hello``
        self._answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    # -- connecting ------------------------------------------------------------------------

    @classmethod
    async def join(
        cls,
        url: str,
        name: str,
        *,
        on_subscribe: OfferHandler | None = None,
        resume: str | None = None,
        origin: str | None = None,
        versions: tuple[int, ...] = m.PROTOCOL_VERSIONS,
        timeout: float = 10.0,
        test_skip_mls: bool | None = None,
        test_bypass_lobby: bool | None = None,
        cookies: Mapping[str, str] | None = None,
        **credentials: str | None,
    ) -> SignallingClient:
        """Connect to a meeting (its link or ws URL), say hello and wait for ``welcome``
        or ``lobby_wait`` (then ``waiting`` is true: see :meth:`wait_admitted`).

        ``credentials`` are further ``hello`` fields (``moderator_key``, ``invite``,
        ``pin``); None values are left out. ``cookies`` go with the upgrade request (the
        session cookie of a signed-in account, the guest's ``incamera_guest``). Raises
        :class:`SignallingError` when the server answers ``hello`` with an error
        (``meeting_not_found``, ``unsupported_version``, ``meeting_locked``...).
        """
        ws_url, default_origin = websocket_url(url)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else None
        ws = await connect(
            ws_url,
            origin=Origin(origin or default_origin),
            open_timeout=timeout,
            max_size=2**22,
            additional_headers=headers,
        )
        client = cls(ws, on_subscribe)
        try:
            hello = m.Hello(
                versions=list(versions),
                name=name,
                resume=resume,
                test_skip_mls=test_skip_mls,
                test_bypass_lobby=test_bypass_lobby,
                **{k: v for k, v in credentials.items() if v is not None},
            )
            await client.send(hello)
            await asyncio.wait_for(asyncio.shield(client._answered), timeout)
        except BaseException:
            await client.close()
            raise
        return client

    @property
    def waiting(self) -> bool:
        """In the lobby: no ``welcome`` yet."""
        return self.welcome is None and self.lobby_position is not None

    async def wait_admitted(self, timeout: float = 15.0) -> m.Welcome:
        """Wait for the ``welcome`` after ``lobby_wait``; raises the ``denied`` error."""
        return await asyncio.wait_for(asyncio.shield(self._welcomed), timeout)

    @property
    def id(self) -> str:
        assert self.participant is not None
        return self.participant.id

    @property
    def resume_token(self) -> str:
        assert self.welcome is not None
        return self.welcome.resume_token

    # -- sending ---------------------------------------------------------------------------

    async def send(self, message: m.Message) -> None:
        await self.ws.send(m.encode(message))

    async def send_raw(self, text: str) -> None:
        """Send any text (for tests of the server's input handling)."""
        await self.ws.send(text)

    async def request(self, message: m.ClientMessage, timeout: float = 15.0) -> m.Reply:
        """Send ``message`` with a fresh ``rid``; return the reply or raise the error."""
        rid = next(self._rids)
        future: asyncio.Future[m.Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            await self.send(message.model_copy(update={"rid": rid}))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(rid, None)

    async def publish(self, offer_sdp: str, sources: Mapping[str, str] | None = None) -> str:
        """Send the send pc's offer; returns the server's answer."""
        chosen = dict(sources) if sources is not None else default_sources(offer_sdp)
        reply = await self.request(m.Publish(sdp=offer_sdp, sources=chosen))  # type: ignore[arg-type]
        if reply.sdp is None:
            raise SignallingError("the publish reply has no answer", "internal")
        return reply.sdp

    def publisher(self, sources: Mapping[str, str] | None = None) -> OfferHandler:
        """A ``signal(offer) -> answer`` callable that publishes through this client."""

        async def signal(offer_sdp: str) -> str:
            return await self.publish(offer_sdp, sources)

        return signal

    async def send_chat(self, text: str) -> None:
        await self.request(m.Chat(text=text))

    async def mute(self, source: str, muted: bool) -> None:
        await self.request(m.Mute(source=source, muted=muted))  # type: ignore[arg-type]

    async def hand(self, raised: bool) -> None:
        await self.request(m.Hand(raised=raised))

    async def layer(self, mid: str, width: int, height: int) -> None:
        await self.request(m.Layer(mid=mid, width=width, height=height))

    async def restart_ice(self) -> None:
        await self.request(m.RestartIce())

    async def key_frame(self, mid: str) -> None:
        await self.request(m.KeyFrame(mid=mid))

    # -- end-to-end encryption (MLS delivery) ----------------------------------------------

    async def mls_key_package(self, key_package: bytes, device_key: bytes) -> None:
        await self.request(
            m.MlsKeyPackage(
                key_package=m.b64encode(key_package), device_key=m.b64encode(device_key)
            )
        )

    async def mls_create(self, group_info: bytes, ratchet_tree: bytes) -> None:
        await self.request(
            m.MlsCreate(group_info=m.b64encode(group_info), ratchet_tree=m.b64encode(ratchet_tree))
        )

    async def mls_commit(
        self,
        commit: bytes,
        *,
        group_info: bytes,
        ratchet_tree: bytes,
        welcome: bytes | None = None,
        added: list[str] | tuple[str, ...] = (),
        removed: list[str] | tuple[str, ...] = (),
    ) -> None:
        await self.request(
            m.MlsCommit(
                commit=m.b64encode(commit),
                welcome=m.b64encode(welcome) if welcome is not None else None,
                group_info=m.b64encode(group_info),
                ratchet_tree=m.b64encode(ratchet_tree),
                added=list(added),
                removed=list(removed),
            )
        )

    async def mls_message(self, message: bytes) -> None:
        await self.request(m.MlsMessage(message=m.b64encode(message)))

    # -- moderation ------------------------------------------------------------------------

    async def admit(self, participant: str) -> None:
        await self.request(m.Admit(participant=participant))

    async def deny(self, participant: str) -> None:
        await self.request(m.Deny(participant=participant))

    async def moderate(self, action: str, participant: str, *, block: bool = False) -> None:
        """``mute``, ``stop_video``, ``stop_screen`` or ``remove`` (``block``: it cannot join
        again)."""
        await self.request(m.Moderate(action=action, participant=participant, block=block))  # type: ignore[arg-type]

    async def mute_all(self) -> None:
        await self.request(m.MuteAll())

    async def set_policy(self, **changes: object) -> None:
        """``lobby``, ``locked``, ``pin`` (None removes it), ``members_only``,
        ``guests_allowed``: only the fields given change."""
        await self.request(m.SetPolicy.model_validate({"type": "set_policy", **changes}))

    async def set_role(self, participant: str, role: str) -> None:
        await self.request(m.SetRole(participant=participant, role=role))  # type: ignore[arg-type]

    async def end_meeting(self) -> None:
        await self.request(m.EndMeeting())

    async def invite(
        self, name: str | None = None, role: str = "participant", expires_in_seconds: int = 3600
    ) -> m.InvitationCreated:
        """A personal invitation (moderators): its token goes after ``#invite=`` in the link."""
        request = m.Invite(name=name, role=role, expires_in_seconds=expires_in_seconds)  # type: ignore[arg-type]
        reply = await self.request(request)
        if reply.invitation is None:
            raise SignallingError("the invite reply has no invitation", "internal")
        return reply.invitation

    async def list_access(self) -> m.AccessList:
        """The open invitations and the blocks (moderators)."""
        reply = await self.request(m.ListAccess())
        if reply.access is None:
            raise SignallingError("the list_access reply has no access", "internal")
        return reply.access

    async def revoke_invitation(self, invitation_id: str) -> None:
        """Revoke an invitation by its ``id`` from :meth:`list_access` (moderators)."""
        await self.request(m.RevokeInvitation(id=invitation_id))

    async def unblock(self, block_id: str) -> None:
        """Let a blocked person join again, by the ``id`` from :meth:`list_access`."""
        await self.request(m.Unblock(id=block_id))

    async def ping(self) -> None:
        count = sum(isinstance(x, m.Pong) for x in self.received)
        await self.send(m.Ping())
        await self.wait_for(lambda c: sum(isinstance(x, m.Pong) for x in c.received) > count)

    async def leave(self) -> None:
        """Leave the meeting; the server closes the socket."""
        with contextlib.suppress(ConnectionClosed):
            await self.request(m.Leave())
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._reader), 5.0)
        await self.close()

    def drop(self) -> None:
        """Cut the TCP connection without a close handshake (a lost network, for tests)."""
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        for task in [self._reader, *self._tasks]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- receiving -------------------------------------------------------------------------

    async def wait_for(
        self, predicate: Callable[[SignallingClient], bool], timeout: float = 15.0
    ) -> None:
        """Wait until ``predicate(self)`` holds (checked after every message)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.5))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                try:
                    message = m.parse_server_message(text)
                except SignallingError as error:
                    log.warning("unparsable server message", reason=error.reason)
                    continue
                self.received.append(message)
                self._handle(message)
                self._notify()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            failure = SignallingError("the connection closed", "internal")
            if not self._welcomed.done():
                self._welcomed.set_exception(failure)
                self._welcomed.exception()  # retrieved: nobody may be waiting for it
            if not self._answered.done():
                self._answered.set_exception(failure)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(failure)
            self._notify()

    def _handle(self, message: Any) -> None:
        match message:
            case m.Welcome():
                self.welcome = message
                self.e2ee = message.e2ee
                self.participant = message.participant
                self.participants = {p.id: p for p in message.participants}
                known = {c.seq for c in self.chat}
                self.chat.extend(c for c in message.chat if c.seq not in known)
                self.policy = message.policy
                self.lobby_position = None
                if not self._welcomed.done():
                    self._welcomed.set_result(message)
                if not self._answered.done():
                    self._answered.set_result(None)
            case m.LobbyWait():
                self.lobby_position = message.position
                if not self._answered.done():
                    self._answered.set_result(None)
            case m.LobbyUpdate():
                self.lobby = list(message.waiting)
            case m.PolicyChanged():
                self.policy = m.AccessInfo(**message.model_dump(exclude={"type"}))
            case m.Moderated():
                self.moderated.append(message)
            case m.Removed():
                self.removed = message
            case m.MeetingEnded():
                self.ended = message
            case m.Reply():
                future = self._pending.get(message.rid) if message.rid is not None else None
                if future is not None and not future.done():
                    future.set_result(message)
            case m.Error():
                future = self._pending.get(message.rid) if message.rid is not None else None
                error = SignallingError(message.reason, message.code)
                if future is not None and not future.done():
                    future.set_exception(error)
                elif not self._welcomed.done():
                    self._welcomed.set_exception(error)
                    self._welcomed.exception()  # retrieved: nobody may be waiting for it
                    if not self._answered.done():
                        self._answered.set_exception(error)
                    self.errors.append(message)
                else:
                    self.errors.append(message)
            case m.ParticipantJoined() | m.ParticipantUpdated():
                if self.participant is not None and message.participant.id == self.participant.id:
                    self.participant = message.participant
                else:
                    self.participants[message.participant.id] = message.participant
            case m.ParticipantLeft():
                self.participants.pop(message.id, None)
            case m.ChatPosted():
                self.chat.append(message.message)
            case m.ActiveSpeaker():
                self.active_speaker = message.id
            case m.ConnectionQuality():
                self.quality[message.id] = message.quality
            case m.MlsTask():
                self.mls_tasks.append(message)
            case m.MlsCommitPosted():
                self.mls_commits.append(message)
            case m.MlsWelcome():
                self.mls_welcomes.append(message)
            case m.MlsMessagePosted():
                self.mls_messages.append(message)
            case m.Subscribe():
                self.tracks = dict(message.tracks)
                task = asyncio.get_running_loop().create_task(self._answer(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _answer(self, offer: m.Subscribe) -> None:
        if self.on_subscribe is None:
            return
        async with self._subscribe_lock:
            try:
                answer = await self.on_subscribe(offer.sdp)
                await self.send(m.SubscribeAnswer(sdp=answer))
                self.answered_offers += 1
            except ConnectionClosed:
                pass
            except Exception:
                log.exception("answering a subscribe offer failed")
            self._notify()
