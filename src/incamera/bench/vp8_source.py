"""A synthetic VP8 RTP stream for load generation: valid headers, filler content.

Every packet is a whole frame: its VP8 payload descriptor (RFC 7741 section 4.2) has X=1,
S=1, PID=0 and a 15-bit picture id (I=1, M=1), as Chromium sends, and its RTP marker bit is
set. The VP8 payload header that follows (RFC 7741 section 4.3, RFC 6386 section 9.1) says
key frame (P=0, followed by the start code and a 640x480 size) when a key frame is due, and
inter frame (P=1) otherwise. That is all an SFU reads of a VP8 packet (the rest would be
SFrame ciphertext in incamera), so the filler after it costs the SFU what real video costs.

The RTP timestamp is whatever the caller passes: the benchmark passes the send time on a
90 kHz clock, which an SFU keeps for a consumer's first segment, so a subscriber can tell
each packet's latency from its header alone.
"""

from __future__ import annotations

import secrets
import struct

from incamera.media.rtp_parameters import (
    Encoding,
    MediaKind,
    RtpCodec,
    RtpParameters,
)

PAYLOAD_TYPE = 96
RTX_PAYLOAD_TYPE = 97
CLOCK_RATE = 90000
WIDTH, HEIGHT = 640, 480
HEADER_SIZE = 12
DESCRIPTOR = 4  # X byte + 15-bit picture id
# Frame tag (RFC 6386 9.1): P (bit 0) = 0 key / 1 inter, version 0, show_frame (bit 4) = 1.
_KEY_HEADER = bytes([0x10, 0x00, 0x00, 0x9D, 0x01, 0x2A]) + struct.pack("<HH", WIDTH, HEIGHT)
_INTER_HEADER = bytes([0x11, 0x00, 0x00])
MIN_SIZE = HEADER_SIZE + DESCRIPTOR + len(_KEY_HEADER)

_pack_seq_ts = struct.Struct("!HI").pack_into
_pack_pid = struct.Struct("!H").pack_into


def vp8_parameters(ssrc: int, mid: str = "0", cname: str = "bench") -> RtpParameters:
    """RtpParameters of one VP8 producer with the given SSRC (no simulcast, no extensions)."""
    codec = RtpCodec(
        "video/VP8",
        PAYLOAD_TYPE,
        CLOCK_RATE,
        rtcp_feedback=("nack", "nack pli"),
        rtx_payload_type=RTX_PAYLOAD_TYPE,
    )
    return RtpParameters(
        mid=mid,
        kind=MediaKind.VIDEO,
        codecs=(codec,),
        encodings=(Encoding(ssrc=ssrc),),
        cname=cname,
    )


class Vp8Source:
    """Builds the RTP packets (before SRTP) of one synthetic VP8 stream of ``size`` bytes."""

    def __init__(self, ssrc: int, size: int = 1200) -> None:
        if size < MIN_SIZE:
            raise ValueError(f"packets must be at least {MIN_SIZE} bytes")
        self.ssrc = ssrc
        self.size = size
        self.seq = secrets.randbits(16)
        self.picture_id = secrets.randbits(15)
        self.keyframe_due = True
        self.packets = 0
        self.keyframes = 0
        head = bytes([0x80, 0x80 | PAYLOAD_TYPE, 0, 0, 0, 0, 0, 0]) + ssrc.to_bytes(4, "big")
        descriptor = bytes([0x90, 0x80, 0x80, 0x00])  # X=1 S=1 PID=0; I=1; M=1 picture id
        filler_key = bytes(i & 0xFF for i in range(size - MIN_SIZE))
        self._key = bytearray(head + descriptor + _KEY_HEADER + filler_key)
        inter_len = size - HEADER_SIZE - DESCRIPTOR - len(_INTER_HEADER)
        self._inter = bytearray(head + descriptor + _INTER_HEADER + bytes(inter_len))

    def request_keyframe(self) -> None:
        """Make the next packet a key frame (a PLI or FIR arrived, or it is time for one)."""
        self.keyframe_due = True

    def next_packet(self, timestamp: int) -> bytes:
        """The next RTP packet, stamped with ``timestamp`` (90 kHz, wrapped to 32 bits)."""
        if self.keyframe_due:
            self.keyframe_due = False
            self.keyframes += 1
            buf = self._key
        else:
            buf = self._inter
        seq = self.seq
        self.seq = (seq + 1) & 0xFFFF
        pid = self.picture_id
        self.picture_id = (pid + 1) & 0x7FFF
        _pack_seq_ts(buf, 2, seq, timestamp & 0xFFFFFFFF)
        _pack_pid(buf, HEADER_SIZE + 2, 0x8000 | pid)
        self.packets += 1
        return bytes(buf)
