"""The join decision on the server: loads what ``incamera.rooms.access`` needs about a
meeting, asks the :class:`~incamera.rooms.access.Gatekeeper`, records refusals.

Used by the signalling session on ``hello`` (before anyone is put into a conference).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from anyio import to_thread

from incamera.config import AccessSettings
from incamera.rooms.access import (
    AccessLimits,
    Credentials,
    Decision,
    Gatekeeper,
    Joiner,
    Limit,
    PinHasher,
    Refuse,
)
from incamera.signalling.errors import SignallingError

from .audit import AuditLog
from .meetings import MeetingNotFound
from .registry import MeetingRegistry


def limits_from(settings: AccessSettings) -> AccessLimits:
    return AccessLimits(
        joins_per_source=Limit(settings.joins_per_minute_per_source, 60.0),
        joins_per_meeting=Limit(settings.joins_per_minute, 60.0),
        pin_failures_per_source=Limit(
            settings.pin_failures_per_source, float(settings.pin_source_window_seconds)
        ),
        pin_failures_per_meeting=Limit(
            settings.pin_failures_per_meeting, float(settings.pin_meeting_window_seconds)
        ),
    )


class Admission:
    def __init__(
        self,
        registry: MeetingRegistry,
        gate: Gatekeeper,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.gate = gate
        self.audit = audit
        self._clock = clock

    @classmethod
    def build(
        cls,
        registry: MeetingRegistry,
        settings: AccessSettings,
        audit: AuditLog | None,
        pins: PinHasher | None = None,
    ) -> Admission:
        return cls(registry, Gatekeeper(limits_from(settings), pins), audit)

    async def decide(self, meeting_id: str, joiner: Joiner, credentials: Credentials) -> Decision:
        """Admit, wait or refuse. Raises ``SignallingError`` (``meeting_not_found``,
        ``meeting_closed``) when there is no open meeting to decide about."""
        try:
            meeting = await self.registry.get(meeting_id)
        except MeetingNotFound:
            raise SignallingError("no such meeting", "meeting_not_found") from None
        if not meeting.is_open(self.registry.now()):
            raise SignallingError("this meeting has ended", "meeting_closed")
        access = await self.registry.access(meeting, credentials.invite)
        now = self._clock()
        if access.policy.pin_hash is not None and credentials.pin:
            # argon2id takes tens of milliseconds: not on the event loop.
            decision = await to_thread.run_sync(self.gate.decide, access, joiner, credentials, now)
        else:
            decision = self.gate.decide(access, joiner, credentials, now)
        if isinstance(decision, Refuse) and self.audit is not None:
            self.audit.record(
                "join_refused",
                meeting_id=meeting_id,
                actor=joiner.account_id,
                details={"code": decision.code, "guest": joiner.is_guest},
                source_ip=joiner.source,
            )
        return decision

    def prune(self) -> None:
        self.gate.prune(self._clock())
