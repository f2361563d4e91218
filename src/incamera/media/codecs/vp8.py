"""VP8 RTP payload descriptor and key frame detection (RFC 7741).

Payload descriptor, RFC 7741 §4.2 (the first bytes of every VP8 RTP payload)::

         0 1 2 3 4 5 6 7
        +-+-+-+-+-+-+-+-+
        |X|R|N|S|R| PID |   required
        +-+-+-+-+-+-+-+-+
   X:   |I|L|T|K| RSV   |   present when X=1
        +-+-+-+-+-+-+-+-+
   I:   |M| PictureID   |   one byte (M=0, 7 bits) or two bytes (M=1, 15 bits)
        +-+-+-+-+-+-+-+-+
   L:   |   TL0PICIDX   |
        +-+-+-+-+-+-+-+-+
   T/K: |TID|Y| KEYIDX  |   present when T=1 or K=1
        +-+-+-+-+-+-+-+-+

Payload header, RFC 7741 §4.3 (first byte of the VP8 frame, only at the start of
partition 0)::

        |Size0|H| VER |P|   P is the inverse key frame flag: 0 means key frame

With SFrame end-to-end encryption the descriptor and the first 10 bytes of a key frame's
payload (3 of a delta frame's) stay in clear, which is all this module reads or writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from incamera.media.codecs.picture_id import (
    PICTURE_ID_BITS_LONG,
    PICTURE_ID_BITS_SHORT,
    PictureIdRewriter,
    read_fields,
)
from incamera.media.errors import ParseError

_X = 0x80
_N = 0x20
_S = 0x10
_PID_MASK = 0x07
_I = 0x80
_L = 0x40
_T = 0x20
_K = 0x10
_M = 0x80
_Y = 0x20
_KEYIDX_MASK = 0x1F
_INVERSE_KEY_FRAME = 0x01


@dataclass(slots=True)
class Vp8Descriptor:
    """The VP8 payload descriptor of one RTP packet (RFC 7741 §4.2).

    Optional fields are ``None`` when absent. The X byte is written only when one of
    I/L/T/K is needed; ``layer_sync`` (Y) is meaningful only with a ``tid``.
    """

    non_reference: bool = False  # N
    start_of_partition: bool = False  # S
    partition_index: int = 0  # PID, 0..7
    picture_id: int | None = None  # I
    long_picture_id: bool = True  # M: 15-bit picture id (else 7-bit)
    tl0picidx: int | None = None  # L
    tid: int | None = None  # T, 0..3
    layer_sync: bool = False  # Y
    keyidx: int | None = None  # K, 0..31

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Vp8Descriptor:
        """Parse the descriptor at the start of ``data`` (the RTP payload)."""
        length = len(data)
        if length < 1:
            raise ParseError("VP8 payload is empty")
        b0 = data[0]
        desc = cls(
            non_reference=bool(b0 & _N),
            start_of_partition=bool(b0 & _S),
            partition_index=b0 & _PID_MASK,
        )
        if not b0 & _X:
            return desc
        if length < 2:
            raise ParseError("VP8 descriptor truncated before the X byte")
        x = data[1]
        pos = 2
        if x & _I:
            if pos >= length:
                raise ParseError("VP8 descriptor truncated in the picture id")
            first = data[pos]
            if first & _M:
                if pos + 1 >= length:
                    raise ParseError("VP8 descriptor truncated in the 15-bit picture id")
                desc.picture_id = ((first & 0x7F) << 8) | data[pos + 1]
                pos += 2
            else:
                desc.picture_id = first & 0x7F
                desc.long_picture_id = False
                pos += 1
        if x & _L:
            if pos >= length:
                raise ParseError("VP8 descriptor truncated in TL0PICIDX")
            desc.tl0picidx = data[pos]
            pos += 1
        if x & (_T | _K):
            if pos >= length:
                raise ParseError("VP8 descriptor truncated in TID/KEYIDX")
            tk = data[pos]
            if x & _T:
                desc.tid = tk >> 6
                desc.layer_sync = bool(tk & _Y)
            if x & _K:
                desc.keyidx = tk & _KEYIDX_MASK
        return desc

    def __bytes__(self) -> bytes:
        if not 0 <= self.partition_index <= _PID_MASK:
            raise ValueError("partition_index must be 0..7")
        b0 = self.partition_index
        if self.non_reference:
            b0 |= _N
        if self.start_of_partition:
            b0 |= _S
        x = 0
        tail = bytearray()
        if self.picture_id is not None:
            x |= _I
            if self.long_picture_id:
                if not 0 <= self.picture_id < 1 << PICTURE_ID_BITS_LONG:
                    raise ValueError("15-bit picture id out of range")
                tail += bytes((_M | (self.picture_id >> 8), self.picture_id & 0xFF))
            else:
                if not 0 <= self.picture_id < 1 << PICTURE_ID_BITS_SHORT:
                    raise ValueError("7-bit picture id out of range")
                tail.append(self.picture_id)
        if self.tl0picidx is not None:
            if not 0 <= self.tl0picidx <= 0xFF:
                raise ValueError("tl0picidx must be 0..255")
            x |= _L
            tail.append(self.tl0picidx)
        if self.tid is not None or self.keyidx is not None:
            tk = 0
            if self.tid is not None:
                if not 0 <= self.tid <= 3:
                    raise ValueError("tid must be 0..3")
                x |= _T
                tk |= self.tid << 6
                if self.layer_sync:
                    tk |= _Y
            if self.keyidx is not None:
                if not 0 <= self.keyidx <= _KEYIDX_MASK:
                    raise ValueError("keyidx must be 0..31")
                x |= _K
                tk |= self.keyidx
            tail.append(tk)
        if x:
            return bytes((b0 | _X, x)) + bytes(tail)
        return bytes((b0,))

    @property
    def size(self) -> int:
        """Length in bytes of this descriptor once serialised."""
        return len(bytes(self))


def descriptor_size(payload: bytes | bytearray | memoryview) -> int:
    """Length of the payload descriptor at the start of ``payload`` (RFC 7741 §4.2)."""
    length = len(payload)
    if length < 1:
        raise ParseError("VP8 payload is empty")
    if not payload[0] & _X:
        return 1
    if length < 2:
        raise ParseError("VP8 descriptor truncated before the X byte")
    x = payload[1]
    size = 2
    if x & _I:
        if size >= length:
            raise ParseError("VP8 descriptor truncated in the picture id")
        size += 2 if payload[size] & _M else 1
    if x & _L:
        size += 1
    if x & (_T | _K):
        size += 1
    if size > length:
        raise ParseError("VP8 descriptor longer than the payload")
    return size


def is_keyframe(payload: bytes | bytearray | memoryview) -> bool:
    """True when ``payload`` is the first packet of a VP8 key frame.

    That is: S=1 and PID=0 in the descriptor (start of partition 0), and the P bit of the
    VP8 payload header that follows is 0 (RFC 7741 §4.3).
    """
    size = descriptor_size(payload)
    b0 = payload[0]
    if not b0 & _S or b0 & _PID_MASK:
        return False
    if size >= len(payload):
        raise ParseError("VP8 start of partition 0 without a payload header")
    return not payload[size] & _INVERSE_KEY_FRAME


def _field_positions(buf: bytes | bytearray | memoryview, offset: int) -> tuple[int, bool, int]:
    """Positions of the picture id and TL0PICIDX in ``buf``; -1 when absent."""
    length = len(buf)
    if offset < 0 or offset >= length:
        raise ParseError("VP8 descriptor offset outside the buffer")
    if not buf[offset] & _X:
        return -1, False, -1
    if offset + 1 >= length:
        raise ParseError("VP8 descriptor truncated before the X byte")
    x = buf[offset + 1]
    pos = offset + 2
    pid_pos = -1
    long_pid = False
    if x & _I:
        if pos >= length:
            raise ParseError("VP8 descriptor truncated in the picture id")
        pid_pos = pos
        long_pid = bool(buf[pos] & _M)
        pos += 2 if long_pid else 1
        if pos > length:
            raise ParseError("VP8 descriptor truncated in the 15-bit picture id")
    tl0_pos = -1
    if x & _L:
        if pos >= length:
            raise ParseError("VP8 descriptor truncated in TL0PICIDX")
        tl0_pos = pos
        pos += 1
    if x & (_T | _K) and pos >= length:
        raise ParseError("VP8 descriptor truncated in TID/KEYIDX")
    return pid_pos, long_pid, tl0_pos


def read_picture_id(
    buf: bytes | bytearray | memoryview, offset: int
) -> tuple[int | None, bool, int | None]:
    """(picture_id, long_picture_id, tl0picidx) of the descriptor at ``buf[offset:]``."""
    pid_pos, long_pid, tl0_pos = _field_positions(buf, offset)
    picture_id, tl0picidx = read_fields(buf, pid_pos, long_pid, tl0_pos)
    return picture_id, long_pid, tl0picidx


def rewrite_picture_id(buf: bytearray, offset: int, picture_id: int, tl0picidx: int | None) -> None:
    """Overwrite picture id (and TL0PICIDX) of the descriptor at ``buf[offset:]`` in place.

    The width chosen by the sender (M bit) is kept: a 7-bit field receives
    ``picture_id & 0x7F``. Fields the packet does not carry are left absent; the
    descriptor's size never changes, so nothing else in the packet moves.
    """
    pid_pos, long_pid, tl0_pos = _field_positions(buf, offset)
    if pid_pos >= 0:
        if long_pid:
            buf[pid_pos] = _M | ((picture_id >> 8) & 0x7F)
            buf[pid_pos + 1] = picture_id & 0xFF
        else:
            buf[pid_pos] = picture_id & 0x7F
    if tl0picidx is not None and tl0_pos >= 0:
        buf[tl0_pos] = tl0picidx & 0xFF


class Vp8Rewriter(PictureIdRewriter):
    """Per-consumer VP8 picture id / TL0PICIDX continuity across simulcast switches.

    :meth:`rewrite` (inherited) works on values; :meth:`rewrite_packet` reads the fields
    from a packet buffer, computes the outgoing values and writes them back in place.
    """

    __slots__ = ()

    field_positions = staticmethod(_field_positions)


def keyframe_size(payload: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """Width and height from the first packet of a key frame, else None.

    The VP8 key frame header (RFC 6386 section 9.1) follows the 3-byte frame tag: the start
    code 9d 01 2a, then 14-bit width and height (little-endian, 2 scaling bits above). These
    10 bytes stay in clear under SFrame, so the SFU learns each simulcast layer's size.
    """
    offset = descriptor_size(payload)
    header = bytes(payload[offset : offset + 10])
    if len(header) < 10 or header[0] & 0x01 or header[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(header[6:8], "little") & 0x3FFF
    height = int.from_bytes(header[8:10], "little") & 0x3FFF
    return width, height
