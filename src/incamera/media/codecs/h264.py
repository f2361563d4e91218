"""H.264 RTP payload inspection for key frame detection (RFC 6184 §5).

Every payload starts with a one-byte NAL unit header ``|F|NRI|Type|`` (RFC 6184 §5.3).
Its type tells the packet structure (RFC 6184 §5.2, table 1):

* 1..23: a single NAL unit packet (§5.6); the type is the NAL unit's own type.
* 24, STAP-A (§5.7.1): aggregated NAL units, each preceded by a 16-bit size.
* 28, FU-A (§5.8): one fragment of a NAL unit; a second byte, the FU header
  ``|S|E|R|Type|``, carries the start/end flags and the fragmented NAL unit's type.
* 25 STAP-B, 26 MTAP16, 27 MTAP24, 29 FU-B: interleaved mode only (packetization-mode 2),
  which WebRTC never negotiates; they are reported as their own type and are never a
  key frame here.

A key frame is recognised by an IDR slice (NAL type 5) or a sequence parameter set
(type 7): browsers send SPS and PPS right before every IDR picture.
"""

from __future__ import annotations

from incamera.media.errors import ParseError

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
STAP_A = 24
STAP_B = 25
MTAP16 = 26
MTAP24 = 27
FU_A = 28
FU_B = 29

_TYPE_MASK = 0x1F
_FU_START = 0x80
_KEY_TYPES = frozenset((NAL_IDR, NAL_SPS))


def _stap_a_types(payload: bytes | bytearray | memoryview) -> list[int]:
    length = len(payload)
    pos = 1
    types: list[int] = []
    while pos < length:
        if pos + 2 > length:
            raise ParseError("STAP-A truncated in a NAL unit size")
        size = (payload[pos] << 8) | payload[pos + 1]
        pos += 2
        if size == 0:
            raise ParseError("STAP-A holds an empty NAL unit")
        if pos + size > length:
            raise ParseError("STAP-A NAL unit size runs past the end of the payload")
        types.append(payload[pos] & _TYPE_MASK)
        pos += size
    if not types:
        raise ParseError("STAP-A holds no NAL unit")
    return types


def nal_types(payload: bytes | bytearray | memoryview) -> list[int]:
    """NAL unit types carried by one RTP payload.

    A single NAL unit gives ``[type]``; a STAP-A gives the type of each aggregated unit;
    an FU-A gives the type of the fragmented unit (whichever fragment this is); the
    interleaved-mode packet types give ``[packet type]``.
    """
    if len(payload) < 1:
        raise ParseError("H.264 payload is empty")
    packet_type = payload[0] & _TYPE_MASK
    if packet_type == STAP_A:
        return _stap_a_types(payload)
    if packet_type == FU_A:
        if len(payload) < 2:
            raise ParseError("FU-A without an FU header")
        return [payload[1] & _TYPE_MASK]
    return [packet_type]


def is_keyframe(payload: bytes | bytearray | memoryview) -> bool:
    """True when ``payload`` carries the start of an H.264 key frame (IDR or SPS).

    Counted: a single NAL unit of type 5 or 7, a STAP-A holding one, or the first
    fragment (S=1) of an FU-A whose NAL unit is one.
    """
    if len(payload) < 1:
        raise ParseError("H.264 payload is empty")
    packet_type = payload[0] & _TYPE_MASK
    if packet_type == STAP_A:
        return any(t in _KEY_TYPES for t in _stap_a_types(payload))
    if packet_type == FU_A:
        if len(payload) < 2:
            raise ParseError("FU-A without an FU header")
        fu_header = payload[1]
        return bool(fu_header & _FU_START) and (fu_header & _TYPE_MASK) in _KEY_TYPES
    return packet_type in _KEY_TYPES
