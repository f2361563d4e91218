"""RTP parameters exchanged between the control plane and the media plane.

These say, for one Producer or Consumer, which codecs, payload types, header extension ids
and encodings (SSRCs / RIDs, simulcast layers) are in use. The SDP layer (``incamera.sdp``)
translates between them and SDP; the media plane uses them to parse and rewrite packets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class MediaKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


class ExtensionUri(StrEnum):
    """Header extension URIs the SFU understands (RFC 8285 registrations)."""

    MID = "urn:ietf:params:rtp-hdrext:sdes:mid"  # RFC 8843
    RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"  # RFC 8852
    REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"  # RFC 8852
    AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"  # RFC 6464
    ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


@dataclass(frozen=True, slots=True)
class RtpCodec:
    """One codec as negotiated: ``mime_type`` like ``video/VP8`` or ``audio/opus``."""

    mime_type: str
    payload_type: int
    clock_rate: int
    channels: int = 1
    parameters: dict[str, str] = field(default_factory=dict)
    rtcp_feedback: tuple[str, ...] = ()  # e.g. ("nack", "nack pli", "ccm fir", "transport-cc")
    rtx_payload_type: int | None = None  # RFC 4588 retransmission payload type, if any

    @property
    def kind(self) -> MediaKind:
        return MediaKind(self.mime_type.split("/", 1)[0].lower())

    @property
    def name(self) -> str:
        return self.mime_type.split("/", 1)[1].lower()


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    uri: str
    id: int  # 1..14 (one-byte form) or 1..255 (two-byte form), RFC 8285


@dataclass(frozen=True, slots=True)
class Encoding:
    """One RTP stream of a producer: a simulcast layer (by RID or SSRC) or the only one.

    Layers are listed from lowest to highest quality; ``scale_resolution_down_by`` is
    relative to the full capture size (4.0, 2.0, 1.0 for three layers).
    """

    ssrc: int | None = None
    rid: str | None = None
    rtx_ssrc: int | None = None
    max_bitrate: int | None = None
    scale_resolution_down_by: float = 1.0


@dataclass(frozen=True, slots=True)
class RtpParameters:
    mid: str
    kind: MediaKind
    codecs: tuple[RtpCodec, ...]
    header_extensions: tuple[HeaderExtension, ...] = ()
    encodings: tuple[Encoding, ...] = (Encoding(),)
    cname: str = ""

    def extension_id(self, uri: str) -> int | None:
        for ext in self.header_extensions:
            if ext.uri == uri:
                return ext.id
        return None
