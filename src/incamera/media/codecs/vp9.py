"""VP9 RTP payload descriptor and key frame detection (RFC 9628 §4.2).

::

         0 1 2 3 4 5 6 7
        +-+-+-+-+-+-+-+-+
        |I|P|L|F|B|E|V|Z|   required
        +-+-+-+-+-+-+-+-+
   I:   |M| PICTURE ID  |   one byte (M=0, 7 bits) or two bytes (M=1, 15 bits)
        +-+-+-+-+-+-+-+-+
   L:   | TID |U| SID |D|   layer indices
        +-+-+-+-+-+-+-+-+
        |   TL0PICIDX   |   non-flexible mode (F=0) only, when L=1
        +-+-+-+-+-+-+-+-+
  P,F:  | P_DIFF      |N|   flexible mode with P=1: 1 to 3 times, N=1 means another follows
        +-+-+-+-+-+-+-+-+
   V:   | SS            |   scalability structure, RFC 9628 §4.2.1
        +-+-+-+-+-+-+-+-+

Scalability structure (SS)::

        | N_S |Y|G|-|-|-|   N_S+1 spatial layers; Y: resolutions follow; G: picture group
        |  WIDTH (16)   |   } N_S+1 times when Y=1
        |  HEIGHT (16)  |   }
        |      N_G      |   when G=1
        | TID |U| R |-|-|   } N_G times, each followed by R one-byte P_DIFFs
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

_I = 0x80
_P = 0x40
_L = 0x20
_F = 0x10
_B = 0x08
_E = 0x04
_V = 0x02
_Z = 0x01
_M = 0x80
_MAX_P_DIFFS = 3


@dataclass(frozen=True, slots=True)
class Vp9PictureGroupEntry:
    """One picture of the group of pictures described in the SS (RFC 9628 §4.2.1)."""

    tid: int  # 0..7
    switching_up: bool  # U
    p_diffs: tuple[int, ...] = ()  # up to 3 references, each 0..255


@dataclass(frozen=True, slots=True)
class Vp9ScalabilityStructure:
    """The SS data (V=1), RFC 9628 §4.2.1."""

    spatial_layers: int = 1  # N_S + 1, 1..8
    resolutions: tuple[tuple[int, int], ...] | None = None  # Y: (width, height) per layer
    picture_group: tuple[Vp9PictureGroupEntry, ...] | None = None  # G

    @classmethod
    def parse_from(
        cls, data: bytes | bytearray | memoryview, pos: int
    ) -> tuple[Vp9ScalabilityStructure, int]:
        """Parse the SS starting at ``data[pos]``; return it and the position after it."""
        length = len(data)
        if pos >= length:
            raise ParseError("VP9 SS truncated")
        head = data[pos]
        pos += 1
        spatial_layers = (head >> 5) + 1
        resolutions: tuple[tuple[int, int], ...] | None = None
        if head & 0x10:
            end = pos + 4 * spatial_layers
            if end > length:
                raise ParseError("VP9 SS truncated in the resolutions")
            resolutions = tuple(
                (
                    (data[p] << 8) | data[p + 1],
                    (data[p + 2] << 8) | data[p + 3],
                )
                for p in range(pos, end, 4)
            )
            pos = end
        picture_group: tuple[Vp9PictureGroupEntry, ...] | None = None
        if head & 0x08:
            if pos >= length:
                raise ParseError("VP9 SS truncated before N_G")
            count = data[pos]
            pos += 1
            entries: list[Vp9PictureGroupEntry] = []
            for _ in range(count):
                if pos >= length:
                    raise ParseError("VP9 SS truncated in the picture group")
                b = data[pos]
                refs = (b >> 2) & 0x03
                pos += 1
                if pos + refs > length:
                    raise ParseError("VP9 SS truncated in the picture group P_DIFFs")
                entries.append(
                    Vp9PictureGroupEntry(
                        tid=b >> 5,
                        switching_up=bool(b & 0x10),
                        p_diffs=tuple(data[pos : pos + refs]),
                    )
                )
                pos += refs
            picture_group = tuple(entries)
        return cls(spatial_layers, resolutions, picture_group), pos

    def __bytes__(self) -> bytes:
        if not 1 <= self.spatial_layers <= 8:
            raise ValueError("spatial_layers must be 1..8")
        head = (self.spatial_layers - 1) << 5
        out = bytearray(1)
        if self.resolutions is not None:
            if len(self.resolutions) != self.spatial_layers:
                raise ValueError("one resolution per spatial layer")
            head |= 0x10
            for width, height in self.resolutions:
                if not (0 <= width <= 0xFFFF and 0 <= height <= 0xFFFF):
                    raise ValueError("width and height must fit in 16 bits")
                out += width.to_bytes(2, "big") + height.to_bytes(2, "big")
        if self.picture_group is not None:
            if len(self.picture_group) > 0xFF:
                raise ValueError("at most 255 pictures in a group")
            head |= 0x08
            out.append(len(self.picture_group))
            for entry in self.picture_group:
                if not 0 <= entry.tid <= 7 or len(entry.p_diffs) > _MAX_P_DIFFS:
                    raise ValueError("picture group entry out of range")
                out.append(
                    (entry.tid << 5)
                    | (0x10 if entry.switching_up else 0)
                    | (len(entry.p_diffs) << 2)
                )
                out += bytes(entry.p_diffs)
        out[0] = head
        return bytes(out)


@dataclass(slots=True)
class Vp9Descriptor:
    """The VP9 payload descriptor of one RTP packet (RFC 9628 §4.2).

    Layer indices (L) are present when ``tid`` is not None; then ``sid``,
    ``switching_up`` (U) and ``inter_layer_dependent`` (D) are read from the same byte.
    In non-flexible mode with layer indices ``tl0picidx`` is required. ``p_diffs`` are
    present exactly in flexible mode with P=1.
    """

    inter_predicted: bool = False  # P
    flexible: bool = False  # F
    start_of_frame: bool = False  # B
    end_of_frame: bool = False  # E
    not_upper_reference: bool = False  # Z
    picture_id: int | None = None  # I
    long_picture_id: bool = True  # M
    tid: int | None = None  # L: TID 0..7
    switching_up: bool = False  # U
    sid: int | None = None  # SID 0..7
    inter_layer_dependent: bool = False  # D
    tl0picidx: int | None = None
    p_diffs: tuple[int, ...] = ()  # 1..127 each
    ss: Vp9ScalabilityStructure | None = None  # V

    @property
    def spatial_id(self) -> int:
        """Spatial layer id (0 when the packet carries no layer indices)."""
        return self.sid if self.sid is not None else 0

    @property
    def temporal_id(self) -> int:
        """Temporal layer id (0 when the packet carries no layer indices)."""
        return self.tid if self.tid is not None else 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Vp9Descriptor:
        desc, _ = cls.parse_with_size(data)
        return desc

    @classmethod
    def parse_with_size(cls, data: bytes | bytearray | memoryview) -> tuple[Vp9Descriptor, int]:
        """Parse the descriptor at the start of ``data``; also return its length."""
        length = len(data)
        if length < 1:
            raise ParseError("VP9 payload is empty")
        b0 = data[0]
        desc = cls(
            inter_predicted=bool(b0 & _P),
            flexible=bool(b0 & _F),
            start_of_frame=bool(b0 & _B),
            end_of_frame=bool(b0 & _E),
            not_upper_reference=bool(b0 & _Z),
        )
        pos = 1
        if b0 & _I:
            if pos >= length:
                raise ParseError("VP9 descriptor truncated in the picture id")
            first = data[pos]
            if first & _M:
                if pos + 1 >= length:
                    raise ParseError("VP9 descriptor truncated in the 15-bit picture id")
                desc.picture_id = ((first & 0x7F) << 8) | data[pos + 1]
                pos += 2
            else:
                desc.picture_id = first & 0x7F
                desc.long_picture_id = False
                pos += 1
        if b0 & _L:
            if pos >= length:
                raise ParseError("VP9 descriptor truncated in the layer indices")
            layer = data[pos]
            desc.tid = layer >> 5
            desc.switching_up = bool(layer & 0x10)
            desc.sid = (layer >> 1) & 0x07
            desc.inter_layer_dependent = bool(layer & 0x01)
            pos += 1
            if not b0 & _F:
                if pos >= length:
                    raise ParseError("VP9 descriptor truncated in TL0PICIDX")
                desc.tl0picidx = data[pos]
                pos += 1
        if b0 & _F and b0 & _P:
            diffs: list[int] = []
            more = True
            while more:
                if len(diffs) == _MAX_P_DIFFS:
                    raise ParseError("VP9 descriptor has more than 3 P_DIFFs")
                if pos >= length:
                    raise ParseError("VP9 descriptor truncated in the P_DIFFs")
                ref = data[pos]
                diffs.append(ref >> 1)
                more = bool(ref & 0x01)
                pos += 1
            desc.p_diffs = tuple(diffs)
        if b0 & _V:
            desc.ss, pos = Vp9ScalabilityStructure.parse_from(data, pos)
        return desc, pos

    def __bytes__(self) -> bytes:
        b0 = 0
        out = bytearray(1)
        if self.inter_predicted:
            b0 |= _P
        if self.flexible:
            b0 |= _F
        if self.start_of_frame:
            b0 |= _B
        if self.end_of_frame:
            b0 |= _E
        if self.not_upper_reference:
            b0 |= _Z
        if self.picture_id is not None:
            b0 |= _I
            if self.long_picture_id:
                if not 0 <= self.picture_id < 1 << PICTURE_ID_BITS_LONG:
                    raise ValueError("15-bit picture id out of range")
                out += bytes((_M | (self.picture_id >> 8), self.picture_id & 0xFF))
            else:
                if not 0 <= self.picture_id < 1 << PICTURE_ID_BITS_SHORT:
                    raise ValueError("7-bit picture id out of range")
                out.append(self.picture_id)
        if self.tl0picidx is not None and (self.tid is None or self.flexible):
            raise ValueError("tl0picidx is carried only in non-flexible mode with L=1")
        if self.tid is not None:
            sid = self.sid or 0
            if not 0 <= self.tid <= 7 or not 0 <= sid <= 7:
                raise ValueError("tid and sid must be 0..7")
            b0 |= _L
            out.append(
                (self.tid << 5)
                | (0x10 if self.switching_up else 0)
                | (sid << 1)
                | (0x01 if self.inter_layer_dependent else 0)
            )
            if not self.flexible:
                if self.tl0picidx is None or not 0 <= self.tl0picidx <= 0xFF:
                    raise ValueError("non-flexible mode with layer indices needs tl0picidx")
                out.append(self.tl0picidx)
        if self.flexible and self.inter_predicted:
            if not 1 <= len(self.p_diffs) <= _MAX_P_DIFFS:
                raise ValueError("flexible mode with P=1 needs 1 to 3 P_DIFFs")
            last = len(self.p_diffs) - 1
            for i, diff in enumerate(self.p_diffs):
                if not 0 <= diff <= 0x7F:
                    raise ValueError("P_DIFF must be 0..127")
                out.append((diff << 1) | (0x01 if i < last else 0))
        elif self.p_diffs:
            raise ValueError("P_DIFFs are carried only in flexible mode with P=1")
        if self.ss is not None:
            b0 |= _V
            out += bytes(self.ss)
        out[0] = b0
        return bytes(out)


def is_keyframe(payload: bytes | bytearray | memoryview) -> bool:
    """True when ``payload`` starts a VP9 key picture.

    Start of a frame (B=1), not inter-picture predicted (P=0), on spatial layer 0 (or
    without layer indices).
    """
    length = len(payload)
    if length < 1:
        raise ParseError("VP9 payload is empty")
    b0 = payload[0]
    if not b0 & _B or b0 & _P:
        return False
    pos = 1
    if b0 & _I:
        if pos >= length:
            raise ParseError("VP9 descriptor truncated in the picture id")
        pos += 2 if payload[pos] & _M else 1
        if pos > length:
            raise ParseError("VP9 descriptor truncated in the 15-bit picture id")
    if not b0 & _L:
        return True
    if pos >= length:
        raise ParseError("VP9 descriptor truncated in the layer indices")
    return (payload[pos] >> 1) & 0x07 == 0


def _field_positions(buf: bytes | bytearray | memoryview, offset: int) -> tuple[int, bool, int]:
    """Positions of the picture id and TL0PICIDX in ``buf``; -1 when absent."""
    length = len(buf)
    if offset < 0 or offset >= length:
        raise ParseError("VP9 descriptor offset outside the buffer")
    b0 = buf[offset]
    pos = offset + 1
    pid_pos = -1
    long_pid = False
    if b0 & _I:
        if pos >= length:
            raise ParseError("VP9 descriptor truncated in the picture id")
        pid_pos = pos
        long_pid = bool(buf[pos] & _M)
        pos += 2 if long_pid else 1
        if pos > length:
            raise ParseError("VP9 descriptor truncated in the 15-bit picture id")
    tl0_pos = -1
    if b0 & _L and not b0 & _F:
        tl0_pos = pos + 1
        if tl0_pos >= length:
            raise ParseError("VP9 descriptor truncated in TL0PICIDX")
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

    Keeps the sender's width (a 7-bit field receives ``picture_id & 0x7F``); absent fields
    stay absent. P_DIFFs are relative, so they need no change.
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


class Vp9Rewriter(PictureIdRewriter):
    """Per-consumer VP9 picture id / TL0PICIDX continuity across simulcast switches."""

    __slots__ = ()

    field_positions = staticmethod(_field_positions)
