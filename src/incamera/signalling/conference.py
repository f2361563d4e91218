"""One meeting's live conference: the room, its router on a media worker, and per participant
a send transport (the client offers) and a receive transport (the server offers).

Every operation that touches the media plane runs under the conference's lock, so the
forwarding graph and the SDP sessions change one step at a time. Messages to participants
go through their :class:`Outbox` (non-blocking, in order), so a broadcast reaches every
member in the same order.

Receive-side negotiation is serialised per participant: at most one ``subscribe`` offer is
outstanding; changes made meanwhile are folded into the next offer once the answer arrives.
A new consumer starts paused and is resumed once the answer that contains it is applied
(resuming requests a key frame, so the subscriber starts on one).

Lobby and moderation (``docs/protocol.md``, "Access and moderation"): someone who must
wait gets ``lobby_wait`` instead of ``welcome`` and is no participant yet: no room entry,
no transports, no subscribe offers, no participant list, no MLS traffic. A moderator's
``admit`` runs the normal join for it; ``deny`` closes its socket. Moderator actions are
checked against :mod:`incamera.rooms.roles`; what must outlive the conference (the policy,
blocks, the meeting's end, the audit log) goes through the :class:`Host`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from incamera.e2ee.delivery import (
    GROUP_ID_BYTES,
    CommitOut,
    DeliveryError,
    GroupDelivery,
    KeyPackageRefused,
    MessageOut,
    Outgoing,
    Send,
    Task,
    WelcomeOut,
)
from incamera.media.api import DtlsParameters, TransportInfo, TransportState
from incamera.media.errors import MediaError
from incamera.media.process import WorkerClient
from incamera.media.rtp_parameters import MediaKind, RtpParameters
from incamera.rooms import (
    Action,
    ChatEntry,
    LastModerator,
    Lobby,
    LobbyError,
    ModerationError,
    Role,
    Room,
    RoomError,
    Source,
    Track,
    Waiting,
)
from incamera.rooms.access import AccessPolicy, PinHasher, PolicyError
from incamera.rooms.roles import check, check_target
from incamera.rooms.room import Participant as RoomParticipant
from incamera.sdp.errors import SdpError, SdpStateError
from incamera.sdp.publish import answer_publish
from incamera.sdp.subscribe import SubscribeSession

from . import messages as m
from .errors import NegotiationFailed, SignallingError

log = structlog.get_logger(__name__)

RESUME_WINDOW = 30.0  # seconds a dropped participant waits for its resume
PARTICIPANT_ID_BYTES = 12
RESUME_TOKEN_BYTES = 24

# WebSocket close codes of moderation (docs/protocol.md, "Close codes").
CLOSE_REMOVED = 4401
CLOSE_DENIED = 4403
CLOSE_MEETING_ENDED = 4410
DENIED_REASON = "A moderator did not let you in."

_QUALITY = {
    TransportState.CONNECTED: "good",
    TransportState.NEW: "fair",
    TransportState.CONNECTING: "fair",
    TransportState.DISCONNECTED: "poor",
    TransportState.FAILED: "poor",
}
_QUALITY_RANK = {"good": 0, "fair": 1, "poor": 2}


class Outbox(Protocol):
    """Where a participant's messages go (one WebSocket connection)."""

    def send(self, message: m.Message) -> None: ...

    def close(self, code: int, reason: str = "") -> None: ...


class Host(Protocol):
    """What a conference needs from the server around it (``Conferences`` implements it)."""

    async def member_gone(self, conference: Conference, participant_id: str) -> None:
        """A participant (or someone waiting) is gone for good."""

    async def save_policy(self, conference: Conference, policy: AccessPolicy) -> None:
        """Persist a changed access policy (before anyone is told)."""

    async def block(
        self, conference: Conference, account: str | None, guest_id: str | None, name: str
    ) -> bool:
        """Refuse this person (display name ``name``) from now on; False if there is nothing
        to block them by."""

    async def end(self, conference: Conference) -> None:
        """Close the meeting for good: nobody can join it again."""

    async def invite(
        self, conference: Conference, role: str, name: str | None, expires_in: float
    ) -> tuple[str, str]:
        """Store a new invitation; returns its token (shown once) and expiry (ISO 8601)."""

    async def access_list(self, conference: Conference) -> m.AccessList:
        """The meeting's open invitations and blocks, newest first."""

    async def revoke_invitation(self, conference: Conference, invitation_id: str) -> bool:
        """Delete an invitation by its ``access`` id; False if there is none such."""

    async def unblock(self, conference: Conference, block_id: str) -> tuple[str, str | None] | None:
        """Lift a block by its ``access`` id: ``(kind, account id or None)``, or None if
        there is none such."""

    def audit(
        self,
        conference: Conference,
        kind: str,
        *,
        actor: str | None,
        subject: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        """Record a security event (must not block)."""


@dataclass(slots=True)
class Published:
    producer_id: str
    params: RtpParameters
    source: Source


@dataclass(slots=True)
class Consumed:
    consumer_id: str
    producer_id: str
    mid: str  # on the subscriber's receive pc
    kind: MediaKind
    participant_id: str  # whose track
    source: Source
    awaiting_answer: bool = True  # paused until an answer containing it is applied
    hidden: bool = False  # ``layer`` width 0: paused while not shown


@dataclass(eq=False, slots=True)
class Member:
    """A participant's connection state and media plumbing."""

    id: str
    resume_token: str
    outbox: Outbox | None
    send_transport: TransportInfo | None = None
    send_ufrag: str | None = None  # the client's ICE ufrag on the send pc
    send_session_id: int = field(default_factory=lambda: secrets.randbits(62))
    send_version: int = 0
    published: dict[str, Published] = field(default_factory=dict)  # send-pc mid ->
    send_dtls: DtlsParameters | None = None  # the client's certificate on the send pc
    recv_transport: TransportInfo | None = None
    recv_remote: tuple[str, DtlsParameters] | None = None  # client ufrag and certificate
    # The receive transport has been connected (ICE and DTLS) once: until then consumers
    # stay paused, so that the key frame their resumption asks for is not forwarded into a
    # transport that cannot send yet (the subscriber would wait for its own PLI).
    recv_connected: bool = False
    session: SubscribeSession | None = None
    consumed: dict[str, Consumed] = field(default_factory=dict)  # producer id ->
    by_mid: dict[str, Consumed] = field(default_factory=dict)  # recv-pc mid ->
    offer_outstanding: bool = False
    offered_mids: frozenset[str] = frozenset()
    renegotiate: bool = False
    states: dict[str, TransportState] = field(default_factory=dict)  # transport id ->
    quality: str | None = None
    expiry: asyncio.TimerHandle | None = None
    name: str = ""
    guest: bool = True
    account: str | None = None  # the signed-in account's id
    guest_id: str | None = None  # the guest's browser id (``incamera_guest``), for blocks
    skip_mls: bool = False
    admitted: bool = True  # False while waiting in the lobby
    gone: bool = False  # removed, denied or the meeting ended: the session is over

    def send(self, message: m.Message) -> None:
        if self.outbox is not None:
            self.outbox.send(message)

    @property
    def transport_ids(self) -> list[str]:
        return [t.id for t in (self.send_transport, self.recv_transport) if t is not None]


def participant_model(p: RoomParticipant, device_key: bytes | None = None) -> m.Participant:
    return m.Participant(
        id=p.id,
        name=p.name,
        audio_muted=p.audio_muted,
        video_muted=p.video_muted,
        hand_raised=p.hand_raised,
        screen_sharing=p.screen_sharing,
        reconnecting=p.reconnecting,
        device_key=m.b64encode(device_key) if device_key is not None else None,
        role=p.role.value,
        guest=p.guest,
        invite_proof=p.invite_proof,
    )


def mls_message(item: Outgoing) -> m.Message:
    """The signalling message for one thing the MLS delivery service sends."""
    match item:
        case Task():
            return m.MlsTask(
                create=item.create,
                add=[
                    m.MlsAdd(participant=pid, key_package=m.b64encode(kp)) for pid, kp in item.add
                ],
                remove=list(item.remove),
                update=item.update,
                epoch=item.epoch,
            )
        case CommitOut():
            return m.MlsCommitPosted(
                epoch=item.epoch, commit=m.b64encode(item.commit), sender=item.sender
            )
        case WelcomeOut():
            return m.MlsWelcome(
                epoch=item.epoch,
                welcome=m.b64encode(item.welcome),
                ratchet_tree=m.b64encode(item.ratchet_tree),
            )
        case MessageOut():
            return m.MlsMessagePosted(sender=item.sender, message=m.b64encode(item.message))
        case KeyPackageRefused():
            return m.Error(code="bad_mls", reason=item.reason)


def chat_model(entry: ChatEntry) -> m.ChatMessage:
    return m.ChatMessage(
        seq=entry.seq, sender=entry.sender, name=entry.name, text=entry.text, ts=entry.ts
    )


def new_participant_id() -> str:
    """A participant id others see: random, unrelated to the resume token."""
    return secrets.token_urlsafe(PARTICIPANT_ID_BYTES)


def default_source(kind: MediaKind) -> Source:
    return Source.MIC if kind is MediaKind.AUDIO else Source.CAMERA


class Conference:
    def __init__(
        self,
        meeting_id: str,
        router_id: str,
        worker: WorkerClient,
        host: Host,
        resume_window: float = RESUME_WINDOW,
        version: int = 1,
        *,
        e2ee: bool = True,
        policy: AccessPolicy | None = None,
        pins: PinHasher | None = None,
    ) -> None:
        self.meeting_id = meeting_id
        self.router_id = router_id
        self.worker = worker
        self.room = Room()
        self.members: dict[str, Member] = {}
        self.reserved = 0  # joins under way (keeps an empty conference alive)
        self.closed = False
        self.version = version
        self.active_speaker: str | None = None
        self._host = host
        self.policy = policy or AccessPolicy()
        self._pins = pins
        self.lobby = Lobby()
        self.waiting: dict[str, Member] = {}  # in the lobby, by id
        self._resume_window = resume_window
        self._lock = asyncio.Lock()
        self._by_token: dict[str, Member] = {}
        self._by_transport: dict[str, Member] = {}
        self._dirty: set[Member] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # End-to-end encryption: the meeting's MLS group and its delivery service.
        self.e2ee = e2ee
        self.delivery: GroupDelivery | None = None
        if e2ee:
            self.delivery = GroupDelivery(secrets.token_bytes(GROUP_ID_BYTES), time.monotonic)
        self._mls_timer: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        return not self.members and not self.waiting and self.reserved == 0

    # -- messaging -------------------------------------------------------------------------

    def broadcast(self, message: m.Message, *, exclude: Member | None = None) -> None:
        for member in self.members.values():
            if member is not exclude:
                member.send(message)

    def _model(self, participant: RoomParticipant) -> m.Participant:
        key = self.delivery.device_key(participant.id) if self.delivery is not None else None
        return participant_model(participant, key)

    def _updated(self, member: Member, *, exclude_self: bool = False) -> None:
        participant = self.room.participants.get(member.id)
        if participant is not None:
            self.broadcast(
                m.ParticipantUpdated(participant=self._model(participant)),
                exclude=member if exclude_self else None,
            )

    def _welcome(self, member: Member, resumed: bool) -> m.Welcome:
        e2ee = None
        if self.delivery is not None:
            e2ee = m.E2eeInfo(
                group_id=m.b64encode(self.delivery.group_id), epoch=self.delivery.epoch
            )
        return m.Welcome(
            version=self.version,
            participant=self._model(self.room.get(member.id)),
            resume_token=member.resume_token,
            resumed=resumed,
            participants=[self._model(p) for p in self.room.others(member.id)],
            chat=[chat_model(e) for e in self.room.chat_history()],
            e2ee=e2ee,
            policy=m.AccessInfo(**self.policy.public()),
        )

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("conference task failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- membership ------------------------------------------------------------------------

    async def join(
        self,
        participant_id: str,
        name: str,
        outbox: Outbox,
        *,
        role: Role | str = Role.PARTICIPANT,
        wait: bool = False,
        account: str | None = None,
        guest: bool = True,
        guest_id: str | None = None,
        skip_mls: bool = False,
    ) -> Member:
        """A new participant: welcome, announce, then offer it every existing track.

        With ``wait`` it goes to the lobby instead (``lobby_wait``) until a moderator
        admits it (:meth:`admit`). ``skip_mls`` (a test hook) keeps it outside the MLS
        group: it gets media as usual, but its key package is never handed to a committer.
        """
        async with self._lock:
            if self.closed:
                raise SignallingError("the meeting's media session ended", "internal")
            member = Member(
                id=participant_id,
                resume_token=secrets.token_urlsafe(RESUME_TOKEN_BYTES),
                outbox=outbox,
                name=name,
                guest=guest,
                account=account,
                guest_id=guest_id,
                skip_mls=skip_mls,
                admitted=not wait,
            )
            if wait:
                self.lobby.add(Waiting(member.id, name, guest, account))
                self.waiting[member.id] = member
                self._lobby_changed()
                log.info("participant waits in the lobby", waiting=len(self.waiting))
                return member
            await self._enter(member, Role(role))
            return member

    async def _enter(self, member: Member, role: Role) -> None:
        """Put an admitted participant in the room (under the lock)."""
        participant = self.room.join(
            member.id, member.name, role=role, guest=member.guest, account=member.account
        )
        if self.delivery is not None:
            self._mls(self.delivery.join(member.id, skip=member.skip_mls))
        self.members[member.id] = member
        self._by_token[member.resume_token] = member
        member.send(self._welcome(member, resumed=False))
        self.broadcast(m.ParticipantJoined(participant=self._model(participant)), exclude=member)
        if participant.moderator and self.lobby:
            member.send(self._lobby_message())
        if self.active_speaker is not None:
            member.send(m.ActiveSpeaker(id=self.active_speaker))
        for other in self.members.values():
            if other.quality is not None and other is not member:
                member.send(m.ConnectionQuality(id=other.id, quality=other.quality))  # type: ignore[arg-type]
        try:
            for track in self.room.wanted_by(member.id):
                await self._try_consume(member, track)
        finally:
            self._flush()
        log.info("participant joined", participants=len(self.members))

    async def resume(self, token: str, outbox: Outbox) -> Member | None:
        """Reattach a participant by its resume token (None if unknown or expired)."""
        async with self._lock:
            member = self._by_token.get(token)
            if member is None or member.id not in self.members or self.closed:
                return None
            old, member.outbox = member.outbox, outbox
            if old is not None and old is not outbox:
                old.close(4409, "replaced by a resumed session")
            if member.expiry is not None:
                member.expiry.cancel()
                member.expiry = None
            outbox.send(self._welcome(member, resumed=True))
            if self.room.get(member.id).moderator and self.lobby:
                outbox.send(self._lobby_message())
            if self.room.set_reconnecting(member.id, False):
                self._updated(member, exclude_self=True)
            if self.active_speaker is not None:
                outbox.send(m.ActiveSpeaker(id=self.active_speaker))
            if self.delivery is not None:  # MLS messages kept while it was away
                self._mls(self.delivery.reconnected(member.id))
            # Offers or answers may have been lost with the old socket: always offer afresh
            # (the receive pc is the same, so this is a no-op renegotiation at worst).
            member.offer_outstanding = False
            if member.session is not None:
                self._dirty.add(member)
            self._flush()
            log.info("participant resumed")
            return member

    def disconnected(self, member: Member, outbox: Outbox) -> None:
        """The participant's socket closed without ``leave``: wait for a resume.

        Someone waiting in the lobby just leaves it (there is nothing to resume).
        """
        if not member.admitted:
            if member.outbox is outbox and self._drop_waiting(member):
                self._spawn(self._host.member_gone(self, member.id))
            return
        if member.outbox is not outbox or member.id not in self.members:
            return
        member.outbox = None
        if self.room.set_reconnecting(member.id, True):
            self._updated(member)
        if self.delivery is not None:
            self._mls(self.delivery.disconnected(member.id))
        loop = asyncio.get_running_loop()
        member.expiry = loop.call_later(
            self._resume_window, lambda: self._spawn(self.leave(member, expired=True))
        )

    async def leave(self, member: Member, *, expired: bool = False) -> None:
        """Take a participant out: its tracks go from every subscriber, then it goes."""
        if not member.admitted:
            if self._drop_waiting(member):
                await self._host.member_gone(self, member.id)
            return
        async with self._lock:
            if not await self._leave(member):
                return
            log.info("participant left", expired=expired, participants=len(self.members))
        await self._host.member_gone(self, member.id)

    async def _leave(self, member: Member) -> bool:
        """Take a participant out (under the lock); False if it was not in."""
        if self.members.get(member.id) is not member:
            return False
        if member.expiry is not None:
            member.expiry.cancel()
            member.expiry = None
        try:
            for mid in list(member.published):
                await self._unpublish(member, mid)
            for transport_id in member.transport_ids:
                with contextlib.suppress(MediaError):
                    await self.worker.close_transport(transport_id)
        finally:
            participant = self._forget(member)
            self.broadcast(m.ParticipantLeft(id=member.id))
            if self.active_speaker == member.id:
                self.active_speaker = None
                self.broadcast(m.ActiveSpeaker(id=None))
            if self.delivery is not None:  # a member is removed by the next commit
                self._mls(self.delivery.leave(member.id))
            if participant is not None and participant.moderator:
                self._hand_over()
            self._flush()
        return True

    def _hand_over(self) -> None:
        """The last moderator left: its successor becomes moderator, and everyone sees it."""
        heir = self.room.hand_over()
        if heir is None:
            return
        self.broadcast(m.ParticipantUpdated(participant=self._model(heir)))
        member = self.members.get(heir.id)
        if member is not None and self.lobby:
            member.send(self._lobby_message())
        self._audit("role_changed", actor="system", subject=heir.id, role=heir.role.value)
        log.info("moderator handed over")

    def _forget(self, member: Member) -> RoomParticipant | None:
        participant = self.room.leave(member.id)
        self.members.pop(member.id, None)
        self._by_token.pop(member.resume_token, None)
        for transport_id in member.transport_ids:
            self._by_transport.pop(transport_id, None)
        self._dirty.discard(member)
        return participant

    async def fail(self, reason: str) -> list[str]:
        """The router is gone (its worker died): end every session. Returns the ids."""
        async with self._lock:
            self.closed = True
            self._cancel_mls_timer()
            gone = [*self.members.values(), *self.waiting.values()]
            for member in gone:
                member.gone = True
                if member.expiry is not None:
                    member.expiry.cancel()
                member.send(m.Error(code="internal", reason=reason))
                if member.outbox is not None:
                    member.outbox.close(1011, "media session ended")
                self._forget(member)
            self.waiting.clear()
            return [member.id for member in gone]

    def shutdown(self) -> None:
        """The server stops: close every socket, cancel every timer."""
        self.closed = True
        self._cancel_mls_timer()
        for member in [*self.members.values(), *self.waiting.values()]:
            if member.expiry is not None:
                member.expiry.cancel()
            if member.outbox is not None:
                member.outbox.close(1001, "server shutting down")
        for task in list(self._tasks):
            task.cancel()

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, member: Member, sdp: str, sources: dict[str, str]) -> str:
        """Answer the send pc's (re)offer and bring the producers in line with it."""
        async with self._lock:
            try:
                return await self._publish(member, sdp, sources)
            finally:
                self._flush()

    async def _publish(self, member: Member, sdp: str, sources: dict[str, str]) -> str:
        if member.send_transport is None:
            member.send_transport = await self.worker.create_transport(self.router_id)
            self._by_transport[member.send_transport.id] = member
        info = member.send_transport
        member.send_version += 1
        try:
            answer = answer_publish(
                sdp, info, session_id=member.send_session_id, session_version=member.send_version
            )
            remote_ufrag = answer.remote_ice.username_fragment
            if member.send_ufrag is not None and remote_ufrag != member.send_ufrag:
                # The client restarted ICE: new local credentials too (RFC 8445 §9).
                info = member.send_transport = await self.worker.restart_ice(info.id)
                answer = answer_publish(
                    sdp,
                    info,
                    session_id=member.send_session_id,
                    session_version=member.send_version,
                )
        except SdpError as error:
            raise NegotiationFailed(str(error)) from None
        wanted: dict[str, tuple[RtpParameters, Source]] = {}
        for params in answer.producers:
            source = Source(sources[params.mid]) if params.mid in sources else None
            source = source or default_source(params.kind)
            if source.kind != params.kind.value:
                raise NegotiationFailed(
                    f"mid {params.mid}: a {source} source must be {source.kind}, "
                    f"not {params.kind.value}"
                )
            wanted[params.mid] = (params, source)
        previous = None
        if member.send_ufrag is not None and member.send_dtls is not None:
            previous = (member.send_ufrag, member.send_dtls)
        await self._connect(info.id, (remote_ufrag, answer.remote_dtls), previous)
        member.send_ufrag, member.send_dtls = remote_ufrag, answer.remote_dtls
        sharing = self.room.get(member.id).screen_sharing
        for mid, published in list(member.published.items()):
            if wanted.get(mid) != (published.params, published.source):
                await self._unpublish(member, mid)
        added: list[Track] = []
        for mid, (params, source) in wanted.items():
            if mid in member.published:
                continue
            producer_id = await self.worker.produce(info.id, params)
            track = self.room.add_track(member.id, producer_id, source, params.kind.value)
            member.published[mid] = Published(producer_id, params, source)
            if track.paused:
                await self.worker.pause_producer(producer_id, True)
            added.append(track)
        for track in added:
            for other in list(self.members.values()):
                if other is not member:
                    await self._try_consume(other, track)
        if self.room.get(member.id).screen_sharing != sharing:
            self._updated(member)
        return answer.sdp

    async def _unpublish(self, member: Member, mid: str) -> None:
        published = member.published.pop(mid)
        with contextlib.suppress(MediaError):
            await self.worker.close_producer(published.producer_id)  # closes its consumers
        self.room.remove_track(published.producer_id)
        for other in self.members.values():
            consumed = other.consumed.pop(published.producer_id, None)
            if consumed is None:
                continue
            other.by_mid.pop(consumed.mid, None)
            if other.session is not None:
                with contextlib.suppress(SdpStateError):
                    other.session.remove(consumed.mid)
            self._dirty.add(other)

    async def _connect(
        self,
        transport_id: str,
        remote: tuple[str, DtlsParameters],
        previous: tuple[str, DtlsParameters] | None,
    ) -> None:
        """Tell the transport the client's ICE ufrag and certificate, when they change."""
        if previous is None:
            await self.worker.connect_transport(transport_id, remote[1], remote[0])
            return
        if set(remote[1].fingerprints) != set(previous[1].fingerprints):
            raise NegotiationFailed(
                "the DTLS certificate changed: a new peer connection must join afresh"
            )
        if remote[0] != previous[0]:  # the client restarted ICE
            try:
                await self.worker.connect_transport(transport_id, remote[1], remote[0])
            except MediaError as error:
                # The worker takes the new ufrag first, then refuses to set the (same)
                # fingerprints again once DTLS is connected: that refusal is expected.
                if "too late" not in str(error):
                    raise

    # -- subscribing -----------------------------------------------------------------------

    async def _try_consume(self, member: Member, track: Track) -> None:
        """Consume for one subscriber; a failure costs that subscriber this track only."""
        try:
            await self._consume(member, track)
        except MediaError:
            log.exception("consuming a track failed")

    async def _consume(self, member: Member, track: Track) -> None:
        if track.producer_id in member.consumed:
            return
        if member.recv_transport is None or member.session is None:
            info = await self.worker.create_transport(self.router_id)
            member.recv_transport = info
            member.session = SubscribeSession(info)
            self._by_transport[info.id] = member
        consumer = await self.worker.consume(
            member.recv_transport.id, track.producer_id, paused=True
        )
        stream_id = track.participant_id
        if track.source is Source.SCREEN:
            stream_id = f"{track.participant_id}-screen"
        mid = member.session.add(consumer.rtp_parameters, stream_id, consumer.id)
        consumed = Consumed(
            consumer_id=consumer.id,
            producer_id=track.producer_id,
            mid=mid,
            kind=consumer.rtp_parameters.kind,
            participant_id=track.participant_id,
            source=track.source,
        )
        member.consumed[track.producer_id] = consumed
        member.by_mid[mid] = consumed
        self._dirty.add(member)

    def _flush(self) -> None:
        """Offer the receive-side changes made by the last operation."""
        dirty, self._dirty = self._dirty, set()
        for member in dirty:
            if member.id in self.members:
                self._negotiate(member)

    def _negotiate(self, member: Member) -> None:
        if member.session is None:
            return
        if member.outbox is None or member.offer_outstanding:
            member.renegotiate = True
            return
        try:
            sdp = member.session.offer()
        except SdpStateError:  # nothing was ever offered and nothing is left
            member.renegotiate = False
            return
        mids = member.session.mids
        member.offer_outstanding = True
        member.offered_mids = frozenset(mids)
        member.renegotiate = False
        tracks = {
            mid: m.TrackInfo(participant=c.participant_id, source=c.source.value)
            for mid in mids
            if (c := member.by_mid.get(mid)) is not None
        }
        member.send(m.Subscribe(sdp=sdp, tracks=tracks))

    async def subscribe_answer(self, member: Member, sdp: str) -> None:
        async with self._lock:
            try:
                await self._subscribe_answer(member, sdp)
            finally:
                self._flush()

    async def _subscribe_answer(self, member: Member, sdp: str) -> None:
        if not member.offer_outstanding or member.session is None:
            raise NegotiationFailed("no subscribe offer is waiting for an answer")
        assert member.recv_transport is not None
        try:
            ice, dtls = member.session.apply_answer(sdp)
        except SdpError as error:
            member.offer_outstanding = False
            if member.renegotiate:
                self._dirty.add(member)
            raise NegotiationFailed(str(error)) from None
        member.offer_outstanding = False
        remote = (ice.username_fragment, dtls)
        await self._connect(member.recv_transport.id, remote, member.recv_remote)
        member.recv_remote = remote
        for consumed in member.consumed.values():
            if consumed.awaiting_answer and consumed.mid in member.offered_mids:
                consumed.awaiting_answer = False
                if not consumed.hidden and member.recv_connected:
                    with contextlib.suppress(MediaError):
                        await self.worker.pause_consumer(consumed.consumer_id, False)
        if member.renegotiate:
            self._dirty.add(member)

    async def restart_ice(self, member: Member) -> None:
        """The receive pc lost connectivity: new ICE credentials and a fresh offer."""
        async with self._lock:
            if member.recv_transport is None or member.session is None:
                return  # nothing is received yet: nothing to restart
            info = await self.worker.restart_ice(member.recv_transport.id)
            member.recv_transport = info
            member.session.transport = info
            self._dirty.add(member)
            self._flush()

    async def layer(self, member: Member, mid: str, width: int, height: int) -> None:
        async with self._lock:
            consumed = member.by_mid.get(mid)
            if consumed is None:
                raise SignallingError(f"no track with mid {mid!r}", "bad_message")
            visible = width > 0 and height > 0
            if consumed.hidden == visible:  # visibility changes
                consumed.hidden = not visible
                if not consumed.awaiting_answer and member.recv_connected:
                    await self.worker.pause_consumer(consumed.consumer_id, not visible)
            if visible and consumed.kind is MediaKind.VIDEO:
                await self.worker.set_max_size(consumed.consumer_id, width, height)

    # -- meeting state ---------------------------------------------------------------------

    async def mute(self, member: Member, source: str, muted: bool) -> None:
        async with self._lock:
            try:
                changed = self.room.set_muted(member.id, Source(source), muted)
            except RoomError as error:
                raise SignallingError(str(error), "bad_message") from None
            for track in changed:
                with contextlib.suppress(MediaError):
                    await self.worker.pause_producer(track.producer_id, track.paused)
            self._updated(member)

    def hand(self, member: Member, raised: bool) -> None:
        self.room.set_hand(member.id, raised)
        self._updated(member)

    def chat(self, member: Member, text: str) -> None:
        if self.e2ee:
            raise SignallingError(
                "this meeting is end-to-end encrypted: chat goes in mls_message", "e2ee_required"
            )
        entry = self.room.post(member.id, text, time.time())
        self.broadcast(m.ChatPosted(message=chat_model(entry)))

    async def key_frame(self, member: Member, mid: str) -> None:
        """Ask the sender of the track on receive m-line ``mid`` for a key frame."""
        async with self._lock:
            consumed = member.by_mid.get(mid)
            if consumed is None:
                raise SignallingError(f"no track with mid {mid!r}", "bad_message")
            await self.worker.request_keyframe(consumed.consumer_id)

    # -- the lobby ---------------------------------------------------------------------------

    def _lobby_message(self) -> m.LobbyUpdate:
        return m.LobbyUpdate(
            waiting=[
                m.LobbyEntry(id=w.id, name=w.name, guest=w.guest, account=w.account)
                for w in self.lobby.waiting
            ]
        )

    def _lobby_changed(self) -> None:
        """Tell moderators who waits, and everyone waiting their place in the queue."""
        update = self._lobby_message()
        for participant in self.room.moderators:
            member = self.members.get(participant.id)
            if member is not None:
                member.send(update)
        for position, waiting in enumerate(self.lobby.waiting, start=1):
            self.waiting[waiting.id].send(m.LobbyWait(position=position))

    def _drop_waiting(self, member: Member) -> bool:
        """Someone gave up waiting; False if it was not waiting (any more)."""
        if self.waiting.get(member.id) is not member:
            return False
        del self.waiting[member.id]
        self.lobby.leave(member.id)
        member.gone = True
        member.outbox = None
        self._lobby_changed()
        return True

    def _take_waiting(self, participant_id: str) -> Member:
        try:
            self.lobby.admit(participant_id)
        except LobbyError:
            raise SignallingError("nobody with this id is waiting", "unknown_participant") from None
        return self.waiting.pop(participant_id)

    async def admit(self, actor: Member, participant_id: str) -> None:
        """A moderator lets someone in: it gets ``welcome`` and joins as usual."""
        async with self._lock:
            self._require(actor, Action.ADMIT)
            member = self._take_waiting(participant_id)
            member.admitted = True
            self._lobby_changed()
            await self._enter(member, Role.PARTICIPANT)
        self._audit("participant_admitted", actor=actor.id, subject=member.id)

    async def deny(self, actor: Member, participant_id: str) -> None:
        """A moderator turns someone away: ``error`` ``denied``, then its socket closes."""
        async with self._lock:
            self._require(actor, Action.DENY)
            member = self._take_waiting(participant_id)
            member.gone = True
            member.send(m.Error(code="denied", reason=DENIED_REASON))
            if member.outbox is not None:
                member.outbox.close(CLOSE_DENIED, "denied")
                member.outbox = None
            self._lobby_changed()
        self._audit("participant_denied", actor=actor.id, subject=member.id)
        await self._host.member_gone(self, member.id)

    # -- moderation ----------------------------------------------------------------------

    def _require(self, actor: Member, action: Action) -> RoomParticipant:
        participant = self.room.participants.get(actor.id)
        if participant is None or self.members.get(actor.id) is not actor:
            raise SignallingError("you are not in the meeting", "not_admitted")
        try:
            check(participant.role, action)
        except ModerationError as error:
            raise SignallingError(error.reason, error.code) from None  # type: ignore[arg-type]
        return participant

    def _target(self, participant_id: str) -> Member:
        member = self.members.get(participant_id)
        if member is None:
            raise SignallingError("no such participant in the meeting", "unknown_participant")
        return member

    def _audit(
        self, kind: str, *, actor: str | None, subject: str | None = None, **details: object
    ) -> None:
        try:
            self._host.audit(self, kind, actor=actor, subject=subject, details=details or None)
        except Exception:
            log.exception("audit record failed", kind=kind)

    async def _force_mute(self, target: Member, source: Source, by: Member) -> bool:
        """Mute one source of ``target`` for a moderator (under the lock): its tracks are
        paused on the media plane at once. False if it was muted already."""
        if self.room.get(target.id).muted(source):
            return False
        for track in self.room.set_muted(target.id, source, True):
            with contextlib.suppress(MediaError):
                await self.worker.pause_producer(track.producer_id, True)
        self._updated(target)
        action = "mute" if source is Source.MIC else "stop_video"
        target.send(m.Moderated(action=action, by=by.id))
        return True

    async def moderate(
        self, actor: Member, action: str, participant_id: str, *, block: bool = False
    ) -> None:
        """``mute`` / ``stop_video`` / ``stop_screen`` (the participant may turn it on again
        itself) or ``remove`` (optionally ``block``: it cannot join again)."""
        if action == "remove":
            await self.remove(actor, participant_id, block=block)
            return
        async with self._lock:
            self._require(actor, Action(action))
            target = self._target(participant_id)
            if action == "stop_screen":
                await self._stop_screen(target, actor)
                return
            await self._force_mute(target, Source.MIC if action == "mute" else Source.CAMERA, actor)

    async def _stop_screen(self, target: Member, by: Member) -> None:
        """End ``target``'s screen sharing for a moderator (under the lock): its screen
        producers are closed at once (with everyone's consumers of them); its client stops
        the capture and renegotiates. Nothing happens if it is not sharing."""
        mids = [mid for mid, p in target.published.items() if p.source is Source.SCREEN]
        if not mids:
            return
        try:
            for mid in mids:
                await self._unpublish(target, mid)
            self._updated(target)
            target.send(m.Moderated(action="stop_screen", by=by.id))
        finally:
            self._flush()

    async def mute_all(self, actor: Member) -> None:
        """Mute everyone's microphone but the moderator's own."""
        async with self._lock:
            self._require(actor, Action.MUTE_ALL)
            for member in list(self.members.values()):
                if member is not actor and member.id in self.room.participants:
                    await self._force_mute(member, Source.MIC, actor)

    async def remove(self, actor: Member, participant_id: str, *, block: bool = False) -> None:
        """Take someone out: ``removed``, its socket (4401) and transports closed, its MLS
        membership removed by the next commit; with ``block`` it cannot join again."""
        async with self._lock:
            self._require(actor, Action.REMOVE)
            try:
                check_target(Action.REMOVE, actor.id, participant_id)
            except ModerationError as error:
                raise SignallingError(error.reason, error.code) from None  # type: ignore[arg-type]
            target = self._target(participant_id)
            blocked = False
            if block:
                blocked = await self._host.block(self, target.account, target.guest_id, target.name)
            target.gone = True
            target.send(m.Removed(by=actor.id, blocked=blocked))
            if target.outbox is not None:
                target.outbox.close(CLOSE_REMOVED, "removed")
                target.outbox = None
            await self._leave(target)
        self._audit("participant_removed", actor=actor.id, subject=target.id, blocked=blocked)
        if blocked:
            self._audit(
                "participant_blocked",
                actor=actor.id,
                subject=target.id,
                by="account" if target.account is not None else "guest_id",
            )
        await self._host.member_gone(self, target.id)

    async def set_policy(self, actor: Member, changes: dict[str, object]) -> None:
        """Change the access policy: stored first, then everyone gets ``policy``."""
        async with self._lock:
            self._require(actor, Action.SET_POLICY)
            before = self.policy
            pins = self._pins
            if "pin" in changes and changes["pin"] is not None and pins is None:
                raise SignallingError("PINs are not available on this server", "internal")
            try:
                policy = await asyncio.to_thread(before.changed, changes, pins)  # type: ignore[arg-type]
            except PolicyError as error:
                raise SignallingError(str(error), "bad_message") from None
            await self._host.save_policy(self, policy)
            self.policy = policy
            self.broadcast(m.PolicyChanged(**policy.public()))
        changed = sorted(k for k in changes if k != "pin")
        if "pin" in changes:
            changed.append("pin_set" if policy.pin_set else "pin_removed")
        self._audit("policy_changed", actor=actor.id, changed=changed, policy=policy.public())
        if policy.locked != before.locked:
            kind = "meeting_locked" if policy.locked else "meeting_unlocked"
            self._audit(kind, actor=actor.id)

    async def invite(
        self, actor: Member, role: str, name: str | None, expires_in: float
    ) -> m.InvitationCreated:
        """A personal invitation link for someone (moderators only): it skips the lobby and
        the PIN, not the lock; a moderator invitation makes its holder a moderator."""
        self._require(actor, Action.INVITE)
        token, expires_at = await self._host.invite(self, role, name, expires_in)
        self._audit("invitation_created", actor=actor.id, role=role, expires_at=expires_at)
        return m.InvitationCreated(token=token, role=role, name=name, expires_at=expires_at)  # type: ignore[arg-type]

    async def list_access(self, actor: Member) -> m.AccessList:
        """The open invitations and the blocks, for a moderator's list."""
        self._require(actor, Action.LIST_ACCESS)
        return await self._host.access_list(self)

    async def revoke_invitation(self, actor: Member, invitation_id: str) -> None:
        """A moderator revokes an invitation: from now on its link is ``invalid_invite``
        (someone already in the meeting with it stays)."""
        self._require(actor, Action.REVOKE_INVITATION)
        if not await self._host.revoke_invitation(self, invitation_id):
            raise SignallingError("no such invitation (expired or revoked)", "not_found")
        self._audit("invitation_revoked", actor=actor.id)

    async def unblock(self, actor: Member, block_id: str) -> None:
        """A moderator lifts a block: that account or browser may join again."""
        self._require(actor, Action.UNBLOCK)
        lifted = await self._host.unblock(self, block_id)
        if lifted is None:
            raise SignallingError("nobody is blocked with this id", "not_found")
        kind, account = lifted
        by = "account" if kind == "account" else "guest_id"  # as in participant_blocked
        self._audit("participant_unblocked", actor=actor.id, subject=account, by=by)

    async def invite_proof(self, member: Member, proof: str) -> None:
        """Publish ``member``'s invitation proof; moderators' browsers check it (E2EE)."""
        if self.delivery is None:
            raise SignallingError("this meeting is not end-to-end encrypted", "bad_message")
        async with self._lock:
            participant = self.room.get(member.id)
            if participant.invite_proof == proof:
                return
            participant.invite_proof = proof
            self._updated(member)

    async def set_role(self, actor: Member, participant_id: str, role: str) -> None:
        """Promote or demote (never the last moderator: ``last_moderator``)."""
        async with self._lock:
            self._require(actor, Action.SET_ROLE)
            target = self._target(participant_id)
            try:
                changed = self.room.set_role(target.id, Role(role))
            except LastModerator as error:
                raise SignallingError(error.reason, "last_moderator") from None
            if not changed:
                return
            self._updated(target)
            if role == Role.MODERATOR and self.lobby:
                target.send(self._lobby_message())
        self._audit("role_changed", actor=actor.id, subject=target.id, role=role)

    async def end(self, actor: Member) -> None:
        """End the meeting for everyone: ``meeting_ended``, every socket closed (4410;
        the actor's by its session, after the reply), the meeting closed in the registry
        so nobody can join again."""
        async with self._lock:
            self._require(actor, Action.END_MEETING)
            await self._host.end(self)
            self.closed = True
            self._cancel_mls_timer()
            ended = m.MeetingEnded(by=actor.id)
            everyone = [*self.members.values(), *self.waiting.values()]
            for member in everyone:
                member.gone = True
                if member.expiry is not None:
                    member.expiry.cancel()
                    member.expiry = None
                member.send(ended)
                if member.outbox is not None and member is not actor:  # after its reply
                    member.outbox.close(CLOSE_MEETING_ENDED, "meeting ended")
                member.outbox = None
            for member in list(self.members.values()):
                for transport_id in member.transport_ids:
                    with contextlib.suppress(MediaError):
                        await self.worker.close_transport(transport_id)
                self._forget(member)
            for waiting in self.lobby.waiting:
                self.lobby.leave(waiting.id)
            self.waiting.clear()
        self._audit("meeting_ended", actor=actor.id, participants=len(everyone))
        log.info("meeting ended by a moderator")
        for member in everyone:
            await self._host.member_gone(self, member.id)

    # -- end-to-end encryption: the MLS delivery service -----------------------------------

    def _delivery(self) -> GroupDelivery:
        if self.delivery is None:
            raise SignallingError("this meeting is not end-to-end encrypted", "not_e2ee")
        return self.delivery

    @staticmethod
    def _decode(text: str) -> bytes:
        try:
            return m.b64decode(text)
        except ValueError:
            raise SignallingError("not base64url", "bad_message") from None

    @staticmethod
    def _refused(call: Callable[[], list[Send]]) -> list[Send]:
        try:
            return call()
        except DeliveryError as error:
            raise SignallingError(error.reason, error.code) from None

    def mls_key_package(self, member: Member, key_package: str, device_key: str) -> None:
        delivery = self._delivery()
        kp, key = self._decode(key_package), self._decode(device_key)
        before = delivery.device_key(member.id)
        sends = self._refused(lambda: delivery.key_package(member.id, kp, key))
        if delivery.device_key(member.id) != before:
            self._updated(member)  # everyone learns its device key before it is added
        self._mls(sends)

    def mls_create(self, member: Member, group_info: str, ratchet_tree: str) -> None:
        delivery = self._delivery()
        info, tree = self._decode(group_info), self._decode(ratchet_tree)
        self._mls(self._refused(lambda: delivery.create(member.id, info, tree)))

    def mls_commit(self, member: Member, request: m.MlsCommit) -> None:
        delivery = self._delivery()
        commit = self._decode(request.commit)
        welcome = self._decode(request.welcome) if request.welcome is not None else None
        info, tree = self._decode(request.group_info), self._decode(request.ratchet_tree)
        sends = self._refused(
            lambda: delivery.commit(
                member.id, commit, welcome, info, tree, request.added, request.removed
            )
        )
        self._mls(sends)

    def mls_message(self, member: Member, message: str) -> None:
        delivery = self._delivery()
        data = self._decode(message)
        self._mls(self._refused(lambda: delivery.message(member.id, data)))

    def _mls(self, sends: list[Send]) -> None:
        """Deliver what the delivery service sends, then re-arm its timer."""
        for participant_id, item in sends:
            member = self.members.get(participant_id)
            if member is not None:
                member.send(mls_message(item))
        self._arm_mls_timer()

    def _arm_mls_timer(self) -> None:
        self._cancel_mls_timer()
        if self.delivery is None or self.closed:
            return
        deadline = self.delivery.next_deadline()
        if deadline is None:
            return
        delay = max(0.0, deadline - self.delivery.now())
        self._mls_timer = asyncio.get_running_loop().call_later(delay, self._poll_mls)

    def _poll_mls(self) -> None:
        self._mls_timer = None
        if self.delivery is not None and not self.closed:
            self._mls(self.delivery.poll())

    def _cancel_mls_timer(self) -> None:
        if self._mls_timer is not None:
            self._mls_timer.cancel()
            self._mls_timer = None

    # -- media-plane events ----------------------------------------------------------------

    def owns_transport(self, transport_id: str) -> bool:
        return transport_id in self._by_transport

    def on_transport_state(self, transport_id: str, state: TransportState) -> None:
        member = self._by_transport.get(transport_id)
        if member is None:
            return
        if (
            state is TransportState.CONNECTED
            and member.recv_transport is not None
            and member.recv_transport.id == transport_id
            and not member.recv_connected
        ):
            self._spawn(self._recv_connected(member))
        if state is TransportState.CLOSED:
            member.states.pop(transport_id, None)
        else:
            member.states[transport_id] = state
        qualities = [_QUALITY[s] for s in member.states.values() if s in _QUALITY]
        if not qualities:
            return
        quality = max(qualities, key=_QUALITY_RANK.__getitem__)
        if quality != member.quality:
            member.quality = quality
            self.broadcast(m.ConnectionQuality(id=member.id, quality=quality))  # type: ignore[arg-type]

    async def _recv_connected(self, member: Member) -> None:
        """The receive transport connected for the first time: resume its consumers (each
        video consumer asks its publisher for a key frame now that it can be delivered)."""
        async with self._lock:
            if member.recv_connected or self.members.get(member.id) is not member:
                return
            member.recv_connected = True
            for consumed in list(member.consumed.values()):
                if not consumed.awaiting_answer and not consumed.hidden:
                    with contextlib.suppress(MediaError):
                        await self.worker.pause_consumer(consumed.consumer_id, False)

    def on_active_speaker(self, producer_id: str | None) -> None:
        owner = self.room.owner_of(producer_id) if producer_id is not None else None
        speaker = owner.id if owner is not None else None
        if speaker is None and producer_id is not None:
            return  # a producer that just went away
        if speaker != self.active_speaker:
            self.active_speaker = speaker
            self.broadcast(m.ActiveSpeaker(id=speaker))
