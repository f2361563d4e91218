"""Producer -> Consumer forwarding logic without a network: rewriting, simulcast layer
switches on key frames, RTX answers to NACKs, active speaker events."""

from __future__ import annotations

import struct

from incamera.media.api import ActiveSpeaker
from incamera.media.consumer import Consumer
from incamera.media.producer import Producer
from incamera.media.router import Router
from incamera.media.rtp_parameters import (
    Encoding,
    ExtensionUri,
    HeaderExtension,
    MediaKind,
    RtpCodec,
    RtpParameters,
)

VP8 = RtpCodec("video/VP8", 100, 90000, rtx_payload_type=101)
OPUS = RtpCodec("audio/opus", 109, 48000, 2)
SSRCS = (1111, 2222, 3333)


def video_params() -> RtpParameters:
    return RtpParameters(
        mid="1",
        kind=MediaKind.VIDEO,
        codecs=(VP8,),
        encodings=tuple(
            Encoding(ssrc=s, rid=r, scale_resolution_down_by=f)
            for s, r, f in zip(SSRCS, "qhf", (4.0, 2.0, 1.0), strict=True)
        ),
    )


def vp8_packet(ssrc: int, seq: int, ts: int, keyframe: bool, start: bool = True) -> bytes:
    header = struct.pack("!BBHII", 0x80, 100, seq & 0xFFFF, ts, ssrc)
    descriptor = bytes([0x90 if start else 0x80, 0x80, 0x80 | (seq >> 8 & 0x7F), seq & 0xFF])
    # VP8 payload header: P bit 0 = key frame; key frame start code and 640x360 size
    if keyframe and start:
        body = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A]) + (640).to_bytes(2, "little")
        body += (360).to_bytes(2, "little") + b"\x00" * 50
    else:
        body = bytes([0x11, 0x02, 0x00]) + b"\x00" * 50
    return header + descriptor + body


class Sink:
    def __init__(self) -> None:
        self.packets: list[bytearray] = []

    def __call__(self, template, ssrc, seq, ts, now, patch=None) -> None:  # type: ignore[no-untyped-def]
        packet = bytearray(template)
        struct.pack_into("!HII", packet, 2, seq, ts, ssrc)
        if patch is not None:
            patch(memoryview(packet))
        self.packets.append(packet)

    def seqs(self) -> list[int]:
        return [struct.unpack_from("!H", p, 2)[0] for p in self.packets]


def make_pair() -> tuple[Producer, Consumer, Sink, list[int]]:
    keyframe_requests: list[int] = []
    producer = Producer("p", "t", video_params(), keyframe_requests.append)
    sink = Sink()
    out = RtpParameters(
        mid="0",
        kind=MediaKind.VIDEO,
        codecs=(RtpCodec("video/VP8", 96, 90000, rtx_payload_type=97),),
        encodings=(Encoding(ssrc=0xAAAA, rtx_ssrc=0xBBBB),),
    )
    consumer = Consumer("c", producer, out, sink)
    producer.consumers.append(consumer)
    return producer, consumer, sink, keyframe_requests


def send_frames(producer: Producer, layers: range, frame: int, now: float, key: bool) -> None:
    for layer in layers:
        stream = producer.streams[layer]
        seq = frame * 2
        ts = frame * 3000
        producer.receive(stream, vp8_packet(SSRCS[layer], seq, ts, key), False, now)
        producer.receive(
            stream, vp8_packet(SSRCS[layer], seq + 1, ts, key, start=False), False, now
        )


def test_consumer_waits_for_a_key_frame_and_rewrites_headers() -> None:
    producer, consumer, sink, requests = make_pair()
    now = 100.0
    send_frames(producer, range(3), 0, now, key=False)
    assert sink.packets == []  # no key frame yet: nothing forwarded
    assert requests  # ... and one was asked for
    consumer.set_preferred_layer(2)
    consumer.choose_target(now)
    send_frames(producer, range(3), 1, now + 0.03, key=True)
    send_frames(producer, range(3), 2, now + 0.06, key=False)
    assert len(sink.packets) == 4  # only the top layer's packets
    for packet in sink.packets:
        assert struct.unpack_from("!I", packet, 8)[0] == 0xAAAA
        assert packet[1] & 0x7F == 96  # router payload type
    seqs = sink.seqs()
    assert seqs == list(range(seqs[0], seqs[0] + 4))
    assert consumer.current_layer == 2


def test_layer_switch_happens_on_key_frame_and_keeps_sequence_continuous() -> None:
    producer, consumer, sink, requests = make_pair()
    now = 100.0
    consumer.set_preferred_layer(2)
    send_frames(producer, range(3), 0, now, key=True)
    consumer.choose_target(now)
    send_frames(producer, range(3), 1, now + 0.03, key=True)
    send_frames(producer, range(3), 2, now + 0.06, key=False)
    assert consumer.current_layer == 2
    requests.clear()
    consumer.set_preferred_layer(0)
    consumer.choose_target(now + 0.07)
    assert consumer.target_layer == 0 and requests == [SSRCS[0]]
    send_frames(producer, range(3), 3, now + 0.09, key=False)
    assert consumer.current_layer == 2  # still the old layer until a key frame
    send_frames(producer, range(3), 4, now + 0.12, key=True)
    assert consumer.current_layer == 0
    seqs = sink.seqs()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, no repeat
    timestamps = [struct.unpack_from("!I", p, 4)[0] for p in sink.packets]
    assert timestamps == sorted(timestamps)


def test_nack_is_answered_with_rtx_from_the_cache() -> None:
    producer, consumer, sink, _ = make_pair()
    now = 100.0
    consumer.set_preferred_layer(0)
    send_frames(producer, range(1), 0, now, key=True)
    consumer.choose_target(now)
    send_frames(producer, range(1), 1, now, key=True)
    send_frames(producer, range(1), 2, now, key=False)
    lost = sink.seqs()[1]
    original = bytes(sink.packets[1])
    assert consumer.on_nack([lost, (lost + 1000) & 0xFFFF], now + 0.05) == 1
    rtx = sink.packets[-1]
    assert struct.unpack_from("!I", rtx, 8)[0] == 0xBBBB and rtx[1] & 0x7F == 97
    offset = 12 + 8  # fixed header + the router extension block of video
    assert struct.unpack_from("!H", rtx, offset)[0] == lost  # OSN (RFC 4588 section 4)
    assert rtx[offset + 2 :] == original[offset:]
    assert consumer.retransmissions_sent == 1
    # too old for the cache: not answered
    assert consumer.on_nack([lost], now + 5.0) == 0


def test_active_speaker_events_come_from_audio_levels() -> None:
    events: list[object] = []
    router = Router("r", events.append)
    params = RtpParameters(
        mid="0",
        kind=MediaKind.AUDIO,
        codecs=(OPUS,),
        header_extensions=(HeaderExtension(ExtensionUri.AUDIO_LEVEL, 1),),
        encodings=(Encoding(ssrc=42),),
    )
    producer = Producer("speaker", "t", params, lambda ssrc: None, router.on_audio_level)
    now = 10.0
    for i in range(150):  # 3 s of 20 ms packets at -20 dBov, voice
        ext = bytes([0xBE, 0xDE, 0x00, 0x01, 0x10, 0x80 | 20, 0, 0])
        packet = struct.pack("!BBHII", 0x90, 109, i, i * 960, 42) + ext + b"\x01" * 40
        producer.receive(producer.streams[0], packet, False, now + i * 0.02)
        if i % 15 == 0:
            router.tick_speaker(now + i * 0.02)
    speakers = [e for e in events if isinstance(e, ActiveSpeaker)]
    assert speakers and speakers[-1].producer_id == "speaker"


def test_sender_report_is_translated_by_the_timestamp_offset() -> None:
    producer, consumer, sink, _ = make_pair()
    now = 100.0
    consumer.set_preferred_layer(2)
    send_frames(producer, range(3), 0, now, key=True)
    consumer.choose_target(now)
    send_frames(producer, range(3), 1, now + 0.03, key=True)
    assert consumer.sender_report_times() is None  # no SR from the publisher yet
    for stream in producer.streams:
        stream.sender_report = (0x1234_5678_0000_0000 + stream.layer, 90_000 + stream.layer)
    ntp, rtp_ts = consumer.sender_report_times()  # type: ignore[misc]
    out_ts = struct.unpack_from("!I", sink.packets[-1], 4)[0]
    assert ntp == 0x1234_5678_0000_0002  # the current layer's (2) report
    assert (rtp_ts - 90_002) & 0xFFFFFFFF == (out_ts - 3000) & 0xFFFFFFFF
    consumer.set_preferred_layer(0)
    consumer.choose_target(now + 0.05)
    send_frames(producer, range(3), 2, now + 1.0, key=True)
    assert consumer.current_layer == 0
    first_out_ts = struct.unpack_from("!I", sink.packets[-2], 4)[0]
    ntp, rtp_ts = consumer.sender_report_times()  # type: ignore[misc]
    # Layer 0's SR, shifted like its packets were: source ts 6000 went out as first_out_ts.
    assert ntp == 0x1234_5678_0000_0000
    assert (rtp_ts - 90_000) & 0xFFFFFFFF == (first_out_ts - 6000) & 0xFFFFFFFF


def test_stream_stays_continuous_across_a_pause() -> None:
    producer, consumer, sink, requests = make_pair()
    now = 100.0
    consumer.set_preferred_layer(0)
    send_frames(producer, range(1), 0, now, key=True)
    consumer.choose_target(now)
    for frame in range(1, 4):
        send_frames(producer, range(1), frame, now + frame * 0.03, key=frame == 1)
    before = len(sink.packets)
    consumer.paused = True
    for frame in range(4, 20):  # 16 frames not forwarded while paused
        send_frames(producer, range(1), frame, now + frame * 0.03, key=False)
    assert len(sink.packets) == before
    consumer.paused = False
    requests.clear()
    consumer.resync(now + 0.6)
    assert requests  # a key frame is asked for
    send_frames(producer, range(1), 20, now + 0.6, key=False)
    assert len(sink.packets) == before  # waits for the key frame
    send_frames(producer, range(1), 21, now + 0.63, key=True)
    seqs = sink.seqs()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap where the pause was


def test_switch_continues_the_numbering_when_the_first_sequence_number_is_high() -> None:
    # A publisher's random first sequence number is at or above 0x8000 half of the time.
    producer, consumer, sink, _requests = make_pair()
    now = 100.0
    base = 40000

    def frame(i: int, key: bool) -> None:
        for layer in range(3):
            packet = vp8_packet(SSRCS[layer], base + i, 3000 * i, key)
            producer.receive(producer.streams[layer], packet, False, now + i * 0.03)

    for i in range(6):
        frame(i, key=i == 0)
    assert consumer.current_layer == 0
    consumer.set_preferred_layer(2)
    consumer.choose_target(now + 0.2)
    for i in range(6, 9):
        frame(i, key=i == 6)
    assert consumer.current_layer == 2
    seqs = sink.seqs()
    assert seqs == list(range(base, base + len(seqs)))  # no jump back near 0
    timestamps = [struct.unpack_from("!I", p, 4)[0] for p in sink.packets]
    assert timestamps == sorted(timestamps)
