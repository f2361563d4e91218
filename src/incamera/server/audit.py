"""The security audit log, as the server uses it: record without blocking, query, purge.

:meth:`AuditLog.record` is synchronous and never blocks or raises: it queues the event and
a background writer stores queued events in a worker thread (see ``incamera.store.audit``).
Details must never contain secrets (PINs, keys, tokens, passwords). The client's network
address is stored only when ``audit.store_ip_addresses`` is set.

Kinds recorded: meeting_created, join_refused (details.code), signin_failed,
signin_succeeded, password_changed, password_change_failed; and by the conferences:
participant_admitted, participant_denied, participant_removed, participant_blocked,
policy_changed, role_changed, meeting_locked, meeting_unlocked, meeting_ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from anyio import to_thread

from incamera.config import AuditSettings
from incamera.store.audit import AuditEvent, AuditStore

from .registry import utc_now

log = structlog.get_logger(__name__)

MAX_QUEUED = 10_000  # events waiting for the writer; beyond that the oldest are dropped
BATCH = 500


class AuditLog:
    def __init__(
        self,
        store: AuditStore,
        settings: AuditSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self.settings = settings
        self._clock = clock
        self._queue: deque[AuditEvent] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()
        self.dropped = 0

    # -- recording ---------------------------------------------------------------------------

    def record(
        self,
        kind: str,
        *,
        meeting_id: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        details: dict[str, Any] | None = None,
        source_ip: str | None = None,
    ) -> None:
        """Queue one event (never blocks, never raises)."""
        try:
            event = AuditEvent(
                at=self._clock(),
                kind=kind,
                meeting_id=meeting_id,
                actor=actor,
                subject=subject,
                details=dict(details or {}),
                source_ip=source_ip if self.settings.store_ip_addresses else None,
            )
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._wake.set()
        except Exception:  # pragma: no cover - recording must never break the caller
            log.exception("audit record failed", kind=kind)

    # -- the writer --------------------------------------------------------------------------

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._run(), name="incamera-audit-writer"
            )

    async def close(self) -> None:
        """Write what is queued, then stop the writer."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self.flush()

    async def flush(self) -> None:
        """Store every event queued so far."""
        async with self._writing:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                try:
                    await to_thread.run_sync(self._store.insert_many, batch)
                except Exception:
                    log.exception("audit events could not be stored", count=len(batch))
                    return

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    # -- reading and retention ---------------------------------------------------------------

    async def query(
        self,
        *,
        kind: str | None = None,
        meeting_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        await self.flush()
        return await to_thread.run_sync(
            lambda: self._store.query(kind=kind, meeting_id=meeting_id, since=since, limit=limit)
        )

    async def purge(self) -> int:
        """Delete events older than ``audit.retention_days``."""
        cutoff = self._clock() - timedelta(days=self.settings.retention_days)
        count = await to_thread.run_sync(self._store.purge_before, cutoff)
        if count:
            log.info("audit events purged", count=count)
        return count
