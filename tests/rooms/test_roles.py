"""Roles and moderation rules: who may do what, the moderator hand-over and the refusal to
demote the last moderator."""

from __future__ import annotations

import pytest

from incamera.rooms import Action, Forbidden, LastModerator, ModerationError, Role, Room
from incamera.rooms.roles import check, check_target, may, successor


def test_only_moderators_may_moderate() -> None:
    for action in Action:
        assert may(Role.MODERATOR, action)
        assert not may(Role.PARTICIPANT, action)
        check(Role.MODERATOR, action)
        with pytest.raises(Forbidden) as caught:
            check(Role.PARTICIPANT, action)
        assert caught.value.code == "forbidden"
        assert caught.value.reason.startswith("only moderators can ")


def test_a_moderator_cannot_remove_itself_but_may_mute_itself() -> None:
    with pytest.raises(ModerationError) as caught:
        check_target(Action.REMOVE, "a", "a")
    assert caught.value.code == "bad_message"
    check_target(Action.REMOVE, "a", "b")
    check_target(Action.MUTE, "a", "a")


def test_the_last_moderator_leaving_promotes_the_longest_present_signed_in_participant() -> None:
    room = Room()
    room.join("mod", "Ada", role=Role.MODERATOR, guest=False, account="acc-ada")
    room.join("g1", "Guest One")
    room.join("s1", "Sam", guest=False, account="acc-sam")
    room.join("s2", "Sue", guest=False, account="acc-sue")
    assert [p.id for p in room.moderators] == ["mod"]
    left = room.leave("mod")
    assert left is not None and left.moderator
    heir = room.hand_over()
    assert heir is room.get("s1")  # signed in beats the guest who came earlier
    assert [p.id for p in room.moderators] == ["s1"]
    assert room.hand_over() is None  # a moderator is present: nothing changes


def test_without_signed_in_participants_the_longest_present_guest_is_promoted() -> None:
    room = Room()
    room.join("mod", "Ada", role=Role.MODERATOR)
    room.join("g1", "Guest One")
    room.join("g2", "Guest Two")
    room.leave("mod")
    assert room.hand_over() is room.get("g1")
    assert room.get("g1").role is Role.MODERATOR and room.get("g2").role is Role.PARTICIPANT


def test_no_hand_over_while_another_moderator_is_present_or_nobody_is() -> None:
    room = Room()
    room.join("m1", "Ada", role=Role.MODERATOR)
    room.join("m2", "Bea", role=Role.MODERATOR)
    room.join("p", "Cy", guest=False)
    room.leave("m1")
    assert room.hand_over() is None
    assert room.get("p").role is Role.PARTICIPANT
    room.leave("m2")
    room.leave("p")
    assert room.hand_over() is None


def test_the_last_moderator_cannot_be_demoted_but_one_of_two_can() -> None:
    room = Room()
    room.join("m1", "Ada", role=Role.MODERATOR)
    room.join("p", "Bo")
    with pytest.raises(LastModerator) as caught:
        room.set_role("m1", Role.PARTICIPANT)
    assert caught.value.code == "last_moderator"
    assert room.get("m1").moderator
    assert room.set_role("p", Role.MODERATOR)
    assert not room.set_role("p", Role.MODERATOR)  # no change
    assert room.set_role("m1", Role.PARTICIPANT)
    assert [p.id for p in room.moderators] == ["p"]
    with pytest.raises(LastModerator):
        room.set_role("p", Role.PARTICIPANT)


def test_successor_is_pure_over_the_order_given() -> None:
    room = Room()
    room.join("a", "A")
    room.join("b", "B", guest=False)
    people = list(room.participants.values())
    assert successor(people) is room.get("b")
    assert successor(reversed(people)) is room.get("b")
    assert successor([room.get("a")]) is room.get("a")
    assert successor([]) is None
    assert room.get("a").role is Role.PARTICIPANT  # successor only chooses
