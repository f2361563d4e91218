"""Media through the real server: aiortc participants join a meeting via the Python client,
publish VP8 640x480 video and Opus audio, and decode each other; mute, leave and
re-publishing change what the others receive."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from incamera.media.api import TransportState
from incamera.media.supervisor import Supervisor
from incamera.server.context import ServerContext
from incamera.signalling import messages as m
from incamera.signalling.client import SignallingClient
from incamera.signalling.conferences import Conferences
from support.aiortc_peer import AiortcPeer, ReceivedTrack

from .conftest import LiveServer

TIMEOUT = 40.0

Participant = tuple[SignallingClient, AiortcPeer]


async def join(link: str, name: str, make_peer: Callable[[str], AiortcPeer]) -> Participant:
    peer = make_peer(name)
    client = await SignallingClient.join(link, name, on_subscribe=peer.subscribe_offer)
    await peer.publish(client.publisher())
    return client, peer


def received(client: SignallingClient, peer: AiortcPeer) -> dict[tuple[str, str], ReceivedTrack]:
    """What ``peer`` decodes, by (participant id, source), per the last subscribe offer."""
    result: dict[tuple[str, str], ReceivedTrack] = {}
    if peer.recv_pc is None:
        return result
    for transceiver in peer.recv_pc.getTransceivers():
        info = client.tracks.get(transceiver.mid or "")
        track = transceiver.receiver.track
        if info is None or track is None or track.id not in peer.received:
            continue
        result[(info.participant, info.source)] = peer.received[track.id]
    return result


def decodes_everybody(me: Participant, others: list[Participant], frames: int = 10) -> bool:
    got = received(*me)
    for client, _ in others:
        video = got.get((client.id, "camera"))
        audio = got.get((client.id, "mic"))
        if video is None or audio is None:
            return False
        if video.frames < frames or (video.width, video.height) != (640, 480):
            return False
        if audio.frames < frames:
            return False
    return True


async def wait_all_decode(group: list[Participant], frames: int = 10) -> None:
    for me in group:
        others = [p for p in group if p is not me]
        await me[1].wait_for(
            lambda _p, me=me, others=others: decodes_everybody(me, others, frames), TIMEOUT
        )


async def sent_to(server: LiveServer, to: SignallingClient, owner: str, source: str) -> int:
    """Packets the worker has forwarded to ``to`` from ``owner``'s ``source`` track."""
    conferences: Conferences = server.app.state.conferences
    conference = conferences.find(_meeting_of(server, to))
    assert conference is not None
    member = conference.members[to.id]
    (consumed,) = [
        c for c in member.consumed.values() if c.participant_id == owner and c.source == source
    ]
    stats = await conference.worker.consumer_stats(consumed.consumer_id)
    return int(stats["packets_sent"] or 0)


def _meeting_of(server: LiveServer, client: SignallingClient) -> str:
    conferences: Conferences = server.app.state.conferences
    for meeting_id, conference in conferences._by_meeting.items():
        if client.id in conference.members:
            return meeting_id
    raise AssertionError("not in any conference")


async def worker_counters(server: LiveServer) -> dict[str, int]:
    supervisor = ServerContext.of(server.app).media
    assert isinstance(supervisor, Supervisor)
    (worker,) = supervisor.workers.values()
    return (await worker.stats()).counters


async def test_two_then_three_participants_see_and_hear_each_other(
    live_server: LiveServer, peers: Callable[[str], AiortcPeer]
) -> None:
    link = await live_server.new_meeting()
    ann = await join(link, "Ann", peers)
    bo = await join(link, "Bo", peers)
    try:
        await wait_all_decode([ann, bo])
        cy = await join(link, "Cy", peers)
        try:
            await wait_all_decode([ann, bo, cy])
            counters = await worker_counters(live_server)
            assert counters["producers"] == 6 and counters["consumers"] == 12

            # Mute: the others see it, and Ann's audio stops reaching them.
            ann_client = ann[0]
            await ann_client.mute("mic", True)
            for client, _ in (bo, cy):
                await client.wait_for(lambda c: c.participants[ann_client.id].audio_muted)
            assert not bo[0].participants[ann_client.id].video_muted
            # The reply came after the producer was paused: from now on nothing of Ann's mic
            # is forwarded to Bo, while her camera keeps flowing.
            mic_sent = await sent_to(live_server, bo[0], ann_client.id, "mic")
            camera_sent = await sent_to(live_server, bo[0], ann_client.id, "camera")
            for _ in range(400):
                if await sent_to(live_server, bo[0], ann_client.id, "camera") > camera_sent + 60:
                    break
                await asyncio.sleep(0.05)
            assert await sent_to(live_server, bo[0], ann_client.id, "mic") == mic_sent
            before = received(*bo)[(ann_client.id, "mic")].frames
            await ann_client.mute("mic", False)
            await bo[1].wait_for(
                lambda _p: received(*bo)[(ann_client.id, "mic")].frames > before + 10, TIMEOUT
            )

            # Leave: participant_left, and Cy's tracks and consumers are gone.
            cy_id = cy[0].id
            await cy[0].leave()
            for client, _ in (ann, bo):
                await client.wait_for(lambda c: cy_id not in c.participants, TIMEOUT)
                await client.wait_for(
                    lambda c: all(t.participant != cy_id for t in c.tracks.values()), TIMEOUT
                )
            for _ in range(100):
                counters = await worker_counters(live_server)
                if counters["consumers"] == 4:
                    break
                await asyncio.sleep(0.05)
            assert counters["producers"] == 4 and counters["consumers"] == 4
            await wait_all_decode([ann, bo], frames=60)
        finally:
            await cy[0].close()
    finally:
        await ann[0].close()
        await bo[0].close()


async def test_consumers_resume_only_once_the_receive_transport_is_connected(
    live_server: LiveServer, peers: Callable[[str], AiortcPeer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resumed video consumer asks its publisher for a key frame; before the subscriber's
    # receive transport has ICE and DTLS, that key frame could not be forwarded, and the
    # subscriber would wait for its own PLI. So consumers resume only once it is connected.
    link = await live_server.new_meeting()
    ann = await join(link, "Ann", peers)
    conference = live_server.app.state.conferences.find(_meeting_of(live_server, ann[0]))
    assert conference is not None
    resumed: list[tuple[str, TransportState | None]] = []
    pause_consumer = conference.worker.pause_consumer

    async def spy(consumer_id: str, paused: bool = True) -> None:
        if not paused:
            for member in conference.members.values():
                if any(c.consumer_id == consumer_id for c in member.consumed.values()):
                    assert member.recv_transport is not None
                    resumed.append((member.id, member.states.get(member.recv_transport.id)))
        await pause_consumer(consumer_id, paused)

    monkeypatch.setattr(conference.worker, "pause_consumer", spy)
    bo = await join(link, "Bo", peers)
    try:
        await wait_all_decode([ann, bo])
        for client in (ann, bo):
            mine = [state for pid, state in resumed if pid == client[0].id]
            assert len(mine) == 2, resumed  # the other's camera and microphone
            assert all(state is TransportState.CONNECTED for state in mine), resumed
    finally:
        await ann[0].close()
        await bo[0].close()


async def test_a_resumed_participant_keeps_its_media(
    live_server: LiveServer, peers: Callable[[str], AiortcPeer]
) -> None:
    link = await live_server.new_meeting()
    ann = await join(link, "Ann", peers)
    bo = await join(link, "Bo", peers)
    try:
        await wait_all_decode([ann, bo])
        ann_id, token = ann[0].id, ann[0].resume_token
        ann[0].drop()
        await bo[0].wait_for(lambda c: c.participants[ann_id].reconnecting)
        again = await SignallingClient.join(
            link, "Ann", resume=token, on_subscribe=ann[1].subscribe_offer
        )
        try:
            assert again.id == ann_id
            await bo[0].wait_for(lambda c: not c.participants[ann_id].reconnecting)
            # A fresh offer for the same receive pc (anything may have been lost with the
            # old socket), and the media keeps flowing.
            await again.wait_for(lambda c: c.answered_offers == 1)
            assert again.tracks == ann[0].tracks
            resumed = (again, ann[1])
            frames = received(*bo)[(ann_id, "camera")].frames
            await wait_all_decode([resumed, bo], frames=frames + 30)
        finally:
            await again.close()
    finally:
        await ann[0].close()
        await bo[0].close()


async def test_republishing_without_video_removes_it_for_the_others(
    live_server: LiveServer, peers: Callable[[str], AiortcPeer]
) -> None:
    link = await live_server.new_meeting()
    ann = await join(link, "Ann", peers)
    bo = await join(link, "Bo", peers)
    try:
        await wait_all_decode([ann, bo])
        ann_client, ann_peer = ann
        assert ann_peer.send_pc is not None
        offer = ann_peer.send_pc.localDescription.sdp
        without_video = re.sub(r"m=video \d+", "m=video 0", offer)
        answer = await ann_client.publish(without_video)
        assert "m=video 0" in answer
        await bo[0].wait_for(
            lambda c: (
                {t.source for t in c.tracks.values() if t.participant == ann_client.id} == {"mic"}
            ),
            TIMEOUT,
        )
        conferences: Conferences = live_server.app.state.conferences
        (conference,) = [c for c in conferences._by_meeting.values()]
        bo_member = conference.members[bo[0].id]
        assert {c.source.value for c in bo_member.consumed.values()} == {"mic"}
        # Ann's audio still reaches Bo.
        frames = received(*bo)[(ann_client.id, "mic")].frames
        await bo[1].wait_for(
            lambda _p: received(*bo)[(ann_client.id, "mic")].frames > frames + 20, TIMEOUT
        )
    finally:
        await ann[0].close()
        await bo[0].close()


async def test_publish_with_a_new_ice_ufrag_restarts_ice(
    live_server: LiveServer, peers: Callable[[str], AiortcPeer]
) -> None:
    link = await live_server.new_meeting()
    peer = peers("Ann")
    client = await SignallingClient.join(link, "Ann")
    try:
        offers: list[str] = []

        async def capture(offer: str) -> str:
            offers.append(offer)
            return await client.publish(offer)

        await peer.publish(capture)
        first = await client.publish(offers[0])
        ufrag = re.compile(r"a=ice-ufrag:(\S+)")
        assert ufrag.findall(first)  # same offer again: same credentials
        same = await client.publish(offers[0])
        assert set(ufrag.findall(same)) == set(ufrag.findall(first))
        old_remote = ufrag.findall(offers[0])[0]
        restarted_offer = offers[0].replace(f"a=ice-ufrag:{old_remote}", "a=ice-ufrag:newU")
        restarted = await client.publish(restarted_offer)
        assert set(ufrag.findall(restarted)).isdisjoint(ufrag.findall(first))
        # the producers were kept: nothing was re-produced
        counters = await worker_counters(live_server)
        assert counters["producers"] == 2
    finally:
        await client.close()


async def test_restart_ice_on_the_receive_side_sends_a_fresh_offer(
    live_server: LiveServer, peers: Callable[[str], AiortcPeer]
) -> None:
    link = await live_server.new_meeting()
    ann = await join(link, "Ann", peers)
    bo = await join(link, "Bo", peers)
    try:
        await wait_all_decode([ann, bo])
        offers = [x for x in bo[0].received if isinstance(x, m.Subscribe)]
        await bo[0].wait_for(lambda c: c.answered_offers == len(offers))
        bo[0].on_subscribe = None  # look at the offer without applying it
        await bo[0].restart_ice()
        await bo[0].wait_for(
            lambda c: sum(isinstance(x, m.Subscribe) for x in c.received) == len(offers) + 1
        )
        fresh = [x for x in bo[0].received if isinstance(x, m.Subscribe)][-1]
        ufrag = re.compile(r"a=ice-ufrag:(\S+)")
        assert set(ufrag.findall(fresh.sdp)).isdisjoint(ufrag.findall(offers[-1].sdp))
        assert fresh.tracks == offers[-1].tracks
    finally:
        await ann[0].close()
        await bo[0].close()
