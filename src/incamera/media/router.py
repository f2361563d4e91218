"""A Router: one meeting's forwarding graph inside a worker.

It owns the meeting's producers and consumers (the transports that carry them belong to the
worker), detects the active speaker from audio levels, and periodically re-divides each
subscriber's downlink estimate among that subscriber's video consumers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .api import ActiveSpeaker
from .audio_level import ActiveSpeakerDetector
from .rtp_parameters import MediaKind

if TYPE_CHECKING:
    from .consumer import Consumer
    from .producer import Producer
    from .transport import Transport

AUDIO_RESERVE_BPS = 64_000  # kept for each audio consumer before video is allotted


class Router:
    def __init__(self, router_id: str, emit: Callable[[object], None]) -> None:
        self.id = router_id
        self._emit = emit
        self.producers: dict[str, Producer] = {}
        self.consumers: dict[str, Consumer] = {}
        self.transports: dict[str, Transport] = {}
        self.speaker = ActiveSpeakerDetector()
        self._speaker: str | None = None

    def on_audio_level(self, producer_id: str, level: int, voice: bool, now: float) -> None:
        self.speaker.add_sample(producer_id, level, voice, now)

    def tick_speaker(self, now: float) -> None:
        changed = self.speaker.update(now)
        dominant = self.speaker.dominant
        if changed is not None or dominant != self._speaker:
            self._speaker = dominant
            self._emit(ActiveSpeaker(self.id, dominant))

    def allocate(self, transport: Transport, now: float, layer_cap: int) -> None:
        """Give ``transport``'s video consumers the best layers its downlink allows.

        Audio is reserved first; then video consumers in order of creation each take the
        highest active layer <= their preferred one whose measured bit rate still fits.
        ``layer_cap`` is the worker's overload limit (see worker.py).
        """
        budget = transport.downlink.available
        video: list[Consumer] = []
        for consumer in transport.consumers.values():
            if consumer.kind is MediaKind.AUDIO:
                budget -= AUDIO_RESERVE_BPS
            elif not consumer.paused:
                video.append(consumer)
        for consumer in video:
            streams = consumer.producer.streams
            limit = min(consumer.preferred_layer, layer_cap)
            allowed = 0
            cost = 0
            for stream in streams:
                if stream.layer > limit or not stream.is_active(now):
                    continue
                rate = stream.rate.bps(now)
                if rate <= budget or stream.layer == 0:
                    allowed = stream.layer
                    cost = rate
            consumer.allowed_layer = allowed
            budget -= cost
            consumer.choose_target(now)

    def remove_producer(self, producer: Producer) -> None:
        self.producers.pop(producer.id, None)
        self.speaker.remove_producer(producer.id)
