"""Answering a publisher's offer on its SEND transport (JSEP, RFC 8829 §5.3).

The client offers its outgoing tracks (``sendonly``; aiortc offers ``sendrecv``); the SFU
answers ``recvonly`` for what it can forward and rejects the rest (port 0), and turns each
accepted m-section into the :class:`RtpParameters` of one producer. The SFU is ICE-lite and
the DTLS server (``a=setup:passive``); everything rides one BUNDLE transport (RFC 8843) with
RTCP multiplexed (RFC 5761).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from incamera.media.api import DtlsParameters, IceParameters, TransportInfo
from incamera.media.rtp_parameters import (
    Encoding,
    ExtensionUri,
    HeaderExtension,
    MediaKind,
    RtpParameters,
)

from .attributes import Direction, Group, Rid, RidDirection, Setup, Simulcast, SimulcastStream
from .codec_lines import offered_codecs, write_codecs
from .errors import NegotiationError, SdpError
from .model import Connection, MediaDescription, Origin, SessionDescription, parse
from .transport import (
    client_dtls,
    default_address,
    remote_ice,
    write_candidates,
    write_ice_dtls,
)

_KNOWN_URIS = frozenset(u.value for u in ExtensionUri)
# Chromium's conventional rid names: quarter, half and full resolution.
_RID_SCALE = {"q": 4.0, "h": 2.0, "f": 1.0}


@dataclass(frozen=True, slots=True)
class PublishAnswer:
    sdp: str  # the answer to send back to the client
    remote_ice: IceParameters  # the client's ICE credentials
    remote_dtls: DtlsParameters  # the client's certificate fingerprints, role CLIENT
    producers: list[RtpParameters]  # one per accepted sending m-section, in offer order
    rejected: dict[str, str] = field(default_factory=dict)  # mid -> reason (port 0 answer)


class _Rejected(Exception):
    """An m-section the SFU answers with port 0; the reason is reported to the caller."""


def _header_extensions(media: MediaDescription) -> tuple[HeaderExtension, ...]:
    found: dict[str, HeaderExtension] = {}
    for ext in media.extmaps():
        if ext.uri not in _KNOWN_URIS or not 1 <= ext.id <= 255:
            continue
        if ext.direction is not None and not ext.direction.sends:
            continue
        found.setdefault(ext.uri, HeaderExtension(ext.uri, ext.id))
    return tuple(found.values())


def _rid_encodings(media: MediaDescription, simulcast: Simulcast) -> tuple[Encoding, ...]:
    """RFC 8853 simulcast: one encoding per stream, lowest quality first."""
    send_rids = {r.id for r in media.rids() if r.direction is RidDirection.SEND}
    rids = [stream.rid for stream in simulcast.send]
    missing = [rid for rid in rids if rid not in send_rids]
    if missing:
        raise _Rejected(f"a=simulcast names rids without a=rid send lines: {missing}")
    if len(set(rids)) != len(rids):
        raise _Rejected("a=simulcast repeats a rid")
    if not any(e.uri == ExtensionUri.RID for e in _header_extensions(media)):
        raise _Rejected("simulcast without the rtp-stream-id header extension")
    count = len(rids)
    if all(rid in _RID_SCALE for rid in rids):
        scales = [_RID_SCALE[rid] for rid in rids]
    else:  # "0", "1", "2" or any other names: the offer's order, lowest first
        scales = [float(2 ** (count - 1 - i)) for i in range(count)]
    encodings = [
        Encoding(rid=rid, scale_resolution_down_by=scale)
        for rid, scale in zip(rids, scales, strict=True)
    ]
    encodings.sort(key=lambda e: -e.scale_resolution_down_by)  # stable: keeps offer order
    return tuple(encodings)


def _ssrc_encodings(media: MediaDescription) -> tuple[Encoding, ...]:
    """RFC 5576 signalled SSRCs: SIM group layers (lowest first) or one stream, each with its
    RFC 4588 FID retransmission SSRC."""
    groups = media.ssrc_groups()
    fid = {g.ssrcs[0]: g.ssrcs[1] for g in groups if g.semantics == "FID" and len(g.ssrcs) == 2}
    sim = next((g for g in groups if g.semantics == "SIM" and g.ssrcs), None)
    if sim is not None:
        count = len(sim.ssrcs)
        return tuple(
            Encoding(
                ssrc=ssrc,
                rtx_ssrc=fid.get(ssrc),
                scale_resolution_down_by=float(2 ** (count - 1 - i)),
            )
            for i, ssrc in enumerate(sim.ssrcs)
        )
    rtx_ssrcs = set(fid.values())
    primaries = [a.ssrc for a in media.ssrcs() if a.ssrc not in rtx_ssrcs]
    if not primaries:
        return (Encoding(),)  # identified by MID only (RFC 8843 §15)
    primary = primaries[0]
    return (Encoding(ssrc=primary, rtx_ssrc=fid.get(primary)),)


def _cname(media: MediaDescription, session: SessionDescription) -> str:
    """RFC 5576 ``cname`` of the section's SSRCs; Chromium signals no SSRCs with rids, so fall
    back to the cname of any other section (one endpoint uses one CNAME, RFC 7022)."""
    for section in (media, *session.media):
        for attr in section.ssrcs():
            if attr.attribute == "cname" and attr.value:
                return attr.value
    return ""


def _producer(
    media: MediaDescription, mid: str, session: SessionDescription
) -> tuple[RtpParameters, Simulcast | None, list[Rid]]:
    if media.kind not in (MediaKind.AUDIO, MediaKind.VIDEO):
        raise _Rejected(f"{media.kind} m-sections are not supported")
    if "RTP/SAVP" not in media.proto:
        raise _Rejected(f"transport protocol {media.proto} is not supported")
    if not media.has("rtcp-mux"):
        raise _Rejected("no a=rtcp-mux")
    codecs = offered_codecs(media)
    if not codecs:
        raise _Rejected("no codec the SFU can forward")
    simulcast = media.simulcast
    if simulcast is not None and simulcast.send:
        encodings = _rid_encodings(media, simulcast)
        rids = [r for r in media.rids() if r.direction is RidDirection.SEND]
    else:
        simulcast, rids = None, []
        encodings = _ssrc_encodings(media)
    params = RtpParameters(
        mid=mid,
        kind=MediaKind(media.kind),
        codecs=tuple(codecs),
        header_extensions=_header_extensions(media),
        encodings=encodings,
        cname=_cname(media, session),
    )
    return params, simulcast, rids


def _rejected_section(
    offer: MediaDescription, mid: str | None, transport: TransportInfo
) -> MediaDescription:
    """A port-0 answer section (JSEP §5.3.1). It keeps the mid, transport attributes and, for
    RTP, the offer's first codec, which some stacks (aiortc) insist on even when rejected."""
    answer = MediaDescription(
        offer.kind, 0, offer.proto, offer.formats[:1], connection=Connection()
    )
    if mid is not None:
        answer.add("mid", mid)
    write_ice_dtls(answer, transport, Setup.PASSIVE)
    if offer.kind in (MediaKind.AUDIO, MediaKind.VIDEO):
        rtpmaps = offer.rtpmaps()
        pt = next((p for p in offer.payload_types() if p in rtpmaps), None)
        if pt is not None:
            answer.formats = [str(pt)]
            answer.add("rtpmap", rtpmaps[pt])
        answer.add("inactive")
        answer.add("rtcp-mux")
    return answer


def _accepted_section(
    offer: MediaDescription,
    params: RtpParameters,
    simulcast: Simulcast | None,
    rids: list[Rid],
    direction: Direction,
    transport: TransportInfo,
) -> MediaDescription:
    connection, port = default_address(transport)
    answer = MediaDescription(offer.kind, port, offer.proto, [], connection=connection)
    answer.add("mid", params.mid)
    write_ice_dtls(answer, transport, Setup.PASSIVE)
    for ext in params.header_extensions:
        answer.add("extmap", f"{ext.id} {ext.uri}")
    answer.add(direction)
    answer.add("rtcp-mux")
    if offer.has("rtcp-rsize"):
        answer.add("rtcp-rsize")
    fmtps = offer.fmtps()
    write_codecs(
        answer,
        list(params.codecs),
        {
            c.payload_type: fmtps[c.payload_type].params
            for c in params.codecs
            if c.payload_type in fmtps
        },
    )
    if simulcast is not None:
        for rid in rids:
            answer.add("rid", Rid(rid.id, RidDirection.RECV))
        streams = tuple(SimulcastStream(s.alternatives) for s in simulcast.send)
        answer.add("simulcast", Simulcast(recv=streams))
    write_candidates(answer, transport)
    return answer


def answer_publish(
    offer_sdp: str,
    transport: TransportInfo,
    *,
    session_id: int | None = None,
    session_version: int = 1,
) -> PublishAnswer:
    """Answer a client's offer on its send transport.

    Raises :class:`SdpError` for malformed SDP and :class:`NegotiationError` (a subclass) for
    an offer that cannot be answered at all (no BUNDLE, no ICE credentials or fingerprint, a
    DTLS role other than actpass/active). Single m-sections the SFU cannot use (data channels,
    codecs it cannot forward, sections outside the BUNDLE group) are rejected with port 0 and
    listed in ``PublishAnswer.rejected``.
    """
    offer = parse(offer_sdp)
    bundle = offer.bundle_group()
    if bundle is None or not bundle.mids:
        raise NegotiationError("the offer has no a=group:BUNDLE (max-bundle is required)")
    mids = [m.mid for m in offer.media]
    present = [m for m in mids if m is not None]
    if len(set(present)) != len(present):
        raise NegotiationError("duplicate a=mid values in the offer")
    tagged = offer.media_by_mid(bundle.mids[0])
    if tagged is None:
        raise NegotiationError(f"BUNDLE tag {bundle.mids[0]!r} names no m-section")
    ice = remote_ice(offer, tagged)
    dtls = client_dtls(offer, tagged, (Setup.ACTPASS, Setup.ACTIVE, None))

    answer = SessionDescription(
        origin=Origin(
            "-", secrets.randbits(62) if session_id is None else session_id, session_version
        ),
    )
    answer.add("ice-lite")
    producers: list[RtpParameters] = []
    rejected: dict[str, str] = {}
    accepted: list[str] = []
    sections: list[MediaDescription] = []
    for media, mid in zip(offer.media, mids, strict=True):
        try:
            if media.port == 0 and not media.has("bundle-only"):
                raise _Rejected("rejected or stopped by the offerer")
            if mid is None or mid not in bundle.mids:
                raise _Rejected("not in the BUNDLE group")
            params, simulcast, rids = _producer(media, mid, offer)
            offered = media.direction or offer.direction or Direction.SENDRECV
        except _Rejected as why:
            rejected[mid or f"#{len(sections)}"] = str(why)
            sections.append(_rejected_section(media, mid, transport))
            continue
        except SdpError as why:  # a malformed attribute inside this section
            raise SdpError(f"mid {mid}: {why}") from None
        direction = Direction.RECVONLY if offered.sends else Direction.INACTIVE
        if offered.sends:
            producers.append(params)
        accepted.append(mid)
        sections.append(_accepted_section(media, params, simulcast, rids, direction, transport))
    if accepted:
        answer.add("group", Group("BUNDLE", tuple(accepted)))
    if offer.has("extmap-allow-mixed"):
        answer.add("extmap-allow-mixed")
    answer.media = sections
    return PublishAnswer(str(answer), ice, dtls, producers, rejected)


__all__ = ["PublishAnswer", "answer_publish"]
