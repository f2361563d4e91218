"""Continuous picture ids and TL0PICIDX for one consumer across simulcast layer switches.

VP8 (RFC 7741 §4.2) and VP9 (RFC 9628 §4.2) carry a picture id (7 or 15 bits, chosen by
the M bit) and, with temporal layers, a TL0PICIDX (8 bits) that counts base-layer frames.
Each simulcast layer numbers its own pictures, so when the SFU moves a subscriber from one
layer to another the ids would jump; a decoder then believes frames were lost. The
rewriter below adds a per-consumer offset that is recomputed at each switch so the
outgoing numbering goes on by one from the highest value already sent, just as sequence
numbers are rewritten. It is pure arithmetic and holds no packet.
"""

from __future__ import annotations

PICTURE_ID_BITS_SHORT = 7
PICTURE_ID_BITS_LONG = 15
_PID_MODULUS = 1 << PICTURE_ID_BITS_LONG
_TL0_MODULUS = 1 << 8
_M = 0x80  # the M bit: a 15-bit picture id


def read_fields(
    buf: bytes | bytearray | memoryview, pid_pos: int, long_pid: bool, tl0_pos: int
) -> tuple[int | None, int | None]:
    """(picture id, TL0PICIDX) at the positions a codec's descriptor parser found (-1:
    the field is absent); the layout of the two fields is the same in VP8 and VP9."""
    picture_id: int | None = None
    if pid_pos >= 0:
        if long_pid:
            picture_id = ((buf[pid_pos] & 0x7F) << 8) | buf[pid_pos + 1]
        else:
            picture_id = buf[pid_pos] & 0x7F
    return picture_id, (buf[tl0_pos] if tl0_pos >= 0 else None)


def _is_newer(value: int, reference: int, modulus: int) -> bool:
    """True when ``value`` follows ``reference`` in a wrapping counter of ``modulus``."""
    distance = (value - reference) % modulus
    return 0 < distance < modulus // 2


class PictureIdRewriter:
    """Offset-based rewriting of picture id and TL0PICIDX for one outgoing stream.

    Call :meth:`rewrite` for every packet forwarded to the consumer, in forwarding order.
    ``switched`` is True on the first packet forwarded from a newly selected layer (and may
    be True on the very first packet); a simulcast layer switch must land on a key frame,
    since layers are independent streams, so ``switched`` without ``keyframe`` is a
    programming error and raises ``ValueError``.

    ``picture_id_bits`` is 15 for the long form (M=1) and 7 for the short form; outputs
    are reduced to that width. All layers of one producer use the same width in practice
    (one encoder configuration), which this class assumes.
    """

    __slots__ = ("_max_pid", "_max_tl0", "_pid_offset", "_tl0_offset")

    def __init__(self) -> None:
        self._pid_offset = 0
        self._tl0_offset = 0
        self._max_pid: int | None = None
        self._max_tl0: int | None = None

    def rewrite(
        self,
        picture_id: int | None,
        tl0picidx: int | None,
        *,
        keyframe: bool,
        switched: bool,
        picture_id_bits: int = PICTURE_ID_BITS_LONG,
    ) -> tuple[int | None, int | None]:
        """Return the (picture_id, tl0picidx) to write into the outgoing packet.

        ``None`` in, ``None`` out: a field the packet does not carry is not invented.
        """
        if switched and not keyframe:
            raise ValueError("a simulcast layer switch must start on a key frame")
        if picture_id_bits not in (PICTURE_ID_BITS_SHORT, PICTURE_ID_BITS_LONG):
            raise ValueError("picture_id_bits must be 7 or 15")
        pid_modulus = 1 << picture_id_bits
        if switched:
            # The new layer's first picture follows the highest one already sent; a key
            # frame is always on the base temporal layer, so TL0PICIDX advances by one.
            if picture_id is not None and self._max_pid is not None:
                self._pid_offset = (self._max_pid + 1 - picture_id) % _PID_MODULUS
            if tl0picidx is not None and self._max_tl0 is not None:
                self._tl0_offset = (self._max_tl0 + 1 - tl0picidx) % _TL0_MODULUS

        out_pid: int | None = None
        if picture_id is not None:
            out_pid = (picture_id + self._pid_offset) % pid_modulus
            if self._max_pid is None or _is_newer(out_pid, self._max_pid, pid_modulus):
                self._max_pid = out_pid
        out_tl0: int | None = None
        if tl0picidx is not None:
            out_tl0 = (tl0picidx + self._tl0_offset) % _TL0_MODULUS
            if self._max_tl0 is None or _is_newer(out_tl0, self._max_tl0, _TL0_MODULUS):
                self._max_tl0 = out_tl0
        return out_pid, out_tl0

    @property
    def last_picture_id(self) -> int | None:
        """The highest picture id sent so far (None before the first one)."""
        return self._max_pid

    @property
    def last_tl0picidx(self) -> int | None:
        """The highest TL0PICIDX sent so far (None before the first one)."""
        return self._max_tl0

    @staticmethod
    def field_positions(buf: bytearray | memoryview, offset: int) -> tuple[int, bool, int]:
        """(picture id position or -1, long form, TL0PICIDX position or -1) of the payload
        descriptor at ``buf[offset:]``; each codec's subclass provides it."""
        raise NotImplementedError

    def rewrite_packet(
        self, buf: bytearray | memoryview, offset: int, *, keyframe: bool, switched: bool
    ) -> None:
        """Rewrite the descriptor at ``buf[offset:]`` (offset = start of the RTP payload):
        read the fields, compute the outgoing values and write them back in place."""
        pid_pos, long_pid, tl0_pos = self.field_positions(buf, offset)
        picture_id, tl0picidx = read_fields(buf, pid_pos, long_pid, tl0_pos)
        out_pid, out_tl0 = self.rewrite(
            picture_id,
            tl0picidx,
            keyframe=keyframe,
            switched=switched,
            picture_id_bits=PICTURE_ID_BITS_LONG if long_pid else PICTURE_ID_BITS_SHORT,
        )
        if out_pid is not None:
            if long_pid:
                buf[pid_pos] = _M | (out_pid >> 8)
                buf[pid_pos + 1] = out_pid & 0xFF
            else:
                buf[pid_pos] = out_pid
        if out_tl0 is not None:
            buf[tl0_pos] = out_tl0
