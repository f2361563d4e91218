"""All live conferences of the server: one per occupied meeting.

A conference gets its router from the media supervisor when the first participant joins and
gives it back when the last one is gone. Media-plane events (transport states, active
speaker, a worker restart) are routed here from the supervisor's ``on_event``.

It is also each conference's :class:`~incamera.signalling.conference.Host`: what must
outlive a conference (the access policy, blocks, the end of a meeting) goes to the meeting
registry, and security events to the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import structlog

from incamera.media.api import ActiveSpeaker, TransportStateChanged
from incamera.media.errors import MediaError
from incamera.rooms import Role
from incamera.rooms.access import AccessPolicy, Argon2PinHasher, PinHasher, new_secret
from incamera.server.meetings import MeetingClosed, MeetingNotFound

from . import messages as m
from .conference import RESUME_WINDOW, Conference, Member, Outbox, new_participant_id
from .errors import SignallingError

if TYPE_CHECKING:
    from incamera.media.supervisor import Supervisor
    from incamera.server.registry import MeetingRegistry

log = structlog.get_logger(__name__)


def block_digest(meeting_id: str, kind: str, subject: str) -> str:
    """A block's id in ``access``: SHA-256 hex of ``meeting:kind:subject``. For a guest the
    subject is their browser's ``incamera_guest`` id, a bearer secret that must not leave
    the server; this digest names the block without revealing it (and, with the meeting in
    it, without linking the same browser's blocks in two meetings)."""
    return hashlib.sha256(f"{meeting_id}:{kind}:{subject}".encode()).hexdigest()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AuditSink(Protocol):
    """Records a security event without blocking (the server's audit log)."""

    def __call__(
        self,
        kind: str,
        *,
        meeting_id: str | None,
        actor: str | None,
        subject: str | None,
        details: dict[str, object] | None,
    ) -> None: ...


class Conferences:
    def __init__(
        self,
        registry: MeetingRegistry,
        media: Callable[[], Supervisor | None],
        resume_window: float = RESUME_WINDOW,
        test_hooks: bool = False,
        *,
        pins: PinHasher | None = None,
        audit: AuditSink | None = None,
    ) -> None:
        self._registry = registry
        self._media = media
        self.resume_window = resume_window
        # TESTS ONLY: ``hello.test_skip_mls`` and ``hello.test_bypass_lobby`` are accepted
        self.test_hooks = test_hooks
        self._pins = pins if pins is not None else Argon2PinHasher()
        self._audit = audit
        self._by_meeting: dict[str, Conference] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._by_meeting)

    def find(self, meeting_id: str) -> Conference | None:
        return self._by_meeting.get(meeting_id)

    def census(self) -> tuple[int, int, int]:
        """(live conferences, participants in them, people waiting in their lobbies)."""
        conferences = list(self._by_meeting.values())
        return (
            len(conferences),
            sum(len(c.members) for c in conferences),
            sum(len(c.waiting) for c in conferences),
        )

    async def join(
        self,
        meeting_id: str,
        name: str,
        outbox: Outbox,
        *,
        role: str = "participant",
        wait: bool = False,
        account: str | None = None,
        guest: bool = True,
        guest_id: str | None = None,
        skip_mls: bool = False,
    ) -> tuple[Conference, Member]:
        """Put a new participant into a meeting (creating its conference if needed).

        ``role`` is what the join decision gave it; ``wait``: it waits in the lobby for a
        moderator. ``account`` (a signed-in account's id) or ``guest_id`` (a guest's browser
        id) is what a block refuses later. ``skip_mls`` is the test hook that keeps the
        participant outside the MLS group.

        Raises :class:`SignallingError` with ``meeting_not_found`` or ``meeting_closed``.
        """
        participant_id = new_participant_id()
        try:
            await self._registry.join(meeting_id, participant_id)
        except (MeetingNotFound, MeetingClosed) as error:
            raise self._meeting_error(error) from None
        try:
            async with self._lock:
                conference = self._by_meeting.get(meeting_id)
                if conference is None or conference.closed:
                    conference = await self._start(meeting_id)
                conference.reserved += 1
        except BaseException:
            await self._registry.leave(meeting_id, participant_id)
            raise
        try:
            member = await conference.join(
                participant_id,
                name,
                outbox,
                role=Role(role),
                wait=wait,
                account=account,
                guest=guest,
                guest_id=guest_id,
                skip_mls=skip_mls,
            )
        except BaseException:
            await self._registry.leave(meeting_id, participant_id)
            raise
        finally:
            conference.reserved -= 1
            if conference.idle:
                await self._dispose(conference)
        return conference, member

    async def _start(self, meeting_id: str) -> Conference:
        supervisor = self._media()
        if supervisor is None:
            raise SignallingError("the media plane is not running", "internal")
        try:
            e2ee = await self._registry.e2ee(meeting_id)
            policy = await self._load_policy(meeting_id)
        except (MeetingNotFound, MeetingClosed) as error:
            raise self._meeting_error(error) from None
        try:
            router_id, worker = await supervisor.create_router()
        except MediaError as error:
            raise SignallingError(f"no media router: {error}", "internal") from None
        conference = Conference(
            meeting_id,
            router_id,
            worker,
            self,
            self.resume_window,
            e2ee=e2ee,
            policy=policy,
            pins=self._pins,
        )
        self._by_meeting[meeting_id] = conference
        log.info("conference started", conferences=len(self._by_meeting))
        return conference

    @staticmethod
    def _meeting_error(error: Exception) -> SignallingError:
        if isinstance(error, MeetingNotFound):
            return SignallingError("no such meeting", "meeting_not_found")
        return SignallingError("this meeting has ended", "meeting_closed")

    # -- the conferences' host ----------------------------------------------------------------

    async def member_gone(self, conference: Conference, participant_id: str) -> None:
        await self._registry.leave(conference.meeting_id, participant_id)
        if conference.idle:
            await self._dispose(conference)

    async def _load_policy(self, meeting_id: str) -> AccessPolicy:
        return (await self._registry.get(meeting_id)).access_policy

    async def save_policy(self, conference: Conference, policy: AccessPolicy) -> None:
        await self._registry.set_policy(conference.meeting_id, policy)

    async def block(
        self, conference: Conference, account: str | None, guest_id: str | None, name: str
    ) -> bool:
        if account is None and guest_id is None:
            return False
        await self._registry.block(
            conference.meeting_id, account_id=account, guest_id=guest_id, name=name or None
        )
        return True

    async def end(self, conference: Conference) -> None:
        await self._registry.end(conference.meeting_id)

    async def invite(
        self, conference: Conference, role: str, name: str | None, expires_in: float
    ) -> tuple[str, str]:
        token = new_secret()
        expires_at = self._registry.now() + timedelta(seconds=expires_in)
        await self._registry.add_invitation(conference.meeting_id, token, role, name, expires_at)
        return token, _iso(expires_at)

    async def access_list(self, conference: Conference) -> m.AccessList:
        invitations = await self._registry.list_invitations(conference.meeting_id)
        blocks = await self._registry.list_blocks(conference.meeting_id)
        return m.AccessList(
            invitations=[
                m.InvitationInfo(
                    id=i.token_hash,
                    role="moderator" if i.role == "moderator" else "participant",
                    name=i.name,
                    expires_at=_iso(i.expires_at),
                )
                for i in invitations
            ],
            blocks=[
                m.BlockInfo(
                    id=block_digest(conference.meeting_id, b.kind, b.subject),
                    name=b.name,
                    kind=b.kind,
                    since=_iso(b.created_at),
                )
                for b in blocks
            ],
        )

    async def revoke_invitation(self, conference: Conference, invitation_id: str) -> bool:
        return await self._registry.revoke_invitation(conference.meeting_id, invitation_id)

    async def unblock(self, conference: Conference, block_id: str) -> tuple[str, str | None] | None:
        # The id is a digest: find the block it names among the meeting's (a handful).
        meeting_id = conference.meeting_id
        for block in await self._registry.list_blocks(meeting_id):
            if block_digest(meeting_id, block.kind, block.subject) == block_id:
                if not await self._registry.unblock(meeting_id, block.kind, block.subject):
                    return None  # another moderator was faster
                return block.kind, block.subject if block.kind == "account" else None
        return None

    def audit(
        self,
        conference: Conference,
        kind: str,
        *,
        actor: str | None,
        subject: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        if self._audit is not None:
            self._audit(
                kind,
                meeting_id=conference.meeting_id,
                actor=actor,
                subject=subject,
                details=details,
            )

    async def _dispose(self, conference: Conference) -> None:
        async with self._lock:
            if not conference.idle or self._by_meeting.get(conference.meeting_id) is not conference:
                return
            del self._by_meeting[conference.meeting_id]
            conference.closed = True
            supervisor = self._media()
            if supervisor is not None:
                with contextlib.suppress(MediaError):
                    await supervisor.close_router(conference.router_id)
            log.info("conference ended", conferences=len(self._by_meeting))

    # -- media-plane events ----------------------------------------------------------------

    def on_media_event(self, worker_id: int, event: object) -> None:
        """The supervisor's ``on_event`` (called on the event loop, must not block)."""
        from incamera.media.supervisor import WorkerRestarted

        if isinstance(event, TransportStateChanged):
            for conference in self._by_meeting.values():
                if conference.owns_transport(event.transport_id):
                    conference.on_transport_state(event.transport_id, event.state)
                    break
        elif isinstance(event, ActiveSpeaker):
            for conference in self._by_meeting.values():
                if conference.router_id == event.router_id:
                    conference.on_active_speaker(event.producer_id)
                    break
        elif isinstance(event, WorkerRestarted):
            lost = set(event.lost_routers)
            for conference in list(self._by_meeting.values()):
                if conference.router_id in lost:
                    self._spawn(self._fail(conference))

    async def _fail(self, conference: Conference) -> None:
        log.warning("conference lost its media worker")
        gone = await conference.fail("the media server restarted: please join again")
        async with self._lock:
            if self._by_meeting.get(conference.meeting_id) is conference:
                del self._by_meeting[conference.meeting_id]
        for participant_id in gone:
            await self._registry.leave(conference.meeting_id, participant_id)

    def _spawn(self, coro: object) -> None:
        async def run() -> None:
            try:
                await coro  # type: ignore[misc]
            except Exception:
                log.exception("conference task failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Server shutdown: close every participant's socket and every timer."""
        for conference in list(self._by_meeting.values()):
            conference.shutdown()
        self._by_meeting.clear()
        for task in list(self._tasks):
            task.cancel()
