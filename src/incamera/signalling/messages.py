"""The signalling protocol, version 1 (``docs/protocol.md``): one pydantic model per message.

Every message is a JSON object with a ``type``; client and server messages are two
discriminated unions on it. Unknown fields are rejected (``extra="forbid"``) and JSON types
are taken strictly (``"1"`` is not an int, ``true`` is not ``1``).

- :func:`parse_client_message` is the server's only way in: it raises only
  :class:`~incamera.signalling.errors.BadMessage`, whatever the text.
- :func:`parse_server_message` is the client's counterpart.
- :func:`encode` turns any message into its JSON text.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.functional_validators import AfterValidator

from .errors import BadMessage, ErrorCode

PROTOCOL_VERSIONS: tuple[int, ...] = (1,)
MAX_MESSAGE_CHARS = 1024 * 1024  # a full SDP offer is ~10 KB; MLS commits can be larger
MAX_SDP_CHARS = 200_000
NAME_MAX = 64
CHAT_MAX = 2000
MAX_TRACKS = 64  # m-sections in one publish offer
MAX_SIZE = 16_384  # pixels: larger tiles than this do not exist

Source = Literal["mic", "camera", "screen"]
MutableSource = Literal["mic", "camera"]
Quality = Literal["good", "fair", "poor"]
RoleName = Literal["moderator", "participant"]
LobbyRule = Literal["off", "guests", "everyone"]
ModerateAction = Literal["mute", "stop_video", "stop_screen", "remove"]
Pin = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,12}$")]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]
Mid = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Rid = Annotated[int, Field(ge=0, le=2**53 - 1)]  # exactly representable in JavaScript
MAX_MLS_BYTES = 1 << 20  # one MLS message (incamera.e2ee.mls_framing.MAX_MESSAGE_BYTES)
MAX_DEVICE_KEY_BYTES = 256  # an Ed25519 public key has 32
MAX_LISTED = 1000  # participants added or removed by one commit
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64_length(size: int) -> int:
    """Characters of ``size`` bytes in unpadded base64url."""
    return (size * 4 + 2) // 3


def _base64url(value: str) -> str:
    if not _BASE64URL.fullmatch(value) or len(value) % 4 == 1:
        raise ValueError("not base64url without padding")
    return value


def b64encode(data: bytes) -> str:
    """Unpadded base64url, the protocol's encoding of binary values."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """The bytes of an unpadded base64url string (already validated by the schema)."""
    _base64url(text)
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


MlsBytes = Annotated[
    str,
    StringConstraints(min_length=1, max_length=b64_length(MAX_MLS_BYTES)),
    AfterValidator(_base64url),
]
DeviceKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=b64_length(MAX_DEVICE_KEY_BYTES)),
    AfterValidator(_base64url),
]


class Message(BaseModel):
    """Base of every message: strict types, unknown fields rejected, ``from`` aliases."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, frozen=True)
    omit_none: ClassVar[bool] = False  # leave ``None`` fields out of the JSON


def _display_text(value: str, *, single_line: bool) -> str:
    """Reject control characters (newlines allowed in chat) and blank text."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs") and not (not single_line and char in "\n\t"):
            raise ValueError("control characters are not allowed")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip() if single_line else value


# -- shared structures ---------------------------------------------------------------------


class Participant(Message):
    id: Id
    name: str
    audio_muted: bool = False
    video_muted: bool = False
    hand_raised: bool = False
    screen_sharing: bool = False
    reconnecting: bool = False
    device_key: str | None = None  # MLS signature public key (base64url), from its key package
    role: RoleName = "participant"
    guest: bool = True  # False: signed in with an account
    # E2EE: HMAC proving that this participant holds a personal invitation's key, which only
    # moderators' browsers can check (docs/e2ee.md, "Lobby"); the server cannot make one up.
    invite_proof: str | None = None


class ChatMessage(Message):
    seq: int
    sender: Id = Field(alias="from")
    name: str
    text: str
    ts: float


class TrackInfo(Message):
    participant: Id
    source: Source


class E2eeInfo(Message):
    """``welcome.e2ee``: the meeting's MLS group (``epoch`` None: not created yet)."""

    group_id: str
    epoch: int | None


class MlsAdd(Message):
    participant: Id
    key_package: str


class AccessInfo(Message):
    """The meeting's access policy as participants see it (never the PIN itself)."""

    lobby: LobbyRule
    locked: bool
    pin_set: bool
    members_only: bool
    guests_allowed: bool


class LobbyEntry(Message):
    """One person waiting in the lobby (``account``: the signed-in account's id)."""

    omit_none: ClassVar[bool] = True
    id: Id
    name: str
    guest: bool
    account: str | None = None


# -- client -> server ----------------------------------------------------------------------


class ClientMessage(Message):
    rid: Rid | None = None  # a request id: the server answers with one reply or error


class Hello(ClientMessage):
    type: Literal["hello"] = "hello"
    versions: Annotated[
        list[Annotated[int, Field(ge=0, le=1000)]], Field(min_length=1, max_length=16)
    ]
    name: Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX)]
    resume: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    # Access (docs/protocol.md, "Joining"): the moderator link's key, a per-person
    # invitation's token, the meeting's PIN. Never logged.
    moderator_key: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    invite: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    pin: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}$")] | None = None
    test_skip_mls: bool | None = None  # test hook (testing.hooks): stay outside the MLS group
    test_bypass_lobby: bool | None = None  # test hook (testing.hooks): the server alone admits

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _display_text(value, single_line=True)


class Leave(ClientMessage):
    type: Literal["leave"] = "leave"


class Ping(ClientMessage):
    type: Literal["ping"] = "ping"


class Publish(ClientMessage):
    type: Literal["publish"] = "publish"
    sdp: Sdp
    sources: Annotated[dict[Mid, Source], Field(max_length=MAX_TRACKS)] = Field(
        default_factory=dict
    )


class SubscribeAnswer(ClientMessage):
    type: Literal["subscribe_answer"] = "subscribe_answer"
    sdp: Sdp


class RestartIce(ClientMessage):
    type: Literal["restart_ice"] = "restart_ice"


class Layer(ClientMessage):
    type: Literal["layer"] = "layer"
    mid: Mid
    width: Annotated[int, Field(ge=0, le=MAX_SIZE)]
    height: Annotated[int, Field(ge=0, le=MAX_SIZE)]


class Mute(ClientMessage):
    type: Literal["mute"] = "mute"
    source: MutableSource
    muted: bool


class Chat(ClientMessage):
    type: Literal["chat"] = "chat"
    text: Annotated[str, StringConstraints(min_length=1, max_length=CHAT_MAX)]

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _display_text(value, single_line=False)


class Hand(ClientMessage):
    type: Literal["hand"] = "hand"
    raised: bool


class KeyFrame(ClientMessage):
    """Ask the SFU for a key frame on one receive m-line (after a key switch)."""

    type: Literal["key_frame"] = "key_frame"
    mid: Mid


class MlsKeyPackage(ClientMessage):
    type: Literal["mls_key_package"] = "mls_key_package"
    key_package: MlsBytes
    device_key: DeviceKey


class MlsCreate(ClientMessage):
    type: Literal["mls_create"] = "mls_create"
    group_info: MlsBytes
    ratchet_tree: MlsBytes


class MlsCommit(ClientMessage):
    """The client's ``mls_commit`` (the server's is :class:`MlsCommitPosted`)."""

    type: Literal["mls_commit"] = "mls_commit"
    commit: MlsBytes
    welcome: MlsBytes | None = None
    group_info: MlsBytes
    ratchet_tree: MlsBytes
    added: Annotated[list[Id], Field(max_length=MAX_LISTED)] = Field(default_factory=list)
    removed: Annotated[list[Id], Field(max_length=MAX_LISTED)] = Field(default_factory=list)


class MlsMessage(ClientMessage):
    """The client's ``mls_message`` (the server's is :class:`MlsMessagePosted`)."""

    type: Literal["mls_message"] = "mls_message"
    message: MlsBytes


class Admit(ClientMessage):
    """A moderator lets someone waiting in the lobby in."""

    type: Literal["admit"] = "admit"
    participant: Id


class Deny(ClientMessage):
    """A moderator turns someone waiting in the lobby away."""

    type: Literal["deny"] = "deny"
    participant: Id


class Moderate(ClientMessage):
    """A moderator mutes someone, stops their camera or screen sharing, or removes them
    (``block``: for good)."""

    type: Literal["moderate"] = "moderate"
    action: ModerateAction
    participant: Id
    block: bool = False


class MuteAll(ClientMessage):
    type: Literal["mute_all"] = "mute_all"


class SetPolicy(ClientMessage):
    """Change the access policy: only the fields present change (``pin: null`` clears it)."""

    type: Literal["set_policy"] = "set_policy"
    lobby: LobbyRule | None = None
    locked: bool | None = None
    pin: Pin | None = None
    members_only: bool | None = None
    guests_allowed: bool | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the request sets (``pin`` may be None: remove the PIN)."""
        fields = self.model_fields_set - {"type", "rid"}
        changes = {name: getattr(self, name) for name in fields}
        return {k: v for k, v in changes.items() if v is not None or k == "pin"}


class SetRole(ClientMessage):
    type: Literal["set_role"] = "set_role"
    participant: Id
    role: RoleName


class EndMeeting(ClientMessage):
    type: Literal["end_meeting"] = "end_meeting"


InviteProofValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
INVITATION_MIN_SECONDS = 60
INVITATION_MAX_SECONDS = 90 * 24 * 3600


class Invite(ClientMessage):
    """A moderator creates a personal invitation link (the reply carries ``invitation``)."""

    type: Literal["invite"] = "invite"
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    role: RoleName = "participant"
    expires_in_seconds: int = Field(
        default=7 * 24 * 3600, ge=INVITATION_MIN_SECONDS, le=INVITATION_MAX_SECONDS, strict=True
    )


class ListAccess(ClientMessage):
    """A moderator asks for the open invitations and the blocks (the reply carries
    ``access``)."""

    type: Literal["list_access"] = "list_access"


class RevokeInvitation(ClientMessage):
    """A moderator revokes an invitation: its link stops working (``id`` from ``access``)."""

    type: Literal["revoke_invitation"] = "revoke_invitation"
    id: Id


class Unblock(ClientMessage):
    """A moderator lets a blocked person join again (``id`` from ``access``)."""

    type: Literal["unblock"] = "unblock"
    id: Id


class InviteProof(ClientMessage):
    """E2EE: the proof (HMAC-SHA256, base64url) that this participant holds the key of the
    personal invitation it joined with; everyone gets it in ``participant.invite_proof``."""

    type: Literal["invite_proof"] = "invite_proof"
    proof: InviteProofValue


AnyClientMessage = Annotated[
    Hello
    | Leave
    | Ping
    | Publish
    | SubscribeAnswer
    | RestartIce
    | Layer
    | Mute
    | Chat
    | Hand
    | KeyFrame
    | MlsKeyPackage
    | MlsCreate
    | MlsCommit
    | MlsMessage
    | Admit
    | Deny
    | Moderate
    | MuteAll
    | SetPolicy
    | SetRole
    | EndMeeting
    | Invite
    | InviteProof
    | ListAccess
    | RevokeInvitation
    | Unblock,
    Field(discriminator="type"),
]

# -- server -> client ----------------------------------------------------------------------


class Welcome(Message):
    type: Literal["welcome"] = "welcome"
    version: int
    participant: Participant
    resume_token: str
    resumed: bool
    participants: list[Participant]
    chat: list[ChatMessage]
    e2ee: E2eeInfo | None = None  # None: the meeting is NOT end-to-end encrypted
    policy: AccessInfo | None = None


class LobbyWait(Message):
    """Instead of ``welcome``: wait until a moderator lets you in (``position`` 1 = next)."""

    type: Literal["lobby_wait"] = "lobby_wait"
    position: int | None = None


class LobbyUpdate(Message):
    """The server's ``lobby`` (to moderators): everyone waiting, in order."""

    type: Literal["lobby"] = "lobby"
    waiting: list[LobbyEntry]


class Moderated(Message):
    """To a participant a moderator muted (``mute``), whose camera (``stop_video``) or
    screen sharing (``stop_screen``) it stopped."""

    type: Literal["moderated"] = "moderated"
    action: Literal["mute", "stop_video", "stop_screen"]
    by: str


class Removed(Message):
    """To a participant a moderator removed; the socket closes next (code 4401)."""

    type: Literal["removed"] = "removed"
    by: str
    blocked: bool


class MeetingEnded(Message):
    """A moderator ended the meeting for everyone; sockets close next (code 4410)."""

    type: Literal["meeting_ended"] = "meeting_ended"
    by: str


class PolicyChanged(AccessInfo):
    """The server's ``policy``: the access policy changed."""

    type: Literal["policy"] = "policy"


class Error(Message):
    type: Literal["error"] = "error"
    omit_none: ClassVar[bool] = True
    rid: int | None = None
    code: ErrorCode
    reason: str


class InvitationCreated(BaseModel):
    """A new invitation: the link is ``<origin>/m/<meeting>#invite=<token>``. The token is
    shown once: the server keeps only its digest."""

    token: str
    role: RoleName
    name: str | None = None
    expires_at: str  # ISO 8601, UTC


class InvitationInfo(BaseModel):
    """An open invitation in ``access``: ``id`` is the SHA-256 of its token (not the token)."""

    id: str
    role: RoleName
    name: str | None = None
    expires_at: str  # ISO 8601, UTC


class BlockInfo(BaseModel):
    """A block in ``access``: ``id`` is an opaque digest (never the guest's browser id)."""

    id: str
    name: str | None = None  # the display name when removed (unknown for old blocks)
    kind: Literal["account", "guest"]
    since: str  # ISO 8601, UTC


class AccessList(BaseModel):
    """The reply to ``list_access``: open invitations and blocks, newest first."""

    invitations: list[InvitationInfo]
    blocks: list[BlockInfo]


class Reply(Message):
    type: Literal["reply"] = "reply"
    omit_none: ClassVar[bool] = True
    rid: int | None = None
    ok: Literal[True] = True
    sdp: str | None = None  # the answer, for ``publish``
    invitation: InvitationCreated | None = None  # for ``invite``
    access: AccessList | None = None  # for ``list_access``


class Pong(Message):
    type: Literal["pong"] = "pong"


class Subscribe(Message):
    type: Literal["subscribe"] = "subscribe"
    sdp: str
    tracks: dict[str, TrackInfo]


class ParticipantJoined(Message):
    type: Literal["participant_joined"] = "participant_joined"
    participant: Participant


class ParticipantLeft(Message):
    type: Literal["participant_left"] = "participant_left"
    id: str


class ParticipantUpdated(Message):
    type: Literal["participant_updated"] = "participant_updated"
    participant: Participant


class ActiveSpeaker(Message):
    type: Literal["active_speaker"] = "active_speaker"
    id: str | None


class ConnectionQuality(Message):
    type: Literal["connection_quality"] = "connection_quality"
    id: str
    quality: Quality


class ChatPosted(Message):
    """The server's ``chat`` message (the client's is :class:`Chat`)."""

    type: Literal["chat"] = "chat"
    message: ChatMessage


class MlsTask(Message):
    """To the designated committer: turn this into exactly one commit (or ``mls_create``).

    ``epoch``: the epoch the task is for (None with ``create``).
    """

    type: Literal["mls_task"] = "mls_task"
    create: bool = False
    add: list[MlsAdd] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    update: bool = False
    epoch: int | None = None


class MlsCommitPosted(Message):
    """The server's ``mls_commit``: the commit from ``epoch`` to ``epoch + 1``."""

    type: Literal["mls_commit"] = "mls_commit"
    epoch: int
    commit: str
    sender: str = Field(alias="from")


class MlsWelcome(Message):
    type: Literal["mls_welcome"] = "mls_welcome"
    epoch: int
    welcome: str
    ratchet_tree: str


class MlsMessagePosted(Message):
    """The server's ``mls_message``: a relayed MLS application message."""

    type: Literal["mls_message"] = "mls_message"
    sender: str = Field(alias="from")
    message: str


AnyServerMessage = Annotated[
    Welcome
    | Error
    | Reply
    | Pong
    | Subscribe
    | ParticipantJoined
    | ParticipantLeft
    | ParticipantUpdated
    | ActiveSpeaker
    | ConnectionQuality
    | ChatPosted
    | MlsTask
    | MlsCommitPosted
    | MlsWelcome
    | MlsMessagePosted
    | LobbyWait
    | LobbyUpdate
    | Moderated
    | Removed
    | MeetingEnded
    | PolicyChanged,
    Field(discriminator="type"),
]

_client = TypeAdapter(AnyClientMessage)
_server = TypeAdapter(AnyServerMessage)


def rid_of(text: str) -> int | None:
    """The ``rid`` of a JSON object that failed its schema, if it has a usable one."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict):
        rid = data.get("rid")
        if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid < 2**53:
            return rid
    return None


def _reason(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "json_invalid":
        return f"not valid JSON: {first['msg']}"
    if first["type"] == "union_tag_invalid":
        return "unknown message type"
    if first["type"] == "union_tag_not_found":
        return "the message has no 'type'"
    if first["type"] == "model_attributes_type":
        return "a message must be a JSON object"
    # The first element of ``loc`` is the union tag (the message type).
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def parse_client_message(text: str | bytes) -> Any:
    """Parse one client message. Raises only :class:`BadMessage` (with a reason)."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise BadMessage("not UTF-8 text") from None
    if not isinstance(text, str):
        raise BadMessage("a message must be text")
    if len(text) > MAX_MESSAGE_CHARS:
        raise BadMessage(f"message longer than {MAX_MESSAGE_CHARS} characters")
    try:
        return _client.validate_json(text)
    except ValidationError as error:
        raise BadMessage(_reason(error), rid_of(text)) from None
    except (ValueError, RecursionError) as error:  # defensive: pydantic-core edge cases
        raise BadMessage(f"not a valid message: {type(error).__name__}") from None


def parse_server_message(text: str | bytes) -> Any:
    """Parse one server message (for clients). Raises only :class:`BadMessage`."""
    try:
        return _server.validate_json(text)
    except ValidationError as error:
        raise BadMessage(_reason(error)) from None
    except (ValueError, RecursionError) as error:
        raise BadMessage(f"not a valid message: {type(error).__name__}") from None


def encode(message: Message) -> str:
    """The JSON text of ``message`` (``from`` for ``ChatMessage.sender``)."""
    return message.model_dump_json(by_alias=True, exclude_none=message.omit_none)


__all__ = [
    "PROTOCOL_VERSIONS",
    "AccessInfo",
    "AccessList",
    "ActiveSpeaker",
    "Admit",
    "AnyClientMessage",
    "AnyServerMessage",
    "BlockInfo",
    "Chat",
    "ChatMessage",
    "ChatPosted",
    "ClientMessage",
    "ConnectionQuality",
    "Deny",
    "E2eeInfo",
    "EndMeeting",
    "Error",
    "Hand",
    "Hello",
    "InvitationInfo",
    "KeyFrame",
    "Layer",
    "Leave",
    "ListAccess",
    "LobbyEntry",
    "LobbyUpdate",
    "LobbyWait",
    "MeetingEnded",
    "Message",
    "MlsAdd",
    "MlsCommit",
    "MlsCommitPosted",
    "MlsCreate",
    "MlsKeyPackage",
    "MlsMessage",
    "MlsMessagePosted",
    "MlsTask",
    "MlsWelcome",
    "Moderate",
    "Moderated",
    "Mute",
    "MuteAll",
    "Participant",
    "ParticipantJoined",
    "ParticipantLeft",
    "ParticipantUpdated",
    "Ping",
    "PolicyChanged",
    "Pong",
    "Publish",
    "Removed",
    "Reply",
    "RestartIce",
    "RevokeInvitation",
    "SetPolicy",
    "SetRole",
    "Source",
    "Subscribe",
    "SubscribeAnswer",
    "TrackInfo",
    "Unblock",
    "Welcome",
    "b64decode",
    "b64encode",
    "encode",
    "parse_client_message",
    "parse_server_message",
    "rid_of",
]
