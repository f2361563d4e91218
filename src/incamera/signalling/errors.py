"""Error types of the signalling layer.

``SignallingError`` carries a protocol error ``code`` (see ``docs/protocol.md``, "Errors")
and a human-readable ``reason``; the session turns it into an ``error`` message. Parsing
client input raises only :class:`BadMessage`.
"""

from __future__ import annotations

from typing import Literal

ErrorCode = Literal[
    "bad_message",
    "unsupported_version",
    "not_joined",
    "meeting_closed",
    "meeting_not_found",
    "negotiation_failed",
    "rate_limited",
    "internal",
    # end-to-end encryption (the MLS delivery service)
    "stale_epoch",
    "group_exists",
    "e2ee_required",
    "not_e2ee",
    "bad_mls",
    "not_mls_member",
    # lobby and moderation
    "forbidden",
    "not_admitted",
    "denied",
    "last_moderator",
    "unknown_participant",
    "not_found",  # an invitation or block id the meeting does not have (any more)
    # the join decision (incamera.rooms.access)
    "meeting_locked",
    "sign_in_required",
    "pin_required",
    "wrong_pin",
    "removed",
    "invalid_moderator_key",
    "invalid_invite",
]


class SignallingError(Exception):
    """A request the server refuses; becomes ``{"type":"error","code":...,"reason":...}``."""

    code: ErrorCode = "internal"

    def __init__(self, reason: str, code: ErrorCode | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code


class BadMessage(SignallingError):
    """Client input that is not valid JSON, has an unknown ``type`` or fails its schema.

    ``rid`` is the request id when the input was an object with an integer ``rid``, so the
    error can still be matched to the request.
    """

    code: ErrorCode = "bad_message"

    def __init__(self, reason: str, rid: int | None = None) -> None:
        super().__init__(reason)
        self.rid = rid


class NegotiationFailed(SignallingError):
    code: ErrorCode = "negotiation_failed"


__all__ = ["BadMessage", "ErrorCode", "NegotiationFailed", "SignallingError"]
