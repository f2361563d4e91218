"""The access tables on SQLite and PostgreSQL: meeting policy columns, invitations (and
the moderators' list and revocation of them), blocks (with names; lifting them), migration
0005 on existing blocks, the audit log (query order and filters, retention purge)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from incamera.rooms.access import AccessPolicy, secret_digest
from incamera.store import Database, MeetingRecord, MeetingStore
from incamera.store.access import AccessStore, BlockRecord, InvitationRecord
from incamera.store.audit import AuditEvent, AuditStore

from .test_store import database, empty_database  # noqa: F401  (SQLite/PostgreSQL fixtures)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MEETING = "M" * 22
MIN = timedelta(minutes=1)


def meeting(db: Database, **fields: object) -> MeetingStore:
    store = MeetingStore(db)
    store.insert(MeetingRecord(MEETING, None, T0, T0 + timedelta(days=1), None, **fields))  # type: ignore[arg-type]
    return store


def test_meeting_policy_key_and_owner_round_trip(database: Database) -> None:  # noqa: F811
    policy = AccessPolicy(lobby="guests", locked=True, pin_hash="$argon2id$x")
    store = meeting(
        database, access_policy=policy.stored(), moderator_key_hash=secret_digest("k" * 22)
    )
    got = store.get(MEETING)
    assert got is not None
    assert AccessPolicy.from_stored(got.access_policy) == policy
    assert got.moderator_key_hash == secret_digest("k" * 22) and got.owner_account_id is None
    store.set_access_policy(MEETING, AccessPolicy().stored())
    again = store.get(MEETING)
    assert again is not None and AccessPolicy.from_stored(again.access_policy) == AccessPolicy()
    store.close_now(MEETING, T0)
    closed = store.get(MEETING)
    assert closed is not None and closed.closed_at == T0


def test_invitations_and_blocks(database: Database) -> None:  # noqa: F811
    meeting(database)
    access = AccessStore(database)
    record = InvitationRecord("d" * 64, MEETING, "moderator", "Ines", T0, T0 + timedelta(hours=1))
    access.add_invitation(record)
    assert access.find_invitation(MEETING, "d" * 64) == record
    assert access.find_invitation("N" * 22, "d" * 64) is None  # another meeting's link
    assert access.purge_expired_invitations(T0 + timedelta(minutes=59)) == 0
    assert access.purge_expired_invitations(T0 + timedelta(hours=1)) == 1
    assert access.find_invitation(MEETING, "d" * 64) is None
    access.block(MEETING, "account", "acc1", T0)
    access.block(MEETING, "account", "acc1", T0)  # idempotent
    access.block(MEETING, "guest", "g" * 22, T0)
    blocks = access.blocks(MEETING)
    assert blocks.account_ids == {"acc1"} and blocks.guest_ids == {"g" * 22}
    assert not access.blocks("N" * 22).account_ids


def test_open_invitations_are_listed_newest_first_and_revoked(database: Database) -> None:  # noqa: F811
    meeting(database)
    MeetingStore(database).insert(MeetingRecord("N" * 22, None, T0, None, None))
    access = AccessStore(database)
    hour = timedelta(hours=1)
    old = InvitationRecord("a" * 64, MEETING, "participant", None, T0, T0 + 2 * hour)
    new = InvitationRecord("b" * 64, MEETING, "moderator", "Ines", T0 + hour, T0 + 3 * hour)
    short = InvitationRecord("c" * 64, MEETING, "participant", "Sam", T0 + hour, T0 + 90 * MIN)
    elsewhere = InvitationRecord("e" * 64, "N" * 22, "participant", None, T0, T0 + 9 * hour)
    for record in (old, new, short, elsewhere):
        access.add_invitation(record)
    assert access.list_invitations(MEETING, T0 + hour) == [new, short, old]
    # Expiry is exclusive: at expires_at the link no longer works, and is not listed.
    assert access.list_invitations(MEETING, T0 + 90 * MIN) == [new, old]
    assert access.list_invitations(MEETING, T0 + 3 * hour) == []
    assert access.list_invitations("N" * 22, T0) == [elsewhere]

    assert access.revoke_invitation(MEETING, "b" * 64) is True
    assert access.find_invitation(MEETING, "b" * 64) is None
    assert access.revoke_invitation(MEETING, "b" * 64) is False  # already gone
    assert access.revoke_invitation(MEETING, "e" * 64) is False  # another meeting's
    assert access.find_invitation("N" * 22, "e" * 64) == elsewhere
    assert access.list_invitations(MEETING, T0 + hour) == [short, old]


def test_blocks_keep_the_name_and_can_be_lifted(database: Database) -> None:  # noqa: F811
    meeting(database)
    access = AccessStore(database)
    access.block(MEETING, "guest", "g" * 22, T0, name="Gus")
    access.block(MEETING, "account", "acc1", T0 + MIN, name="Ada Lovelace")
    access.block(MEETING, "account", "acc1", T0 + 2 * MIN, name="Someone else")  # idempotent
    access.block(MEETING, "account", "acc2", T0 + 3 * MIN)  # no name
    access.block(MEETING, "guest", "h" * 22, T0 + 4 * MIN, name="L" * 250)  # cut to the column
    assert access.list_blocks(MEETING) == [
        BlockRecord("guest", "h" * 22, "L" * 200, T0 + 4 * MIN),
        BlockRecord("account", "acc2", None, T0 + 3 * MIN),
        BlockRecord("account", "acc1", "Ada Lovelace", T0 + MIN),
        BlockRecord("guest", "g" * 22, "Gus", T0),
    ]
    assert access.list_blocks("N" * 22) == []

    assert access.unblock(MEETING, "account", "acc1") is True
    assert access.unblock(MEETING, "account", "acc1") is False
    assert access.unblock(MEETING, "account", "g" * 22) is False  # the kind must match
    assert access.unblock(MEETING, "guest", "g" * 22) is True
    blocks = access.blocks(MEETING)  # what the join decision reads
    assert blocks.account_ids == {"acc2"} and blocks.guest_ids == {"h" * 22}


def test_migration_0005_keeps_existing_blocks_without_a_name(empty_database: Database) -> None:  # noqa: F811
    empty_database.upgrade("0004")
    with empty_database.engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO meetings (id, e2ee, created_at) VALUES (:id, :e2ee, :at)"),
            {"id": MEETING, "e2ee": True, "at": T0},
        )
        connection.execute(
            sa.text(
                "INSERT INTO meeting_blocks (meeting_id, kind, subject, created_at)"
                " VALUES (:m, 'guest', :g, :at), (:m, 'account', 'acc1', :at)"
            ),
            {"m": MEETING, "g": "g" * 22, "at": T0},
        )
    empty_database.upgrade()
    assert empty_database.current_revision() == "0005"
    access = AccessStore(empty_database)
    assert {(b.kind, b.subject, b.name) for b in access.list_blocks(MEETING)} == {
        ("guest", "g" * 22, None),
        ("account", "acc1", None),
    }
    blocks = access.blocks(MEETING)
    assert blocks.account_ids == {"acc1"} and blocks.guest_ids == {"g" * 22}


def test_audit_events_newest_first_filtered_and_purged(database: Database) -> None:  # noqa: F811
    audit = AuditStore(database)
    audit.insert_many(
        [
            AuditEvent(at=T0 + timedelta(minutes=n), kind=kind, meeting_id=mid, details={"n": n})
            for n, (kind, mid) in enumerate(
                [("meeting_created", MEETING), ("join_refused", MEETING), ("signin_failed", None)]
            )
        ]
    )
    events = audit.query()
    assert [e.kind for e in events] == ["signin_failed", "join_refused", "meeting_created"]
    assert events[0].details == {"n": 2} and events[0].at == T0 + timedelta(minutes=2)
    assert [e.kind for e in audit.query(meeting_id=MEETING, limit=1)] == ["join_refused"]
    assert [e.kind for e in audit.query(kind="meeting_created")] == ["meeting_created"]
    assert len(audit.query(since=T0 + timedelta(minutes=1))) == 2
    assert audit.purge_before(T0 + timedelta(minutes=1)) == 1
    assert [e.kind for e in audit.query()] == ["signin_failed", "join_refused"]


async def test_audit_log_records_without_waiting_and_purges_after_retention(
    database: Database,  # noqa: F811
) -> None:
    from incamera.config import AuditSettings
    from incamera.server.audit import AuditLog

    now = [T0]
    log = AuditLog(AuditStore(database), AuditSettings(retention_days=30), lambda: now[0])
    log.record("meeting_created", meeting_id=MEETING, source_ip="192.0.2.1")
    with_ip = AuditLog(AuditStore(database), AuditSettings(store_ip_addresses=True), lambda: now[0])
    with_ip.record("signin_failed", details={"reason": "bad_credentials"}, source_ip="192.0.2.1")
    await with_ip.flush()
    events = await log.query()  # flushes what was queued
    assert {(e.kind, e.source_ip) for e in events} == {
        ("meeting_created", None),
        ("signin_failed", "192.0.2.1"),
    }
    now[0] = T0 + timedelta(days=30)
    assert await log.purge() == 0
    now[0] = T0 + timedelta(days=30, seconds=1)
    assert await log.purge() == 2
    assert await log.query() == []
