"""Test-side signalling: connects WebRTC peers (aiortc or Chromium) to an in-process SFU
worker through the real SDP layer, the way the signalling server does.

Each participant has a send transport (the client offers, we answer) and a recv transport
(we offer, the client answers), as described in ``docs/architecture.md``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from incamera.media.rtp_parameters import MediaKind
from incamera.media.worker import Worker
from incamera.sdp.publish import answer_publish
from incamera.sdp.subscribe import SubscribeSession

OfferHandler = Callable[[str], Awaitable[str]]


@contextlib.asynccontextmanager
async def running_worker(**kwargs: Any) -> AsyncIterator[Worker]:
    """A started ``Worker`` on 127.0.0.1 (ephemeral port), closed on exit."""
    worker = Worker(listen_ip="127.0.0.1", **kwargs)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.close()


@dataclass
class Participant:
    worker: Worker
    router_id: str
    name: str
    send_transport_id: str | None = None
    recv_transport_id: str | None = None
    producer_ids: list[str] = field(default_factory=list)
    consumers: dict[str, str] = field(default_factory=dict)  # producer id -> consumer id
    mids: dict[str, str] = field(default_factory=dict)  # consumer id -> mid
    session: SubscribeSession | None = None
    stream_id: str = field(default_factory=lambda: secrets.token_hex(6))

    async def answer_publish(self, offer_sdp: str) -> str:
        """The signal callable for the peer's publish(): answers its send-pc offer."""
        if self.send_transport_id is None:
            info = self.worker.create_transport(self.router_id)
            self.send_transport_id = info.id
        info = self.worker.transports[self.send_transport_id].info()
        answer = answer_publish(offer_sdp, info)
        self.worker.connect_transport(
            info.id, answer.remote_dtls, answer.remote_ice.username_fragment
        )
        for params in answer.producers:
            self.producer_ids.append(self.worker.produce(info.id, params))
        return answer.sdp

    async def subscribe(self, offer_handler: OfferHandler, producer_ids: list[str]) -> None:
        """Consume ``producer_ids`` and (re)negotiate the recv pc through ``offer_handler``."""
        if self.recv_transport_id is None:
            info = self.worker.create_transport(self.router_id)
            self.recv_transport_id = info.id
            self.session = SubscribeSession(info)
        assert self.session is not None
        for producer_id in producer_ids:
            if producer_id in self.consumers:
                continue
            consumer = self.worker.consume(self.recv_transport_id, producer_id)
            self.consumers[producer_id] = consumer.id
            producer = self.worker.producers[producer_id]
            stream = producer.rtp_parameters.cname or producer_id
            mid = self.session.add(consumer.rtp_parameters, stream, producer_id)
            self.mids[consumer.id] = mid
        answer = await offer_handler(self.session.offer())
        ice, dtls = self.session.apply_answer(answer)
        self.worker.connect_transport(self.recv_transport_id, dtls, ice.username_fragment)

    def consumer_ids(self, kind: MediaKind) -> list[str]:
        """This participant's consumers of ``kind``, in the order they were created."""
        return [
            consumer_id
            for producer_id, consumer_id in self.consumers.items()
            if self.worker.producers[producer_id].kind is kind
        ]

    def producer_ids_of(self, kind: MediaKind) -> list[str]:
        return [p for p in self.producer_ids if self.worker.producers[p].kind is kind]


class Conference:
    """One router on one worker, with helpers to add participants."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.router_id = worker.create_router()
        self.participants: list[Participant] = []

    def participant(self, name: str) -> Participant:
        p = Participant(self.worker, self.router_id, name)
        self.participants.append(p)
        return p
