"""RTCP packets (RFC 3550 §6), feedback (RFC 4585 §6, RFC 5104 §4.3.1), REMB and
transport-wide congestion control feedback.

Every packet class has ``parse(data)`` for one whole RTCP packet (its common header
included) and ``__bytes__`` producing one. :func:`parse_compound` splits and parses a
compound packet (RFC 3550 §6.1); :func:`serialize_compound` joins packets. Types the SFU
does not interpret (XR, APP, unknown feedback) are kept as :class:`RtcpUnknown`.

Padding (the P bit) is accepted on any packet and stripped. When a body is not a multiple
of four bytes (only transport-cc feedback and unknown packets can be), serialisation pads
it and sets the P bit, as libwebrtc does for transport-cc.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Self

from incamera.media.errors import ParseError

RTCP_VERSION = 2

# Packet types (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611).
SR = 200
RR = 201
SDES = 202
BYE = 203
APP = 204
RTPFB = 205
PSFB = 206
XR = 207

# Feedback message types (FMT).
RTPFB_NACK = 1  # RFC 4585 §6.2.1
RTPFB_TWCC = 15  # draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1
PSFB_PLI = 1  # RFC 4585 §6.3.1
PSFB_FIR = 4  # RFC 5104 §4.3.1
PSFB_AFB = 15  # RFC 4585 §6.4; REMB lives here

# SDES item types (RFC 3550 §6.5).
SDES_END = 0
SDES_CNAME = 1

_HEADER = struct.Struct("!BBH")
_U32 = struct.Struct("!I")
_TWO_U32 = struct.Struct("!II")
_REPORT_BLOCK_LENGTH = 24


def _pack(packet_type: int, count: int, body: bytes) -> bytes:
    """Common header (RFC 3550 §6.4.1) plus body; pads to 32 bits with the P bit if needed."""
    if not 0 <= count <= 31:
        raise ValueError("RTCP count/FMT field must be 0..31")
    padding = -len(body) % 4
    first = (RTCP_VERSION << 6) | count
    if padding:
        first |= 0x20
        body = body + bytes(padding - 1) + bytes([padding])
    words = len(body) // 4
    if words > 0xFFFF:
        raise ValueError("RTCP packet too long")
    return _HEADER.pack(first, packet_type, words) + body


def _split(data: bytes) -> tuple[int, int, bytes, int]:
    """Parse the common header of the packet at the start of ``data``.

    Returns (count, packet type, body without padding, total length on the wire).
    """
    if len(data) < 4:
        raise ParseError("RTCP packet shorter than its header")
    first, packet_type, words = _HEADER.unpack_from(data)
    if first >> 6 != RTCP_VERSION:
        raise ParseError("RTCP version is not 2")
    length = 4 * (words + 1)
    if length > len(data):
        raise ParseError("RTCP length field overruns the datagram")
    body = data[4:length]
    if first & 0x20:
        if not body:
            raise ParseError("RTCP padding bit set on an empty packet")
        padding = body[-1]
        if padding == 0 or padding > len(body):
            raise ParseError("RTCP padding count out of range")
        body = body[:-padding]
    return first & 0x1F, packet_type, body, length


class _Packet:
    """Mixin: ``parse`` for exactly one packet of the subclass's kind."""

    __slots__ = ()

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Self:
        data = bytes(data)
        count, packet_type, body, length = _split(data)
        if length != len(data):
            raise ParseError("trailing bytes after the RTCP packet")
        packet = _parse_body(count, packet_type, body)
        if not isinstance(packet, cls):
            raise ParseError(f"not a {cls.__name__} packet")
        return packet


# -- reports (RFC 3550 §6.4) ----------------------------------------------------------------


@dataclass(slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 §6.4.1): ``packets_lost`` is the 24-bit signed
    cumulative loss, ``lsr``/``dlsr`` the middle 32 bits of the last SR's NTP time and
    the delay since it in 1/65536 s."""

    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    _STRUCT: ClassVar[struct.Struct] = struct.Struct("!IB3sIIII")

    @classmethod
    def parse(cls, data: bytes) -> ReportBlock:
        if len(data) != _REPORT_BLOCK_LENGTH:
            raise ParseError("a report block is 24 bytes")
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = cls._STRUCT.unpack(data)
        return cls(
            ssrc, fraction, int.from_bytes(lost, "big", signed=True), highest, jitter, lsr, dlsr
        )

    def __bytes__(self) -> bytes:
        if not -(1 << 23) <= self.packets_lost < (1 << 23):
            raise ValueError("cumulative packets lost must fit in 24 signed bits")
        return self._STRUCT.pack(
            self.ssrc,
            self.fraction_lost,
            self.packets_lost.to_bytes(3, "big", signed=True),
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )


def _parse_report_blocks(count: int, data: bytes) -> tuple[list[ReportBlock], bytes]:
    end = count * _REPORT_BLOCK_LENGTH
    if end > len(data):
        raise ParseError("RTCP report blocks overrun the packet")
    blocks = [
        ReportBlock.parse(data[i : i + _REPORT_BLOCK_LENGTH])
        for i in range(0, end, _REPORT_BLOCK_LENGTH)
    ]
    return blocks, data[end:]


def _check_reports(reports: list[ReportBlock]) -> None:
    if len(reports) > 31:
        raise ValueError("at most 31 report blocks per packet")


@dataclass(slots=True)
class SenderReport(_Packet):
    """SR (RFC 3550 §6.4.1). ``ntp_timestamp`` is the full 64-bit NTP time;
    ``extension`` holds profile-specific extension bytes, if any."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    _STRUCT: ClassVar[struct.Struct] = struct.Struct("!IQIII")

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> SenderReport:
        if len(body) < cls._STRUCT.size:
            raise ParseError("SR shorter than its sender info")
        ssrc, ntp, rtp_ts, packets, octets = cls._STRUCT.unpack_from(body)
        reports, rest = _parse_report_blocks(count, body[cls._STRUCT.size :])
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, rest)

    def __bytes__(self) -> bytes:
        _check_reports(self.reports)
        body = self._STRUCT.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        body += b"".join(bytes(r) for r in self.reports) + self.extension
        return _pack(SR, len(self.reports), body)


@dataclass(slots=True)
class ReceiverReport(_Packet):
    """RR (RFC 3550 §6.4.2)."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> ReceiverReport:
        if len(body) < 4:
            raise ParseError("RR shorter than its SSRC")
        reports, rest = _parse_report_blocks(count, body[4:])
        return cls(_U32.unpack_from(body)[0], reports, rest)

    def __bytes__(self) -> bytes:
        _check_reports(self.reports)
        body = _U32.pack(self.ssrc) + b"".join(bytes(r) for r in self.reports) + self.extension
        return _pack(RR, len(self.reports), body)


# -- SDES and BYE (RFC 3550 §6.5, §6.6) ------------------------------------------------------


@dataclass(slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC/CSRC and its items as (type, value) pairs."""

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> str | None:
        for item_type, value in self.items:
            if item_type == SDES_CNAME:
                return value.decode("utf-8", errors="replace")
        return None

    def __bytes__(self) -> bytes:
        parts = [_U32.pack(self.ssrc)]
        for item_type, value in self.items:
            if not 1 <= item_type <= 255 or len(value) > 255:
                raise ValueError("SDES item types are 1..255 and values at most 255 bytes")
            parts.append(bytes([item_type, len(value)]) + value)
        data = b"".join(parts)
        # The item list ends with at least one null octet, then pads to 32 bits.
        return data + bytes(4 - len(data) % 4)


@dataclass(slots=True)
class SourceDescription(_Packet):
    """SDES (RFC 3550 §6.5)."""

    chunks: list[SdesChunk] = field(default_factory=list)

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> SourceDescription:
        chunks: list[SdesChunk] = []
        pos = 0
        end = len(body)
        for _ in range(count):
            if pos + 4 > end:
                raise ParseError("SDES chunk truncated")
            chunk = SdesChunk(_U32.unpack_from(body, pos)[0])
            pos += 4
            while True:
                if pos >= end:
                    raise ParseError("SDES item list not terminated")
                item_type = body[pos]
                if item_type == SDES_END:
                    pos = (pos + 4) & ~3  # skip the null octet(s) to the next 32-bit boundary
                    break
                if pos + 2 > end:
                    raise ParseError("SDES item header truncated")
                length = body[pos + 1]
                if pos + 2 + length > end:
                    raise ParseError("SDES item overruns the packet")
                chunk.items.append((item_type, body[pos + 2 : pos + 2 + length]))
                pos += 2 + length
            chunks.append(chunk)
        return cls(chunks)

    def __bytes__(self) -> bytes:
        return _pack(SDES, len(self.chunks), b"".join(bytes(c) for c in self.chunks))


@dataclass(slots=True)
class Bye(_Packet):
    """BYE (RFC 3550 §6.6) with an optional UTF-8 reason."""

    sources: list[int] = field(default_factory=list)
    reason: str | None = None

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> Bye:
        if 4 * count > len(body):
            raise ParseError("BYE SSRC list overruns the packet")
        sources = list(struct.unpack_from(f"!{count}I", body))
        reason = None
        rest = body[4 * count :]
        if rest:
            length = rest[0]
            if 1 + length > len(rest):
                raise ParseError("BYE reason overruns the packet")
            try:
                reason = rest[1 : 1 + length].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ParseError("BYE reason is not UTF-8") from exc
        return cls(sources, reason)

    def __bytes__(self) -> bytes:
        body = b"".join(_U32.pack(s) for s in self.sources)
        if self.reason is not None:
            text = self.reason.encode("utf-8")
            if len(text) > 255:
                raise ValueError("BYE reason longer than 255 bytes")
            body += bytes([len(text)]) + text
            body += bytes(-len(body) % 4)
        return _pack(BYE, len(self.sources), body)


# -- transport-layer feedback (RTPFB) ------------------------------------------------------


@dataclass(slots=True)
class GenericNack(_Packet):
    """Generic NACK (RFC 4585 §6.2.1): ``lost`` sequence numbers, sent as PID + BLP pairs.

    Each PID/BLP entry takes the following lost numbers 1..16 ahead of PID (modulo 2^16),
    as long as they keep ascending, so parsing what was serialised gives ``lost`` back in
    the same order.
    """

    sender_ssrc: int
    media_ssrc: int
    lost: list[int] = field(default_factory=list)

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> GenericNack:
        sender, media = _TWO_U32.unpack_from(body)
        fci = body[8:]
        if len(fci) % 4:
            raise ParseError("NACK FCI is not a whole number of entries")
        lost: list[int] = []
        for pos in range(0, len(fci), 4):
            pid, blp = struct.unpack_from("!HH", fci, pos)
            lost.append(pid)
            lost.extend((pid + bit + 1) & 0xFFFF for bit in range(16) if blp >> bit & 1)
        return cls(sender, media, lost)

    def entries(self) -> list[tuple[int, int]]:
        """The (PID, BLP) pairs the lost list is encoded as."""
        entries: list[list[int]] = []
        last_offset = 0
        for seq in self.lost:
            seq &= 0xFFFF
            if entries:
                offset = (seq - entries[-1][0]) & 0xFFFF
                if last_offset < offset <= 16:
                    entries[-1][1] |= 1 << (offset - 1)
                    last_offset = offset
                    continue
            entries.append([seq, 0])
            last_offset = 0
        return [(pid, blp) for pid, blp in entries]

    def __bytes__(self) -> bytes:
        body = _TWO_U32.pack(self.sender_ssrc, self.media_ssrc)
        body += b"".join(struct.pack("!HH", pid, blp) for pid, blp in self.entries())
        return _pack(RTPFB, RTPFB_NACK, body)


_TICK_US = 250  # receive delta unit
_REFERENCE_US = 64_000  # reference time unit
_REFERENCE_WRAP = 1 << 24
_SYMBOL_NOT_RECEIVED = 0
_SYMBOL_SMALL = 1
_SYMBOL_LARGE = 2


@dataclass(slots=True)
class TransportCcFeedback(_Packet):
    """Transport-wide congestion control feedback
    (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).

    ``packets`` lists consecutive transport sequence numbers from the base sequence number
    with their arrival times in microseconds (None: not received). On the wire, arrival
    times are ``reference_time`` (24 bits, 64 ms units) plus receive deltas of 250 µs.

    When serialising, ``reference_time`` None means "from the first received packet"
    (floor of its arrival time / 64 ms). The field is written modulo 2^24 and read back as
    unsigned, as libwebrtc does, so arrival times come back exactly when they are multiples
    of 250 µs below 2^24 * 64 ms (about 12.4 days); the feedback's user only needs
    differences anyway. Gaps in ``packets`` are filled as not received. Deltas outside
    -8192..8191.75 ms cannot be sent: start a new feedback packet (ValueError).
    """

    sender_ssrc: int
    media_ssrc: int
    fb_pkt_count: int
    packets: list[tuple[int, int | None]]
    reference_time: int | None = None

    @property
    def base_sequence(self) -> int:
        return self.packets[0][0] & 0xFFFF if self.packets else 0

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> TransportCcFeedback:
        if len(body) < 16:
            raise ParseError("transport-cc feedback shorter than its header")
        sender, media, base, status_count, ref_and_count = struct.unpack_from("!IIHHI", body)
        if status_count == 0:
            raise ParseError("transport-cc feedback with no packets")
        reference_time = ref_and_count >> 8
        pos = 16
        end = len(body)
        symbols: list[int] = []
        while len(symbols) < status_count:
            if pos + 2 > end:
                raise ParseError("transport-cc packet chunks truncated")
            chunk = (body[pos] << 8) | body[pos + 1]
            pos += 2
            if not chunk & 0x8000:  # run length chunk
                symbols.extend([(chunk >> 13) & 3] * (chunk & 0x1FFF))
            elif not chunk & 0x4000:  # status vector, 14 one-bit symbols
                symbols.extend((chunk >> (13 - i)) & 1 for i in range(14))
            else:  # status vector, 7 two-bit symbols
                symbols.extend((chunk >> (12 - 2 * i)) & 3 for i in range(7))
        del symbols[status_count:]
        ticks = reference_time * (_REFERENCE_US // _TICK_US)
        packets: list[tuple[int, int | None]] = []
        for i, symbol in enumerate(symbols):
            seq = (base + i) & 0xFFFF
            if symbol == _SYMBOL_NOT_RECEIVED:
                packets.append((seq, None))
                continue
            if symbol == _SYMBOL_SMALL:
                if pos + 1 > end:
                    raise ParseError("transport-cc receive deltas truncated")
                ticks += body[pos]
                pos += 1
            elif symbol == _SYMBOL_LARGE:
                if pos + 2 > end:
                    raise ParseError("transport-cc receive deltas truncated")
                ticks += int.from_bytes(body[pos : pos + 2], "big", signed=True)
                pos += 2
            else:
                raise ParseError("transport-cc reserved status symbol")
            packets.append((seq, ticks * _TICK_US))
        return cls(sender, media, ref_and_count & 0xFF, packets, reference_time)

    def __bytes__(self) -> bytes:
        if not self.packets:
            raise ValueError("transport-cc feedback needs at least one packet")
        base = self.packets[0][0] & 0xFFFF
        arrivals: list[int | None] = []
        for seq, arrival in self.packets:
            index = (seq - base) & 0xFFFF
            if index < len(arrivals):
                raise ValueError("transport-cc packets must be in ascending sequence order")
            arrivals.extend([None] * (index - len(arrivals)))
            arrivals.append(arrival)
        if len(arrivals) > 0xFFFF:
            raise ValueError("transport-cc feedback covers at most 65535 packets")
        reference = self.reference_time
        if reference is None:
            first = next((a for a in arrivals if a is not None), 0)
            reference = first // _REFERENCE_US
        ticks = reference * (_REFERENCE_US // _TICK_US)
        symbols: list[int] = []
        deltas: list[bytes] = []
        for arrival in arrivals:
            if arrival is None:
                symbols.append(_SYMBOL_NOT_RECEIVED)
                continue
            now = arrival // _TICK_US
            delta = now - ticks
            ticks = now
            if 0 <= delta <= 0xFF:
                symbols.append(_SYMBOL_SMALL)
                deltas.append(bytes([delta]))
            elif -0x8000 <= delta <= 0x7FFF:
                symbols.append(_SYMBOL_LARGE)
                deltas.append(delta.to_bytes(2, "big", signed=True))
            else:
                raise ValueError("receive delta does not fit 16 bits: start a new feedback")
        head = struct.pack(
            "!IIHHI",
            self.sender_ssrc,
            self.media_ssrc,
            base,
            len(arrivals),
            ((reference % _REFERENCE_WRAP) << 8) | (self.fb_pkt_count & 0xFF),
        )
        chunks = b"".join(struct.pack("!H", c) for c in _encode_chunks(symbols))
        return _pack(RTPFB, RTPFB_TWCC, head + chunks + b"".join(deltas))


def _encode_chunks(symbols: list[int]) -> list[int]:
    """Packet status chunks (§3.1.3, §3.1.4) for a list of status symbols.

    Greedy: a run-length chunk for a run of 14 or more, for a run that ends the list, or
    for 7 or more when a two-bit vector would be needed anyway; otherwise a one-bit
    vector of 14 when all its symbols are 0/1, otherwise a two-bit vector of 7. Vector
    slots past the end stay 0.
    """
    chunks: list[int] = []
    i = 0
    n = len(symbols)
    while i < n:
        symbol = symbols[i]
        run = 1
        while i + run < n and run < 0x1FFF and symbols[i + run] == symbol:
            run += 1
        window = symbols[i : i + 14]
        one_bit = all(s <= 1 for s in window)
        if run >= 14 or i + run == n or (run >= 7 and not one_bit):
            chunks.append((symbol << 13) | run)
            i += run
        elif one_bit:
            chunk = 0x8000
            for k, s in enumerate(window):
                chunk |= s << (13 - k)
            chunks.append(chunk)
            i += len(window)
        else:
            window = symbols[i : i + 7]
            chunk = 0xC000
            for k, s in enumerate(window):
                chunk |= s << (12 - 2 * k)
            chunks.append(chunk)
            i += len(window)
    return chunks


# -- payload-specific feedback (PSFB) -----------------------------------------------------


@dataclass(slots=True)
class PictureLossIndication(_Packet):
    """PLI (RFC 4585 §6.3.1): no FCI."""

    sender_ssrc: int
    media_ssrc: int

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> PictureLossIndication:
        return cls(*_TWO_U32.unpack_from(body))

    def __bytes__(self) -> bytes:
        return _pack(PSFB, PSFB_PLI, _TWO_U32.pack(self.sender_ssrc, self.media_ssrc))


@dataclass(slots=True)
class FullIntraRequest(_Packet):
    """FIR (RFC 5104 §4.3.1): entries of (SSRC, command sequence number); the media
    source SSRC of the common header is unused (0)."""

    sender_ssrc: int
    entries: list[tuple[int, int]] = field(default_factory=list)
    media_ssrc: int = 0

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> FullIntraRequest:
        sender, media = _TWO_U32.unpack_from(body)
        fci = body[8:]
        if len(fci) % 8:
            raise ParseError("FIR FCI is not a whole number of entries")
        entries = [(_U32.unpack_from(fci, p)[0], fci[p + 4]) for p in range(0, len(fci), 8)]
        return cls(sender, entries, media)

    def __bytes__(self) -> bytes:
        body = _TWO_U32.pack(self.sender_ssrc, self.media_ssrc)
        body += b"".join(struct.pack("!IB3x", ssrc, seq) for ssrc, seq in self.entries)
        return _pack(PSFB, PSFB_FIR, body)


_REMB_ID = b"REMB"


@dataclass(slots=True)
class Remb(_Packet):
    """Receiver Estimated Maximum Bitrate (draft-alvestrand-rmcat-remb-03 §2.2): an
    application-layer PSFB (FMT 15) with "REMB", the bitrate as 6-bit exponent and 18-bit
    mantissa, and the SSRCs it applies to. Serialising rounds ``bitrate`` down to what the
    mantissa can carry."""

    sender_ssrc: int
    bitrate: int
    ssrcs: list[int] = field(default_factory=list)
    media_ssrc: int = 0

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> Remb:
        if len(body) < 16 or body[8:12] != _REMB_ID:
            raise ParseError("not a REMB packet")
        sender, media = _TWO_U32.unpack_from(body)
        num, value = body[12], int.from_bytes(body[13:16], "big")
        if 16 + 4 * num > len(body):
            raise ParseError("REMB SSRC list overruns the packet")
        ssrcs = list(struct.unpack_from(f"!{num}I", body, 16))
        return cls(sender, (value & 0x3FFFF) << (value >> 18), ssrcs, media)

    def __bytes__(self) -> bytes:
        if self.bitrate < 0:
            raise ValueError("REMB bitrate must not be negative")
        if len(self.ssrcs) > 255:
            raise ValueError("REMB carries at most 255 SSRCs")
        exponent = max(0, self.bitrate.bit_length() - 18)
        if exponent > 63:
            raise ValueError("REMB bitrate too large")
        mantissa = self.bitrate >> exponent
        body = _TWO_U32.pack(self.sender_ssrc, self.media_ssrc) + _REMB_ID
        body += bytes([len(self.ssrcs)]) + ((exponent << 18) | mantissa).to_bytes(3, "big")
        body += b"".join(_U32.pack(s) for s in self.ssrcs)
        return _pack(PSFB, PSFB_AFB, body)


# -- everything else --------------------------------------------------------------------


@dataclass(slots=True)
class RtcpUnknown(_Packet):
    """Any packet not interpreted here (XR, APP, other feedback), kept as its header's
    count/FMT field, packet type and body (padding removed)."""

    packet_type: int
    count: int
    body: bytes

    def __bytes__(self) -> bytes:
        return _pack(self.packet_type, self.count, self.body)


RtcpPacket = (
    SenderReport
    | ReceiverReport
    | SourceDescription
    | Bye
    | GenericNack
    | TransportCcFeedback
    | PictureLossIndication
    | FullIntraRequest
    | Remb
    | RtcpUnknown
)


def _parse_body(count: int, packet_type: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        return SenderReport._from_body(count, body)
    if packet_type == RR:
        return ReceiverReport._from_body(count, body)
    if packet_type == SDES:
        return SourceDescription._from_body(count, body)
    if packet_type == BYE:
        return Bye._from_body(count, body)
    if packet_type in (RTPFB, PSFB):
        if len(body) < 8:
            raise ParseError("feedback packet shorter than its two SSRCs")
        if packet_type == RTPFB:
            if count == RTPFB_NACK:
                return GenericNack._from_body(count, body)
            if count == RTPFB_TWCC:
                return TransportCcFeedback._from_body(count, body)
        else:
            if count == PSFB_PLI:
                return PictureLossIndication._from_body(count, body)
            if count == PSFB_FIR:
                return FullIntraRequest._from_body(count, body)
            if count == PSFB_AFB and body[8:12] == _REMB_ID:
                return Remb._from_body(count, body)
    return RtcpUnknown(packet_type, count, body)


def parse_compound(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Split and parse a compound RTCP packet (RFC 3550 §6.1): each packet must have
    version 2 and a length inside the datagram, and together they must fill it exactly."""
    data = bytes(data)
    if not data:
        raise ParseError("empty RTCP datagram")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < len(data):
        count, packet_type, body, length = _split(data[pos:])
        packets.append(_parse_body(count, packet_type, body))
        pos += length
    return packets


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    return b"".join(bytes(p) for p in packets)
