"""Offering consumers to a subscriber on its RECV transport (JSEP, RFC 8829 §5.2).

The SFU is the offerer here: each consumer is one ``sendonly`` m-section, and the browser
answers ``recvonly``. One :class:`SubscribeSession` per recv transport keeps the m-section
list across renegotiations: mids are stable and sections never move. A removed consumer's
section is offered with port 0 (``a=inactive``); once an answer to such an offer has been
applied, the slot may be recycled for a new consumer of the same kind, under a new mid
(JSEP §5.2.2).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from incamera.media.api import DtlsParameters, IceParameters, TransportInfo
from incamera.media.capabilities import ROUTER_CODECS, ROUTER_EXTENSIONS
from incamera.media.rtp_parameters import ExtensionUri, HeaderExtension, MediaKind, RtpParameters

from .attributes import Direction, Group, Msid, Setup, SsrcAttribute, SsrcGroup
from .codec_lines import write_codecs
from .errors import NegotiationError, SdpStateError
from .model import Connection, MediaDescription, Origin, SessionDescription, parse
from .transport import client_dtls, default_address, remote_ice, write_candidates, write_ice_dtls

PROTO = "UDP/TLS/RTP/SAVPF"
_NO_CONSUMER_EXTENSIONS = frozenset({ExtensionUri.RID, ExtensionUri.REPAIRED_RID})
_AUDIO_ONLY_EXTENSIONS = frozenset({ExtensionUri.AUDIO_LEVEL})
_ROUTER_PTS = {c.payload_type: c for c in ROUTER_CODECS}


def consumer_extensions(kind: MediaKind) -> tuple[HeaderExtension, ...]:
    """The router extensions offered on a consumer section of ``kind`` (never rid ones)."""
    return tuple(
        ext
        for ext in ROUTER_EXTENSIONS
        if ext.uri not in _NO_CONSUMER_EXTENSIONS
        and (kind is MediaKind.AUDIO or ext.uri not in _AUDIO_ONLY_EXTENSIONS)
    )


@dataclass(slots=True)
class _Slot:
    mid: str
    kind: MediaKind
    params: RtpParameters
    stream_id: str
    track_id: str
    live: bool = True
    offered: bool = False  # has been part of an offer (the client may know it)
    close_offered: bool = False  # offered with port 0 since it was closed
    recyclable: bool = False  # an answer to such an offer was applied
    previous: _Slot | None = None  # the closed slot this one recycled, until first offered


@dataclass(frozen=True, slots=True)
class _Offered:
    mid: str
    kind: MediaKind
    live: bool


class SubscribeSession:
    """The m-section list of one subscriber's recv transport, across renegotiations."""

    def __init__(self, transport: TransportInfo, *, cname: str | None = None) -> None:
        self.transport = transport
        self.cname = cname or f"incamera-{secrets.token_hex(8)}"
        self._slots: list[_Slot] = []
        self._next_mid = 0
        self._session_id = secrets.randbits(62)
        self._version = 0
        self._pending: list[_Offered] | None = None
        self._remote: tuple[IceParameters, DtlsParameters] | None = None

    # -- consumers -------------------------------------------------------------------------

    def add(self, consumer_params: RtpParameters, stream_id: str, track_id: str) -> str:
        """Add a consumer's m-section and return the mid it was given (``"0"``, ``"1"``...).

        ``consumer_params`` carries router payload types (``ROUTER_CODECS``) and one encoding
        with the consumer's SSRC (and RTX SSRC); its ``mid`` is ignored and replaced.
        """
        _check_consumer(consumer_params)
        mid = str(self._next_mid)
        self._next_mid += 1
        slot = _Slot(
            mid, consumer_params.kind, replace(consumer_params, mid=mid), stream_id, track_id
        )
        for index, old in enumerate(self._slots):
            if not old.live and old.recyclable and old.kind is consumer_params.kind:
                slot.previous = old
                self._slots[index] = slot
                return mid
        self._slots.append(slot)
        return mid

    def remove(self, mid: str) -> None:
        """Close a consumer's m-section; the next offer shows it with port 0."""
        index = next(
            (i for i, slot in enumerate(self._slots) if slot.mid == mid and slot.live), None
        )
        if index is None:
            raise SdpStateError(f"no live consumer with mid {mid!r}")
        slot = self._slots[index]
        if slot.offered:
            slot.live = False
        elif slot.previous is not None:  # never shown to the client: undo the recycling
            self._slots[index] = slot.previous
        else:
            del self._slots[index]

    def consumer(self, mid: str) -> RtpParameters:
        for slot in self._slots:
            if slot.mid == mid and slot.live:
                return slot.params
        raise SdpStateError(f"no live consumer with mid {mid!r}")

    @property
    def mids(self) -> list[str]:
        """Mids of the live consumers, in m-section order."""
        return [slot.mid for slot in self._slots if slot.live]

    # -- offer / answer --------------------------------------------------------------------

    def offer(self) -> str:
        """A full offer for the current m-section list (a new session version each time)."""
        if not self._slots:
            raise SdpStateError("nothing to offer: no consumer was ever added")
        self._version += 1
        session = SessionDescription(origin=Origin("-", self._session_id, self._version))
        session.add("ice-lite")
        live = tuple(slot.mid for slot in self._slots if slot.live)
        if live:
            session.add("group", Group("BUNDLE", live))
        session.add("msid-semantic", " WMS *")
        for slot in self._slots:
            session.media.append(self._section(slot))
            slot.offered = True
            slot.previous = None
            if not slot.live:
                slot.close_offered = True
        self._pending = [_Offered(s.mid, s.kind, s.live) for s in self._slots]
        return str(session)

    def apply_answer(self, answer_sdp: str) -> tuple[IceParameters, DtlsParameters]:
        """Check the client's answer to the last offer; return its ICE and DTLS parameters.

        Raises :class:`SdpError` for malformed SDP, :class:`NegotiationError` if the answer
        does not match the offer (other mids, a live section rejected or not receiving, no
        BUNDLE, a DTLS role other than active) and :class:`SdpStateError` when no offer is
        pending. On error the session is unchanged and the offer stays pending.
        """
        if self._pending is None:
            raise SdpStateError("no offer is waiting for an answer")
        answer = parse(answer_sdp)
        offered = self._pending
        got = [(m.kind, m.mid) for m in answer.media]
        want = [(o.kind.value, o.mid) for o in offered]
        if got != want:
            raise NegotiationError(f"answer m-sections {got} do not match the offer's {want}")
        for media, entry in zip(answer.media, offered, strict=True):
            if not entry.live:
                continue
            if media.port == 0:
                raise NegotiationError(f"the client rejected mid {entry.mid}")
            direction = media.direction or answer.direction or Direction.SENDRECV
            if not direction.receives:
                raise NegotiationError(f"mid {entry.mid}: answered {direction}, not recvonly")
        live = [o.mid for o in offered if o.live]
        bundle = answer.bundle_group()
        # Closed sections should leave the group (RFC 8843 §7.3.3), but some stacks (aiortc)
        # keep them: tolerate that, the transport is the same.
        if live and (bundle is None or not set(live) <= set(bundle.mids)):
            raise NegotiationError(f"answer BUNDLE group {bundle} lacks offered mids {live}")
        if bundle is not None and not set(bundle.mids) <= {o.mid for o in offered}:
            raise NegotiationError(f"answer BUNDLE group {bundle} names mids never offered")
        if live:
            assert bundle is not None
            tag = next(mid for mid in bundle.mids if mid in live)
            tagged = answer.media_by_mid(tag)
            assert tagged is not None  # the answer's mids are the offer's
            ice = remote_ice(answer, tagged)
            dtls = client_dtls(answer, tagged, (Setup.ACTIVE,))
        elif self._remote is not None:  # every section closed: the transport is unchanged
            ice, dtls = self._remote
        else:
            raise NegotiationError("no live m-section was ever negotiated: no transport")
        self._remote = (ice, dtls)
        self._pending = None
        for slot in self._slots:
            if not slot.live and slot.close_offered:
                slot.recyclable = True
        return ice, dtls

    # -- writing ---------------------------------------------------------------------------

    def _section(self, slot: _Slot) -> MediaDescription:
        params = slot.params
        if not slot.live:
            media = MediaDescription(slot.kind, 0, PROTO, [], connection=Connection())
            media.add("mid", slot.mid)
            write_ice_dtls(media, self.transport, Setup.ACTPASS)
            media.add(Direction.INACTIVE)
            media.add("rtcp-mux")
            write_codecs(media, [replace(c, rtcp_feedback=()) for c in params.codecs[:1]])
            return media
        connection, port = default_address(self.transport)
        media = MediaDescription(slot.kind, port, PROTO, [], connection=connection)
        media.add("mid", slot.mid)
        write_ice_dtls(media, self.transport, Setup.ACTPASS)
        extensions = [e for e in params.header_extensions if e.uri not in _NO_CONSUMER_EXTENSIONS]
        for ext in extensions or consumer_extensions(slot.kind):
            media.add("extmap", f"{ext.id} {ext.uri}")
        media.add(Direction.SENDONLY)
        media.add("msid", Msid(slot.stream_id, slot.track_id))
        media.add("rtcp-mux")
        media.add("rtcp-rsize")
        write_codecs(media, list(params.codecs))
        encoding = params.encodings[0]
        assert encoding.ssrc is not None
        cname = params.cname or self.cname
        if encoding.rtx_ssrc is not None:
            media.add("ssrc-group", SsrcGroup("FID", (encoding.ssrc, encoding.rtx_ssrc)))
        for ssrc in (encoding.ssrc, encoding.rtx_ssrc):
            if ssrc is not None:
                media.add("ssrc", SsrcAttribute(ssrc, "cname", cname))
                media.add("ssrc", SsrcAttribute(ssrc, "msid", f"{slot.stream_id} {slot.track_id}"))
        write_candidates(media, self.transport)
        return media


def _check_consumer(params: RtpParameters) -> None:
    if not params.codecs:
        raise ValueError("a consumer needs at least one codec")
    for codec in params.codecs:
        router = _ROUTER_PTS.get(codec.payload_type)
        if router is None or router.mime_type.lower() != codec.mime_type.lower():
            raise ValueError(
                f"{codec.mime_type}/{codec.payload_type} is not a router payload type "
                "(consumers use ROUTER_CODECS payload types: one meaning per BUNDLE)"
            )
        if codec.rtx_payload_type not in (None, router.rtx_payload_type):
            raise ValueError(f"rtx payload type {codec.rtx_payload_type} is not the router's")
        if codec.kind is not params.kind:
            raise ValueError(f"{codec.mime_type} in a {params.kind} consumer")
    if len(params.encodings) != 1 or params.encodings[0].ssrc is None:
        raise ValueError("a consumer has exactly one encoding with an SSRC")
    router_ids = {e.uri: e.id for e in ROUTER_EXTENSIONS}
    for ext in params.header_extensions:
        if router_ids.get(ext.uri, ext.id) != ext.id:
            raise ValueError(f"header extension {ext.uri} must use router id {router_ids[ext.uri]}")


__all__ = ["SubscribeSession", "consumer_extensions"]
