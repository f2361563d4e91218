"""The access tables on SQLite and PostgreSQL: meeting policy columns, invitations,
blocks, the audit log (query order and filters, retention purge)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incamera.rooms.access import AccessPolicy, secret_digest
from incamera.store import Database, MeetingRecord, MeetingStore
from incamera.store.access import AccessStore, InvitationRecord
from incamera.store.audit import AuditEvent, AuditStore

from .test_store import database  # noqa: F401  (the SQLite/PostgreSQL fixture)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MEETING = "M" * 22


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
