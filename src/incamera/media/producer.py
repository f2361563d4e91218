"""A Producer: one incoming track (audio, camera with simulcast layers, or screen share).

Packets arrive from the publisher's Transport already SRTP-unprotected. For each packet the
producer updates the stream's receive state (loss detection for upstream NACKs, the
retransmission cache, receive statistics, bit rate), detects key frames, and builds one
*template*: the packet re-headed with the router's payload type and the router's
header-extension layout, shared by every Consumer of the fan-out. Consumers then only copy
the template and patch SSRC, sequence number and timestamp in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import rtp
from .audio_level import parse_audio_level
from .capabilities import router_codec_for
from .codecs import keyframe_detector
from .codecs.vp8 import keyframe_size as vp8_keyframe_size
from .errors import MediaError, ParseError
from .nack_generator import NackGenerator
from .packet_cache import PacketCache
from .rate_meter import RateMeter
from .receive_stats import ReceiveStats
from .rtp_parameters import Encoding, ExtensionUri, MediaKind, RtpParameters

if TYPE_CHECKING:
    from .consumer import Consumer, FastEntry

    # (steady consumers' entries, the other consumers, the send kernel for the entries)
    Fanout = tuple[list[FastEntry], list[Consumer], Callable[..., None] | None]

KEYFRAME_REQUEST_INTERVAL = 0.3  # at most one PLI/FIR upstream per stream per 300 ms
LAYER_ACTIVE_TIMEOUT = 2.0  # a layer with no packet for this long counts as inactive

# Router extension layout of forwarded packets (ids from capabilities.ROUTER_EXTENSIONS):
# one-byte form (RFC 8285 section 4.2): transport-cc (id 4, 2 bytes), audio level (id 2, 1 byte).
TWCC_EXT_ID = 4
AUDIO_LEVEL_EXT_ID = 2
VIDEO_EXT_BLOCK = bytes([0xBE, 0xDE, 0x00, 0x01, (TWCC_EXT_ID << 4) | 1, 0, 0, 0])
AUDIO_EXT_HEAD = bytes([0xBE, 0xDE, 0x00, 0x02, (TWCC_EXT_ID << 4) | 1, 0, 0])
TWCC_OFFSET = 12 + 4 + 1  # where a consumer's transport writes its transport-wide sequence


class ProducerStream:
    """One RTP stream of a producer: a simulcast layer, or the only stream."""

    __slots__ = (
        "active_since",
        "cache",
        "encoding",
        "fanout",
        "height",
        "keyframe_requested_at",
        "last_packet_at",
        "layer",
        "nacks",
        "newest_seq",
        "rate",
        "rid",
        "rtx_ssrc",
        "sender_report",
        "ssrc",
        "stats",
        "width",
    )

    def __init__(self, layer: int, encoding: Encoding, clock_rate: int) -> None:
        self.layer = layer
        self.encoding = encoding
        self.ssrc: int | None = encoding.ssrc
        self.rid = encoding.rid
        self.rtx_ssrc: int | None = encoding.rtx_ssrc
        self.cache = PacketCache()
        self.nacks = NackGenerator()
        self.stats = ReceiveStats(clock_rate)
        self.rate = RateMeter()
        self.keyframe_requested_at = -1.0
        self.last_packet_at = -1.0
        self.active_since = -1.0
        self.width = 0
        self.height = 0
        # (ntp timestamp, rtp timestamp) of the publisher's latest sender report
        self.sender_report: tuple[int, int] | None = None
        # The newest sequence number handed to the consumers (-1: none yet), and the
        # steady-state fan-out table built from them (None: rebuild at the next packet;
        # see ``Producer.receive``).
        self.newest_seq = -1
        self.fanout: Fanout | None = None

    def is_active(self, now: float) -> bool:
        return self.last_packet_at >= 0 and now - self.last_packet_at < LAYER_ACTIVE_TIMEOUT


class Producer:
    def __init__(
        self,
        producer_id: str,
        transport_id: str,
        rtp_parameters: RtpParameters,
        request_keyframe: Callable[[int], None],
        on_audio_level: Callable[[str, int, bool, float], None] | None = None,
    ) -> None:
        self.id = producer_id
        self.transport_id = transport_id
        self.rtp_parameters = rtp_parameters
        self.kind = rtp_parameters.kind
        self.paused = False
        self.closed = False
        self.consumers: list[Consumer] = []
        self._request_keyframe = request_keyframe
        self._on_audio_level = on_audio_level
        if not rtp_parameters.codecs:
            raise MediaError("a producer needs at least one codec")
        # publisher payload type -> router payload type; rtx payload type -> primary
        self.pt_map: dict[int, int] = {}
        self.rtx_pt_map: dict[int, int] = {}
        for codec in rtp_parameters.codecs:
            router_codec = router_codec_for(codec)
            if router_codec is None:
                continue
            self.pt_map[codec.payload_type] = router_codec.payload_type
            if codec.rtx_payload_type is not None:
                self.rtx_pt_map[codec.rtx_payload_type] = codec.payload_type
        if not self.pt_map:
            raise MediaError("none of the producer's codecs can be forwarded")
        first = next(c for c in rtp_parameters.codecs if c.payload_type in self.pt_map)
        self.codec = first
        self.clock_rate = first.clock_rate
        self.is_keyframe = keyframe_detector(first.name)
        self._is_vp8 = first.name == "vp8"
        self.streams = [
            ProducerStream(i, enc, self.clock_rate)
            for i, enc in enumerate(rtp_parameters.encodings)
        ]
        self.audio_level_id = rtp_parameters.extension_id(ExtensionUri.AUDIO_LEVEL)
        self.mid_id = rtp_parameters.extension_id(ExtensionUri.MID)
        self.rid_id = rtp_parameters.extension_id(ExtensionUri.RID)
        self.rrid_id = rtp_parameters.extension_id(ExtensionUri.REPAIRED_RID)
        self.twcc_id = rtp_parameters.extension_id(ExtensionUri.TRANSPORT_CC)
        self.packets_received = 0
        self.bytes_received = 0
        # Constants of this producer's templates for the fan-out kernel: where the payload
        # starts and the extension block's first word (profile and length, RFC 8285).
        self._payload_offset = template_payload_offset(self.kind)
        self._fanout_epoch = 0  # counts invalidations (see receive)
        self._ext_word = int.from_bytes(
            (AUDIO_EXT_HEAD if self.kind is MediaKind.AUDIO else VIDEO_EXT_BLOCK)[:4], "big"
        )

    # -- stream resolution -------------------------------------------------------------

    def stream_for_rid(self, rid: str) -> ProducerStream | None:
        for stream in self.streams:
            if stream.rid == rid:
                return stream
        return None

    def stream_for_ssrc(self, ssrc: int) -> tuple[ProducerStream, bool] | None:
        """(stream, is_rtx) for an SSRC declared in the parameters."""
        for stream in self.streams:
            if stream.ssrc == ssrc:
                return stream, False
            if stream.rtx_ssrc == ssrc:
                return stream, True
        return None

    # -- the hot path ------------------------------------------------------------------

    def receive(self, stream: ProducerStream, packet: bytes, is_rtx: bool, now: float) -> None:
        """One SRTP-unprotected RTP packet of ``stream`` (its RTX stream if ``is_rtx``)."""
        hsize = rtp.header_size(packet)  # raises ParseError for a truncated header
        b0 = packet[0]
        if b0 & 0x20:  # padding (RFC 3550 5.1): the last byte counts the padding octets
            pad = packet[-1]
            if pad == 0 or hsize + pad > len(packet):
                raise ParseError("bad RTP padding")
            payload_end = len(packet) - pad
        else:
            payload_end = len(packet)
        pt = packet[1] & 0x7F
        if is_rtx:
            # RFC 4588 section 4: the payload starts with the original sequence number.
            if payload_end - hsize < 2:
                return  # padding-only probe packet on the RTX stream
            osn = (packet[hsize] << 8) | packet[hsize + 1]
            primary_pt = self.rtx_pt_map.get(pt)
            if primary_pt is None or stream.ssrc is None:
                return
            packet = (
                bytes([packet[0] & 0xDF, (packet[1] & 0x80) | primary_pt])
                + osn.to_bytes(2, "big")
                + packet[4:8]
                + stream.ssrc.to_bytes(4, "big")
                + packet[12:hsize]
                + packet[hsize + 2 : payload_end]
            )
            payload_end = len(packet)
            pt = primary_pt
            seq = osn
            if seq in stream.cache:
                return  # already have it
        else:
            seq = (packet[2] << 8) | packet[3]
            if payload_end == hsize:
                return  # padding-only packet: nothing to forward
        router_pt = self.pt_map.get(pt)
        if router_pt is None:
            return
        timestamp = int.from_bytes(packet[4:8], "big")
        stream.nacks.on_packet(seq, now)
        if not is_rtx:
            stream.stats.on_packet(seq, timestamp, now)
        stream.cache.put(seq, packet, now)
        stream.rate.add(len(packet), now)
        if stream.last_packet_at < 0 or now - stream.last_packet_at > LAYER_ACTIVE_TIMEOUT:
            stream.active_since = now
        stream.last_packet_at = now
        self.packets_received += 1
        self.bytes_received += len(packet)

        keyframe = False
        if (
            self.is_keyframe is not None
            and payload_end > hsize
            # VP8: only the start of partition 0 (S=1, PID=0, RFC 7741 section 4.2) can
            # begin a key frame; that one bit test spares the descriptor parse of all
            # the other packets (for a malformed descriptor the answer is False either way).
            and (not self._is_vp8 or packet[hsize] & 0x17 == 0x10)
        ):
            payload = memoryview(packet)[hsize:payload_end]
            try:
                keyframe = self.is_keyframe(payload)  # type: ignore[arg-type]
            except ParseError:
                keyframe = False
            if keyframe and self._is_vp8:
                size = vp8_keyframe_size(payload)
                if size is not None:
                    stream.width, stream.height = size

        level_ext = None
        if self.audio_level_id is not None:
            loc = rtp.find_extension(packet, self.audio_level_id)
            if loc is not None and loc[1] >= 1:
                level_ext = packet[loc[0]]
                if self._on_audio_level is not None:
                    voice, level = parse_audio_level(bytes([level_ext]))
                    self._on_audio_level(self.id, level, voice, now)

        newest = stream.newest_seq
        in_order = newest < 0 or 0 < ((seq - newest) & 0xFFFF) < 0x8000
        if in_order:
            stream.newest_seq = seq
        if self.paused or not self.consumers:
            return
        template = self.build_template(packet, hsize, router_pt, level_ext)
        fanout = stream.fanout
        if fanout is None:
            epoch = self._fanout_epoch
            fanout = self._build_fanout(stream)
            if self._fanout_epoch == epoch:
                stream.fanout = fanout
            else:  # invalidated while being built: its entries may be stale already
                fanout = ([], list(self.consumers), None)
        fast, slow, kernel = fanout
        if fast:
            if in_order and newest >= 0 and kernel is not None:
                # The steady state: every consumer in ``fast`` forwards this stream and has
                # seen every packet up to ``newest``, so the packet is its next one.
                kernel(
                    fast,
                    template,
                    seq,
                    timestamp,
                    (stream.layer << 16) | seq,
                    self._payload_offset,
                    self._ext_word,
                    keyframe,
                    now,
                )
            else:  # reordered (or the first packet): each consumer decides
                marker = bool(packet[1] & 0x80)
                for entry in fast:
                    entry[0].on_packet(stream, template, seq, timestamp, keyframe, marker, now)
        if slow:
            marker = bool(packet[1] & 0x80)
            for consumer in slow:
                consumer.on_packet(stream, template, seq, timestamp, keyframe, marker, now)

    def _build_fanout(self, stream: ProducerStream) -> Fanout:
        """Split the consumers for ``stream``: those in the steady state (forwarding this
        layer, not paused, their transport able to send) get a precomputed entry for the
        transport's fan-out kernel; the others go through ``Consumer.on_packet``."""
        fast: list[FastEntry] = []
        slow: list[Consumer] = []
        first = None
        for consumer in self.consumers:
            entry = consumer.fast_entry(stream.layer)
            if entry is None:
                slow.append(consumer)
            else:
                fast.append(entry)
                if first is None:
                    first = consumer
        kernel = first.fan_out_kernel(fast) if first is not None else None
        return fast, slow, kernel

    def invalidate_fanout(self) -> None:
        """A consumer's or its transport's state changed: rebuild the fan-out tables."""
        self._fanout_epoch += 1
        for stream in self.streams:
            stream.fanout = None

    def build_template(
        self, packet: bytes, hsize: int, router_pt: int, level_ext: int | None
    ) -> bytes:
        """The packet with the router's payload type and extension layout, shared by every
        consumer (see the module docstring). Built with one allocation and copy: the
        payload is ~1200 bytes, and every extra concatenation copied it again."""
        b0 = 0x90 | (packet[0] & 0x20)  # V=2, X=1, keep P; CSRCs are not forwarded
        b1 = (packet[1] & 0x80) | router_pt
        if self.kind is MediaKind.AUDIO:
            level = 0x7F if level_ext is None else level_ext
            ext = AUDIO_EXT_HEAD + bytes([(AUDIO_LEVEL_EXT_ID << 4), level, 0, 0, 0])
        else:
            ext = VIDEO_EXT_BLOCK
        view = memoryview(packet)
        return b"".join((bytes((b0, b1)), view[2:12], ext, view[hsize:]))

    # -- feedback ------------------------------------------------------------------------

    def request_keyframe(self, layer: int, now: float) -> bool:
        """Ask the publisher for a key frame on ``layer``; rate-limited per stream."""
        if self.kind is not MediaKind.VIDEO or not 0 <= layer < len(self.streams):
            return False
        stream = self.streams[layer]
        if now - stream.keyframe_requested_at < KEYFRAME_REQUEST_INTERVAL:
            return False
        if stream.ssrc is None:
            return False
        stream.keyframe_requested_at = now
        self._request_keyframe(stream.ssrc)
        return True

    def retransmission(self, layer: int, seq: int, now: float) -> bytes | None:
        if not 0 <= layer < len(self.streams):
            return None
        return self.streams[layer].cache.get(seq, now)

    def active_layers(self, now: float) -> list[ProducerStream]:
        return [s for s in self.streams if s.is_active(now)]

    def close(self) -> None:
        self.closed = True
        for consumer in list(self.consumers):
            consumer.producer_closed()
        self.consumers.clear()
        self.invalidate_fanout()


def template_payload_offset(kind: MediaKind) -> int:
    """Where the payload starts in a template built by ``Producer.build_template``."""
    return 12 + (len(AUDIO_EXT_HEAD) + 5 if kind is MediaKind.AUDIO else len(VIDEO_EXT_BLOCK))
