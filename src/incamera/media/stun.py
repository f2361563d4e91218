"""STUN messages (RFC 8489) as used by an ICE-lite agent (RFC 8445).

A message is a 20-byte header (type, length, magic cookie, 96-bit transaction id) followed
by type-length-value attributes, each padded to a multiple of four bytes (RFC 8489 §5, §14).
Attributes are kept raw and in order; typed getters decode the ones ICE needs. The
authentication helpers implement MESSAGE-INTEGRITY (HMAC-SHA1, §14.5) with the short-term
key (the ICE password's bytes) and FINGERPRINT (CRC-32 xor 0x5354554E, §14.7).

Only attributes placed before MESSAGE-INTEGRITY are covered by it, so the getters ignore
any attribute after MESSAGE-INTEGRITY (other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT)
and any attribute after FINGERPRINT, as §14.5 and §14.7 require.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import struct
from dataclasses import dataclass, field

from incamera.media.errors import ParseError

MAGIC_COOKIE = 0x2112A442
HEADER_LENGTH = 20
FINGERPRINT_XOR = 0x5354554E

# Message types (method + class, RFC 8489 §5 and §18.2).
BINDING_REQUEST = 0x0001
BINDING_INDICATION = 0x0011
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111

# Attribute types (RFC 8489 §18.3, RFC 8445 §16.1, renomination draft for NOMINATION).
MAPPED_ADDRESS = 0x0001
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
REALM = 0x0014
NONCE = 0x0015
MESSAGE_INTEGRITY_SHA256 = 0x001C
PASSWORD_ALGORITHM = 0x001D
USERHASH = 0x001E
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
SOFTWARE = 0x8022
ALTERNATE_SERVER = 0x8023
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A
NOMINATION = 0xC001

# Message classes (the C1/C0 bits, §5).
CLASS_REQUEST = 0
CLASS_INDICATION = 1
CLASS_SUCCESS = 2
CLASS_ERROR = 3

_HEADER = struct.Struct("!HHI12s")
_ATTR_HEADER = struct.Struct("!HH")
_MI_LENGTH = 20  # HMAC-SHA1 output
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")


def _padded(length: int) -> int:
    return (length + 3) & ~3


def is_stun(data: bytes | bytearray | memoryview) -> bool:
    """Quick demultiplexing test: RFC 7983 §7 (first byte 0..3) plus the magic cookie."""
    return len(data) >= HEADER_LENGTH and data[0] < 4 and bytes(data[4:8]) == _COOKIE_BYTES


@dataclass(slots=True)
class StunMessage:
    """One STUN message (RFC 8489 §5): header fields plus raw attributes in wire order."""

    message_type: int
    transaction_id: bytes
    attributes: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def method(self) -> int:
        t = self.message_type
        return (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)

    @property
    def message_class(self) -> int:
        t = self.message_type
        return ((t >> 4) & 1) | ((t >> 7) & 2)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> StunMessage:
        """Parse and validate a whole datagram (RFC 8489 §5, §6, §14); raises ParseError."""
        data = bytes(data)
        if len(data) < HEADER_LENGTH:
            raise ParseError("STUN message shorter than its header")
        message_type, length, cookie, transaction_id = _HEADER.unpack_from(data)
        if message_type & 0xC000:
            raise ParseError("STUN message type has its two top bits set")
        if cookie != MAGIC_COOKIE:
            raise ParseError("STUN magic cookie mismatch")
        if length % 4:
            raise ParseError("STUN message length is not a multiple of 4")
        if length != len(data) - HEADER_LENGTH:
            raise ParseError("STUN message length does not match the datagram")
        attributes: list[tuple[int, bytes]] = []
        pos = HEADER_LENGTH
        end = len(data)
        while pos < end:
            if pos + 4 > end:
                raise ParseError("truncated STUN attribute header")
            attr_type, attr_len = _ATTR_HEADER.unpack_from(data, pos)
            pos += 4
            if pos + _padded(attr_len) > end:
                raise ParseError("STUN attribute overruns the message")
            attributes.append((attr_type, data[pos : pos + attr_len]))
            pos += _padded(attr_len)
        return cls(message_type, transaction_id, attributes)

    def __bytes__(self) -> bytes:
        return _encode(self.message_type, self.transaction_id, self.attributes, 0)

    # -- attribute access -------------------------------------------------------------

    def get(self, attr_type: int) -> bytes | None:
        """First value of ``attr_type`` within the part of the message integrity covers.

        Attributes after MESSAGE-INTEGRITY (except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT)
        and after FINGERPRINT are ignored (RFC 8489 §14.5, §14.7).
        """
        after_integrity = False
        for t, value in self.attributes:
            if t == attr_type and (
                not after_integrity or t in (MESSAGE_INTEGRITY_SHA256, FINGERPRINT)
            ):
                return value
            if t == FINGERPRINT:
                return None
            if t in (MESSAGE_INTEGRITY, MESSAGE_INTEGRITY_SHA256):
                after_integrity = True
        return None

    def username(self) -> str | None:
        """USERNAME (§14.3) as text; for ICE, ``"<receiver ufrag>:<sender ufrag>"``."""
        value = self.get(USERNAME)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("USERNAME is not UTF-8") from exc

    def software(self) -> str | None:
        value = self.get(SOFTWARE)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("SOFTWARE is not UTF-8") from exc

    def priority(self) -> int | None:
        """PRIORITY (RFC 8445 §7.1.1), a 32-bit unsigned integer."""
        return self._uint(PRIORITY, 4)

    def use_candidate(self) -> bool:
        """Whether USE-CANDIDATE (RFC 8445 §7.1.2) is present."""
        return self.get(USE_CANDIDATE) is not None

    def ice_controlling(self) -> int | None:
        """ICE-CONTROLLING tie-breaker (RFC 8445 §7.1.3), 64-bit."""
        return self._uint(ICE_CONTROLLING, 8)

    def ice_controlled(self) -> int | None:
        """ICE-CONTROLLED tie-breaker (RFC 8445 §7.1.3), 64-bit."""
        return self._uint(ICE_CONTROLLED, 8)

    def nomination(self) -> int | None:
        """NOMINATION (ICE renomination draft), a 24-bit value in a 32-bit field."""
        value = self._uint(NOMINATION, 4)
        return None if value is None else value & 0xFFFFFF

    def xor_mapped_address(self) -> tuple[str, int] | None:
        """XOR-MAPPED-ADDRESS (§14.2) as ``(ip, port)``."""
        value = self.get(XOR_MAPPED_ADDRESS)
        if value is None:
            return None
        return decode_xor_address(value, self.transaction_id)

    def mapped_address(self) -> tuple[str, int] | None:
        """MAPPED-ADDRESS (§14.1) as ``(ip, port)``."""
        value = self.get(MAPPED_ADDRESS)
        if value is None:
            return None
        return decode_address(value)

    def error_code(self) -> tuple[int, str] | None:
        """ERROR-CODE (§14.8) as ``(code, reason)``."""
        value = self.get(ERROR_CODE)
        if value is None:
            return None
        if len(value) < 4:
            raise ParseError("ERROR-CODE shorter than 4 bytes")
        code = (value[2] & 0x07) * 100 + value[3]
        try:
            reason = value[4:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("ERROR-CODE reason is not UTF-8") from exc
        return code, reason

    def _uint(self, attr_type: int, size: int) -> int | None:
        value = self.get(attr_type)
        if value is None:
            return None
        if len(value) != size:
            raise ParseError(f"attribute 0x{attr_type:04x} must be {size} bytes")
        return int.from_bytes(value, "big")


# -- addresses ---------------------------------------------------------------------------


def encode_address(ip: str, port: int) -> bytes:
    """MAPPED-ADDRESS value (§14.1): reserved byte, family, port, address."""
    addr = ipaddress.ip_address(ip)
    family = 1 if addr.version == 4 else 2
    return struct.pack("!BBH", 0, family, port) + addr.packed


def decode_address(value: bytes) -> tuple[str, int]:
    if len(value) < 4:
        raise ParseError("address attribute too short")
    family = value[1]
    port = int.from_bytes(value[2:4], "big")
    if family == 1 and len(value) == 8:
        return str(ipaddress.IPv4Address(value[4:8])), port
    if family == 2 and len(value) == 20:
        return str(ipaddress.IPv6Address(value[4:20])), port
    raise ParseError("address attribute has a bad family or length")


def encode_xor_address(ip: str, port: int, transaction_id: bytes) -> bytes:
    """XOR-MAPPED-ADDRESS value (§14.2): port xor the cookie's top 16 bits, address xor
    the cookie (IPv4) or the cookie followed by the transaction id (IPv6)."""
    addr = ipaddress.ip_address(ip)
    mask = _COOKIE_BYTES + transaction_id
    packed = bytes(a ^ b for a, b in zip(addr.packed, mask, strict=False))
    family = 1 if addr.version == 4 else 2
    return struct.pack("!BBH", 0, family, port ^ (MAGIC_COOKIE >> 16)) + packed


def decode_xor_address(value: bytes, transaction_id: bytes) -> tuple[str, int]:
    ip, xport = decode_address(value)
    raw = ipaddress.ip_address(ip).packed
    mask = _COOKIE_BYTES + transaction_id
    plain = bytes(a ^ b for a, b in zip(raw, mask, strict=False))
    return str(ipaddress.ip_address(plain)), xport ^ (MAGIC_COOKIE >> 16)


def encode_error_code(code: int, reason: str) -> bytes:
    """ERROR-CODE value (§14.8): class (hundreds) and number, then a UTF-8 reason."""
    if not 300 <= code <= 699:
        raise ValueError("STUN error codes are 300..699")
    return struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode("utf-8")


# -- serialisation and authentication -----------------------------------------------------


def _encode_attributes(attributes: list[tuple[int, bytes]], pad_byte: int) -> bytes:
    parts: list[bytes] = []
    pad_unit = bytes([pad_byte])
    for attr_type, value in attributes:
        if len(value) > 0xFFFF:
            raise ValueError("STUN attribute value longer than 65535 bytes")
        parts.append(_ATTR_HEADER.pack(attr_type, len(value)))
        parts.append(value)
        parts.append(pad_unit * (_padded(len(value)) - len(value)))
    return b"".join(parts)


def _header(message_type: int, length: int, transaction_id: bytes) -> bytes:
    if len(transaction_id) != 12:
        raise ValueError("STUN transaction id must be 12 bytes")
    if not 0 <= message_type < 0x4000:
        raise ValueError("STUN message type must fit in 14 bits")
    if length > 0xFFFF:
        raise ValueError("STUN message too long")
    return _HEADER.pack(message_type, length, MAGIC_COOKIE, transaction_id)


def _encode(
    message_type: int, transaction_id: bytes, attributes: list[tuple[int, bytes]], pad_byte: int
) -> bytes:
    body = _encode_attributes(attributes, pad_byte)
    return _header(message_type, len(body), transaction_id) + body


def _integrity(key: bytes, message_up_to_mi: bytes) -> bytes:
    return hmac.new(key, message_up_to_mi, hashlib.sha1).digest()


def _fingerprint(message_up_to_fp: bytes) -> bytes:
    return struct.pack("!I", binascii.crc32(message_up_to_fp) ^ FINGERPRINT_XOR)


def build(
    message_type: int,
    transaction_id: bytes,
    attributes: list[tuple[int, bytes]],
    integrity_key: bytes | None = None,
    fingerprint: bool = True,
    *,
    pad_byte: int = 0,
) -> bytes:
    """Serialise a message, appending MESSAGE-INTEGRITY (if ``integrity_key``) and then
    FINGERPRINT (if ``fingerprint``), each computed as RFC 8489 §14.5 and §14.7 say: over
    the message so far with the header length already counting the new attribute.

    ``pad_byte`` fills attribute padding; RFC 8489 says receivers must ignore it (RFC 5769's
    vectors use spaces), so the default of zero is right for everything but reproducing them.
    """
    body = _encode_attributes(attributes, pad_byte)
    if integrity_key is not None:
        head = _header(message_type, len(body) + 4 + _MI_LENGTH, transaction_id)
        mac = _integrity(integrity_key, head + body)
        body += _ATTR_HEADER.pack(MESSAGE_INTEGRITY, _MI_LENGTH) + mac
    if fingerprint:
        head = _header(message_type, len(body) + 8, transaction_id)
        body += _ATTR_HEADER.pack(FINGERPRINT, 4) + _fingerprint(head + body)
    return _header(message_type, len(body), transaction_id) + body


def _find_attribute(raw: bytes, wanted: int) -> tuple[int, int] | None:
    """Offset of the header of the first ``wanted`` attribute and its value length."""
    pos = HEADER_LENGTH
    end = len(raw)
    while pos + 4 <= end:
        attr_type, attr_len = _ATTR_HEADER.unpack_from(raw, pos)
        if attr_type == wanted:
            return pos, attr_len
        pos += 4 + _padded(attr_len)
    return None


def _well_formed(raw: bytes) -> bool:
    try:
        StunMessage.parse(raw)
    except ParseError:
        return False
    return True


def verify_message_integrity(raw: bytes | bytearray | memoryview, key: bytes) -> bool:
    """Check MESSAGE-INTEGRITY (RFC 8489 §14.5): HMAC-SHA1 keyed with ``key`` (for ICE the
    short-term key, i.e. the password's bytes) over the message up to the attribute, with
    the header length set to end just after it. False if absent or the message is malformed.
    """
    raw = bytes(raw)
    if not _well_formed(raw):
        return False
    found = _find_attribute(raw, MESSAGE_INTEGRITY)
    if found is None:
        return False
    offset, attr_len = found
    if attr_len != _MI_LENGTH:
        return False
    adjusted = bytearray(raw[:offset])
    struct.pack_into("!H", adjusted, 2, offset + 4 + _MI_LENGTH - HEADER_LENGTH)
    expected = _integrity(key, bytes(adjusted))
    return hmac.compare_digest(expected, raw[offset + 4 : offset + 4 + _MI_LENGTH])


def verify_fingerprint(raw: bytes | bytearray | memoryview) -> bool:
    """Check FINGERPRINT (RFC 8489 §14.7): it must be the last attribute and equal the
    CRC-32 of the message before it xor 0x5354554E. False if absent or malformed."""
    raw = bytes(raw)
    if not _well_formed(raw) or len(raw) < HEADER_LENGTH + 8:
        return False
    offset = len(raw) - 8
    attr_type, attr_len = _ATTR_HEADER.unpack_from(raw, offset)
    if attr_type != FINGERPRINT or attr_len != 4:
        return False
    found = _find_attribute(raw, FINGERPRINT)
    if found is None or found[0] != offset:
        return False
    return hmac.compare_digest(_fingerprint(raw[:offset]), raw[offset + 4 :])


# -- ICE-lite conveniences ----------------------------------------------------------------


def binding_success(
    request: StunMessage, addr: tuple[str, int], key: bytes | None, *, software: str | None = None
) -> bytes:
    """A Binding success response (RFC 8489 §6.3.1.1, RFC 8445 §7.3.1.4): the request's
    transaction id, XOR-MAPPED-ADDRESS of the request's source, MESSAGE-INTEGRITY with
    ``key`` (the local ICE password's bytes), FINGERPRINT."""
    attributes: list[tuple[int, bytes]] = []
    if software is not None:
        attributes.append((SOFTWARE, software.encode("utf-8")))
    attributes.append((XOR_MAPPED_ADDRESS, encode_xor_address(*addr, request.transaction_id)))
    return build(BINDING_SUCCESS, request.transaction_id, attributes, key, True)


def binding_error(
    request: StunMessage,
    code: int,
    reason: str,
    key: bytes | None = None,
    *,
    software: str | None = None,
) -> bytes:
    """A Binding error response (RFC 8489 §6.3.1.1) with ERROR-CODE, optionally
    MESSAGE-INTEGRITY (not for 400/401, where the request could not be authenticated),
    and FINGERPRINT. RFC 8445 §7.3.1.1 uses 487 (Role Conflict)."""
    attributes: list[tuple[int, bytes]] = []
    if software is not None:
        attributes.append((SOFTWARE, software.encode("utf-8")))
    attributes.append((ERROR_CODE, encode_error_code(code, reason)))
    return build(BINDING_ERROR, request.transaction_id, attributes, key, True)
