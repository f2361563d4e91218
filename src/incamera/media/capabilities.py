"""What a Router can forward: codecs with the router's fixed payload types, and the header
extensions with the ids the SFU uses on streams it sends.

Within one BUNDLE group a payload type must mean one codec on every m-section (RFC 8843
section 9.1), so consumers never reuse a publisher's payload types: every forwarded stream is
rewritten to these router payload types.
"""

from __future__ import annotations

from .rtp_parameters import ExtensionUri, HeaderExtension, RtpCodec

VIDEO_FEEDBACK = ("nack", "nack pli", "ccm fir", "goog-remb", "transport-cc")
AUDIO_FEEDBACK = ("transport-cc",)

ROUTER_CODECS: tuple[RtpCodec, ...] = (
    RtpCodec(
        "audio/opus",
        111,
        48000,
        2,
        {"minptime": "10", "useinbandfec": "1"},
        AUDIO_FEEDBACK,
    ),
    RtpCodec("video/VP8", 96, 90000, 1, {}, VIDEO_FEEDBACK, rtx_payload_type=97),
    RtpCodec("video/VP9", 98, 90000, 1, {"profile-id": "0"}, VIDEO_FEEDBACK, rtx_payload_type=99),
    RtpCodec(
        "video/H264",
        102,
        90000,
        1,
        {"packetization-mode": "1", "profile-level-id": "42e01f", "level-asymmetry-allowed": "1"},
        VIDEO_FEEDBACK,
        rtx_payload_type=103,
    ),
    RtpCodec("video/AV1", 45, 90000, 1, {}, VIDEO_FEEDBACK, rtx_payload_type=46),
)

# Ids used in the SFU's own offers (subscriber side). Publishers' ids come from their offers.
ROUTER_EXTENSIONS: tuple[HeaderExtension, ...] = (
    HeaderExtension(ExtensionUri.MID, 1),
    HeaderExtension(ExtensionUri.AUDIO_LEVEL, 2),
    HeaderExtension(ExtensionUri.ABS_SEND_TIME, 3),
    HeaderExtension(ExtensionUri.TRANSPORT_CC, 4),
    HeaderExtension(ExtensionUri.RID, 10),
    HeaderExtension(ExtensionUri.REPAIRED_RID, 11),
)


def router_codec_for(codec: RtpCodec) -> RtpCodec | None:
    """The router codec a publisher's codec maps to, or None if it is not forwardable.

    H264 matches on packetization-mode 1 and the profile (first byte of profile-level-id:
    42 constrained baseline / baseline, 4d main, 64 high) is kept from the router entry.
    """
    for rc in ROUTER_CODECS:
        if rc.mime_type.lower() != codec.mime_type.lower() or rc.clock_rate != codec.clock_rate:
            continue
        if rc.name == "h264" and codec.parameters.get("packetization-mode", "0") != "1":
            continue
        if rc.name == "vp9" and codec.parameters.get("profile-id", "0") != "0":
            continue
        return rc
    return None
