"""The clear framing of MLS messages (RFC 9420 §6), as the delivery service needs it.

The server never decrypts or verifies MLS content; it reads only the fields every
``MLSMessage`` carries in clear, to route and order handshake messages:

- ``version`` (``mls10`` = 1) and ``wire_format`` (RFC 9420 §6, "MLSMessage");
- for a ``PublicMessage`` (§6.2) the start of its ``FramedContent``: ``group_id``,
  ``epoch``, ``sender`` (type and index), ``authenticated_data``, ``content_type``;
- for a ``PrivateMessage`` (§6.3) ``group_id``, ``epoch``, ``content_type``,
  ``authenticated_data`` (the whole structure is checked);
- for a ``Welcome`` (§12.4.3.1) its ``cipher_suite`` (whole structure checked);
- for a ``GroupInfo`` (§12.4.3) its ``GroupContext`` fields ``cipher_suite``, ``group_id``,
  ``epoch`` (whole structure checked);
- for a ``KeyPackage`` (§10) its ``version``, ``cipher_suite`` and the leaf node's
  ``signature_key`` and credential (whole structure checked).

Variable-size vectors carry the RFC 9420 §2.1.2 length prefix: 1, 2 or 4 bytes, the
smallest that holds the length (the "11" prefix is invalid, a longer form is malformed).
Anything malformed, truncated, followed by stray bytes, or of a version/wire format this
server does not speak raises :class:`~incamera.media.errors.ParseError` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from incamera.media.errors import ParseError

MLS10 = 1  # ProtocolVersion mls10
MAX_MESSAGE_BYTES = 1 << 20  # a larger MLS message is refused
CREDENTIAL_BASIC = 1
CREDENTIAL_X509 = 2
LEAF_NODE_SOURCE_KEY_PACKAGE = 1

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


class WireFormat(IntEnum):
    """RFC 9420 §6 / §17.2 "MLS Wire Formats"."""

    PUBLIC_MESSAGE = 1
    PRIVATE_MESSAGE = 2
    WELCOME = 3
    GROUP_INFO = 4
    KEY_PACKAGE = 5


class ContentType(IntEnum):
    """RFC 9420 §6 ``ContentType``."""

    APPLICATION = 1
    PROPOSAL = 2
    COMMIT = 3


class SenderType(IntEnum):
    """RFC 9420 §6 ``SenderType``."""

    MEMBER = 1
    EXTERNAL = 2
    NEW_MEMBER_PROPOSAL = 3
    NEW_MEMBER_COMMIT = 4


class _Reader:
    """Reads TLS presentation-language fields; raises ParseError when data runs out."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise ParseError("MLS message truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self._take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self._take(8))[0])

    def varint(self) -> int:
        """RFC 9420 §2.1.2: 2-bit prefix selects 1/2/4 bytes; minimal form required."""
        first = self.u8()
        prefix = first >> 6
        if prefix == 3:
            raise ParseError("invalid vector length prefix 0b11")
        value = first & 0x3F
        size = 1 << prefix
        for byte in self._take(size - 1):
            value = (value << 8) | byte
        if size > 1 and value < (1 << (8 * (size >> 1) - 2)):
            raise ParseError("vector length not in its shortest encoding")
        return value

    def vector(self) -> bytes:
        return self._take(self.varint())

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ParseError(f"{len(self.data) - self.pos} stray bytes after the MLS message")


def read_varint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Decode one RFC 9420 §2.1.2 length at ``offset``; returns (value, next offset)."""
    reader = _Reader(data)
    reader.pos = offset
    value = reader.varint()
    return value, reader.pos


def check_ratchet_tree(data: bytes) -> None:
    """A ratchet tree as sent with ``mls_create``/``mls_commit``: the TLS encoding of
    ``optional<Node> ratchet_tree<V>`` (RFC 9420 §12.4.3.3), one non-empty vector and
    nothing after it. Raises ParseError otherwise."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ParseError(f"ratchet tree larger than {MAX_MESSAGE_BYTES} bytes")
    reader = _Reader(bytes(data))
    if not reader.vector():
        raise ParseError("empty ratchet tree")
    reader.end()


@dataclass(frozen=True, slots=True)
class MlsFraming:
    """The clear fields of one ``MLSMessage`` (RFC 9420 §6); ``data`` is the whole message.

    Fields that the message's wire format does not carry are None.
    """

    version: int
    wire_format: WireFormat
    data: bytes
    group_id: bytes | None = None
    epoch: int | None = None
    content_type: ContentType | None = None
    sender_type: SenderType | None = None  # PublicMessage only
    sender_index: int | None = None  # member leaf index or external sender index
    authenticated_data: bytes | None = None
    cipher_suite: int | None = None  # Welcome, GroupInfo, KeyPackage
    signature_key: bytes | None = None  # KeyPackage: the leaf's signature public key
    credential_type: int | None = None  # KeyPackage
    identity: bytes | None = None  # KeyPackage with a basic credential

    @classmethod
    def parse(cls, data: bytes) -> MlsFraming:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ParseError("an MLS message must be bytes")
        data = bytes(data)
        if len(data) > MAX_MESSAGE_BYTES:
            raise ParseError(f"MLS message larger than {MAX_MESSAGE_BYTES} bytes")
        reader = _Reader(data)
        version = reader.u16()
        if version != MLS10:
            raise ParseError(f"unsupported MLS protocol version {version}")
        raw_format = reader.u16()
        try:
            wire_format = WireFormat(raw_format)
        except ValueError:
            raise ParseError(f"unsupported MLS wire format {raw_format}") from None
        fields: dict[str, object] = {}
        match wire_format:
            case WireFormat.PUBLIC_MESSAGE:
                _public_message(reader, fields)
            case WireFormat.PRIVATE_MESSAGE:
                _private_message(reader, fields)
            case WireFormat.WELCOME:
                _welcome(reader, fields)
            case WireFormat.GROUP_INFO:
                _group_info(reader, fields)
            case WireFormat.KEY_PACKAGE:
                _key_package(reader, fields)
        return cls(version, wire_format, data, **fields)  # type: ignore[arg-type]

    def __bytes__(self) -> bytes:
        return self.data


def _content_type(reader: _Reader) -> ContentType:
    raw = reader.u8()
    try:
        return ContentType(raw)
    except ValueError:
        raise ParseError(f"unknown MLS content type {raw}") from None


def _public_message(reader: _Reader, fields: dict[str, object]) -> None:
    """RFC 9420 §6.2: ``PublicMessage`` starts with ``FramedContent``; the content body,
    auth data and membership tag that follow stay unread (they need the group's state)."""
    fields["group_id"] = reader.vector()
    fields["epoch"] = reader.u64()
    raw_sender = reader.u8()
    try:
        sender_type = SenderType(raw_sender)
    except ValueError:
        raise ParseError(f"unknown MLS sender type {raw_sender}") from None
    fields["sender_type"] = sender_type
    if sender_type in (SenderType.MEMBER, SenderType.EXTERNAL):
        fields["sender_index"] = reader.u32()
    fields["authenticated_data"] = reader.vector()
    fields["content_type"] = _content_type(reader)
    if reader.remaining == 0:
        raise ParseError("MLS public message without content")


def _private_message(reader: _Reader, fields: dict[str, object]) -> None:
    """RFC 9420 §6.3 ``PrivateMessage``."""
    fields["group_id"] = reader.vector()
    fields["epoch"] = reader.u64()
    fields["content_type"] = _content_type(reader)
    fields["authenticated_data"] = reader.vector()
    if not reader.vector():
        raise ParseError("MLS private message without sender data")
    if not reader.vector():
        raise ParseError("MLS private message without ciphertext")
    reader.end()


def _welcome(reader: _Reader, fields: dict[str, object]) -> None:
    """RFC 9420 §12.4.3.1 ``Welcome``: cipher_suite, secrets<V>, encrypted_group_info<V>."""
    fields["cipher_suite"] = reader.u16()
    reader.vector()
    if not reader.vector():
        raise ParseError("MLS welcome without a group info")
    reader.end()


def _group_info(reader: _Reader, fields: dict[str, object]) -> None:
    """RFC 9420 §12.4.3 ``GroupInfo`` (with its §8.1 ``GroupContext``)."""
    context_version = reader.u16()
    if context_version != MLS10:
        raise ParseError(f"unsupported group context version {context_version}")
    fields["cipher_suite"] = reader.u16()
    fields["group_id"] = reader.vector()
    fields["epoch"] = reader.u64()
    reader.vector()  # tree_hash
    reader.vector()  # confirmed_transcript_hash
    reader.vector()  # group context extensions
    reader.vector()  # group info extensions
    reader.vector()  # confirmation_tag
    reader.u32()  # signer
    reader.vector()  # signature
    reader.end()


def _key_package(reader: _Reader, fields: dict[str, object]) -> None:
    """RFC 9420 §10 ``KeyPackage`` with its §7.2 ``LeafNode`` (source key_package)."""
    version = reader.u16()
    if version != MLS10:
        raise ParseError(f"unsupported key package version {version}")
    fields["cipher_suite"] = reader.u16()
    reader.vector()  # init_key
    reader.vector()  # leaf: encryption_key
    fields["signature_key"] = reader.vector()
    credential_type = reader.u16()
    fields["credential_type"] = credential_type
    if credential_type == CREDENTIAL_BASIC:
        fields["identity"] = reader.vector()
    elif credential_type == CREDENTIAL_X509:
        reader.vector()  # certificates
    else:
        raise ParseError(f"unsupported credential type {credential_type}")
    for _ in range(5):  # capabilities: versions, suites, extensions, proposals, credentials
        reader.vector()
    source = reader.u8()
    if source != LEAF_NODE_SOURCE_KEY_PACKAGE:
        raise ParseError(f"a key package's leaf node has source {source}, not key_package")
    reader.u64()  # lifetime.not_before
    reader.u64()  # lifetime.not_after
    reader.vector()  # leaf extensions
    reader.vector()  # leaf signature
    reader.vector()  # key package extensions
    reader.vector()  # key package signature
    reader.end()


__all__ = [
    "MAX_MESSAGE_BYTES",
    "MLS10",
    "ContentType",
    "MlsFraming",
    "SenderType",
    "WireFormat",
    "check_ratchet_tree",
    "read_varint",
]
