"""The meeting rules as plain objects, with explicit times (no clock, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from incamera.server.meetings import (
    ClosePolicy,
    Meeting,
    MeetingClosed,
    is_meeting_id,
    new_meeting_id,
)

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
POLICY = ClosePolicy(empty_grace=timedelta(minutes=5), unused_ttl=timedelta(days=1))


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def test_new_meeting_waits_for_its_first_participant():
    meeting = Meeting.create("m", T0, POLICY, title="Standup")
    assert meeting.closes_at == T0 + timedelta(days=1)
    assert meeting.is_open(T0 + timedelta(hours=23))
    assert not meeting.is_open(T0 + timedelta(days=1))
    assert meeting.close_if_due(T0 + timedelta(days=1))
    assert meeting.closed_at == T0 + timedelta(days=1)


def test_occupied_meeting_never_closes_and_the_last_one_out_starts_the_grace():
    meeting = Meeting.create("m", T0, POLICY)
    assert meeting.join("alice", minutes(1)) is True  # first in: closes_at cleared
    assert meeting.join("bob", minutes(2)) is False
    assert meeting.closes_at is None
    assert not meeting.close_if_due(minutes(60 * 24 * 30))
    assert meeting.leave("alice", minutes(10)) is False
    assert meeting.closes_at is None
    assert meeting.leave("bob", minutes(20)) is True
    assert meeting.closes_at == minutes(25)
    assert not meeting.close_if_due(minutes(24))
    assert meeting.close_if_due(minutes(25))
    assert not meeting.close_if_due(minutes(26))  # closes once


def test_rejoining_within_the_grace_keeps_the_meeting():
    meeting = Meeting.create("m", T0, POLICY)
    meeting.join("alice", minutes(1))
    meeting.leave("alice", minutes(2))  # e.g. a page reload
    meeting.join("alice", minutes(3))
    assert meeting.closes_at is None
    assert not meeting.close_if_due(minutes(100))


def test_a_closed_or_expired_meeting_cannot_be_joined():
    meeting = Meeting.create("m", T0, POLICY)
    meeting.join("alice", minutes(1))
    meeting.leave("alice", minutes(2))
    with pytest.raises(MeetingClosed):
        meeting.join("bob", minutes(7))  # past closes_at, even before the sweeper ran
    meeting.close_if_due(minutes(8))
    with pytest.raises(MeetingClosed):
        meeting.join("bob", minutes(8))


def test_leaving_twice_or_unknown_is_harmless():
    meeting = Meeting.create("m", T0, POLICY)
    meeting.join("alice", minutes(1))
    assert meeting.leave("mallory", minutes(2)) is False
    assert meeting.leave("alice", minutes(3)) is True
    assert meeting.leave("alice", minutes(4)) is False
    assert meeting.closes_at == minutes(8)


def test_zero_grace_closes_at_once():
    meeting = Meeting.create("m", T0, ClosePolicy(timedelta(0), timedelta(days=1)))
    meeting.join("alice", minutes(1))
    meeting.leave("alice", minutes(2))
    assert meeting.close_if_due(minutes(2))


def test_policy_rejects_negative_durations():
    with pytest.raises(ValueError):
        ClosePolicy(timedelta(seconds=-1), timedelta(days=1))
    with pytest.raises(ValueError):
        ClosePolicy(timedelta(0), timedelta(0))


def test_meeting_ids():
    ids = {new_meeting_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_meeting_id(i) and len(i) >= 22 for i in ids)
    for bad in ("", "abc", "a" * 21, "a" * 65, "a/" + "b" * 30, "ä" * 30, "a" * 30 + "\n"):
        assert not is_meeting_id(bad)
