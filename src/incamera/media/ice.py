"""ICE-lite (RFC 8445 section 2.5): the SFU's side of connectivity checks for one transport.

A lite agent has only host candidates, never sends checks, and is always controlled. It
answers Binding requests whose USERNAME starts with its own ufrag and whose
MESSAGE-INTEGRITY verifies with its own password. A request with USE-CANDIDATE nominates the
pair; the nominated remote address is where media is sent. Every verified request refreshes
consent (RFC 7675): a peer silent for ``CONSENT_TIMEOUT`` seconds is disconnected. A
nominated request from a new address (the peer's network changed) moves the selected pair.
"""

from __future__ import annotations

import secrets
import string
from enum import StrEnum

from . import stun

CONSENT_TIMEOUT = 30.0
_ALPHABET = string.ascii_letters + string.digits + "+/"

Address = tuple[str, int]


def random_ice_string(length: int) -> str:
    """ICE ufrag/pwd characters (RFC 8839 section 5.4: ice-char = ALPHA / DIGIT / "+" / "/")."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


class IceState(StrEnum):
    NEW = "new"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


class IceResult(StrEnum):
    """What happened to one incoming STUN message."""

    ANSWERED = "answered"  # verified request, response produced
    NOMINATED = "nominated"  # ... and the selected address changed
    REJECTED = "rejected"  # failed authentication: error response, no state change
    IGNORED = "ignored"  # not a request for us (indication, response, wrong ufrag)


class IceLiteAgent:
    def __init__(self, ufrag: str | None = None, password: str | None = None) -> None:
        self.ufrag = ufrag or random_ice_string(8)
        self.password = password or random_ice_string(24)
        self._key = self.password.encode()
        self.remote_ufrag: str | None = None
        self.state = IceState.NEW
        self.selected: Address | None = None
        self.last_consent = 0.0
        self.rejected = 0

    def restart(self) -> None:
        """ICE restart (RFC 8445 section 2.4): new local credentials; media keeps flowing to
        the selected address until a check with the new credentials nominates a pair."""
        self.ufrag = random_ice_string(8)
        self.password = random_ice_string(24)
        self._key = self.password.encode()
        self.remote_ufrag = None

    def set_remote_ufrag(self, ufrag: str) -> None:
        self.remote_ufrag = ufrag

    def handle(
        self, message: stun.StunMessage, raw: bytes, addr: Address, now: float
    ) -> tuple[IceResult, bytes | None]:
        """Process one parsed STUN message from ``addr``; returns the result and a response."""
        if message.message_type != stun.BINDING_REQUEST:
            return IceResult.IGNORED, None
        username = message.username()
        if username is None or message.get(stun.MESSAGE_INTEGRITY) is None:
            self.rejected += 1
            return IceResult.REJECTED, stun.binding_error(message, 400, "Bad Request")
        local, _, remote = username.partition(":")
        if local != self.ufrag or (self.remote_ufrag is not None and remote != self.remote_ufrag):
            self.rejected += 1
            return IceResult.REJECTED, stun.binding_error(message, 401, "Unauthorized")
        if not stun.verify_message_integrity(raw, self._key):
            self.rejected += 1
            return IceResult.REJECTED, stun.binding_error(message, 401, "Unauthorized")
        if message.get(stun.FINGERPRINT) is not None and not stun.verify_fingerprint(raw):
            self.rejected += 1
            return IceResult.REJECTED, stun.binding_error(message, 400, "Bad Request")
        if message.ice_controlled() is not None:
            # Both sides think they are controlled; a lite agent never takes control
            # (RFC 8445 section 7.3.1.1): tell the peer to switch roles.
            return IceResult.REJECTED, stun.binding_error(message, 487, "Role Conflict", self._key)
        response = stun.binding_success(message, addr, self._key)
        result = IceResult.ANSWERED
        if addr == self.selected:
            self.last_consent = now
        elif message.use_candidate() or self.selected is None:
            # Regular or aggressive nomination; a lite agent also takes the first verified
            # pair so that media can flow before a late USE-CANDIDATE.
            self.selected = addr
            self.last_consent = now
            result = IceResult.NOMINATED
        if self.state in (IceState.NEW, IceState.DISCONNECTED) and self.selected is not None:
            self.state = IceState.CONNECTED
        return result, response

    def check_consent(self, now: float) -> bool:
        """False (and state DISCONNECTED) once the peer has been silent too long."""
        if self.state is IceState.CONNECTED and now - self.last_consent > CONSENT_TIMEOUT:
            self.state = IceState.DISCONNECTED
            self.selected = None  # no consent, no media (RFC 7675 section 5.1)
            return False
        return self.state is not IceState.DISCONNECTED

    def close(self) -> None:
        self.state = IceState.CLOSED
