"""A Transport: one peer's ICE-lite + DTLS-SRTP session on the worker's UDP port.

Datagrams reach a transport already demultiplexed (see ``endpoint.py``). The transport
answers ICE checks, runs the DTLS handshake as server, and once SRTP keys exist it
unprotects incoming RTP for its producers and RTCP for both its producers and consumers,
and protects what its consumers send. ``tick()`` runs its timers: upstream NACKs, receiver
reports, transport-wide congestion feedback, REMB, sender reports, consent freshness.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import fanout_kernel, rtcp, rtp, stun
from .api import (
    DtlsParameters,
    DtlsRole,
    IceCandidate,
    IceParameters,
    TransportInfo,
    TransportState,
)
from .bandwidth import SENT_MASK, DownlinkEstimator, TwccRecorder
from .certificate import Certificate
from .clock import monotonic, ntp_now
from .consumer import HISTORY_MASK
from .dtls import DtlsEndpoint, DtlsState
from .errors import MediaError, ParseError
from .ice import IceLiteAgent, IceResult, IceState
from .producer import TWCC_EXT_ID, TWCC_OFFSET, Producer, ProducerStream
from .srtp import SRTP_TRAILER, SrtpError, SrtpSession, protect_error, srtp_protect_raw
from .tap import MediaTap
from .udp_batch import IOV_LEN_OFFSET, IOV_SIZE, MMSG_SIZE, pack_iov_len, pack_name

if TYPE_CHECKING:
    from .consumer import Consumer, FastEntry
    from .counters import Counters
    from .udp_batch import BatchUdp, PlainUdp

Address = tuple[str, int]

REPORT_INTERVAL = 1.0  # RTCP SR/RR/REMB
TWCC_INTERVAL = 0.1  # transport-wide feedback to publishers
PUBLISHER_MAX_BITRATE = 10_000_000  # REMB cap sent to publishers
_pack_seq_ts_ssrc = struct.Struct("!HII").pack_into
# The fan-out kernel's header write, at offset 2 of a template: sequence number, timestamp,
# SSRC, the extension block's first word, the transport-cc element's id/length byte and
# the transport-wide sequence number (producer.py: TWCC_OFFSET is 17 for both layouts).
_pack_head = struct.Struct("!HIIIBH").pack_into
_TWCC_ELEMENT = (TWCC_EXT_ID << 4) | 1
assert TWCC_OFFSET == 17


class Transport:
    def __init__(
        self,
        transport_id: str,
        router_id: str,
        certificate: Certificate,
        candidates: tuple[IceCandidate, ...],
        send_datagram: Callable[[bytes, Address], None],
        counters: Counters,
        on_state: Callable[[Transport, TransportState, str], None],
        io: BatchUdp | PlainUdp,
        slot_pointers: list[object],
        request_flush: Callable[[], None],
    ) -> None:
        self.id = transport_id
        self.router_id = router_id
        self.tap: MediaTap | None = None  # test-only (media/tap.py)
        self.ice = IceLiteAgent()
        self.dtls = DtlsEndpoint(certificate, DtlsRole.SERVER)
        self.dtls.start()
        self.srtp: SrtpSession | None = None
        self.state = TransportState.NEW
        self._certificate = certificate
        self._candidates = candidates
        self._send_datagram = send_datagram
        self._io = io
        self._slot_pointers = slot_pointers
        self._request_flush = request_flush
        self._dest_addr: Address | None = None
        self._dest: object = None
        self._counters = counters
        self._on_state = on_state
        self.producers: dict[str, Producer] = {}
        self._by_ssrc: dict[int, tuple[Producer, ProducerStream, bool]] = {}
        self._by_mid: dict[str, Producer] = {}
        self.consumers: dict[str, Consumer] = {}
        self._consumer_by_ssrc: dict[int, Consumer] = {}
        self.twcc = TwccRecorder()
        self._twcc_ext_ids: set[int] = set()
        # The media SSRC of our transport-wide feedback: the last one of the publisher's
        # streams that sent. libwebrtc hands feedback to its congestion controller only when
        # that SSRC is one of its own senders: feedback for SSRC 0 is dropped and its
        # estimate decays.
        self._twcc_media_ssrc = 0
        self.downlink = DownlinkEstimator()
        self._next_report = 0.0
        self._next_twcc = 0.0
        self.sender_ssrc = int.from_bytes(certificate.fingerprint().value[:8].encode(), "big")
        self.sender_ssrc &= 0xFFFFFFFF
        self.connected_at: float | None = None

    # -- control -------------------------------------------------------------------------

    def info(self) -> TransportInfo:
        return TransportInfo(
            id=self.id,
            ice_parameters=IceParameters(self.ice.ufrag, self.ice.password, ice_lite=True),
            ice_candidates=self._candidates,
            dtls_parameters=DtlsParameters(
                DtlsRole.SERVER, (self._certificate.fingerprint("sha-256"),)
            ),
        )

    def connect(self, remote_dtls: DtlsParameters, remote_ufrag: str | None = None) -> None:
        if not remote_dtls.fingerprints:
            raise MediaError("the peer's DTLS fingerprints are needed")
        if remote_ufrag:
            self.ice.set_remote_ufrag(remote_ufrag)
        known = self.dtls.remote_fingerprints
        if known is not None and set(known) == set(remote_dtls.fingerprints):
            return  # a renegotiation (e.g. ICE restart) with the same certificate
        if known is not None and self.dtls.state is not DtlsState.CONNECTING:
            raise MediaError("the peer's DTLS certificate cannot change on a transport")
        self._send_all(self.dtls.set_remote_fingerprints(remote_dtls.fingerprints))
        self._check_dtls()

    def add_producer(self, producer: Producer) -> None:
        if producer.id in self.producers:
            raise MediaError(f"producer {producer.id} exists")
        self.producers[producer.id] = producer
        self._by_mid[producer.rtp_parameters.mid] = producer
        for stream in producer.streams:
            if stream.ssrc is not None:
                self._by_ssrc[stream.ssrc] = (producer, stream, False)
            if stream.rtx_ssrc is not None:
                self._by_ssrc[stream.rtx_ssrc] = (producer, stream, True)
        if producer.twcc_id is not None:
            self._twcc_ext_ids.add(producer.twcc_id)

    def remove_producer(self, producer: Producer) -> None:
        self.producers.pop(producer.id, None)
        self._by_mid.pop(producer.rtp_parameters.mid, None)
        for ssrc in [s for s, entry in self._by_ssrc.items() if entry[0] is producer]:
            del self._by_ssrc[ssrc]

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers[consumer.id] = consumer
        self._consumer_by_ssrc[consumer.ssrc] = consumer
        if consumer.rtx_ssrc is not None:
            self._consumer_by_ssrc[consumer.rtx_ssrc] = consumer

    def remove_consumer(self, consumer: Consumer) -> None:
        self.consumers.pop(consumer.id, None)
        self._consumer_by_ssrc.pop(consumer.ssrc, None)
        if consumer.rtx_ssrc is not None:
            self._consumer_by_ssrc.pop(consumer.rtx_ssrc, None)

    def close(self) -> None:
        if self.state is TransportState.CLOSED:
            return
        self._send_all(self.dtls.close())
        self.ice.close()
        self._set_state(TransportState.CLOSED, "closed")
        self._media_changed()

    def forget_destination(self) -> None:
        """Drop the cached kernel form of the selected address (see udp_batch)."""
        self._dest_addr = None
        self._dest = None

    def _media_changed(self) -> None:
        """The selected address or the SRTP session changed: the fan-out tables of the
        producers this transport's consumers forward hold the old ones, so drop them."""
        for consumer in self.consumers.values():
            consumer.producer.invalidate_fanout()

    # -- incoming ------------------------------------------------------------------------

    def on_stun(self, message: stun.StunMessage, raw: bytes, addr: Address, now: float) -> bool:
        """Returns True when ``addr`` became the selected address (map it to us)."""
        result, response = self.ice.handle(message, raw, addr, now)
        if response is not None:
            self._send_datagram(response, addr)
        if result is IceResult.REJECTED:
            self._counters.ice_rejected += 1
        if result is IceResult.NOMINATED:
            self._media_changed()  # a new destination for the consumers' packets
            if self.state is TransportState.NEW:
                self._set_state(TransportState.CONNECTING, "ice nominated")
            elif self.state is TransportState.DISCONNECTED and self.srtp is not None:
                self._set_state(TransportState.CONNECTED, "consent regained")
        return result is IceResult.NOMINATED

    def on_dtls(self, data: bytes, now: float) -> None:
        self._send_all(self.dtls.feed(data))
        self._check_dtls()

    def _check_dtls(self) -> None:
        srtp = self.srtp
        try:
            self._update_dtls()
        finally:
            if self.srtp is not srtp:
                self._media_changed()

    def _update_dtls(self) -> None:
        state = self.dtls.state
        if state is DtlsState.CONNECTED and self.srtp is None:
            self.srtp = SrtpSession(self.dtls.srtp_keys())
            self._set_state(TransportState.CONNECTED, f"dtls connected ({self.srtp.profile})")
        elif state is DtlsState.FAILED and self.state is not TransportState.FAILED:
            self.srtp = None
            self._set_state(TransportState.FAILED, self.dtls.failure_reason)
        elif state is DtlsState.CLOSED and self.state not in (
            TransportState.CLOSED,
            TransportState.DISCONNECTED,
        ):
            self.srtp = None
            self._set_state(TransportState.DISCONNECTED, "dtls closed by peer")

    def on_srtp(self, data: bytes, now: float) -> None:
        srtp = self.srtp
        if srtp is None:
            self._counters.srtp_before_keys += 1
            return
        counters = self._counters
        if 191 < data[1] < 224:  # RTCP (RFC 5761 section 4)
            try:
                plain = srtp.unprotect_rtcp(data)
            except SrtpError as exc:
                counters.count_srtp_error(exc.reason)
                return
            self._on_rtcp(plain, now)
            return
        try:
            plain = srtp.unprotect(data)
        except SrtpError as exc:
            counters.count_srtp_error(exc.reason)
            return
        counters.rtp_received += 1
        ssrc = int.from_bytes(plain[8:12], "big")
        if self._twcc_ext_ids:
            # Transport-wide: every packet counts, also those on SSRCs not bound (yet) to a
            # stream, such as the publisher's bandwidth probes on RTX padding; a packet left
            # out of the feedback reads as lost to the publisher's congestion controller.
            for ext_id in self._twcc_ext_ids:
                loc = rtp.find_extension(plain, ext_id)
                if loc is not None and loc[1] == 2:
                    self.twcc.on_packet((plain[loc[0]] << 8) | plain[loc[0] + 1], now)
                    break
        entry = self._by_ssrc.get(ssrc)
        if entry is None:
            entry = self._resolve_ssrc(plain, ssrc)
            if entry is None:
                counters.rtp_unknown_ssrc += 1
                return
        self._twcc_media_ssrc = ssrc
        producer, stream, is_rtx = entry
        if self.tap is not None:
            self.tap.record(plain, is_rtx)
        producer.receive(stream, plain, is_rtx, now)

    def _resolve_ssrc(
        self, packet: bytes, ssrc: int
    ) -> tuple[Producer, ProducerStream, bool] | None:
        """Bind an unknown SSRC to a producer stream by its MID and RID/repaired-RID
        header extensions (RFC 8843 section 15, RFC 8852)."""
        for producer in self.producers.values():
            declared = producer.stream_for_ssrc(ssrc)
            if declared is not None:
                entry = (producer, declared[0], declared[1])
                self._by_ssrc[ssrc] = entry
                return entry
        producer = None
        for mid_id in {p.mid_id for p in self.producers.values() if p.mid_id is not None}:
            loc = rtp.find_extension(packet, mid_id)
            if loc is not None:
                mid = bytes(packet[loc[0] : loc[0] + loc[1]]).decode("ascii", "replace")
                producer = self._by_mid.get(mid)
                if producer is not None:
                    break
        if producer is None:
            if len(self.producers) == 1:
                producer = next(iter(self.producers.values()))
            else:
                return None
        is_rtx = (packet[1] & 0x7F) in producer.rtx_pt_map
        stream: ProducerStream | None = None
        rid_id = producer.rrid_id if is_rtx else producer.rid_id
        if rid_id is not None:
            loc = rtp.find_extension(packet, rid_id)
            if loc is not None:
                rid = bytes(packet[loc[0] : loc[0] + loc[1]]).decode("ascii", "replace")
                stream = producer.stream_for_rid(rid)
        if stream is None and len(producer.streams) == 1:
            stream = producer.streams[0]
        if stream is None:
            return None
        # A stream keeps the SSRC it has: a stray SSRC (padding, a probe, a forged stream of
        # the same peer) must not take over where NACKs and PLIs for the stream are sent.
        if is_rtx:
            if stream.rtx_ssrc is not None:
                return None
            stream.rtx_ssrc = ssrc
        else:
            if stream.ssrc is not None:
                return None
            stream.ssrc = ssrc
        entry = (producer, stream, is_rtx)
        self._by_ssrc[ssrc] = entry
        return entry

    def _on_rtcp(self, data: bytes, now: float) -> None:
        try:
            packets = rtcp.parse_compound(data)
        except ParseError:
            self._counters.rtcp_malformed += 1
            return
        self._counters.rtcp_received += 1
        for packet in packets:
            if isinstance(packet, rtcp.SenderReport):
                entry = self._by_ssrc.get(packet.ssrc)
                if entry is not None:
                    stream = entry[1]
                    stream.sender_report = (packet.ntp_timestamp, packet.rtp_timestamp)
                    stream.stats.on_sender_report(packet.ntp_timestamp, now)
                self._on_report_blocks(packet.reports, now)
            elif isinstance(packet, rtcp.ReceiverReport):
                self._on_report_blocks(packet.reports, now)
            elif isinstance(packet, rtcp.GenericNack):
                consumer = self._consumer_by_ssrc.get(packet.media_ssrc)
                if consumer is not None:
                    self._counters.nacks_received += 1
                    self._counters.retransmissions_sent += consumer.on_nack(packet.lost, now)
            elif isinstance(packet, rtcp.PictureLossIndication):
                consumer = self._consumer_by_ssrc.get(packet.media_ssrc)
                if consumer is not None:
                    self._counters.plis_received += 1
                    consumer.on_keyframe_request(now)
            elif isinstance(packet, rtcp.FullIntraRequest):
                for ssrc, _seq in packet.entries:
                    consumer = self._consumer_by_ssrc.get(ssrc)
                    if consumer is not None:
                        consumer.on_keyframe_request(now)
            elif isinstance(packet, rtcp.Remb):
                self.downlink.on_remb(packet.bitrate)
            elif isinstance(packet, rtcp.TransportCcFeedback):
                self.downlink.on_feedback(packet.packets, now)

    def _on_report_blocks(self, reports: list[rtcp.ReportBlock], now: float) -> None:
        for block in reports:
            if block.ssrc in self._consumer_by_ssrc:
                self.downlink.on_receiver_loss(block.fraction_lost / 256, now)
                return

    # -- outgoing ------------------------------------------------------------------------

    def send_rtp(
        self,
        template: bytes | bytearray,
        ssrc: int,
        seq: int,
        timestamp: int,
        now: float,
        patch: Callable[[memoryview], None] | None = None,
    ) -> None:
        """Send a consumer's packet: ``template`` (router extension layout, see
        producer.py) is written into a send slot, where SSRC, sequence number, timestamp and
        this transport's transport-wide sequence number are patched, ``patch`` applied, and
        SRTP protects it in place; the worker sends the slots in batches.

        This is the forwarding kernel, run once per packet per subscriber, so it does the
        slot bookkeeping of udp_batch, the TWCC send record of bandwidth.py and the libsrtp
        call itself instead of calling three helpers (each call cost ~0.3 µs of ~10).
        """
        srtp = self.srtp
        addr = self.ice.selected
        if srtp is None or addr is None:
            return
        io = self._io
        if addr != self._dest_addr:
            self._dest_addr = addr
            self._dest = io.destination(addr)
        slot = io.pending
        if slot == io.slots:
            io.flush()
            slot = 0
        view = io.views[slot]
        length = len(template)
        view[:length] = template
        _pack_seq_ts_ssrc(view, 2, seq, timestamp, ssrc)
        estimator = self.downlink  # bandwidth.DownlinkEstimator.next_sequence, inline
        seq_cell = estimator.seq_cell
        twcc = seq_cell[0]
        seq_cell[0] = (twcc + 1) & 0xFFFF
        record = twcc & SENT_MASK
        estimator.sent_seq[record] = twcc
        estimator.sent_time[record] = now
        estimator.sent_size[record] = length
        view[TWCC_OFFSET] = twcc >> 8
        view[TWCC_OFFSET + 1] = twcc & 0xFF
        if patch is not None:
            patch(view)
        size = srtp.out_length
        size[0] = length
        rc = srtp_protect_raw(srtp.out_context, self._slot_pointers[slot], size)
        if rc:
            self._counters.count_srtp_error(protect_error(rc).reason)
            return
        length = size[0]
        if io.batched:  # udp_batch.BatchUdp.commit, inline
            dest = self._dest
            pack_name(io.msgs_view, slot * MMSG_SIZE, dest[0], dest[1])
            pack_iov_len(io.iov_view, slot * IOV_SIZE + IOV_LEN_OFFSET, length)
            io.pending = slot + 1
        else:
            io.commit(slot, length, self._dest)
        self._counters.rtp_sent += 1
        self._request_flush()  # returns at once while a flush is already due

    def fast_parts(self) -> tuple[object, ...] | None:
        """What ``fan_out`` needs of this transport, for a consumer's fan-out entry (see
        ``Consumer.fast_entry``); None while it cannot send (no keys, no selected address)
        or on the unbatched fallback I/O."""
        srtp = self.srtp
        addr = self.ice.selected
        io = self._io
        if srtp is None or addr is None or not io.batched:
            return None
        dest = io.destination(addr)
        self._dest_addr, self._dest = addr, dest
        estimator = self.downlink
        return (
            estimator.seq_cell,
            estimator.sent_seq,
            estimator.sent_time,
            estimator.sent_size,
            srtp.out_context,
            srtp.out_length,
            dest[0],
            dest[1],
            srtp,  # keeps the context and length cell alive for the C kernel
        )

    def fan_out_kernel(self, entries: list[FastEntry]) -> Callable[..., None]:
        """The kernel for a producer stream's fan-out table ``entries``: the C one
        (fanout_kernel.py) where it is built and chosen, else :meth:`fan_out`."""
        io = self._io
        if not io.batched or fanout_kernel.choice() != "c":
            return self.fan_out
        return fanout_kernel.compile_table(
            entries,
            io,  # type: ignore[arg-type]
            self._counters,
            self._request_flush,
            io.slot_size - SRTP_TRAILER,
            _TWCC_ELEMENT,
        )

    def fan_out(
        self,
        entries: list[FastEntry],
        template: bytes | bytearray,
        seq: int,
        timestamp: int,
        source: int,
        payload_offset: int,
        ext_word: int,
        keyframe: bool,
        now: float,
    ) -> None:
        """Forward one packet of a producer stream to every consumer in ``entries`` (the
        steady state: each forwards this stream and ``seq`` is newer than anything it has
        seen). Per consumer, exactly what ``Consumer.on_packet`` and ``send_rtp`` do in that
        state, with everything that does not change per packet bound in the entry: the
        rewritten sequence number and timestamp, the NACK history, the consumer's
        counters, the subscriber transport's TWCC record, the VP8 picture id rewriting once
        a consumer has switched layers, SRTP in the send slot, and the
        slot's destination and length for the batch ``sendmmsg``. The shared parts (the
        I/O slots, the counters) are the worker's, the same for every transport."""
        io = self._io
        views = io.views
        pointers = self._slot_pointers
        msgs = io.msgs_view
        iovs = io.iov_view
        slots = io.slots
        slot = io.pending
        length = len(template)
        payload_length = length - payload_offset
        protect = srtp_protect_raw
        sent = 0
        for (
            _consumer,
            hist_seq,
            hist_src,
            hist_ts,
            state,
            sent_at,
            ssrc,
            seq_offset,
            ts_offset,
            rewriter,
            seq_cell,
            sent_seq,
            sent_time,
            sent_size,
            context,
            size,
            name,
            name_length,
            _srtp,
        ) in entries:
            out_seq = (seq + seq_offset) & 0xFFFF
            out_ts = (timestamp + ts_offset) & 0xFFFFFFFF
            record = out_seq & HISTORY_MASK
            hist_seq[record] = out_seq
            hist_src[record] = source
            hist_ts[record] = out_ts
            state[0] = seq  # consumer.py: LAST_IN_SEQ, LAST_SEQ, LAST_TS, PACKETS, OCTETS
            state[1] = out_seq
            state[2] = out_ts
            state[3] += 1
            state[4] += payload_length
            sent_at[0] = now
            if slot == slots:
                io.pending = slot
                io.flush()
                slot = 0
            view = views[slot]
            view[:length] = template
            twcc = seq_cell[0]
            seq_cell[0] = (twcc + 1) & 0xFFFF
            record = twcc & SENT_MASK
            sent_seq[record] = twcc
            sent_time[record] = now
            sent_size[record] = length
            _pack_head(view, 2, out_seq, out_ts, ssrc, ext_word, _TWCC_ELEMENT, twcc)
            if rewriter is not None:  # Consumer._patch_vp8 in the steady state
                try:  # noqa: SIM105 - per packet: a try costs nothing, suppress() a call
                    rewriter.rewrite_packet(view, payload_offset, keyframe=keyframe, switched=False)
                except (ParseError, ValueError):
                    pass  # an unreadable descriptor is forwarded as it is
            size[0] = length
            rc = protect(context, pointers[slot], size)
            if rc:
                self._counters.count_srtp_error(protect_error(rc).reason)
                continue
            pack_name(msgs, slot * MMSG_SIZE, name, name_length)
            pack_iov_len(iovs, slot * IOV_SIZE + IOV_LEN_OFFSET, size[0])
            slot += 1
            sent += 1
        io.pending = slot
        self._counters.rtp_sent += sent
        self._request_flush()

    def send_rtcp(self, packets: list[rtcp.RtcpPacket]) -> None:
        srtp = self.srtp
        addr = self.ice.selected
        if srtp is None or addr is None or not packets:
            return
        try:
            data = srtp.protect_rtcp(rtcp.serialize_compound(packets))
        except SrtpError as exc:
            self._counters.count_srtp_error(exc.reason)
            return
        self._counters.rtcp_sent += 1
        self._send_datagram(data, addr)

    def request_keyframe(self, media_ssrc: int) -> None:
        self._counters.plis_sent += 1
        self.send_rtcp([rtcp.PictureLossIndication(self.sender_ssrc, media_ssrc)])

    def _send_all(self, datagrams: list[bytes]) -> None:
        addr = self.ice.selected
        if addr is None:
            return
        for datagram in datagrams:
            self._send_datagram(datagram, addr)

    # -- timers --------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if self.state in (TransportState.CLOSED, TransportState.FAILED):
            return
        if not self.ice.check_consent(now) and self.state is not TransportState.DISCONNECTED:
            self._media_changed()  # no selected address any more
            self._set_state(TransportState.DISCONNECTED, "consent expired (RFC 7675)")
            return
        timeout = self.dtls.next_timeout()
        if timeout is not None and timeout <= 0:
            self._send_all(self.dtls.handle_timeout())
            self._check_dtls()
        if self.srtp is None:
            return
        feedback: list[rtcp.RtcpPacket] = []
        for producer in self.producers.values():
            for stream in producer.streams:
                lost = stream.nacks.due(now)
                if lost and stream.ssrc is not None:
                    self._counters.nacks_sent += 1
                    feedback.append(rtcp.GenericNack(self.sender_ssrc, stream.ssrc, lost))
        if now >= self._next_twcc:
            self._next_twcc = now + TWCC_INTERVAL
            packets = self.twcc.take()
            if packets is not None:
                feedback.append(
                    rtcp.TransportCcFeedback(
                        sender_ssrc=self.sender_ssrc,
                        media_ssrc=self._twcc_media_ssrc,
                        fb_pkt_count=self.twcc.feedback_count,
                        packets=packets,
                    )
                )
        if now >= self._next_report:
            self._next_report = now + REPORT_INTERVAL
            feedback.extend(self._reports(now))
        if feedback:
            try:
                self.send_rtcp(feedback)
            except ValueError:  # e.g. a TWCC delta out of range after a stall: skip once
                self._counters.rtcp_malformed += 1

    def _reports(self, now: float) -> list[rtcp.RtcpPacket]:
        out: list[rtcp.RtcpPacket] = []
        blocks: list[rtcp.ReportBlock] = []
        publisher_ssrcs: list[int] = []
        for producer in self.producers.values():
            for stream in producer.streams:
                if stream.ssrc is None or stream.last_packet_at < 0:
                    continue
                publisher_ssrcs.append(stream.ssrc)
                fraction, lost, highest, jitter, lsr, dlsr = stream.stats.report(now)
                blocks.append(
                    rtcp.ReportBlock(stream.ssrc, fraction, lost, highest, jitter, lsr, dlsr)
                )
        ntp = ntp_now()
        for consumer in self.consumers.values():
            if consumer.packets_sent == 0:
                continue
            times = consumer.sender_report_times()
            if times is None:
                continue
            sr_ntp, sr_rtp = times
            # The publisher's SR is up to a second old: move its RTP time forward.
            elapsed = (ntp - sr_ntp) / (1 << 32)
            if -5.0 < elapsed < 5.0:
                sr_rtp = (sr_rtp + int(elapsed * consumer.producer.clock_rate)) & 0xFFFFFFFF
                out.append(
                    rtcp.SenderReport(
                        ssrc=consumer.ssrc,
                        ntp_timestamp=ntp,
                        rtp_timestamp=sr_rtp,
                        packet_count=consumer.packets_sent & 0xFFFFFFFF,
                        octet_count=consumer.octets_sent & 0xFFFFFFFF,
                        reports=[],
                    )
                )
        if blocks or not out:
            out.insert(0, rtcp.ReceiverReport(ssrc=self.sender_ssrc, reports=blocks[:31]))
        if publisher_ssrcs:
            out.append(
                rtcp.Remb(
                    sender_ssrc=self.sender_ssrc,
                    bitrate=PUBLISHER_MAX_BITRATE,
                    ssrcs=publisher_ssrcs,
                )
            )
        return out

    def _set_state(self, state: TransportState, reason: str) -> None:
        if state is self.state:
            return
        self.state = state
        if state is TransportState.CONNECTED:
            self.connected_at = monotonic()
        self._on_state(self, state, reason)

    @property
    def selected_address(self) -> Address | None:
        return self.ice.selected

    @property
    def ice_state(self) -> IceState:
        return self.ice.state
