"""RTP packets (RFC 3550 §5.1) with header extensions (RFC 8285).

Two ways in:

* :class:`RtpPacket` is a dataclass with ``parse``/``__bytes__`` for code that needs the
  whole packet (tests, the retransmission buffer, RTX wrapping).
* The module-level functions work in place on a ``bytearray``/``memoryview`` and create no
  objects beyond a tuple or two; the forwarding hot path uses them to read and patch the
  fixed header and extension elements (a full parse and re-serialise costs about ten times
  as much).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from incamera.media.errors import ParseError

RTP_VERSION = 2
FIXED_HEADER_LENGTH = 12
ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285 §4.2
TWO_BYTE_PROFILE = 0x1000  # RFC 8285 §4.3: 0x100 followed by 4 "appbits"
TWO_BYTE_PROFILE_MASK = 0xFFF0

_FIXED = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_EXT_HEADER = struct.Struct("!HH")

Buffer = bytes | bytearray | memoryview


def _is_two_byte(profile: int) -> bool:
    return profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE


def _is_rfc8285(profile: int | None) -> bool:
    return profile is not None and (profile == ONE_BYTE_PROFILE or _is_two_byte(profile))


def is_rtcp(data: Buffer) -> bool:
    """RFC 5761 §4: in an RTP/RTCP-muxed flow, RTCP has a second byte (the packet type,
    with RTP's marker bit position) in 192..223, i.e. RTP payload types 64..95."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def is_rtp_or_rtcp(data: Buffer) -> bool:
    """RFC 7983 §7: a first byte in 128..191 is RTP or RTCP (SRTP/SRTCP)."""
    return len(data) >= 2 and 128 <= data[0] <= 191


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1).

    ``extension_profile`` is None when the X bit is clear. For RFC 8285 profiles (0xBEDE
    one-byte form, 0x100x two-byte form) the elements are in ``extensions`` (id -> data);
    for any other profile the raw block is in ``extension_data``. ``padding_size`` counts
    the padding including its final count byte (0 means the P bit is clear).

    Serialising an RFC 8285 block picks the one-byte form when every id is 1..14 and every
    element 1..16 bytes long, and the two-byte form (0x1000) otherwise; a packet parsed in
    two-byte form keeps it (the form is always able to carry the elements).
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None
    extensions: dict[int, bytes] = field(default_factory=dict)
    extension_data: bytes = b""
    padding_size: int = 0

    @property
    def version(self) -> int:
        return RTP_VERSION

    @property
    def padding(self) -> bool:
        return self.padding_size > 0

    @classmethod
    def parse(cls, data: Buffer) -> RtpPacket:
        """Parse one RTP packet; raises ParseError for anything malformed."""
        data = bytes(data)
        size = len(data)
        if size < FIXED_HEADER_LENGTH:
            raise ParseError("RTP packet shorter than the fixed header")
        first, second, seq, timestamp, ssrc = _FIXED.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise ParseError("RTP version is not 2")
        csrc_count = first & 0x0F
        pos = FIXED_HEADER_LENGTH + 4 * csrc_count
        if pos > size:
            raise ParseError("RTP CSRC list truncated")
        csrc = list(struct.unpack_from(f"!{csrc_count}I", data, FIXED_HEADER_LENGTH))
        profile: int | None = None
        extensions: dict[int, bytes] = {}
        extension_data = b""
        if first & 0x10:
            if pos + 4 > size:
                raise ParseError("RTP extension header truncated")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            pos += 4
            end = pos + 4 * words
            if end > size:
                raise ParseError("RTP extension block truncated")
            block = data[pos:end]
            if profile == ONE_BYTE_PROFILE:
                extensions = _parse_one_byte(block)
            elif _is_two_byte(profile):
                extensions = _parse_two_byte(block)
            else:
                extension_data = block
            pos = end
        padding_size = 0
        end = size
        if first & 0x20:
            if size == pos:
                raise ParseError("RTP padding bit set but no room for padding")
            padding_size = data[-1]
            if padding_size == 0 or padding_size > size - pos:
                raise ParseError("RTP padding count out of range")
            end -= padding_size
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=data[pos:end],
            marker=bool(second & 0x80),
            csrc=csrc,
            extension_profile=profile,
            extensions=extensions,
            extension_data=extension_data,
            padding_size=padding_size,
        )

    def __bytes__(self) -> bytes:
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRCs")
        if not 0 <= self.payload_type <= 127:
            raise ValueError("payload type must be 0..127")
        if not 0 <= self.padding_size <= 255:
            raise ValueError("padding size must be 0..255")
        has_extension = self.extension_profile is not None or bool(self.extensions)
        first = (
            (RTP_VERSION << 6)
            | (0x20 if self.padding_size else 0)
            | (0x10 if has_extension else 0)
            | len(self.csrc)
        )
        parts = [
            _FIXED.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        ]
        parts.extend(_U32.pack(c) for c in self.csrc)
        if has_extension:
            profile, block = self._extension_block()
            if len(block) % 4:
                raise ValueError("extension data must be a multiple of 4 bytes")
            if len(block) // 4 > 0xFFFF:
                raise ValueError("extension block too long")
            parts.append(_EXT_HEADER.pack(profile, len(block) // 4))
            parts.append(block)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes([self.padding_size]))
        return b"".join(parts)

    def _extension_block(self) -> tuple[int, bytes]:
        profile = self.extension_profile
        if profile is not None and not _is_rfc8285(profile):
            if self.extensions:
                raise ValueError("extensions given with a non-RFC 8285 profile")
            return profile, self.extension_data
        if profile is not None and _is_two_byte(profile):
            return profile, _serialize_two_byte(self.extensions)
        if all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in self.extensions.items()):
            return ONE_BYTE_PROFILE, _serialize_one_byte(self.extensions)
        return TWO_BYTE_PROFILE, _serialize_two_byte(self.extensions)


def _parse_one_byte(block: bytes) -> dict[int, bytes]:
    """RFC 8285 §4.2: ID (4 bits, 0 = padding byte, 15 = stop) and length-1 (4 bits)."""
    result: dict[int, bytes] = {}
    pos = 0
    end = len(block)
    while pos < end:
        byte = block[pos]
        ext_id = byte >> 4
        if ext_id == 0:  # padding byte; its length bits are ignored
            pos += 1
            continue
        if ext_id == 15:
            break
        length = (byte & 0x0F) + 1
        pos += 1
        if pos + length > end:
            raise ParseError("one-byte header extension element overruns the block")
        result.setdefault(ext_id, block[pos : pos + length])  # the first one wins
        pos += length
    return result


def _parse_two_byte(block: bytes) -> dict[int, bytes]:
    """RFC 8285 §4.3: ID (8 bits, 0 = padding byte) and length (8 bits, may be 0)."""
    result: dict[int, bytes] = {}
    pos = 0
    end = len(block)
    while pos < end:
        ext_id = block[pos]
        if ext_id == 0:
            pos += 1
            continue
        if pos + 2 > end:
            raise ParseError("two-byte header extension element header truncated")
        length = block[pos + 1]
        pos += 2
        if pos + length > end:
            raise ParseError("two-byte header extension element overruns the block")
        result.setdefault(ext_id, block[pos : pos + length])  # the first one wins
        pos += length
    return result


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def _serialize_one_byte(extensions: dict[int, bytes]) -> bytes:
    parts = []
    for ext_id, value in extensions.items():
        parts.append(bytes([(ext_id << 4) | (len(value) - 1)]))
        parts.append(value)
    return _pad4(b"".join(parts))


def _serialize_two_byte(extensions: dict[int, bytes]) -> bytes:
    parts = []
    for ext_id, value in extensions.items():
        if not 1 <= ext_id <= 255 or len(value) > 255:
            raise ValueError("two-byte extension ids are 1..255 and lengths 0..255")
        parts.append(bytes([ext_id, len(value)]))
        parts.append(value)
    return _pad4(b"".join(parts))


# -- in-place helpers for the forwarding path -------------------------------------------


def header_size(buf: Buffer) -> int:
    """Length of the header (fixed part, CSRCs, extension block): the payload's offset."""
    size = len(buf)
    if size < FIXED_HEADER_LENGTH:
        raise ParseError("RTP packet shorter than the fixed header")
    first = buf[0]
    if first >> 6 != RTP_VERSION:
        raise ParseError("RTP version is not 2")
    pos = FIXED_HEADER_LENGTH + ((first & 0x0F) << 2)
    if first & 0x10:
        if pos + 4 > size:
            raise ParseError("RTP extension header truncated")
        pos += 4 + (_U16.unpack_from(buf, pos + 2)[0] << 2)
    if pos > size:
        raise ParseError("RTP header truncated")
    return pos


def find_extension(buf: Buffer, ext_id: int) -> tuple[int, int] | None:
    """Offset in ``buf`` and length of extension element ``ext_id``'s data, or None.

    Works for both RFC 8285 forms; other profiles (and no extension) give None. Raises
    ParseError if the header or the element is truncated.
    """
    size = len(buf)
    if size < FIXED_HEADER_LENGTH:
        raise ParseError("RTP packet shorter than the fixed header")
    first = buf[0]
    if not first & 0x10:
        return None
    pos = FIXED_HEADER_LENGTH + ((first & 0x0F) << 2)
    if pos + 4 > size:
        raise ParseError("RTP extension header truncated")
    profile, words = _EXT_HEADER.unpack_from(buf, pos)
    pos += 4
    end = pos + (words << 2)
    if end > size:
        raise ParseError("RTP extension block truncated")
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            byte = buf[pos]
            element_id = byte >> 4
            if element_id == 0:
                pos += 1
                continue
            if element_id == 15:
                return None
            length = (byte & 0x0F) + 1
            pos += 1
            if pos + length > end:
                raise ParseError("one-byte header extension element overruns the block")
            if element_id == ext_id:
                return pos, length
            pos += length
        return None
    if profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        while pos < end:
            element_id = buf[pos]
            if element_id == 0:
                pos += 1
                continue
            if pos + 2 > end:
                raise ParseError("two-byte header extension element header truncated")
            length = buf[pos + 1]
            pos += 2
            if pos + length > end:
                raise ParseError("two-byte header extension element overruns the block")
            if element_id == ext_id:
                return pos, length
            pos += length
        return None
    return None


def rewrite(
    buf: bytearray | memoryview,
    ssrc: int,
    seq: int,
    timestamp: int,
    payload_type: int | None = None,
    marker: bool | None = None,
) -> None:
    """Patch SSRC, sequence number, timestamp and optionally payload type and marker in
    place (a Consumer's per-subscriber rewrite)."""
    if len(buf) < FIXED_HEADER_LENGTH:
        raise ParseError("RTP packet shorter than the fixed header")
    _SEQ_TS_SSRC.pack_into(buf, 2, seq, timestamp, ssrc)
    if payload_type is not None or marker is not None:
        second = buf[1]
        if payload_type is not None:
            second = (second & 0x80) | (payload_type & 0x7F)
        if marker is not None:
            second = (second & 0x7F) | (0x80 if marker else 0)
        buf[1] = second


def set_extension_inplace(buf: bytearray | memoryview, ext_id: int, data: Buffer) -> bool:
    """Overwrite extension element ``ext_id`` with ``data`` if it exists with the same
    length; returns whether it did (the caller falls back to the dataclass otherwise)."""
    found = find_extension(buf, ext_id)
    if found is None or found[1] != len(data):
        return False
    offset, length = found
    buf[offset : offset + length] = data
    return True


def sequence_number_of(buf: Buffer) -> int:
    if len(buf) < FIXED_HEADER_LENGTH:
        raise ParseError("RTP packet shorter than the fixed header")
    return int(_U16.unpack_from(buf, 2)[0])


def timestamp_of(buf: Buffer) -> int:
    if len(buf) < FIXED_HEADER_LENGTH:
        raise ParseError("RTP packet shorter than the fixed header")
    return int(_U32.unpack_from(buf, 4)[0])


def ssrc_of(buf: Buffer) -> int:
    if len(buf) < FIXED_HEADER_LENGTH:
        raise ParseError("RTP packet shorter than the fixed header")
    return int(_U32.unpack_from(buf, 8)[0])


def payload_type_of(buf: Buffer) -> int:
    if len(buf) < 2:
        raise ParseError("RTP packet shorter than two bytes")
    return buf[1] & 0x7F
