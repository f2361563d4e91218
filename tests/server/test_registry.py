"""The meeting registry over a real SQLite store, driven by a hand-set clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from incamera.server.meetings import ClosePolicy, MeetingClosed, MeetingNotFound
from incamera.server.registry import MeetingRegistry
from incamera.store import Database, MeetingStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
POLICY = ClosePolicy(empty_grace=timedelta(minutes=5), unused_ttl=timedelta(days=1))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> MeetingStore:
    database = Database(f"sqlite:///{tmp_path / 'incamera.db'}")
    database.upgrade()
    return MeetingStore(database)


@pytest.fixture
def registry(store: MeetingStore, clock: Clock) -> MeetingRegistry:
    return MeetingRegistry(store, POLICY, clock)


async def test_create_get_join_leave_close(
    registry: MeetingRegistry, store: MeetingStore, clock: Clock
):
    meeting = await registry.create("Retro")
    assert (await registry.get(meeting.id)).title == "Retro"

    await registry.join(meeting.id, "p1")
    await registry.join(meeting.id, "p2")
    assert registry.occupied_count == 1
    assert len((await registry.get(meeting.id)).participants) == 2
    row = store.get(meeting.id)
    assert row is not None and row.closes_at is None  # occupied: persisted as never closing

    clock.advance(days=3)  # far beyond the unused TTL: occupied meetings stay open
    assert await registry.sweep() == []
    await registry.leave(meeting.id, "p1")
    await registry.leave(meeting.id, "p2")
    assert registry.occupied_count == 0
    row = store.get(meeting.id)
    assert row is not None and row.closes_at == clock.now + timedelta(minutes=5)

    clock.advance(minutes=4)
    assert await registry.sweep() == []
    await registry.join(meeting.id, "p1")  # back within the grace period
    await registry.leave(meeting.id, "p1")
    clock.advance(minutes=5)
    assert await registry.sweep() == [meeting.id]
    with pytest.raises(MeetingClosed):
        await registry.join(meeting.id, "p3")
    assert not (await registry.get(meeting.id)).is_open(clock.now)


async def test_unused_meeting_expires(registry: MeetingRegistry, clock: Clock):
    meeting = await registry.create()
    clock.advance(hours=23)
    assert await registry.sweep() == []
    clock.advance(hours=1)
    assert await registry.sweep() == [meeting.id]


async def test_unknown_and_malformed_ids(registry: MeetingRegistry):
    for meeting_id in ("Z" * 22, "../../etc/passwd", ""):
        with pytest.raises(MeetingNotFound):
            await registry.get(meeting_id)
        with pytest.raises(MeetingNotFound):
            await registry.join(meeting_id, "p")
    await registry.leave("Z" * 22, "p")  # no error: nothing to leave


async def test_recover_after_restart(store: MeetingStore, clock: Clock):
    before = MeetingRegistry(store, POLICY, clock)
    meeting = await before.create()
    await before.join(meeting.id, "p1")
    # The process dies with p1 "inside"; a new registry starts on the same database.
    clock.advance(hours=1)
    after = MeetingRegistry(store, POLICY, clock)
    assert await after.recover() == 1
    clock.advance(minutes=5)
    assert await after.sweep() == [meeting.id]


async def test_invitations_and_blocks_for_the_moderators_list(
    registry: MeetingRegistry, clock: Clock
):
    meeting = await registry.create(None)
    await registry.add_invitation(
        meeting.id, "t" * 22, "participant", "Ines", T0 + timedelta(hours=1)
    )
    await registry.add_invitation(meeting.id, "u" * 22, "moderator", None, T0 + timedelta(hours=2))
    listed = await registry.list_invitations(meeting.id)
    assert [(i.name, i.role) for i in listed] == [("Ines", "participant"), (None, "moderator")]
    clock.advance(hours=1)  # the registry's clock decides what has expired
    (left,) = await registry.list_invitations(meeting.id)
    assert left.role == "moderator"
    assert await registry.revoke_invitation(meeting.id, left.token_hash) is True
    assert await registry.list_invitations(meeting.id) == []

    await registry.block(meeting.id, guest_id="g" * 22, name="Gus")
    (block,) = await registry.list_blocks(meeting.id)
    assert (block.kind, block.subject, block.name, block.created_at) == (
        "guest",
        "g" * 22,
        "Gus",
        clock.now,
    )
    assert await registry.unblock(meeting.id, "guest", "g" * 22) is True
    assert await registry.list_blocks(meeting.id) == []
