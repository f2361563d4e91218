"""The lobby, roles and moderation through the real server with Python signalling clients
(and aiortc peers where media must flow): waiting, admission, denial, mute enforcement on
the media plane, mute all, removal with a block, the end of a meeting, the moderator
hand-over, and the refusals."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from incamera.signalling import messages as m
from incamera.signalling.client import SignallingClient, default_sources
from incamera.signalling.conferences import Conferences
from incamera.signalling.errors import SignallingError
from support import mls_fake as fake
from support.aiortc_peer import AiortcPeer

from .conftest import LiveServer
from .test_media import TIMEOUT, sent_to, worker_counters

GUEST_COOKIE = "incamera_guest"


async def create(server: LiveServer, **policy: Any) -> tuple[str, str]:
    """A new meeting with ``policy``; returns (participant link, moderator key)."""
    body: dict[str, Any] = {"e2ee": True}
    if policy:
        body["policy"] = policy
    response = await server.http.post("/api/meetings", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    moderator_url = urlsplit(data["moderator_url"])
    assert moderator_url.fragment.startswith("mod=")
    return f"{server.base}/m/{data['id']}", moderator_url.fragment.removeprefix("mod=")


async def moderator(link: str, key: str, name: str = "Mo", **kwargs: Any) -> SignallingClient:
    client = await SignallingClient.join(link, name, moderator_key=key, **kwargs)
    assert client.participant is not None and client.participant.role == "moderator"
    return client


def received_types(client: SignallingClient) -> set[str]:
    return {type(x).__name__ for x in client.received}


async def refused(coro: Any) -> str:
    with pytest.raises(SignallingError) as caught:
        await coro
    return caught.value.code


async def forwarded_beyond(
    server: LiveServer, to: SignallingClient, owner: str, source: str, more_than: int
) -> int:
    """Wait until the worker has forwarded more than ``more_than`` packets of ``owner``'s
    ``source`` to ``to``; returns the count."""
    for _ in range(int(TIMEOUT / 0.05)):
        count = await sent_to(server, to, owner, source)
        if count > more_than:
            return count
        await asyncio.sleep(0.05)
    raise AssertionError(f"{source} does not flow")


async def audit_events(server: LiveServer, link: str) -> list[tuple[str, str | None, str | None]]:
    """(kind, actor, subject) of the meeting's audit events, oldest first."""
    meeting_id = urlsplit(link).path.rsplit("/", 1)[1]
    events = await server.app.state.audit.query(meeting_id=meeting_id, limit=1000)
    return [(e.kind, e.actor, e.subject) for e in reversed(events)]


def is_moderator(client: SignallingClient) -> bool:
    return client.participant is not None and client.participant.role == "moderator"


async def closed_with(client: SignallingClient, code: int) -> None:
    await client.wait_for(lambda c: c.close_code is not None)
    assert client.close_code == code


async def test_a_waiting_guest_gets_nothing_until_admitted(
    live_server: LiveServer, peers: Callable[[str], AiortcPeer]
) -> None:
    link, key = await create(live_server, lobby="everyone")
    mo_peer = peers("Mo")
    mo = await moderator(link, key, on_subscribe=mo_peer.subscribe_offer)
    guest_peer = peers("Gus")
    gus = await SignallingClient.join(link, "Gus", on_subscribe=guest_peer.subscribe_offer)
    try:
        assert mo.policy is not None and mo.policy.lobby == "everyone"
        assert gus.waiting and gus.lobby_position == 1 and gus.welcome is None
        await mo.wait_for(lambda c: [w.name for w in c.lobby] == ["Gus"])
        (entry,) = mo.lobby
        assert entry.guest and entry.account is None
        assert entry.id not in mo.participants  # not a participant yet

        # The moderator publishes media and starts the MLS group meanwhile.
        await mo_peer.publish(mo.publisher())
        device_key = os.urandom(32)
        kp = fake.key_package(device_key, fake.identity(mo.id, "Mo"))
        await mo.mls_key_package(kp, device_key)
        await mo.wait_for(lambda c: len(c.mls_tasks) == 1)

        # The waiting guest can do nothing but wait, ping or leave.
        assert await refused(gus.mls_key_package(kp, os.urandom(32))) == "not_admitted"
        assert await refused(gus.mute("mic", True)) == "not_admitted"
        assert await refused(gus.admit(mo.id)) == "not_admitted"
        await gus.ping()
        assert not received_types(gus) & {
            "Welcome",
            "Subscribe",
            "ParticipantJoined",
            "ParticipantUpdated",
            "MlsTask",
            "MlsCommitPosted",
            "MlsWelcome",
            "MlsMessagePosted",
            "ActiveSpeaker",
            "ConnectionQuality",
        }
        assert guest_peer.recv_pc is None and gus.participants == {}

        # Admitted: the normal welcome, the participant list and a subscribe offer.
        await mo.admit(entry.id)
        welcome = await gus.wait_admitted()
        assert welcome.participant.id == entry.id and welcome.participant.guest
        assert welcome.participant.role == "participant"
        assert [p.id for p in welcome.participants] == [mo.id]
        assert welcome.policy is not None and welcome.policy.lobby == "everyone"
        await gus.wait_for(lambda c: any(t.participant == mo.id for t in c.tracks.values()))
        await mo.wait_for(lambda c: entry.id in c.participants and c.lobby == [])
        assert await refused(mo.admit(entry.id)) == "unknown_participant"  # once only
        assert ("participant_admitted", mo.id, entry.id) in await audit_events(live_server, link)
    finally:
        await gus.close()
        await mo.close()


async def test_a_denied_guest_is_turned_away_and_a_leaver_leaves_the_lobby(
    live_server: LiveServer,
) -> None:
    link, key = await create(live_server, lobby="guests")
    mo = await moderator(link, key)
    dan = await SignallingClient.join(link, "Dan")
    eve = await SignallingClient.join(link, "Eve")
    try:
        assert dan.lobby_position == 1 and eve.lobby_position == 2
        await mo.wait_for(lambda c: len(c.lobby) == 2)
        dan_id = mo.lobby[0].id
        await mo.deny(dan_id)
        await closed_with(dan, 4403)
        assert [e.code for e in dan.errors] == ["denied"]
        assert dan.welcome is None and "Subscribe" not in received_types(dan)
        assert await refused(dan.wait_admitted(1)) == "denied"
        await mo.wait_for(lambda c: [w.name for w in c.lobby] == ["Eve"])
        await eve.wait_for(lambda c: c.lobby_position == 1)  # moved up
        await eve.close()  # gives up waiting
        await mo.wait_for(lambda c: c.lobby == [])
        assert dan_id not in mo.participants
        assert ("participant_denied", mo.id, dan_id) in await audit_events(live_server, link)
    finally:
        await dan.close()
        await eve.close()
        await mo.close()


async def test_lobby_bypass_hook_admits_without_a_moderator_only_with_hooks(
    live_server: LiveServer, hooks_server: LiveServer
) -> None:
    link, _key = await create(live_server, lobby="everyone")
    code = await refused(SignallingClient.join(link, "Bot", test_bypass_lobby=True))
    assert code == "bad_message"
    link, _key = await create(hooks_server, lobby="everyone")
    bot = await SignallingClient.join(link, "Bot", test_bypass_lobby=True)
    try:
        assert bot.welcome is not None and bot.participant is not None
        assert bot.participant.role == "participant"
    finally:
        await bot.close()


async def test_non_moderators_are_forbidden(live_server: LiveServer) -> None:
    link, key = await create(live_server)
    mo = await moderator(link, key)
    pat = await SignallingClient.join(link, "Pat")
    try:
        assert pat.participant is not None and pat.participant.role == "participant"
        assert mo.participants[pat.id].role == "participant"
        for request in (
            pat.admit(mo.id),
            pat.deny(mo.id),
            pat.moderate("mute", mo.id),
            pat.moderate("stop_video", mo.id),
            pat.moderate("stop_screen", mo.id),
            pat.moderate("remove", mo.id, block=True),
            pat.mute_all(),
            pat.set_policy(locked=True),
            pat.set_role(pat.id, "moderator"),
            pat.end_meeting(),
        ):
            assert await refused(request) == "forbidden"
        await pat.ping()
        assert pat.moderated == [] and pat.removed is None and pat.ended is None
        assert not mo.participants[pat.id].audio_muted
        assert await refused(mo.moderate("mute", "nobody")) == "unknown_participant"
        assert await refused(mo.moderate("remove", mo.id)) == "bad_message"
    finally:
        await pat.close()
        await mo.close()


async def test_moderator_mute_pauses_the_producer_at_once_and_the_owner_may_unmute(
    live_server: LiveServer, peers: Callable[[str], AiortcPeer]
) -> None:
    link, key = await create(live_server)
    mo_peer = peers("Mo")
    mo = await moderator(link, key, on_subscribe=mo_peer.subscribe_offer)
    pat_peer = peers("Pat")
    pat = await SignallingClient.join(link, "Pat", on_subscribe=pat_peer.subscribe_offer)
    try:
        await pat_peer.publish(pat.publisher())

        async def flowing(source: str, more_than: int) -> int:
            return await forwarded_beyond(live_server, mo, pat.id, source, more_than)

        await mo.wait_for(lambda c: {t.source for t in c.tracks.values()} == {"mic", "camera"})
        await flowing("mic", 50)
        await mo.moderate("mute", pat.id)
        # The reply came after the producer was paused: nothing more of Pat's mic is
        # forwarded (Pat's client did nothing), while the camera keeps flowing.
        mic = await sent_to(live_server, mo, pat.id, "mic")
        camera = await sent_to(live_server, mo, pat.id, "camera")
        await flowing("camera", camera + 60)
        assert await sent_to(live_server, mo, pat.id, "mic") == mic
        await pat.wait_for(lambda c: c.moderated == [m.Moderated(action="mute", by=mo.id)])
        await mo.wait_for(lambda c: c.participants[pat.id].audio_muted)
        assert pat.participant is not None and pat.participant.audio_muted

        # Soft mute: Pat may speak again.
        await pat.mute("mic", False)
        await flowing("mic", mic + 30)

        # Stop video likewise.
        await mo.moderate("stop_video", pat.id)
        camera = await sent_to(live_server, mo, pat.id, "camera")
        mic = await sent_to(live_server, mo, pat.id, "mic")
        await flowing("mic", mic + 60)
        assert await sent_to(live_server, mo, pat.id, "camera") == camera
        await pat.wait_for(lambda c: len(c.moderated) == 2)
        assert pat.moderated[1] == m.Moderated(action="stop_video", by=mo.id)
        await mo.wait_for(lambda c: c.participants[pat.id].video_muted)

        # Removal closes Pat's (send) transport with its producers.
        assert (await worker_counters(live_server))["transports"] == 2  # and Mo's receive one
        await mo.moderate("remove", pat.id)
        await closed_with(pat, 4401)
        counters = await worker_counters(live_server)
        assert counters["transports"] == 1  # Mo's receive transport only
        assert counters["producers"] == 0 and counters["consumers"] == 0
        await mo.wait_for(lambda c: c.tracks == {})
    finally:
        await pat.close()
        await mo.close()


async def test_stop_screen_closes_the_screen_producer_at_once_and_tells_the_sharer(
    live_server: LiveServer, peers: Callable[[str], AiortcPeer]
) -> None:
    link, key = await create(live_server)
    mo_peer = peers("Mo")
    mo = await moderator(link, key, on_subscribe=mo_peer.subscribe_offer)
    pat_peer = peers("Pat")
    pat = await SignallingClient.join(link, "Pat", on_subscribe=pat_peer.subscribe_offer)
    bo = await SignallingClient.join(link, "Bo")
    try:

        async def as_screen(offer_sdp: str) -> str:
            kinds = default_sources(offer_sdp)  # mid -> "mic" | "camera"
            sources = {mid: "screen" if k == "camera" else k for mid, k in kinds.items()}
            return await pat.publish(offer_sdp, sources)

        await pat_peer.publish(as_screen)
        await mo.wait_for(lambda c: {t.source for t in c.tracks.values()} == {"mic", "screen"})
        await mo.wait_for(lambda c: c.participants[pat.id].screen_sharing)

        async def sent(source: str, more_than: int) -> int:
            return await forwarded_beyond(live_server, mo, pat.id, source, more_than)

        await sent("screen", 30)
        assert (await worker_counters(live_server))["producers"] == 2
        assert await refused(bo.moderate("stop_screen", pat.id)) == "forbidden"
        await mo.moderate("stop_screen", bo.id)  # not sharing: nothing happens
        await mo.moderate("stop_screen", pat.id)
        # The reply came after the producer was closed, with everyone's consumers of it.
        assert (await worker_counters(live_server))["producers"] == 1
        await pat.wait_for(lambda c: c.moderated == [m.Moderated(action="stop_screen", by=mo.id)])
        await mo.wait_for(lambda c: not c.participants[pat.id].screen_sharing)
        await bo.wait_for(lambda c: not c.participants[pat.id].screen_sharing)
        await mo.wait_for(lambda c: {t.source for t in c.tracks.values()} == {"mic"})
        mic = await sent_to(live_server, mo, pat.id, "mic")
        await sent("mic", mic + 30)  # the microphone is untouched
        assert bo.moderated == []
    finally:
        await bo.close()
        await pat.close()
        await mo.close()


async def test_an_invitation_proof_is_relayed_to_everyone_only_in_e2ee_meetings(
    live_server: LiveServer,
) -> None:
    link, key = await create(live_server, lobby="everyone")
    mo = await moderator(link, key)
    invitation = await mo.invite("Ines")
    ines = await SignallingClient.join(link, "Ines", invite=invitation.token)
    try:
        proof = "A" * 43
        await ines.request(m.InviteProof(proof=proof))
        await mo.wait_for(lambda c: c.participants[ines.id].invite_proof == proof)
        with pytest.raises(ValueError):
            m.InviteProof(proof="A" * 42)  # 32 bytes in base64url, nothing else
    finally:
        await ines.close()
        await mo.close()
    plain = await live_server.http.post("/api/meetings", json={"e2ee": False})
    assert plain.status_code == 201, plain.text  # the test server's policy allows it
    bob = await SignallingClient.join(f"{live_server.base}/m/{plain.json()['id']}", "Bob")
    try:
        assert await refused(bob.request(m.InviteProof(proof="A" * 43))) == "bad_message"
    finally:
        await bob.close()


async def test_mute_all_mutes_everyone_but_the_moderator(live_server: LiveServer) -> None:
    link, key = await create(live_server)
    mo = await moderator(link, key)
    others = [await SignallingClient.join(link, name) for name in ("Ann", "Bo", "Cy")]
    try:
        await others[1].mute("mic", True)  # already muted: not told again
        await mo.mute_all()
        for client in others:
            await mo.wait_for(lambda c, client=client: c.participants[client.id].audio_muted)
        assert [len(c.moderated) for c in others] == [1, 0, 1]
        assert others[0].moderated == [m.Moderated(action="mute", by=mo.id)]
        await others[2].wait_for(lambda c: c.participants[others[0].id].audio_muted)
        assert mo.participant is not None and not mo.participant.audio_muted
    finally:
        for client in [*others, mo]:
            await client.close()


async def test_remove_with_block_closes_the_session_and_refuses_a_rejoin(
    live_server: LiveServer,
) -> None:
    link, key = await create(live_server)
    mo = await moderator(link, key)
    guest_id = secrets.token_urlsafe(16)
    cookies = {GUEST_COOKIE: guest_id}
    tom = await SignallingClient.join(link, "Tom", cookies=cookies)
    kim = await SignallingClient.join(link, "Kim")
    try:
        # MLS: Mo creates the group and adds Tom, so Tom's removal is an MLS remove task.
        keys = {c.id: os.urandom(32) for c in (mo, tom)}
        for client in (mo, tom):
            kp = fake.key_package(keys[client.id], fake.identity(client.id, "x"))
            await client.mls_key_package(kp, keys[client.id])
        assert mo.e2ee is not None
        group_id = m.b64decode(mo.e2ee.group_id)
        await mo.wait_for(lambda c: len(c.mls_tasks) == 1 and c.mls_tasks[0].create)
        await mo.mls_create(fake.group_info(group_id, 0), fake.ratchet_tree())
        await mo.wait_for(lambda c: len(c.mls_tasks) == 2, timeout=TIMEOUT)
        assert [a.participant for a in mo.mls_tasks[1].add] == [tom.id]
        await mo.mls_commit(
            fake.commit(group_id, 0),
            welcome=fake.welcome(),
            group_info=fake.group_info(group_id, 1),
            ratchet_tree=fake.ratchet_tree(2),
            added=[tom.id],
        )

        tom_id = tom.id
        await mo.moderate("remove", tom_id, block=True)
        await closed_with(tom, 4401)
        assert tom.removed == m.Removed(by=mo.id, blocked=True)
        for client in (mo, kim):
            await client.wait_for(lambda c: tom_id not in c.participants)
        await mo.wait_for(lambda c: any(tom_id in t.remove for t in c.mls_tasks))
        conferences: Conferences = live_server.app.state.conferences
        (conference,) = conferences._by_meeting.values()
        assert tom_id not in conference.members and tom_id not in conference.room.participants
        # Blocked: the same browser is refused, with the reason.
        code = await refused(SignallingClient.join(link, "Tom again", cookies=cookies))
        assert code == "removed"
        # Removed without a block: may come back.
        kim_id = kim.id
        await mo.moderate("remove", kim_id)
        await closed_with(kim, 4401)
        assert kim.removed == m.Removed(by=mo.id, blocked=False)
        again = await SignallingClient.join(link, "Kim")
        assert again.welcome is not None
        await again.close()
        events = await audit_events(live_server, link)
        assert ("participant_removed", mo.id, tom_id) in events
        assert ("participant_blocked", mo.id, tom_id) in events
        assert ("participant_removed", mo.id, kim_id) in events
        assert ("participant_blocked", mo.id, kim_id) not in events
    finally:
        await tom.close()
        await kim.close()
        await mo.close()


async def test_end_meeting_ends_it_for_everyone_for_good(live_server: LiveServer) -> None:
    link, key = await create(live_server, lobby="everyone")
    mo = await moderator(link, key)
    pat = await SignallingClient.join(link, "Pat")
    try:
        assert pat.waiting
        await mo.wait_for(lambda c: len(c.lobby) == 1)
        await mo.admit(mo.lobby[0].id)
        await pat.wait_admitted()
        wes = await SignallingClient.join(link, "Wes")  # waits
        await mo.wait_for(lambda c: len(c.lobby) == 1)
        await mo.end_meeting()
        for client in (mo, pat, wes):
            await closed_with(client, 4410)
            assert client.ended == m.MeetingEnded(by=mo.id)
        conferences: Conferences = live_server.app.state.conferences
        for _ in range(100):
            if len(conferences) == 0:
                break
            await asyncio.sleep(0.05)
        assert len(conferences) == 0
        assert await refused(SignallingClient.join(link, "Late")) == "meeting_closed"
        assert await refused(moderator(link, key)) == "meeting_closed"
        assert ("meeting_ended", mo.id, None) in await audit_events(live_server, link)
        await wes.close()
    finally:
        await pat.close()
        await mo.close()


async def test_the_last_moderator_leaving_hands_over_and_cannot_be_demoted(
    live_server: LiveServer,
) -> None:
    link, key = await create(live_server)
    mo = await moderator(link, key)
    ann = await SignallingClient.join(link, "Ann")
    bo = await SignallingClient.join(link, "Bo")
    try:
        assert await refused(mo.set_role(mo.id, "participant")) == "last_moderator"
        await mo.set_role(bo.id, "moderator")
        await ann.wait_for(lambda c: c.participants[bo.id].role == "moderator")
        await bo.set_role(mo.id, "participant")  # two moderators: one may step down
        await ann.wait_for(lambda c: c.participants[mo.id].role == "participant")
        assert await refused(mo.mute_all()) == "forbidden"
        await bo.set_role(mo.id, "moderator")
        await mo.wait_for(lambda c: c.participant is not None and c.participant.role == "moderator")
        await bo.set_role(bo.id, "participant")
        # Now Mo is the only moderator; Mo leaves: Ann (longest present) takes over.
        await mo.leave()
        for client in (ann, bo):
            await client.wait_for(lambda c: mo.id not in c.participants)
        await ann.wait_for(
            lambda c: c.participant is not None and c.participant.role == "moderator"
        )
        await bo.wait_for(lambda c: c.participants[ann.id].role == "moderator")
        await ann.mute_all()  # and may moderate
        await bo.wait_for(lambda c: len(c.moderated) == 1)
        events = await audit_events(live_server, link)
        assert ("role_changed", mo.id, bo.id) in events
        assert events[-1] == ("role_changed", "system", ann.id)
    finally:
        for client in (ann, bo, mo):
            await client.close()


async def test_hand_over_when_the_moderators_resume_window_expires(
    live_server: LiveServer,
) -> None:
    conferences: Conferences = live_server.app.state.conferences
    conferences.resume_window = 0.3
    link, key = await create(live_server)
    mo = await moderator(link, key)
    ann = await SignallingClient.join(link, "Ann")
    try:
        mo_id = mo.id
        mo.drop()
        await ann.wait_for(lambda c: mo_id not in c.participants)
        await ann.wait_for(
            lambda c: c.participant is not None and c.participant.role == "moderator"
        )
    finally:
        await ann.close()
        await mo.close()


async def test_set_policy_is_broadcast_stored_and_locks_newcomers_out(
    live_server: LiveServer,
) -> None:
    link, key = await create(live_server)
    mo = await moderator(link, key)
    pat = await SignallingClient.join(link, "Pat")
    try:
        assert pat.policy == m.AccessInfo(
            lobby="off", locked=False, pin_set=False, members_only=False, guests_allowed=True
        )
        await mo.set_policy(locked=True, pin="123456")
        await pat.wait_for(lambda c: c.policy is not None and c.policy.locked)
        assert pat.policy is not None and pat.policy.pin_set
        assert "123456" not in str(pat.received)
        assert await refused(SignallingClient.join(link, "Late")) == "meeting_locked"
        # a meeting never locks out its moderators
        again = await moderator(link, key, name="Mo 2")
        await again.close()
        await mo.set_policy(locked=False, pin=None, lobby="guests")
        await pat.wait_for(lambda c: c.policy is not None and not c.policy.locked)
        assert pat.policy is not None and not pat.policy.pin_set and pat.policy.lobby == "guests"
        late = await SignallingClient.join(link, "Late")
        assert late.waiting  # a guest waits now
        await late.close()
        events = await audit_events(live_server, link)
        assert ("meeting_locked", mo.id, None) in events
        assert ("meeting_unlocked", mo.id, None) in events
        assert [k for k, *_ in events].count("policy_changed") == 2
        assert "123456" not in str(await live_server.app.state.audit.query(limit=1000))
        await mo.send_raw('{"type": "set_policy", "rid": 999, "pin": "12"}')
        await mo.wait_for(lambda c: any(e.rid == 999 for e in c.errors))
        assert [e.code for e in mo.errors if e.rid == 999] == ["bad_message"]
    finally:
        await pat.close()
        await mo.close()


async def test_hand_over_prefers_a_signed_in_participant_and_blocks_hold_for_accounts(
    live_server: LiveServer,
) -> None:
    from .test_access_join import session_cookies, signed_in_client

    http = await signed_in_client(live_server, "sally")
    link, key = await create(live_server)
    mo = await moderator(link, key)
    gus = await SignallingClient.join(link, "Gus")  # a guest, here first
    sally = await SignallingClient.join(link, "Sally", cookies=session_cookies(http))
    stan_http = await signed_in_client(live_server, "stan")
    stan = await SignallingClient.join(link, "Stan", cookies=session_cookies(stan_http))
    try:
        assert sally.participant is not None and not sally.participant.guest
        assert gus.participants[sally.id].guest is False and mo.participants[gus.id].guest
        await mo.leave()
        await sally.wait_for(is_moderator)
        await gus.wait_for(lambda c: c.participants[sally.id].role == "moderator")
        assert gus.participant is not None and gus.participant.role == "participant"
        # Sally removes Stan with a block: his account is refused, wherever he signs in.
        stan_id = stan.id
        await sally.moderate("remove", stan_id, block=True)
        await closed_with(stan, 4401)
        assert stan.removed == m.Removed(by=sally.id, blocked=True)
        code = await refused(
            SignallingClient.join(link, "Stan", cookies=session_cookies(stan_http))
        )
        assert code == "removed"
        assert ("participant_blocked", sally.id, stan_id) in await audit_events(live_server, link)
    finally:
        for client in (mo, gus, sally, stan):
            await client.close()
        await http.aclose()
        await stan_http.aclose()
