"""End-to-end encrypted meetings through the real server: the MLS delivery service with
Python signalling clients sending fake but well-formed MLS framing (no real MLS here: the
server only reads the clear framing), the E2EE/plain meeting split, the test hook and
``key_frame``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from incamera.e2ee.delivery import ADD_INTERVAL
from incamera.signalling import messages as m
from incamera.signalling.client import SignallingClient
from incamera.signalling.conferences import Conferences
from incamera.signalling.errors import SignallingError
from support import mls_fake as fake
from support.aiortc_peer import AiortcPeer

from .conftest import LiveServer


class MlsClient:
    """A signalling client with a fake MLS identity (a device key and key packages)."""

    def __init__(self, client: SignallingClient) -> None:
        self.client = client
        self.device_key = os.urandom(32)
        assert client.e2ee is not None
        self.group_id = m.b64decode(client.e2ee.group_id)

    @property
    def id(self) -> str:
        return self.client.id

    async def key_package(self) -> bytes:
        assert self.client.participant is not None
        kp = fake.key_package(self.device_key, fake.identity(self.id, self.client.participant.name))
        await self.client.mls_key_package(kp, self.device_key)
        return kp

    async def commit(
        self, epoch: int, *, added: tuple[str, ...] = (), removed: tuple[str, ...] = ()
    ) -> bytes:
        commit = fake.commit(self.group_id, epoch)
        await self.client.mls_commit(
            commit,
            welcome=fake.welcome() if added else None,
            group_info=fake.group_info(self.group_id, epoch + 1),
            ratchet_tree=fake.ratchet_tree(len(added) + 1),
            added=added,
            removed=removed,
        )
        return commit


async def join(server: LiveServer, link: str, name: str, **kwargs: object) -> MlsClient:
    return MlsClient(await SignallingClient.join(link, name, **kwargs))  # type: ignore[arg-type]


async def next_task(client: SignallingClient, count: int) -> m.MlsTask:
    """Wait for the ``count``-th task (1-based) this client receives."""
    await client.wait_for(lambda c: len(c.mls_tasks) >= count)
    return client.mls_tasks[count - 1]


async def test_three_members_create_add_commit_and_relay(live_server: LiveServer) -> None:
    link = await live_server.new_meeting()
    ann = await join(live_server, link, "Ann")
    clients = [ann.client]
    try:
        assert ann.client.e2ee is not None and ann.client.e2ee.epoch is None
        assert len(ann.group_id) == 16
        # plain chat is refused in an E2EE meeting
        with pytest.raises(SignallingError) as caught:
            await ann.client.send_chat("hello")
        assert caught.value.code == "e2ee_required"
        # Ann's key package makes her the creator
        await ann.key_package()
        task = await next_task(ann.client, 1)
        assert task.create and task.epoch is None and not task.add
        await ann.client.mls_create(fake.group_info(ann.group_id, 0), fake.ratchet_tree())

        bo = await join(live_server, link, "Bo")
        clients.append(bo.client)
        assert bo.client.e2ee is not None and bo.client.e2ee.epoch == 0
        assert bo.group_id == ann.group_id
        bo_kp = await bo.key_package()
        # everyone learns Bo's device key, then Ann (the committer) gets the add
        await ann.client.wait_for(
            lambda c: c.participants[bo.id].device_key == m.b64encode(bo.device_key)
        )
        task = await next_task(ann.client, 2)
        assert task.epoch == 0 and not task.create and not task.remove
        assert [(a.participant, m.b64decode(a.key_package)) for a in task.add] == [(bo.id, bo_kp)]
        await ann.commit(0, added=(bo.id,))
        await bo.client.wait_for(lambda c: len(c.mls_welcomes) == 1)
        assert bo.client.mls_welcomes[0].epoch == 1
        assert bo.client.mls_commits == [] and ann.client.mls_commits == []

        # Cy joins right after that commit: the add is batched (>= 1.5 s after it)
        cy = await join(live_server, link, "Cy")
        clients.append(cy.client)
        assert cy.client.participants[bo.id].device_key == m.b64encode(bo.device_key)
        await cy.key_package()
        task = await next_task(ann.client, 3)
        assert [a.participant for a in task.add] == [cy.id] and task.epoch == 1
        # Bo's own commit for epoch 0 is stale
        with pytest.raises(SignallingError) as caught:
            await bo.commit(0)
        assert caught.value.code == "stale_epoch"
        # Bo commits first for epoch 1 (an unrequested update): Ann's add becomes stale
        bo_commit = await bo.commit(1)
        with pytest.raises(SignallingError) as caught:
            await ann.commit(1, added=(cy.id,))
        assert caught.value.code == "stale_epoch"
        await ann.client.wait_for(lambda c: len(c.mls_commits) == 1)
        assert ann.client.mls_commits[0] == m.MlsCommitPosted(
            epoch=1, commit=m.b64encode(bo_commit), sender=bo.id
        )
        # the add is handed out again for epoch 2, in its own time
        task = await next_task(ann.client, 4)
        assert [a.participant for a in task.add] == [cy.id] and task.epoch == 2
        ann_commit = await ann.commit(2, added=(cy.id,))
        await cy.client.wait_for(lambda c: len(c.mls_welcomes) == 1)
        assert cy.client.mls_welcomes[0].epoch == 3
        await bo.client.wait_for(lambda c: len(c.mls_commits) == 1)
        assert m.b64decode(bo.client.mls_commits[0].commit) == ann_commit

        # an application message goes to the other members, never stored
        message = fake.private_message(cy.group_id, 3)
        await cy.client.mls_message(message)
        for member in (ann, bo):
            await member.client.wait_for(lambda c: len(c.mls_messages) == 1)
            relayed = member.client.mls_messages[0]
            assert relayed.sender == cy.id and m.b64decode(relayed.message) == message
        assert cy.client.mls_messages == []

        # malformed MLS: an error with a reason, and the session carries on
        with pytest.raises(SignallingError) as caught:
            await bo.client.mls_message(b"\x00\x01\x00\x02garbage")
        assert caught.value.code == "bad_mls" and caught.value.reason
        with pytest.raises(SignallingError) as caught:
            await bo.client.mls_message(fake.private_message(os.urandom(16), 3))
        assert caught.value.code == "bad_mls"
        await bo.client.send_raw('{"type":"mls_message","message":"not base64!","rid":99}')
        await bo.client.wait_for(lambda c: len(c.errors) == 1)
        assert (bo.client.errors[0].code, bo.client.errors[0].rid) == ("bad_message", 99)
        await bo.client.ping()
        await bo.client.mls_message(fake.private_message(bo.group_id, 3))

        # a participant outside the group may not send MLS messages or commits
        di = await join(live_server, link, "Di")
        clients.append(di.client)
        assert di.client.e2ee is not None and di.client.e2ee.epoch == 3
        with pytest.raises(SignallingError) as caught:
            await di.client.mls_message(fake.private_message(di.group_id, 3))
        assert caught.value.code == "not_mls_member"
        with pytest.raises(SignallingError) as caught:
            await di.commit(3)
        assert caught.value.code == "not_mls_member"

        # Bo leaves: Ann is asked at once to remove him
        tasks_before = len(ann.client.mls_tasks)
        await bo.client.leave()
        task = await next_task(ann.client, tasks_before + 1)
        assert task.remove == [bo.id] and task.epoch == 3
    finally:
        for client in clients:
            await client.close()


async def test_the_committer_leaving_hands_the_task_over(live_server: LiveServer) -> None:
    link = await live_server.new_meeting()
    ann = await join(live_server, link, "Ann")
    clients = [ann.client]
    try:
        await ann.key_package()
        await next_task(ann.client, 1)
        await ann.client.mls_create(fake.group_info(ann.group_id, 0), fake.ratchet_tree())
        bo = await join(live_server, link, "Bo")
        clients.append(bo.client)
        await bo.key_package()
        await next_task(ann.client, 2)
        await ann.commit(0, added=(bo.id,))
        await asyncio.sleep(ADD_INTERVAL)
        cy = await join(live_server, link, "Cy")
        clients.append(cy.client)
        await cy.key_package()
        await next_task(ann.client, 3)
        # Ann drops without answering: Bo gets the add, with Ann's removal once she expires
        ann.client.drop()
        task = await next_task(bo.client, 1)
        assert [a.participant for a in task.add] == [cy.id] and task.epoch == 1
        await bo.commit(1, added=(cy.id,))
        await cy.client.wait_for(lambda c: len(c.mls_welcomes) == 1)
    finally:
        for client in clients:
            await client.close()


async def test_the_group_is_created_again_when_its_members_are_gone(
    live_server: LiveServer,
) -> None:
    link = await live_server.new_meeting()
    ann = await join(live_server, link, "Ann")
    bo = await join(live_server, link, "Bo")
    try:
        await ann.key_package()
        await next_task(ann.client, 1)
        await ann.client.mls_create(fake.group_info(ann.group_id, 0), fake.ratchet_tree())
        await ann.client.leave()
        await bo.key_package()  # the only MLS member is gone: Bo creates a new group
        task = await next_task(bo.client, 1)
        assert task.create
        await bo.client.mls_create(fake.group_info(bo.group_id, 0), fake.ratchet_tree())
        with pytest.raises(SignallingError) as caught:
            await bo.client.mls_create(fake.group_info(bo.group_id, 0), fake.ratchet_tree())
        assert caught.value.code == "group_exists"
    finally:
        await ann.client.close()
        await bo.client.close()


async def test_a_meeting_without_e2ee(live_server: LiveServer) -> None:
    link = await live_server.new_meeting(e2ee=False)
    ann = await SignallingClient.join(link, "Ann")
    try:
        assert ann.welcome is not None and ann.welcome.e2ee is None
        await ann.send_chat("plain")
        with pytest.raises(SignallingError) as caught:
            await ann.mls_key_package(fake.key_package(bytes(32)), bytes(32))
        assert caught.value.code == "not_e2ee"
        with pytest.raises(SignallingError) as caught:
            await ann.mls_message(fake.private_message(bytes(16), 0))
        assert caught.value.code == "not_e2ee"
        await ann.wait_for(lambda c: [x.text for x in c.chat] == ["plain"])
    finally:
        await ann.close()


async def test_the_skip_hook_is_refused_without_hooks(live_server: LiveServer) -> None:
    link = await live_server.new_meeting()
    with pytest.raises(SignallingError) as caught:
        await SignallingClient.join(link, "Bot", test_skip_mls=True)
    assert caught.value.code == "bad_message"


async def test_a_skipped_participant_stays_outside_the_group(hooks_server: LiveServer) -> None:
    link = await hooks_server.new_meeting()
    bot = await join(hooks_server, link, "Bot", test_skip_mls=True)
    ann = await join(hooks_server, link, "Ann")
    try:
        await bot.key_package()
        with pytest.raises(SignallingError) as caught:
            await bot.client.mls_create(fake.group_info(bot.group_id, 0), fake.ratchet_tree())
        assert caught.value.code == "not_mls_member"
        await ann.key_package()
        task = await next_task(ann.client, 1)  # the bot joined first but never creates
        assert task.create
        await ann.client.mls_create(fake.group_info(ann.group_id, 0), fake.ratchet_tree())
        await asyncio.sleep(ADD_INTERVAL + 0.5)
        await ann.client.ping()
        assert len(ann.client.mls_tasks) == 1  # the bot's key package is never handed out
        assert bot.client.mls_tasks == [] and bot.client.mls_welcomes == []
        # the bot still takes part in the meeting
        assert ann.client.participants[bot.id].device_key == m.b64encode(bot.device_key)
    finally:
        await bot.client.close()
        await ann.client.close()


async def test_key_frame_reaches_the_media_plane(
    live_server: LiveServer, peers: Callable[[str], AiortcPeer]
) -> None:
    link = await live_server.new_meeting()
    ann_peer = peers("Ann")
    ann = await SignallingClient.join(link, "Ann", on_subscribe=ann_peer.subscribe_offer)
    bo_peer = peers("Bo")
    bo = await SignallingClient.join(link, "Bo", on_subscribe=bo_peer.subscribe_offer)
    try:
        await ann_peer.publish(ann.publisher())
        await bo.wait_for(lambda c: any(t.source == "camera" for t in c.tracks.values()), 40)
        await bo_peer.wait_for(lambda p: any(r.frames >= 5 for r in p.received.values()), 40)
        (mid,) = [mid for mid, t in bo.tracks.items() if t.source == "camera"]
        conferences: Conferences = live_server.app.state.conferences
        conference = conferences.find(link.rsplit("/", 1)[1])
        assert conference is not None
        consumer_id = conference.members[bo.id].by_mid[mid].consumer_id

        async def requests() -> int:
            stats = await conference.worker.consumer_stats(consumer_id)
            return int(stats["keyframe_requests"] or 0)

        before = await requests()
        await asyncio.sleep(0.4)  # the media plane allows one request per 300 ms
        await bo.key_frame(mid)
        assert await requests() == before + 1
        with pytest.raises(SignallingError) as caught:
            await bo.key_frame("no-such-mid")
        assert caught.value.code == "bad_message"
    finally:
        await ann.close()
        await bo.close()


async def test_mls_messages_wait_for_a_resumed_member(live_server: LiveServer) -> None:
    link = await live_server.new_meeting()
    ann = await join(live_server, link, "Ann")
    bo = await join(live_server, link, "Bo")
    again: SignallingClient | None = None
    try:
        await ann.key_package()
        await next_task(ann.client, 1)
        await ann.client.mls_create(fake.group_info(ann.group_id, 0), fake.ratchet_tree())
        await bo.key_package()
        await next_task(ann.client, 2)
        await ann.commit(0, added=(bo.id,))
        await bo.client.wait_for(lambda c: len(c.mls_welcomes) == 1)
        bo.client.drop()
        await ann.client.wait_for(lambda c: c.participants[bo.id].reconnecting)
        message = fake.private_message(ann.group_id, 1)
        await ann.client.mls_message(message)
        commit = await ann.commit(1)
        again = await SignallingClient.join(link, "Bo", resume=bo.client.resume_token)
        assert again.welcome is not None and again.welcome.resumed
        assert again.e2ee is not None and again.e2ee.epoch == 2
        await again.wait_for(lambda c: len(c.mls_commits) == 1)
        kinds = [type(x) for x in again.received]
        assert kinds.index(m.MlsMessagePosted) < kinds.index(m.MlsCommitPosted)
        assert m.b64decode(again.mls_messages[0].message) == message
        assert again.mls_commits[0].epoch == 1
        assert m.b64decode(again.mls_commits[0].commit) == commit
    finally:
        for client in (ann.client, bo.client, again):
            if client is not None:
                await client.close()
