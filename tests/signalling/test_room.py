"""The room domain: membership, tracks and mute, chat sequence and history."""

from __future__ import annotations

import pytest

from incamera.rooms import Room, RoomError, Source


def test_tracks_are_wanted_by_everybody_else() -> None:
    room = Room()
    room.join("a", "Ann")
    room.join("b", "Bo")
    room.join("c", "Cy")
    room.add_track("a", "pa1", Source.MIC, "audio")
    room.add_track("a", "pa2", Source.CAMERA, "video")
    room.add_track("b", "pb1", Source.SCREEN, "video")
    assert {t.producer_id for t in room.wanted_by("a")} == {"pb1"}
    assert {t.producer_id for t in room.wanted_by("c")} == {"pa1", "pa2", "pb1"}
    assert room.get("b").screen_sharing and not room.get("a").screen_sharing
    assert room.owner_of("pa2") is room.get("a")
    left = room.leave("a")
    assert left is not None and left.name == "Ann"
    assert {t.producer_id for t in room.wanted_by("c")} == {"pb1"}
    assert room.owner_of("pa1") is None
    assert room.remove_track("pb1") is not None
    assert not room.get("b").screen_sharing
    assert room.leave("a") is None


def test_source_kind_is_checked() -> None:
    room = Room()
    room.join("a", "Ann")
    with pytest.raises(RoomError):
        room.add_track("a", "p", Source.MIC, "video")
    with pytest.raises(RoomError):
        room.add_track("x", "p", Source.MIC, "audio")
    with pytest.raises(RoomError):
        room.join("a", "again")


def test_mute_pauses_the_source_and_later_tracks_of_it() -> None:
    room = Room()
    room.join("a", "Ann")
    mic = room.add_track("a", "m1", Source.MIC, "audio")
    cam = room.add_track("a", "c1", Source.CAMERA, "video")
    assert room.set_muted("a", Source.MIC, True) == [mic]
    assert mic.paused and not cam.paused and room.get("a").audio_muted
    assert room.set_muted("a", Source.MIC, True) == []  # no change
    later = room.add_track("a", "m2", Source.MIC, "audio")
    assert later.paused
    assert set(t.producer_id for t in room.set_muted("a", Source.MIC, False)) == {"m1", "m2"}
    room.set_muted("a", Source.CAMERA, True)
    assert cam.paused and room.get("a").video_muted
    with pytest.raises(RoomError):
        room.set_muted("a", Source.SCREEN, True)


def test_chat_is_numbered_and_history_is_bounded() -> None:
    room = Room(history=3)
    room.join("a", "Ann")
    room.join("b", "Bo")
    entries = [room.post("a" if i % 2 else "b", f"m{i}", float(i)) for i in range(5)]
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert [e.text for e in room.chat_history()] == ["m2", "m3", "m4"]
    assert entries[1].name == "Ann" and entries[1].sender == "a"


def test_hand_and_reconnecting_report_changes() -> None:
    room = Room()
    room.join("a", "Ann")
    assert room.set_hand("a", True) and not room.set_hand("a", True)
    assert room.set_reconnecting("a", True) and room.get("a").reconnecting
    assert room.set_reconnecting("a", False) and not room.set_reconnecting("a", False)
