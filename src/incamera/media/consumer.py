"""A Consumer: one outgoing copy of a Producer for one subscriber.

It chooses which of the producer's streams (simulcast layers) to forward, switches only on
a key frame of the new layer, and rewrites SSRC, sequence number and timestamp so the
subscriber sees one continuous stream across layer switches and pauses. It remembers which
source packet each outgoing sequence number came from so NACKs can be answered with RTX
(RFC 4588) from the producer's retransmission cache.
"""

from __future__ import annotations

import contextlib
import struct
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

from .codecs.vp8 import Vp8Rewriter
from .errors import ParseError
from .rtp_parameters import MediaKind, RtpParameters

if TYPE_CHECKING:
    from .producer import Producer, ProducerStream
    from .transport import Transport

# transport.send_rtp(template, ssrc, seq, timestamp, now, patch): writes the template into a
# send slot, patches SSRC/seq/timestamp (and calls ``patch`` on the slot), protects, queues.
SendRtp = Callable[
    [bytes | bytearray, int, int, int, float, Callable[[memoryview], None] | None], None
]

HISTORY = 1024  # outgoing packets remembered for NACK -> source mapping; power of two
HISTORY_MASK = HISTORY - 1

# One steady-state consumer in a producer stream's fan-out table (see ``fast_entry``):
# (consumer, history arrays (seq, source, timestamp), state array, last-send-time cell,
# SSRC, sequence offset, timestamp offset, VP8 rewriter or None) followed by its
# transport's part (``Transport.fast_parts``).
FastEntry = tuple[object, ...]

_pack_seq_ts_ssrc = struct.Struct("!HII").pack_into

# Cells of Consumer._state (the C fan-out kernel writes the same indices).
LAST_IN_SEQ, LAST_SEQ, LAST_TS, PACKETS, OCTETS = range(5)
STATE_FIELDS = 5


def _state_field(index: int, doc: str) -> property:
    def get(self: Consumer) -> int:
        return self._state[index]

    def put(self: Consumer, value: int) -> None:
        self._state[index] = value

    return property(get, put, doc=doc)


class Consumer:
    def __init__(
        self,
        consumer_id: str,
        producer: Producer,
        rtp_parameters: RtpParameters,
        send: SendRtp,
        on_layer_change: Callable[[Consumer, int | None], None] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.id = consumer_id
        self.producer = producer
        self.kind = producer.kind
        self.rtp_parameters = rtp_parameters
        encoding = rtp_parameters.encodings[0]
        assert encoding.ssrc is not None
        self.ssrc: int = encoding.ssrc
        self.rtx_ssrc: int | None = encoding.rtx_ssrc
        codec = rtp_parameters.codecs[0]
        self.rtx_pt: int | None = codec.rtx_payload_type
        self._send = send
        self._on_layer_change = on_layer_change
        # The transport ``send`` belongs to, when it is a real one: it lets the producer
        # forward to this consumer through the transport's fan-out kernel in the steady
        # state (``fast_entry``); without it every packet goes through ``on_packet``.
        self.transport = transport
        self._paused = False
        self.closed = False
        n_layers = len(producer.streams)
        # Layer choice: preferred (what the subscriber asked for), allowed (what bandwidth
        # and load allow), target = min of both among active layers; current = forwarding.
        self.preferred_layer = n_layers - 1
        self.allowed_layer = n_layers - 1
        self.target_layer: int | None = 0 if self.kind is MediaKind.VIDEO else None
        self.current_layer: int | None = None
        self.max_size: tuple[int, int] | None = None
        # rewriting state
        self._seq_offset = 0
        self._ts_offset = 0
        # The per-packet state in arrays the C fan-out kernel writes through the buffer
        # protocol (fanout_kernel.py); the properties below read and write the same cells.
        self._state = array("q", [0]) * STATE_FIELDS
        self._sent_at = array("d", [-1.0])  # when the last outgoing packet left
        self._started = False
        self._rtx_seq = 0
        # Arrays, not lists: the C fan-out kernel writes them through the buffer protocol.
        self._hist_seq = array("q", [-1]) * HISTORY
        self._hist_src = array("q", [0]) * HISTORY  # (layer << 16) | source seq
        self._hist_ts = array("q", [0]) * HISTORY  # outgoing timestamp
        self._switch_seq = 0  # first outgoing sequence number of the current segment
        self._switched = False  # next forwarded packet is the first of a new segment
        self._vp8 = Vp8Rewriter() if producer.codec.name == "vp8" else None
        self._vp8_active = False  # rewriting starts with the first layer switch
        self._patch_keyframe = False
        self._patch_switched = False
        self._patch_offset = 0
        self._payload_offset = 0
        # statistics (packets_sent, octets_sent: properties on _state)
        self.retransmissions_sent = 0
        self.keyframe_requests = 0

    _last_in_seq = _state_field(LAST_IN_SEQ, "newest incoming sequence number forwarded")
    _last_seq = _state_field(LAST_SEQ, "last outgoing sequence number")
    _last_ts = _state_field(LAST_TS, "last outgoing timestamp")
    packets_sent = _state_field(PACKETS, "packets forwarded (RTCP sender report)")
    octets_sent = _state_field(OCTETS, "payload octets forwarded (RTCP sender report)")

    @property
    def _last_sent_at(self) -> float:
        return self._sent_at[0]

    @_last_sent_at.setter
    def _last_sent_at(self, value: float) -> None:
        self._sent_at[0] = value

    @property
    def paused(self) -> bool:
        return self._paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        self._paused = paused
        self.producer.invalidate_fanout()

    # -- layer selection ---------------------------------------------------------------

    def resync(self, now: float) -> None:
        """Start a new segment at the next usable packet (after a pause of the consumer or
        its producer): the outgoing sequence numbers and timestamps then continue from the
        last packet sent instead of jumping by what was not forwarded meanwhile; video
        resumes on a key frame, which is asked for."""
        self.current_layer = None
        self.producer.invalidate_fanout()
        if self.kind is MediaKind.VIDEO:
            self.request_keyframe(now)

    def set_preferred_layer(self, layer: int) -> None:
        self.preferred_layer = max(0, min(layer, len(self.producer.streams) - 1))

    def layer_for_size(self, width: int, height: int) -> int:
        """The smallest layer at least ``width`` x ``height``, or the top layer.

        Layer sizes come from key frames (VP8 carries its size in clear) or, until one
        was seen, from the top layer's size and each encoding's scale-down factor.
        """
        streams = self.producer.streams
        top = streams[-1]
        known_top = (top.width, top.height) if top.width else None
        for stream in streams:
            if stream.width:
                size = (stream.width, stream.height)
            elif known_top is not None:
                scale = stream.encoding.scale_resolution_down_by or 1.0
                size = (int(known_top[0] / scale), int(known_top[1] / scale))
            else:
                # No size known at all: assume a 1280x720 top layer.
                scale = stream.encoding.scale_resolution_down_by or 1.0
                size = (int(1280 / scale), int(720 / scale))
            if size[0] >= width and size[1] >= height:
                return stream.layer
        return top.layer

    def choose_target(self, now: float) -> int | None:
        """Recompute the target layer: the highest active layer <= min(preferred, allowed).

        If no active layer fits, the lowest active one is used (a picture beats a freeze).
        """
        if self.kind is not MediaKind.VIDEO:
            return None
        limit = min(self.preferred_layer, self.allowed_layer)
        active = [s.layer for s in self.producer.streams if s.is_active(now)]
        if not active:
            return self.target_layer
        fitting = [layer for layer in active if layer <= limit]
        target = max(fitting) if fitting else min(active)
        if target != self.target_layer:
            self.target_layer = target
            if target != self.current_layer:
                self.request_keyframe(now)
        return target

    def request_keyframe(self, now: float) -> None:
        layer = self.target_layer if self.target_layer is not None else self.current_layer
        if layer is not None and self.producer.request_keyframe(layer, now):
            self.keyframe_requests += 1

    # -- the hot path ------------------------------------------------------------------

    def fast_entry(self, layer: int) -> FastEntry | None:
        """This consumer's entry in the fan-out table of the producer's ``layer``, or None
        when a packet of that layer needs ``on_packet``'s decisions (paused, closed, not
        forwarding that layer, no transport able to send).

        The entry holds what does not change from packet to packet; whatever changes it
        (pause, layer switch, close, the transport's address or keys) invalidates the
        producer's tables, and they are rebuilt at the next packet."""
        transport = self.transport
        if (
            transport is None
            or self._paused
            or self.closed
            or self.current_layer != layer
            or not self._started
            or (self._vp8_active and self._switched)  # the switch packet is on_packet's
        ):
            return None
        parts = transport.fast_parts()
        if parts is None:
            return None
        return (
            self,
            self._hist_seq,
            self._hist_src,
            self._hist_ts,
            self._state,
            self._sent_at,
            self.ssrc,
            self._seq_offset,
            self._ts_offset,
            # picture ids rewritten (from the first layer switch on), as _patch_vp8 would
            self._vp8 if self._vp8_active else None,
            *parts,
        )

    def fan_out_kernel(self, entries: list[FastEntry]) -> Callable[..., None] | None:
        """The kernel that forwards to ``entries`` (this consumer's among them)."""
        return None if self.transport is None else self.transport.fan_out_kernel(entries)

    def on_packet(
        self,
        stream: ProducerStream,
        template: bytes | bytearray,
        seq: int,
        timestamp: int,
        keyframe: bool,
        marker: bool,
        now: float,
    ) -> None:
        if self._paused or self.closed:
            return
        layer = stream.layer
        if layer != self.current_layer:
            if self.kind is MediaKind.VIDEO:
                if layer != self.target_layer or not keyframe:
                    if self.current_layer is None and layer == self.target_layer:
                        self.request_keyframe(now)
                    return
            elif self.current_layer is not None:
                return
            self._switch_to(layer, seq, timestamp, now)

        state = self._state  # the cells behind _last_in_seq, _last_seq, ... (per packet)
        if ((seq - state[LAST_IN_SEQ]) & 0xFFFF) >= 0x8000:
            # An out-of-order older packet: forward it only if it maps after the switch
            # point of the current segment.
            if ((seq + self._seq_offset - self._switch_seq) & 0xFFFF) >= 0x8000:
                return
        else:
            state[LAST_IN_SEQ] = seq

        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
        patch = None
        if self._vp8_active:
            self._patch_keyframe = keyframe
            self._patch_switched, self._switched = self._switched, False
            self._patch_offset = self._payload_offset
            patch = self._patch_vp8
        slot = out_seq & HISTORY_MASK
        self._hist_seq[slot] = out_seq
        self._hist_src[slot] = (layer << 16) | seq
        self._hist_ts[slot] = out_ts
        if ((out_seq - state[LAST_SEQ]) & 0xFFFF) < 0x8000:
            state[LAST_SEQ] = out_seq
            state[LAST_TS] = out_ts
            self._sent_at[0] = now
        state[PACKETS] += 1
        state[OCTETS] += len(template) - self._payload_offset
        self._send(template, self.ssrc, out_seq, out_ts, now, patch)

    def _patch_vp8(self, view: memoryview) -> None:
        # An unreadable descriptor is forwarded as it is.
        with contextlib.suppress(ParseError, ValueError):
            self._vp8.rewrite_packet(  # type: ignore[union-attr]
                view,  # type: ignore[arg-type]
                self._patch_offset,
                keyframe=self._patch_keyframe,
                switched=self._patch_switched,
            )

    def _switch_to(self, layer: int, seq: int, timestamp: int, now: float) -> None:
        from .producer import template_payload_offset

        self._payload_offset = template_payload_offset(self.kind)
        if not self._started:
            self._seq_offset = 0
            self._ts_offset = 0
            self._started = True
            # The first packet must count as newer than the "last sent" one whatever its
            # sequence number (from 0, one at or above 0x8000 looked older, and a later
            # switch then restarted the numbering near 0).
            self._last_seq = (seq - 1) & 0xFFFF
        else:
            # Continue right after the last sent packet; advance the timestamp by the time
            # that passed, so the receiver's jitter buffer sees a plausible clock.
            elapsed = max(1, int((now - self._last_sent_at) * self.producer.clock_rate))
            self._seq_offset = (self._last_seq + 1 - seq) & 0xFFFF
            self._ts_offset = (self._last_ts + elapsed - timestamp) & 0xFFFFFFFF
        self._switch_seq = (seq + self._seq_offset) & 0xFFFF
        self._last_in_seq = seq
        previous = self.current_layer
        self.current_layer = layer
        self.producer.invalidate_fanout()
        self._switched = True
        if self._vp8 is not None and not self._vp8_active and previous is not None:
            # Picture ids need rewriting from the first switch on: seed the rewriter with
            # the last picture sent so the new layer continues from it.
            self._seed_vp8(now)
            self._vp8_active = True
        if self._on_layer_change is not None and previous != layer and self.kind is MediaKind.VIDEO:
            self._on_layer_change(self, layer)

    # -- feedback from the subscriber --------------------------------------------------

    def on_nack(self, lost: list[int], now: float) -> int:
        """Retransmit what is still cached, as RTX if negotiated (RFC 4588), else plain."""
        from . import rtp

        sent = 0
        for out_seq in lost:
            slot = out_seq & HISTORY_MASK
            if self._hist_seq[slot] != out_seq:
                continue
            src = self._hist_src[slot]
            layer = src >> 16
            original = self.producer.retransmission(layer, src & 0xFFFF, now)
            if original is None:
                continue
            pt = self.producer.pt_map.get(original[1] & 0x7F)
            if pt is None:
                continue
            template = self.producer.build_template(original, rtp.header_size(original), pt, None)
            out_ts = self._hist_ts[slot]
            patch = None
            if self._vp8_active and layer == self.current_layer:
                self._patch_keyframe = self._patch_switched = False
                self._patch_offset = self._payload_offset
                patch = self._patch_vp8
            self.retransmissions_sent += 1
            sent += 1
            if self.rtx_ssrc is None or self.rtx_pt is None:
                self._send(template, self.ssrc, out_seq, out_ts, now, patch)
                continue
            # RTX: own SSRC and sequence; the payload starts with the original sequence
            # number (RFC 4588 section 4).
            offset = self._payload_offset
            rtx = bytearray(template[:offset]) + out_seq.to_bytes(2, "big") + template[offset:]
            rtx[1] = (rtx[1] & 0x80) | self.rtx_pt
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            self._patch_offset = offset + 2  # the descriptor follows the OSN
            self._send(rtx, self.rtx_ssrc, self._rtx_seq, out_ts, now, patch)
        return sent

    def _seed_vp8(self, now: float) -> None:
        from . import rtp

        src = self._hist_src[self._last_seq & HISTORY_MASK]
        if self._hist_seq[self._last_seq & HISTORY_MASK] != self._last_seq:
            return
        original = self.producer.retransmission(src >> 16, src & 0xFFFF, now)
        if original is None:
            return
        with contextlib.suppress(ParseError, ValueError):
            self._vp8.rewrite_packet(  # type: ignore[union-attr]
                bytearray(original), rtp.header_size(original), keyframe=True, switched=False
            )

    def on_keyframe_request(self, now: float) -> None:
        self.request_keyframe(now)

    def sender_report_times(self) -> tuple[int, int] | None:
        """(ntp, rtp timestamp) for this consumer's SR, translated from the publisher's."""
        if self.current_layer is None:
            return None
        sr = self.producer.streams[self.current_layer].sender_report
        if sr is None:
            return None
        ntp, rtp_ts = sr
        return ntp, (rtp_ts + self._ts_offset) & 0xFFFFFFFF

    def producer_closed(self) -> None:
        self.closed = True
        self.producer.invalidate_fanout()

    def close(self) -> None:
        self.closed = True
        if self in self.producer.consumers:
            self.producer.consumers.remove(self)
        self.producer.invalidate_fanout()
