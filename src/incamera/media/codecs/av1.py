"""AV1 RTP aggregation header and key frame detection.

"RTP Payload Format For AV1" (AOMedia), §4.4: every payload starts with one byte::

        0 1 2 3 4 5 6 7
       +-+-+-+-+-+-+-+-+
       |Z|Y| W |N|-|-|-|
       +-+-+-+-+-+-+-+-+

* Z: the first OBU element continues an OBU fragment from the previous packet.
* Y: the last OBU element will continue in the next packet.
* W: number of OBU elements (1..3), each but the last preceded by its LEB128 length;
  0 means any number, each preceded by its length.
* N: this packet is the first packet of a coded video sequence (which starts with a key
  frame), hence what :func:`is_keyframe` reports.

The OBU elements follow (§4.5); :func:`obu_elements` walks them.
"""

from __future__ import annotations

from dataclasses import dataclass

from incamera.media.errors import ParseError

_Z = 0x80
_Y = 0x40
_W_SHIFT = 4
_W_MASK = 0x03
_N = 0x08
_LEB128_MAX_BYTES = 8


@dataclass(frozen=True, slots=True)
class Av1AggregationHeader:
    """The AV1 aggregation header (AV1 RTP spec §4.4)."""

    continuation: bool = False  # Z
    will_continue: bool = False  # Y
    obu_count: int = 0  # W: 0 (length-prefixed, any count) or 1..3
    new_sequence: bool = False  # N

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Av1AggregationHeader:
        if len(data) < 1:
            raise ParseError("AV1 payload is empty")
        b = data[0]
        return cls(
            continuation=bool(b & _Z),
            will_continue=bool(b & _Y),
            obu_count=(b >> _W_SHIFT) & _W_MASK,
            new_sequence=bool(b & _N),
        )

    def __bytes__(self) -> bytes:
        if not 0 <= self.obu_count <= _W_MASK:
            raise ValueError("obu_count must be 0..3")
        b = self.obu_count << _W_SHIFT
        if self.continuation:
            b |= _Z
        if self.will_continue:
            b |= _Y
        if self.new_sequence:
            b |= _N
        return bytes((b,))


def _read_leb128(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Read an unsigned LEB128 value (AV1 spec §4.10.5); return it and the next position."""
    value = 0
    for i in range(_LEB128_MAX_BYTES):
        if pos >= len(data):
            raise ParseError("AV1 OBU element length truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise ParseError("AV1 OBU element length longer than 8 bytes")


def obu_elements(payload: bytes | bytearray | memoryview) -> list[memoryview]:
    """The OBU elements of one AV1 RTP payload (AV1 RTP spec §4.5), as views.

    The first element is a fragment continuation when Z=1, the last one continues in the
    next packet when Y=1. Raises ParseError when a length runs past the payload.
    """
    header = Av1AggregationHeader.parse(payload)
    view = memoryview(payload)
    length = len(view)
    pos = 1
    elements: list[memoryview] = []
    count = header.obu_count
    while pos < length:
        if count and len(elements) == count - 1:
            elements.append(view[pos:])  # last element of a W>0 packet: no length field
            pos = length
            break
        size, pos = _read_leb128(view, pos)
        if pos + size > length:
            raise ParseError("AV1 OBU element runs past the end of the payload")
        elements.append(view[pos : pos + size])
        pos += size
    if not elements:
        raise ParseError("AV1 payload holds no OBU element")
    if count and len(elements) != count:
        raise ParseError("AV1 payload holds fewer OBU elements than W says")
    return elements


def obu_type(element: bytes | bytearray | memoryview) -> int:
    """OBU type (AV1 spec §5.3.2) from the first byte of a whole (or first) OBU element."""
    if len(element) < 1:
        raise ParseError("AV1 OBU element is empty")
    return (element[0] >> 3) & 0x0F


def is_keyframe(payload: bytes | bytearray | memoryview) -> bool:
    """True when the packet is the first of a new coded video sequence (N=1)."""
    if len(payload) < 1:
        raise ParseError("AV1 payload is empty")
    return bool(payload[0] & _N)
