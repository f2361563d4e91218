"""The signalling session through a real server, without media: version negotiation,
errors, chat, hand, the Origin check, rate limiting, resume."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from incamera.signalling import messages as m
from incamera.signalling.client import SignallingClient, websocket_url
from incamera.signalling.conferences import Conferences
from incamera.signalling.errors import SignallingError

from .conftest import LiveServer


async def test_hello_welcome_and_join_announcements(live_server: LiveServer) -> None:
    link = await live_server.new_meeting()
    ann = await SignallingClient.join(link, "Ann")
    try:
        assert ann.welcome is not None
        assert ann.welcome.version == 1 and not ann.welcome.resumed
        assert ann.welcome.participants == [] and ann.welcome.chat == []
        assert ann.participant == m.Participant(id=ann.id, name="Ann")
        bo = await SignallingClient.join(link, "Bo")
        try:
            assert [p.name for p in bo.participants.values()] == ["Ann"]
            await ann.wait_for(lambda c: bo.id in c.participants)
            assert ann.participants[bo.id].name == "Bo"
            assert ann.id != bo.id and ann.resume_token != bo.resume_token
            await bo.ping()
        finally:
            await bo.leave()
        await ann.wait_for(lambda c: bo.id not in c.participants)
        assert bo.close_code == 1000
    finally:
        await ann.close()


async def test_unknown_meeting_and_version_are_refused(live_server: LiveServer) -> None:
    with pytest.raises(SignallingError) as caught:
        await SignallingClient.join(f"{live_server.base}/m/{'A' * 22}", "Ann")
    assert caught.value.code == "meeting_not_found"
    link = await live_server.new_meeting()
    with pytest.raises(SignallingError) as caught:
        await SignallingClient.join(link, "Ann", versions=(7, 8))
    assert caught.value.code == "unsupported_version"
    assert "[1]" in caught.value.reason


async def test_requests_before_hello_get_not_joined(live_server: LiveServer) -> None:
    url, origin = websocket_url(await live_server.new_meeting())
    async with connect(url, origin=Origin(origin)) as ws:
        await ws.send(json.dumps({"type": "chat", "text": "hi", "rid": 5}))
        error = m.parse_server_message(await ws.recv())
        assert error == m.Error(rid=5, code="not_joined", reason=error.reason)
        await ws.send("not json")
        error = m.parse_server_message(await ws.recv())
        assert error.code == "bad_message"
        await ws.send(json.dumps({"type": "hello", "versions": [1], "name": "Late"}))
        welcome = m.parse_server_message(await ws.recv())
        assert isinstance(welcome, m.Welcome)


async def test_foreign_origin_is_refused_before_the_upgrade(live_server: LiveServer) -> None:
    url, _ = websocket_url(await live_server.new_meeting())
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, origin=Origin("https://evil.example.net")):
            pass
    assert caught.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        await SignallingClient.join(url, "Ann", origin="http://attacker.test:8080")
    # the server's own (loopback) origin works
    client = await SignallingClient.join(url, "Ann", origin=f"http://localhost:{live_server.port}")
    await client.close()


async def test_bad_messages_get_errors_and_the_session_carries_on(live_server: LiveServer) -> None:
    link = await live_server.new_meeting(e2ee=False)
    ann = await SignallingClient.join(link, "Ann")
    bo = await SignallingClient.join(link, "Bo")
    try:
        bad = [
            "{not json",
            "[1,2]",
            '{"type":"teleport"}',
            '{"type":"chat","text":""}',
            '{"type":"chat","text":"x","color":"red"}',
            '{"type":"hello","versions":[1],"name":"again"}',
            '{"type":"layer","mid":"99","width":10,"height":10}',
            '{"type":"subscribe_answer","sdp":"v=0"}',
            '{"type":"publish","sdp":"this is not sdp"}',
            "\u0000" * 10,
        ]
        for text in bad:
            await ann.send_raw(text)
        await ann.wait_for(lambda c: len(c.errors) == len(bad))
        codes = [e.code for e in ann.errors]
        assert codes == ["bad_message"] * 7 + ["negotiation_failed"] * 2 + ["bad_message"]
        assert all(e.reason for e in ann.errors)
        # a request with a rid gets its error with that rid
        with pytest.raises(SignallingError) as caught:
            await ann.request(m.Layer(mid="nope", width=1, height=1))
        assert caught.value.code == "bad_message"
        # still in the meeting, and the meeting still works
        await ann.send_chat("still here")
        await bo.wait_for(lambda c: [x.text for x in c.chat] == ["still here"])
        assert bo.errors == []
    finally:
        await ann.close()
        await bo.close()


async def test_chat_arrives_in_order_to_everybody_with_history(live_server: LiveServer) -> None:
    link = await live_server.new_meeting(e2ee=False)
    clients = [await SignallingClient.join(link, name) for name in ("Ann", "Bo", "Cy")]
    try:
        texts = [f"{c.participant.name} {i}" for i in range(10) for c in clients]  # type: ignore[union-attr]
        await asyncio.gather(
            *(
                _send_all(c, [t for t in texts if t.startswith(c.participant.name)])  # type: ignore[union-attr]
                for c in clients
            )
        )
        for client in clients:
            await client.wait_for(lambda c: len(c.chat) == len(texts))
        sequences = [[(x.seq, x.sender, x.text) for x in c.chat] for c in clients]
        assert sequences[0] == sequences[1] == sequences[2]
        assert [seq for seq, _, _ in sequences[0]] == list(range(1, len(texts) + 1))
        for client in clients:  # each sender's own messages in the order sent
            mine = [t for _, s, t in sequences[0] if s == client.id]
            assert mine == [t for t in texts if t.startswith(client.participant.name)]  # type: ignore[union-attr]
        late = await SignallingClient.join(link, "Di")
        try:
            assert late.welcome is not None
            assert [(x.seq, x.text) for x in late.welcome.chat] == [
                (seq, t) for seq, _, t in sequences[0]
            ]
        finally:
            await late.close()
    finally:
        for client in clients:
            await client.close()


async def _send_all(client: SignallingClient, texts: list[str]) -> None:
    for text in texts:
        await client.send(m.Chat(text=text))


async def test_hand_is_seen_by_others(live_server: LiveServer) -> None:
    link = await live_server.new_meeting()
    ann = await SignallingClient.join(link, "Ann")
    bo = await SignallingClient.join(link, "Bo")
    try:
        await ann.hand(True)
        await bo.wait_for(lambda c: c.participants[ann.id].hand_raised)
        await ann.hand(False)
        await bo.wait_for(lambda c: not c.participants[ann.id].hand_raised)
    finally:
        await ann.close()
        await bo.close()


async def test_flooding_is_rate_limited_without_ending_the_session(
    live_server: LiveServer,
) -> None:
    link = await live_server.new_meeting()
    ann = await SignallingClient.join(link, "Ann")
    try:
        for _ in range(150):  # far beyond the burst, sent as fast as possible
            await ann.send(m.Ping())
        await ann.wait_for(
            lambda c: sum(isinstance(x, (m.Pong, m.Error)) for x in c.received) == 150
        )
        limited = [e for e in ann.errors if e.code == "rate_limited"]
        pongs = [x for x in ann.received if isinstance(x, m.Pong)]
        assert limited and pongs and len(limited) + len(pongs) == 150
        await asyncio.sleep(1.1)  # the bucket refills
        await ann.ping()
    finally:
        await ann.close()


async def test_resume_after_a_dropped_socket_keeps_the_participant(
    live_server: LiveServer,
) -> None:
    link = await live_server.new_meeting(e2ee=False)
    ann = await SignallingClient.join(link, "Ann")
    bo = await SignallingClient.join(link, "Bo")
    try:
        await ann.send_chat("before")
        token, ann_id = ann.resume_token, ann.id
        ann.drop()
        await bo.wait_for(lambda c: c.participants[ann_id].reconnecting)
        await bo.send_chat("while away")
        again = await SignallingClient.join(link, "Ann", resume=token)
        try:
            assert again.welcome is not None and again.welcome.resumed
            assert again.id == ann_id
            assert [x.text for x in again.welcome.chat] == ["before", "while away"]
            await bo.wait_for(lambda c: not c.participants[ann_id].reconnecting)
            assert list(bo.participants) == [ann_id]
            # an unknown token joins afresh
            fresh = await SignallingClient.join(link, "Ann 2", resume="no-such-token")
            assert fresh.welcome is not None and not fresh.welcome.resumed
            assert fresh.id != ann_id
            await fresh.leave()
        finally:
            await again.close()
    finally:
        await ann.close()
        await bo.close()


async def test_a_dropped_participant_is_removed_after_the_resume_window(
    live_server: LiveServer,
) -> None:
    conferences: Conferences = live_server.app.state.conferences
    conferences.resume_window = 0.3  # applies to conferences started from now on
    link = await live_server.new_meeting()
    ann = await SignallingClient.join(link, "Ann")
    bo = await SignallingClient.join(link, "Bo")
    try:
        ann_id = ann.id
        ann.drop()
        await bo.wait_for(lambda c: ann_id not in c.participants)
        left = [x for x in bo.received if isinstance(x, m.ParticipantLeft)]
        assert left == [m.ParticipantLeft(id=ann_id)]
        again = await SignallingClient.join(link, "Ann", resume=ann.resume_token)
        assert again.welcome is not None and not again.welcome.resumed
        await again.close()
    finally:
        await ann.close()
        await bo.close()


async def test_the_conference_ends_when_the_meeting_empties(live_server: LiveServer) -> None:
    conferences: Conferences = live_server.app.state.conferences
    link = await live_server.new_meeting()
    ann = await SignallingClient.join(link, "Ann")
    assert len(conferences) == 1
    await ann.leave()
    for _ in range(100):
        if len(conferences) == 0:
            break
        await asyncio.sleep(0.05)
    assert len(conferences) == 0
    again = await SignallingClient.join(link, "Ann")  # a new conference, same meeting
    assert len(conferences) == 1
    await again.close()
