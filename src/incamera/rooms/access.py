"""Who may enter a meeting: the access policy, the join decision, PINs, rate limits, blocks.

Plain Python with no I/O (the PIN check hashes in the calling thread; the clock is passed
in as ``now``, seconds since the epoch). The signalling layer builds a :class:`Joiner` from
the WebSocket upgrade (session cookie, ``incamera_guest`` cookie, peer address) and
:class:`Credentials` from ``hello``, then asks :meth:`Gatekeeper.decide` BEFORE the person
is put into the conference. The decision order (docs/protocol.md, "Joining"):

1. rate limit of join attempts per source (address) and meeting,
2. moderator key or the meeting's signed-in owner -> ``Admit("moderator")``,
3. invitation (a moderator invitation admits as moderator; a participant invitation skips
   the lobby and the PIN, nothing else); without one, the meeting-wide rate limit of join
   attempts (after 2 and 3, so that a flood from many addresses cannot lock the moderators
   or the invited people out),
4. locked -> ``Refuse("meeting_locked")``,
5. members only / guests not allowed -> ``Refuse("sign_in_required")`` for guests,
6. PIN: missing -> ``pin_required``; wrong -> ``wrong_pin`` (counted); after too many wrong
   guesses even the right PIN gets ``rate_limited`` until the window has passed,
7. blocked (removed with ``block``) -> ``Refuse("removed")``,
8. lobby rule -> ``Wait``,
9. otherwise ``Admit("participant")``.

Secrets (moderator keys, invitation tokens) carry 128 bits from :mod:`secrets` and are
stored only as SHA-256 digests (a 128-bit secret needs no slow hash). PINs have few digits,
so they are stored as argon2id hashes, and the rate limits are what protects them online.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, cast

from incamera.identity.passwords import PasswordHashing
from incamera.identity.principal import Principal, SignedInAccount

LobbyRule = Literal["off", "guests", "everyone"]
Role = Literal["moderator", "participant"]
LOBBY_VALUES: tuple[LobbyRule, ...] = ("off", "guests", "everyone")
ROLES: tuple[Role, ...] = ("moderator", "participant")

SECRET_BYTES = 16  # 128 bits for moderator keys, invitation tokens and guest ids
PIN_PATTERN = re.compile(r"[0-9]{4,12}")
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")


class PolicyError(ValueError):
    """A policy value that is not allowed; ``str(error)`` says why."""


# -- secrets -------------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh 128-bit secret, base64url (22 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_digest(secret: str) -> str:
    """The stored form of a high-entropy secret (moderator key, invitation token)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str | None, digest: str | None) -> bool:
    if not secret or not digest or TOKEN_PATTERN.fullmatch(secret) is None:
        return False
    return hmac.compare_digest(secret_digest(secret), digest)


def is_guest_id(text: str | None) -> bool:
    return text is not None and TOKEN_PATTERN.fullmatch(text) is not None


# -- PINs ------------------------------------------------------------------------------------


def check_pin_format(pin: str) -> str:
    """Return ``pin`` if it is 4 to 12 digits, else raise :class:`PolicyError`."""
    if not isinstance(pin, str) or PIN_PATTERN.fullmatch(pin) is None:
        raise PolicyError("the PIN must be 4 to 12 digits")
    return pin


class PinHasher(Protocol):
    def hash(self, pin: str) -> str: ...

    def verify(self, stored: str, pin: str) -> bool: ...


class Argon2PinHasher:
    """argon2id for PINs (RFC 9106): lighter than the account passwords' parameters
    (time 2, 19 MiB, one lane: ~20 ms), since the online rate limits carry the load."""

    def __init__(self, *, time_cost: int = 2, memory_cost_kib: int = 19 * 1024) -> None:
        self._hashing = PasswordHashing(
            time_cost=time_cost, memory_cost_kib=memory_cost_kib, parallelism=1
        )

    def hash(self, pin: str) -> str:
        return self._hashing.hash(check_pin_format(pin))

    def verify(self, stored: str, pin: str) -> bool:
        if PIN_PATTERN.fullmatch(pin) is None:
            return False
        return self._hashing.verify(stored, pin).ok


# -- the policy ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """One meeting's access rules. ``pin_hash`` is the argon2id hash, never the PIN."""

    lobby: LobbyRule = "off"
    pin_hash: str | None = None
    locked: bool = False
    members_only: bool = False
    guests_allowed: bool = True

    def __post_init__(self) -> None:
        if self.lobby not in LOBBY_VALUES:
            raise PolicyError(f"lobby must be one of {', '.join(LOBBY_VALUES)}")

    @property
    def pin_set(self) -> bool:
        return self.pin_hash is not None

    def admits_guests(self) -> bool:
        return self.guests_allowed and not self.members_only

    def public(self) -> dict[str, Any]:
        """What participants see (``welcome.policy``, ``policy``): never the PIN hash."""
        return {
            "lobby": self.lobby,
            "locked": self.locked,
            "pin_set": self.pin_set,
            "members_only": self.members_only,
            "guests_allowed": self.guests_allowed,
        }

    def stored(self) -> dict[str, Any]:
        """The JSON kept in the database (includes the PIN hash)."""
        return {
            "lobby": self.lobby,
            "pin_hash": self.pin_hash,
            "locked": self.locked,
            "members_only": self.members_only,
            "guests_allowed": self.guests_allowed,
        }

    @classmethod
    def from_stored(cls, data: Mapping[str, Any] | None) -> AccessPolicy:
        if not data:
            return cls()
        return cls(
            lobby=cast(LobbyRule, data.get("lobby", "off")),
            pin_hash=data.get("pin_hash"),
            locked=bool(data.get("locked", False)),
            members_only=bool(data.get("members_only", False)),
            guests_allowed=bool(data.get("guests_allowed", True)),
        )

    def changed(self, changes: Mapping[str, Any], pins: PinHasher) -> AccessPolicy:
        """A copy with ``changes`` applied (the shape of ``set_policy`` and of the
        ``policy`` object of ``POST /api/meetings``: ``lobby``, ``locked``, ``pin`` (digits
        or null to remove it), ``members_only``, ``guests_allowed``). Unknown keys and
        wrong types raise :class:`PolicyError`."""
        allowed = {"lobby", "locked", "pin", "members_only", "guests_allowed"}
        unknown = set(changes) - allowed
        if unknown:
            raise PolicyError(f"unknown policy field {sorted(unknown)[0]!r}")
        updates: dict[str, Any] = {}
        if "lobby" in changes:
            if changes["lobby"] not in LOBBY_VALUES:
                raise PolicyError(f"lobby must be one of {', '.join(LOBBY_VALUES)}")
            updates["lobby"] = changes["lobby"]
        for name in ("locked", "members_only", "guests_allowed"):
            if name in changes:
                if not isinstance(changes[name], bool):
                    raise PolicyError(f"{name} must be true or false")
                updates[name] = changes[name]
        if "pin" in changes:
            pin = changes["pin"]
            updates["pin_hash"] = None if pin is None else pins.hash(check_pin_format(pin))
        return replace(self, **updates)


# -- who is asking, with what --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Joiner:
    """The person behind a WebSocket upgrade."""

    principal: Principal
    source: str  # the peer address (rate limits; never stored unless the audit log may)
    guest_id: str | None = None  # the ``incamera_guest`` cookie: one browser, for blocking

    @property
    def account_id(self) -> str | None:
        return self.principal.account_id if isinstance(self.principal, SignedInAccount) else None

    @property
    def is_guest(self) -> bool:
        return self.principal.is_guest


@dataclass(frozen=True, slots=True)
class Credentials:
    """What ``hello`` presents (all optional)."""

    moderator_key: str | None = None
    invite: str | None = None
    pin: str | None = None


@dataclass(frozen=True, slots=True)
class Invitation:
    """A per-person invitation as stored (the token only as its digest)."""

    token_digest: str
    meeting_id: str
    role: Role
    expires_at: float  # seconds since the epoch
    name: str | None = None

    def valid(self, now: float) -> bool:
        return now < self.expires_at


@dataclass(frozen=True, slots=True)
class BlockList:
    """Accounts and guest browsers removed from a meeting with ``block``."""

    account_ids: frozenset[str] = frozenset()
    guest_ids: frozenset[str] = frozenset()

    def blocks(self, joiner: Joiner) -> bool:
        if joiner.account_id is not None:
            return joiner.account_id in self.account_ids
        return joiner.guest_id is not None and joiner.guest_id in self.guest_ids


@dataclass(frozen=True, slots=True)
class MeetingAccess:
    """Everything about one meeting the decision needs (loaded by the caller)."""

    meeting_id: str
    policy: AccessPolicy = AccessPolicy()
    moderator_key_digest: str | None = None
    owner_account_id: str | None = None
    blocks: BlockList = BlockList()
    # The invitation ``Credentials.invite`` names, looked up by its digest (None if the
    # hello carried none or it is unknown).
    invitation: Invitation | None = None


# -- decisions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Admit:
    role: Role = "participant"


@dataclass(frozen=True, slots=True)
class Wait:
    """Goes to the lobby; admitted (as a participant) only by a moderator."""

    role: Role = "participant"


@dataclass(frozen=True, slots=True)
class Refuse:
    code: str
    reason: str


Decision = Admit | Wait | Refuse

LOCKED = Refuse("meeting_locked", "This meeting is locked. Ask a moderator to unlock it.")
SIGN_IN_REQUIRED = Refuse(
    "sign_in_required", "This meeting is for signed-in members only. Sign in to join."
)
PIN_REQUIRED = Refuse("pin_required", "This meeting needs a PIN.")
WRONG_PIN = Refuse("wrong_pin", "That PIN is not right.")
REMOVED = Refuse("removed", "A moderator removed you from this meeting.")
BAD_MODERATOR_KEY = Refuse(
    "invalid_moderator_key", "This moderator link is not valid for this meeting."
)
BAD_INVITE = Refuse(
    "invalid_invite", "This invitation has expired or is not valid. Ask a moderator for a new one."
)


def rate_limited(retry_after: float) -> Refuse:
    minutes = max(1, math.ceil(retry_after / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return Refuse("rate_limited", f"Too many attempts. Try again in {minutes} {unit}.")


# -- rate limits ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``count`` events within any ``window`` seconds."""

    count: int
    window: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.window <= 0:
            raise ValueError("a limit needs a count of at least 1 and a positive window")

    @property
    def per_second(self) -> float:
        return self.count / self.window


@dataclass(frozen=True, slots=True)
class AccessLimits:
    # Generous: a whole office behind one NAT address joins a meeting at 10:00 sharp, and a
    # large meeting starts with hundreds of joins in a minute. Secrets (keys, tokens) are
    # 128-bit, so join limits only bound the work; the PIN limits below protect PINs.
    joins_per_source: Limit = Limit(60, 60.0)  # per meeting and source address
    joins_per_meeting: Limit = Limit(600, 60.0)
    pin_failures_per_source: Limit = Limit(5, 600.0)  # per meeting and source address
    pin_failures_per_meeting: Limit = Limit(20, 3600.0)

    def seconds_to_try_every_pin(self, digits: int) -> float:
        """A lower bound on the time an attacker with any number of addresses needs to try
        every PIN of ``digits`` digits against one meeting: the meeting-wide limit caps the
        wrong guesses whatever the sources."""
        pins = 10**digits
        return (
            pins - self.pin_failures_per_meeting.count
        ) / self.pin_failures_per_meeting.per_second


@dataclass
class SlidingWindow:
    """Counts events per key in a sliding window (the event times are kept)."""

    limit: Limit
    max_keys: int = 100_000
    _events: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        while events and events[0] <= now - self.limit.window:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def retry_after(self, key: str, now: float) -> float:
        """0 if another event is allowed now, else the seconds until one is."""
        events = self._recent(key, now)
        if events is None or len(events) < self.limit.count:
            return 0.0
        return max(1.0, events[0] + self.limit.window - now)

    def add(self, key: str, now: float) -> None:
        self._recent(key, now)
        self._events.setdefault(key, deque()).append(now)
        if len(self._events) > self.max_keys:
            self.prune(now)

    def prune(self, now: float) -> None:
        """Forget every key without an event in the window."""
        for key in list(self._events):
            self._recent(key, now)

    def discard_last(self, key: str, at: float) -> None:
        """Take back an event recorded at ``at`` (a reserved PIN guess that was right)."""
        events = self._events.get(key)
        if events is None:
            return
        try:
            events.remove(at)
        except ValueError:
            return
        if not events:
            del self._events[key]

    def __len__(self) -> int:
        return len(self._events)


class Gatekeeper:
    """The join decision with the rate-limit state of every meeting (one per server).

    Thread-safe: the limits are checked and updated under a lock, and the PIN (argon2id,
    tens of milliseconds) is checked outside it, so a caller may run :meth:`decide` in a
    worker thread. A PIN guess reserves its failure slot before the hash is checked, so
    concurrent guesses cannot exceed the limits; a right PIN gives the slot back.
    """

    def __init__(self, limits: AccessLimits | None = None, pins: PinHasher | None = None) -> None:
        self.limits = limits or AccessLimits()
        self.pins: PinHasher = pins or Argon2PinHasher()
        self._lock = threading.Lock()
        self._joins_source = SlidingWindow(self.limits.joins_per_source)
        self._joins_meeting = SlidingWindow(self.limits.joins_per_meeting)
        self._pins_source = SlidingWindow(self.limits.pin_failures_per_source)
        self._pins_meeting = SlidingWindow(self.limits.pin_failures_per_meeting)

    def decide(
        self, meeting: MeetingAccess, joiner: Joiner, credentials: Credentials, now: float
    ) -> Decision:
        policy = meeting.policy
        source_key = f"{meeting.meeting_id} {joiner.source}"
        with self._lock:
            wait = self._joins_source.retry_after(source_key, now)
            if wait:
                return rate_limited(wait)
            self._joins_source.add(source_key, now)

        # Credentials are checked before the meeting-wide limit: a flood of joins from many
        # addresses must not lock the moderators (or invited people) out of their meeting.
        if credentials.moderator_key is not None:
            if secret_matches(credentials.moderator_key, meeting.moderator_key_digest):
                return Admit("moderator")
            return BAD_MODERATOR_KEY
        if joiner.account_id is not None and joiner.account_id == meeting.owner_account_id:
            return Admit("moderator")

        invited = False
        if credentials.invite is not None:
            invitation = meeting.invitation
            if (
                invitation is None
                or invitation.meeting_id != meeting.meeting_id
                or not secret_matches(credentials.invite, invitation.token_digest)
                or not invitation.valid(now)
            ):
                return BAD_INVITE
            if invitation.role == "moderator":
                return Admit("moderator")
            invited = True
        else:
            with self._lock:
                wait = self._joins_meeting.retry_after(meeting.meeting_id, now)
                if wait:
                    return rate_limited(wait)
                self._joins_meeting.add(meeting.meeting_id, now)

        if policy.locked:
            return LOCKED
        if joiner.is_guest and not policy.admits_guests():
            return SIGN_IN_REQUIRED
        if policy.pin_hash is not None and not invited:
            refused = self._check_pin(
                meeting.meeting_id, source_key, policy.pin_hash, credentials.pin, now
            )
            if refused is not None:
                return refused
        if meeting.blocks.blocks(joiner):
            return REMOVED
        if not invited and (
            policy.lobby == "everyone" or (policy.lobby == "guests" and joiner.is_guest)
        ):
            return Wait()
        return Admit("participant")

    def _check_pin(
        self, meeting_id: str, source_key: str, pin_hash: str, pin: str | None, now: float
    ) -> Refuse | None:
        if pin is None or pin == "":
            return PIN_REQUIRED
        with self._lock:
            wait = max(
                self._pins_source.retry_after(source_key, now),
                self._pins_meeting.retry_after(meeting_id, now),
            )
            if wait:
                return rate_limited(wait)
            self._pins_source.add(source_key, now)  # reserved; given back if right
            self._pins_meeting.add(meeting_id, now)
        if self.pins.verify(pin_hash, pin):
            with self._lock:
                self._pins_source.discard_last(source_key, now)
                self._pins_meeting.discard_last(meeting_id, now)
            return None
        return WRONG_PIN

    def prune(self, now: float) -> None:
        """Forget the limits' state older than its window (the server's sweeper calls it)."""
        with self._lock:
            for window in self._windows():
                window.prune(now)

    def _windows(self) -> tuple[SlidingWindow, ...]:
        return (self._joins_source, self._joins_meeting, self._pins_source, self._pins_meeting)

    def tracked_keys(self) -> int:
        """How many (meeting, source) and meeting entries the limits hold (memory bound)."""
        with self._lock:
            return sum(len(window) for window in self._windows())
