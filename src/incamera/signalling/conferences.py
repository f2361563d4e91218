"""All live conferences of the server: one per occupied meeting.

A conference gets its router from the media supervisor when the first participant joins and
gives it back when the last one is gone. Media-plane events (transport states, active
speaker, a worker restart) are routed here from the supervisor's ``on_event``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from incamera.media.api import ActiveSpeaker, TransportStateChanged
from incamera.media.errors import MediaError
from incamera.server.meetings import MeetingClosed, MeetingNotFound

from .conference import RESUME_WINDOW, Conference, Member, Outbox, new_participant_id
from .errors import SignallingError

if TYPE_CHECKING:
    from incamera.media.supervisor import Supervisor
    from incamera.server.registry import MeetingRegistry

log = structlog.get_logger(__name__)


class Conferences:
    def __init__(
        self,
        registry: MeetingRegistry,
        media: Callable[[], Supervisor | None],
        resume_window: float = RESUME_WINDOW,
        test_hooks: bool = False,
    ) -> None:
        self._registry = registry
        self._media = media
        self.resume_window = resume_window
        self.test_hooks = test_hooks  # TESTS ONLY: ``hello.test_skip_mls`` is accepted
        self._by_meeting: dict[str, Conference] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._by_meeting)

    def find(self, meeting_id: str) -> Conference | None:
        return self._by_meeting.get(meeting_id)

    async def join(
        self, meeting_id: str, name: str, outbox: Outbox, *, skip_mls: bool = False
    ) -> tuple[Conference, Member]:
        """Put a new participant into a meeting (creating its conference if needed).

        Raises :class:`SignallingError` with ``meeting_not_found`` or ``meeting_closed``.
        ``skip_mls`` is the test hook that keeps the participant outside the MLS group.
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
            member = await conference.join(participant_id, name, outbox, skip_mls=skip_mls)
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
        except (MeetingNotFound, MeetingClosed) as error:
            raise self._meeting_error(error) from None
        try:
            router_id, worker = await supervisor.create_router()
        except MediaError as error:
            raise SignallingError(f"no media router: {error}", "internal") from None
        conference = Conference(
            meeting_id, router_id, worker, self._member_gone, self.resume_window, e2ee=e2ee
        )
        self._by_meeting[meeting_id] = conference
        log.info("conference started", conferences=len(self._by_meeting))
        return conference

    @staticmethod
    def _meeting_error(error: Exception) -> SignallingError:
        if isinstance(error, MeetingNotFound):
            return SignallingError("no such meeting", "meeting_not_found")
        return SignallingError("this meeting has ended", "meeting_closed")

    async def _member_gone(self, conference: Conference, participant_id: str) -> None:
        await self._registry.leave(conference.meeting_id, participant_id)
        if conference.idle:
            await self._dispose(conference)

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
