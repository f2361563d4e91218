"""One participant's signalling session: the protocol state machine behind one WebSocket.

Before ``hello`` only ``hello`` is accepted (anything else gets ``not_joined``). ``hello``
negotiates the version and joins (or resumes). Afterwards each message is handled in the
order it arrived; a request with a ``rid`` gets exactly one ``reply`` or ``error``. A bad
message gets ``bad_message`` and the session carries on; an unexpected exception gets
``internal`` and is logged (without personal data), never more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

import structlog

from incamera.media.errors import MediaError
from incamera.rooms.access import Credentials, Decision, Joiner, Refuse, Wait

from . import messages as m
from .conference import Conference, Member, Outbox
from .conferences import Conferences
from .errors import BadMessage, ErrorCode, SignallingError
from .ratelimit import TokenBucket

log = structlog.get_logger(__name__)

RATE_PER_SECOND = 50.0
RATE_BURST = 50.0
MAX_REFUSED_IN_A_ROW = 200  # a client that keeps flooding is disconnected

# WebSocket close codes (docs/protocol.md, "Close codes").
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED_VERSION = 4400
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_HELLO_TIMEOUT = 4408
CLOSE_REPLACED = 4409
CLOSE_MEETING_CLOSED = 4410
CLOSE_RATE_LIMITED = 4429
CLOSE_INTERNAL = 1011

CLOSE_REFUSED = 4403

_CLOSE_FOR = {
    "meeting_not_found": CLOSE_NOT_FOUND,
    "meeting_closed": CLOSE_MEETING_CLOSED,
    "unsupported_version": CLOSE_UNSUPPORTED_VERSION,
    # The join decision's refusals (incamera.rooms.access).
    "meeting_locked": CLOSE_REFUSED,
    "sign_in_required": CLOSE_REFUSED,
    "pin_required": CLOSE_REFUSED,
    "wrong_pin": CLOSE_REFUSED,
    "removed": CLOSE_REFUSED,
    "invalid_moderator_key": CLOSE_REFUSED,
    "invalid_invite": CLOSE_REFUSED,
    "rate_limited": CLOSE_RATE_LIMITED,
}


class Gate(Protocol):
    """The join decision (the server's ``incamera.server.admission.Admission``)."""

    async def decide(
        self, meeting_id: str, joiner: Joiner, credentials: Credentials
    ) -> Decision: ...


class Session:
    def __init__(
        self,
        meeting_id: str,
        outbox: Outbox,
        conferences: Conferences,
        clock: Callable[[], float],
        rate: float = RATE_PER_SECOND,
        burst: float = RATE_BURST,
        *,
        gate: Gate | None = None,
        joiner: Joiner | None = None,
    ) -> None:
        self.meeting_id = meeting_id
        # Without a gate (unit tests of the protocol alone) everyone joins as a participant.
        self.gate = gate
        self.joiner = joiner
        self.outbox = outbox
        self.conferences = conferences
        self.clock = clock
        self.bucket = TokenBucket(rate, burst)
        self.conference: Conference | None = None
        self.member: Member | None = None
        self.finished = False  # left or refused: the connection is closing
        self._refused = 0

    @property
    def joined(self) -> bool:
        return self.member is not None

    async def receive(self, text: str | bytes) -> None:
        """Handle one incoming WebSocket message (never raises)."""
        if self.finished:
            return
        if not self.bucket.allow(self.clock()):
            self._refused += 1
            rid = m.rid_of(text) if len(text) <= 4096 and isinstance(text, str) else None
            self.outbox.send(m.Error(rid=rid, code="rate_limited", reason="too many messages"))
            if self._refused >= MAX_REFUSED_IN_A_ROW:
                self._finish(CLOSE_RATE_LIMITED, "too many messages")
            return
        self._refused = 0
        try:
            message = m.parse_client_message(text)
        except BadMessage as error:
            self.outbox.send(m.Error(rid=error.rid, code="bad_message", reason=error.reason))
            return
        rid = message.rid
        try:
            result = await self._dispatch(message)
        except SignallingError as error:
            self.outbox.send(m.Error(rid=rid, code=error.code, reason=error.reason))
            close = _CLOSE_FOR.get(error.code)
            if close is not None and not self.joined:
                self._finish(close, error.code)
            return
        except MediaError:
            log.exception("media command failed", message=message.type)
            self.outbox.send(m.Error(rid=rid, code="internal", reason="media server error"))
            return
        except Exception:
            log.exception("signalling handler failed", message=message.type)
            self.outbox.send(m.Error(rid=rid, code="internal", reason="internal server error"))
            return
        if rid is not None or isinstance(message, m.Publish):
            self.outbox.send(m.Reply(rid=rid, **(result or {})))
        if isinstance(message, m.Leave):
            self._finish(CLOSE_NORMAL, "left")
        elif isinstance(message, m.EndMeeting):  # everyone else's socket is closed already
            self._finish(CLOSE_MEETING_CLOSED, "meeting ended")

    def _finish(self, code: int, reason: str) -> None:
        self.finished = True
        self.outbox.close(code, reason)

    async def _dispatch(self, message: Any) -> dict[str, Any] | None:
        if isinstance(message, m.Hello):
            await self._hello(message)
            return None
        if self.member is None or self.conference is None:
            raise SignallingError("send hello first", "not_joined")
        conference, member = self.conference, self.member
        if member.gone:  # removed, turned away or the meeting ended: the socket is closing
            raise SignallingError("you are no longer in the meeting", "not_joined")
        if not member.admitted and not isinstance(message, m.Leave | m.Ping):
            raise SignallingError("you are waiting for a moderator to let you in", "not_admitted")
        match message:
            case m.Publish():
                sdp = await conference.publish(member, message.sdp, dict(message.sources))
                return {"sdp": sdp}
            case m.SubscribeAnswer():
                await conference.subscribe_answer(member, message.sdp)
            case m.RestartIce():
                await conference.restart_ice(member)
            case m.Layer():
                await conference.layer(member, message.mid, message.width, message.height)
            case m.Mute():
                await conference.mute(member, message.source, message.muted)
            case m.Chat():
                conference.chat(member, message.text)
            case m.KeyFrame():
                await conference.key_frame(member, message.mid)
            case m.MlsKeyPackage():
                conference.mls_key_package(member, message.key_package, message.device_key)
            case m.MlsCreate():
                conference.mls_create(member, message.group_info, message.ratchet_tree)
            case m.MlsCommit():
                conference.mls_commit(member, message)
            case m.MlsMessage():
                conference.mls_message(member, message.message)
            case m.Hand():
                conference.hand(member, message.raised)
            case m.Admit():
                await conference.admit(member, message.participant)
            case m.Deny():
                await conference.deny(member, message.participant)
            case m.Moderate():
                await conference.moderate(
                    member, message.action, message.participant, block=message.block
                )
            case m.MuteAll():
                await conference.mute_all(member)
            case m.SetPolicy():
                await conference.set_policy(member, message.changes())
            case m.SetRole():
                await conference.set_role(member, message.participant, message.role)
            case m.EndMeeting():
                await conference.end(member)
            case m.InviteProof():
                await conference.invite_proof(member, message.proof)
            case m.Invite():
                invitation = await conference.invite(
                    member, message.role, message.name, message.expires_in_seconds
                )
                return {"invitation": invitation}
            case m.ListAccess():
                return {"access": await conference.list_access(member)}
            case m.RevokeInvitation():
                await conference.revoke_invitation(member, message.id)
            case m.Unblock():
                await conference.unblock(member, message.id)
            case m.Ping():
                self.outbox.send(m.Pong())
            case m.Leave():
                self.member = None
                await conference.leave(member)
            case _:  # pragma: no cover - the union is exhaustive
                raise SignallingError(f"unexpected message {message.type}", "bad_message")
        return None

    async def _hello(self, hello: m.Hello) -> None:
        if self.member is not None:
            raise SignallingError("already joined", "bad_message")
        if hello.test_skip_mls is not None and not self.conferences.test_hooks:
            raise SignallingError("test_skip_mls: test hooks are off on this server", "bad_message")
        if hello.test_bypass_lobby is not None and not self.conferences.test_hooks:
            raise SignallingError(
                "test_bypass_lobby: test hooks are off on this server", "bad_message"
            )
        common = set(hello.versions) & set(m.PROTOCOL_VERSIONS)
        if not common:
            raise SignallingError(
                f"no common protocol version; this server speaks {list(m.PROTOCOL_VERSIONS)}",
                "unsupported_version",
            )
        if hello.resume is not None:
            conference = self.conferences.find(self.meeting_id)
            if conference is not None:
                member = await conference.resume(hello.resume, self.outbox)
                if member is not None:
                    self.conference, self.member = conference, member
                    return
        # No resume token or an expired one: a fresh join (``welcome.resumed`` is false),
        # if the access policy lets this person in (docs/protocol.md, "Joining").
        role, wait = "participant", False
        joiner = self.joiner
        if self.gate is not None and joiner is not None:
            credentials = Credentials(
                moderator_key=hello.moderator_key, invite=hello.invite, pin=hello.pin
            )
            decision = await self.gate.decide(self.meeting_id, joiner, credentials)
            if isinstance(decision, Refuse):
                raise SignallingError(decision.reason, cast(ErrorCode, decision.code))
            role = decision.role
            wait = isinstance(decision, Wait) and not hello.test_bypass_lobby
        self.conference, self.member = await self.conferences.join(
            self.meeting_id,
            hello.name,
            self.outbox,
            role=role,
            wait=wait,
            account=joiner.account_id if joiner is not None else None,
            guest=joiner.is_guest if joiner is not None else True,
            guest_id=joiner.guest_id if joiner is not None and joiner.is_guest else None,
            skip_mls=bool(hello.test_skip_mls),
        )

    def closed(self) -> None:
        """The socket is gone. Without ``leave`` the participant waits for a resume."""
        if self.conference is not None and self.member is not None:
            self.conference.disconnected(self.member, self.outbox)
