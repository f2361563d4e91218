"""Meetings as plain domain objects: who is in, and when an empty meeting closes.

No I/O and no clock: every operation takes ``now``. The rules:

- A new meeting nobody has joined closes ``unused_ttl`` after creation (a link sent today
  for a call tomorrow must still work).
- While anybody is in it, a meeting never closes (``closes_at`` is None).
- When the last participant leaves, it closes ``empty_grace`` later, so a dropped
  connection or a page reload does not end the meeting for the others.
- A closed meeting stays closed: nobody can join it again.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from incamera.rooms.access import AccessPolicy

# 16 random bytes = 128 bits; token_urlsafe gives 22 characters of base64url.
MEETING_ID_BYTES = 16
MEETING_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22,64}")
TITLE_MAX_LENGTH = 200


def new_meeting_id() -> str:
    """An unguessable meeting identifier: 128 bits from the OS's CSPRNG, base64url."""
    return secrets.token_urlsafe(MEETING_ID_BYTES)


def is_meeting_id(text: str) -> bool:
    """Whether ``text`` has the shape of a meeting id (cheap check before any lookup)."""
    return MEETING_ID_PATTERN.fullmatch(text) is not None


class MeetingError(Exception):
    """Base of the meeting rule violations; ``code`` is stable for APIs."""

    code = "meeting_error"


class MeetingNotFound(MeetingError):
    code = "not_found"


class MeetingClosed(MeetingError):
    code = "meeting_closed"


@dataclass(frozen=True, slots=True)
class ClosePolicy:
    empty_grace: timedelta
    unused_ttl: timedelta

    def __post_init__(self) -> None:
        if self.empty_grace < timedelta(0) or self.unused_ttl <= timedelta(0):
            raise ValueError("close policy durations must be positive")


@dataclass(slots=True)
class Meeting:
    id: str
    created_at: datetime
    policy: ClosePolicy
    title: str | None = None
    # End-to-end encrypted (MLS + SFrame). False only where the administrator policy
    # ``e2ee.allow_unencrypted`` allowed it; everyone in such a meeting is told.
    e2ee: bool = True
    participants: set[str] = field(default_factory=set)
    closes_at: datetime | None = None
    closed_at: datetime | None = None
    # Who may enter (incamera.rooms.access); the moderator key only as its SHA-256 digest.
    access_policy: AccessPolicy = field(default_factory=AccessPolicy)
    moderator_key_hash: str | None = None
    owner_account_id: str | None = None

    @classmethod
    def create(
        cls,
        meeting_id: str,
        now: datetime,
        policy: ClosePolicy,
        title: str | None = None,
        *,
        e2ee: bool = True,
        access_policy: AccessPolicy | None = None,
        moderator_key_hash: str | None = None,
        owner_account_id: str | None = None,
    ) -> Meeting:
        return cls(
            id=meeting_id,
            created_at=now,
            policy=policy,
            title=title,
            e2ee=e2ee,
            closes_at=now + policy.unused_ttl,
            access_policy=access_policy or AccessPolicy(),
            moderator_key_hash=moderator_key_hash,
            owner_account_id=owner_account_id,
        )

    def is_open(self, now: datetime) -> bool:
        if self.closed_at is not None:
            return False
        return self.closes_at is None or now < self.closes_at

    def join(self, participant_id: str, now: datetime) -> bool:
        """Add a participant. Returns True when this made the meeting occupied (its
        ``closes_at`` changed). Raises ``MeetingClosed`` when it is no longer open."""
        if not self.is_open(now):
            raise MeetingClosed(self.id)
        was_empty = not self.participants
        self.participants.add(participant_id)
        self.closes_at = None
        return was_empty

    def leave(self, participant_id: str, now: datetime) -> bool:
        """Remove a participant (unknown ids are ignored). Returns True when the meeting
        became empty and so got a ``closes_at``."""
        if participant_id not in self.participants:
            return False
        self.participants.discard(participant_id)
        if self.participants:
            return False
        self.closes_at = now + self.policy.empty_grace
        return True

    def end(self, now: datetime) -> bool:
        """Close the meeting at once (a moderator ended it). Returns True if it was open."""
        if self.closed_at is not None:
            return False
        self.closed_at = now
        self.closes_at = None
        return True

    def close_if_due(self, now: datetime) -> bool:
        """Close the meeting when its time has come. Returns True if it closed now."""
        if self.closed_at is not None or self.closes_at is None or now < self.closes_at:
            return False
        self.closed_at = now
        return True
