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

from incamera.store import MeetingRecord, MeetingStore

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
    )


def _record(meeting: Meeting) -> MeetingRecord:
    return MeetingRecord(
        id=meeting.id,
        title=meeting.title,
        e2ee=meeting.e2ee,
        created_at=meeting.created_at,
        closes_at=meeting.closes_at,
        closed_at=meeting.closed_at,
    )


class MeetingRegistry:
    def __init__(
        self,
        store: MeetingStore,
        policy: ClosePolicy,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self.policy = policy
        self._clock = clock
        self._occupied: dict[str, Meeting] = {}
        self._lock = asyncio.Lock()

    @property
    def occupied_count(self) -> int:
        return len(self._occupied)

    def now(self) -> datetime:
        return self._clock()

    async def create(self, title: str | None = None, *, e2ee: bool = True) -> Meeting:
        meeting = Meeting.create(new_meeting_id(), self._clock(), self.policy, title, e2ee=e2ee)
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
