"""The meeting registry: domain ``Meeting`` objects backed by the store.

Occupied meetings live in memory (their participants are live connections); every other
meeting lives only in the database and is loaded on demand. The database is written only
when something durable changes: creation, first join, last leave, closing. Store calls are
blocking and run in a worker thread (see ``incamera.store.database``).

One ``asyncio.Lock`` serialises the read-modify-write sequences, so a join and the sweeper
closing the same meeting cannot interleave.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from anyio import to_thread

from incamera.rooms.access import AccessPolicy, BlockList, Invitation, MeetingAccess, secret_digest
from incamera.store import MeetingRecord, MeetingStore
from incamera.store.access import AccessStore, BlockKind, BlockRecord, InvitationRecord

from .meetings import (
    ClosePolicy,
    Meeting,
    MeetingClosed,
    MeetingNotFound,
    is_meeting_id,
    new_meeting_id,
)

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _meeting(record: MeetingRecord, policy: ClosePolicy) -> Meeting:
    return Meeting(
        id=record.id,
        created_at=record.created_at,
        policy=policy,
        title=record.title,
        e2ee=record.e2ee,
        closes_at=record.closes_at,
        closed_at=record.closed_at,
        access_policy=AccessPolicy.from_stored(record.access_policy),
        moderator_key_hash=record.moderator_key_hash,
        owner_account_id=record.owner_account_id,
    )


def _record(meeting: Meeting) -> MeetingRecord:
    return MeetingRecord(
        id=meeting.id,
        title=meeting.title,
        e2ee=meeting.e2ee,
        created_at=meeting.created_at,
        closes_at=meeting.closes_at,
        closed_at=meeting.closed_at,
        access_policy=meeting.access_policy.stored(),
        moderator_key_hash=meeting.moderator_key_hash,
        owner_account_id=meeting.owner_account_id,
    )


class MeetingRegistry:
    def __init__(
        self,
        store: MeetingStore,
        policy: ClosePolicy,
        clock: Callable[[], datetime] = utc_now,
        access: AccessStore | None = None,
    ) -> None:
        self._store = store
        self._access = access if access is not None else AccessStore(store.database)
        self.policy = policy
        self._clock = clock
        self._occupied: dict[str, Meeting] = {}
        self._lock = asyncio.Lock()

    @property
    def occupied_count(self) -> int:
        return len(self._occupied)

    def now(self) -> datetime:
        return self._clock()

    async def create(
        self,
        title: str | None = None,
        *,
        e2ee: bool = True,
        access_policy: AccessPolicy | None = None,
        moderator_key_hash: str | None = None,
        owner_account_id: str | None = None,
    ) -> Meeting:
        meeting = Meeting.create(
            new_meeting_id(),
            self._clock(),
            self.policy,
            title,
            e2ee=e2ee,
            access_policy=access_policy,
            moderator_key_hash=moderator_key_hash,
            owner_account_id=owner_account_id,
        )
        await to_thread.run_sync(self._store.insert, _record(meeting))
        log.info("meeting created")
        return meeting

    async def get(self, meeting_id: str) -> Meeting:
        """The meeting, open or closed. Raises ``MeetingNotFound``."""
        if not is_meeting_id(meeting_id):
            raise MeetingNotFound(meeting_id)
        occupied = self._occupied.get(meeting_id)
        if occupied is not None:
            return occupied
        record = await to_thread.run_sync(self._store.get, meeting_id)
        if record is None:
            raise MeetingNotFound(meeting_id)
        return _meeting(record, self.policy)

    async def e2ee(self, meeting_id: str) -> bool:
        """Whether the meeting is end-to-end encrypted. Raises ``MeetingNotFound``."""
        return (await self.get(meeting_id)).e2ee

    # -- access (incamera.rooms.access) ----------------------------------------------------

    async def access_policy(self, meeting_id: str) -> AccessPolicy:
        """The meeting's access policy. Raises ``MeetingNotFound``."""
        return (await self.get(meeting_id)).access_policy

    async def set_policy(self, meeting_id: str, policy: AccessPolicy) -> None:
        """Store a changed access policy (and keep it on the live meeting)."""
        async with self._lock:
            meeting = await self.get(meeting_id)
            await to_thread.run_sync(self._store.set_access_policy, meeting_id, policy.stored())
            meeting.access_policy = policy

    async def block(
        self,
        meeting_id: str,
        *,
        account_id: str | None = None,
        guest_id: str | None = None,
        name: str | None = None,
    ) -> None:
        """Keep an account, or a guest's browser, out of the meeting from now on (``name``:
        their display name, for the moderators' list)."""
        now = self._clock()
        if account_id is not None:
            await to_thread.run_sync(
                self._access.block, meeting_id, "account", account_id, now, name
            )
        elif guest_id is not None:
            await to_thread.run_sync(self._access.block, meeting_id, "guest", guest_id, now, name)

    async def list_blocks(self, meeting_id: str) -> list[BlockRecord]:
        """Everyone blocked from the meeting, newest first."""
        return await to_thread.run_sync(self._access.list_blocks, meeting_id)

    async def unblock(self, meeting_id: str, kind: BlockKind, subject: str) -> bool:
        """Lift a block; False if there was none."""
        return await to_thread.run_sync(self._access.unblock, meeting_id, kind, subject)

    async def end(self, meeting_id: str) -> None:
        """A moderator ended the meeting: closed now, nobody can join again."""
        async with self._lock:
            meeting = await self.get(meeting_id)
            if meeting.end(self._clock()):
                await to_thread.run_sync(self._store.close_now, meeting_id, meeting.closed_at)

    async def add_invitation(
        self, meeting_id: str, token: str, role: str, name: str | None, expires_at: datetime
    ) -> None:
        record = InvitationRecord(
            token_hash=secret_digest(token),
            meeting_id=meeting_id,
            role=role,
            name=name,
            created_at=self._clock(),
            expires_at=expires_at,
        )
        await to_thread.run_sync(self._access.add_invitation, record)

    async def list_invitations(self, meeting_id: str) -> list[InvitationRecord]:
        """The meeting's invitations that have not expired, newest first."""
        return await to_thread.run_sync(self._access.list_invitations, meeting_id, self._clock())

    async def revoke_invitation(self, meeting_id: str, token_hash: str) -> bool:
        """Delete an invitation (by its digest); False if the meeting has none such."""
        return await to_thread.run_sync(self._access.revoke_invitation, meeting_id, token_hash)

    async def access(self, meeting: Meeting, invite: str | None) -> MeetingAccess:
        """What the join decision needs to know about ``meeting`` (with the invitation
        ``invite`` names, if any)."""
        blocks = await to_thread.run_sync(self._access.blocks, meeting.id)
        invitation = None
        if invite:
            found = await to_thread.run_sync(
                self._access.find_invitation, meeting.id, secret_digest(invite)
            )
            if found is not None:
                invitation = Invitation(
                    token_digest=found.token_hash,
                    meeting_id=found.meeting_id,
                    role="moderator" if found.role == "moderator" else "participant",
                    expires_at=found.expires_at.timestamp(),
                    name=found.name,
                )
        return MeetingAccess(
            meeting_id=meeting.id,
            policy=meeting.access_policy,
            moderator_key_digest=meeting.moderator_key_hash,
            owner_account_id=meeting.owner_account_id,
            blocks=BlockList(account_ids=blocks.account_ids, guest_ids=blocks.guest_ids),
            invitation=invitation,
        )

    async def purge_invitations(self) -> int:
        return await to_thread.run_sync(self._access.purge_expired_invitations, self._clock())

    async def join(self, meeting_id: str, participant_id: str) -> Meeting:
        """Put a participant in a meeting. Raises ``MeetingNotFound`` or ``MeetingClosed``."""
        async with self._lock:
            meeting = await self.get(meeting_id)
            if meeting.join(participant_id, self._clock()):
                await to_thread.run_sync(self._store.set_closes_at, meeting.id, None)
                self._occupied[meeting.id] = meeting
            return meeting

    async def leave(self, meeting_id: str, participant_id: str) -> None:
        """Take a participant out; the last one out starts the grace period."""
        async with self._lock:
            meeting = self._occupied.get(meeting_id)
            if meeting is None or not meeting.leave(participant_id, self._clock()):
                return
            del self._occupied[meeting_id]
            await to_thread.run_sync(self._store.set_closes_at, meeting.id, meeting.closes_at)

    async def sweep(self) -> list[str]:
        """Close every meeting whose closing time has passed; returns their ids."""
        async with self._lock:
            closed = await to_thread.run_sync(self._store.close_due, self._clock())
        if closed:
            log.info("meetings closed", count=len(closed))
        return closed

    async def recover(self) -> int:
        """At start-up: meetings occupied when the last process stopped are empty now."""
        closes_at = self._clock() + self.policy.empty_grace
        count = await to_thread.run_sync(self._store.release_occupied, closes_at)
        if count:
            log.info("meetings left occupied by the previous run released", count=count)
        return count

    async def run_sweeper(self, interval_seconds: float) -> None:
        """Sweep forever, every ``interval_seconds`` (cancel the task to stop)."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("meeting sweep failed")


__all__ = ["MeetingClosed", "MeetingNotFound", "MeetingRegistry", "utc_now"]
