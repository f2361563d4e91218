"""RFC 6464 audio level element and the active speaker detector (synthetic samples)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media.audio_level import ActiveSpeakerDetector, AudioLevel, parse_audio_level
from incamera.media.errors import ParseError

PTIME = 0.02  # one Opus packet, hence one level sample, every 20 ms


def test_parse_bit_layout() -> None:
    # |V| level |: V=1, level 37 (-37 dBov)
    assert parse_audio_level(b"\xa5") == (True, 37)
    assert parse_audio_level(b"\x7f") == (False, 127)  # silence
    assert parse_audio_level(bytearray(b"\x00")) == (False, 0)  # loudest
    assert AudioLevel.parse(b"\xa5") == AudioLevel(voice=True, level=37)
    assert bytes(AudioLevel(voice=True, level=37)) == b"\xa5"


@pytest.mark.parametrize("data", [b"", b"\xa5\x00", b"\x00\x00\x00\x00"])
def test_element_must_be_one_byte(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_audio_level(data)
    with pytest.raises(ParseError):
        AudioLevel.parse(data)


@given(st.binary(max_size=3))
def test_arbitrary_bytes(data: bytes) -> None:
    try:
        voice, level = parse_audio_level(data)
    except ParseError:
        assert len(data) != 1
        return
    assert 0 <= level <= 127
    assert bytes(AudioLevel(voice, level)) == data


class Room:
    """Feeds a detector 20 ms samples of every producer and records floor changes."""

    def __init__(self, detector: ActiveSpeakerDetector, producers: list[str]) -> None:
        self.detector = detector
        self.producers = producers
        self.now = 0.0
        self.changes: list[tuple[float, str]] = []

    def run(self, seconds: float, levels: dict[str, int], update_every: float = 0.1) -> None:
        """Advance time; producers missing from ``levels`` send nothing (DTX/muted)."""
        end = self.now + seconds
        next_update = self.now
        while self.now < end - 1e-9:
            for producer, level in levels.items():
                self.detector.add_sample(producer, level, level < 127, self.now)
            if self.now >= next_update - 1e-9:
                change = self.detector.update(self.now)
                if change is not None:
                    self.changes.append((round(self.now, 3), change))
                next_update += update_every
            self.now += PTIME


def test_a_steady_speaker_takes_the_floor_after_enough_speech() -> None:
    room = Room(ActiveSpeakerDetector(), ["a", "b"])
    room.run(2.0, {"a": 30, "b": 127})
    assert [who for _, who in room.changes] == ["a"]
    # min_activity 0.4 of a 1.5 s window: about 0.6 s of speech.
    assert 0.55 <= room.changes[0][0] <= 0.75
    assert room.detector.dominant == "a"


def test_a_cough_does_not_steal_the_floor() -> None:
    room = Room(ActiveSpeakerDetector(), ["a", "b"])
    room.run(3.0, {"a": 30, "b": 127})
    room.run(0.5, {"a": 127, "b": 127})  # a pauses
    room.run(0.3, {"a": 127, "b": 5})  # b coughs, very loud
    room.run(2.0, {"a": 127, "b": 127})
    assert [who for _, who in room.changes] == ["a"]
    # ... but b talking for real does take it.
    room.run(2.0, {"a": 127, "b": 35})
    assert [who for _, who in room.changes] == ["a", "b"]


def test_nobody_gets_the_floor_from_a_cough_alone() -> None:
    room = Room(ActiveSpeakerDetector(), ["a", "b"])
    room.run(1.0, {"a": 127, "b": 127})
    room.run(0.4, {"a": 127, "b": 0})
    room.run(2.0, {"a": 127, "b": 127})
    assert room.changes == []


def test_hysteresis_between_two_similar_speakers() -> None:
    room = Room(ActiveSpeakerDetector(), ["a", "b"])
    room.run(2.0, {"a": 30, "b": 127})
    room.run(3.0, {"a": 30, "b": 29})  # b barely louder: within the margin
    assert [who for _, who in room.changes] == ["a"]
    room.run(3.0, {"a": 30, "b": 15})  # b clearly louder
    assert [who for _, who in room.changes] == ["a", "b"]


def _hand_over(min_hold: float) -> list[tuple[float, str]]:
    room = Room(ActiveSpeakerDetector(min_hold=min_hold), ["a", "b"])
    room.run(1.0, {"a": 127, "b": 10})  # b talks loudly
    room.run(5.0, {"a": 10, "b": 127})  # then a does
    return room.changes


def test_min_hold_delays_a_second_change() -> None:
    quick = _hand_over(min_hold=0.0)
    held = _hand_over(min_hold=3.0)
    assert [who for _, who in quick] == [who for _, who in held] == ["b", "a"]
    assert quick[1][0] - quick[0][0] < 2.0
    assert held[1][0] - held[0][0] >= 3.0


def test_a_speaker_that_stops_sending_fades_out() -> None:
    detector = ActiveSpeakerDetector()
    room = Room(detector, ["a", "b"])
    room.run(2.0, {"a": 20})
    score, activity = detector.stats("a", room.now)
    assert score > 30 and activity > 0.9
    room.run(2.0, {"b": 40})  # a sends nothing at all (DTX, lost peer)
    assert detector.stats("a", room.now) == (0.0, 0.0)
    assert [who for _, who in room.changes] == ["a", "b"]


def test_levels_below_minus_60_dbov_are_silence() -> None:
    detector = ActiveSpeakerDetector()
    room = Room(detector, ["a"])
    room.run(3.0, {"a": 61})
    assert room.changes == []
    assert detector.stats("a", room.now) == (0.0, 0.0)


def test_removing_the_dominant_producer() -> None:
    room = Room(ActiveSpeakerDetector(), ["a", "b"])
    room.run(2.0, {"a": 30, "b": 127})
    room.detector.remove_producer("a")
    assert room.detector.dominant is None
    room.run(2.0, {"b": 40})
    assert room.changes[-1][1] == "b"


def test_vad_flag_is_used_only_when_asked() -> None:
    trusting = ActiveSpeakerDetector(use_vad=True)
    ignoring = ActiveSpeakerDetector()
    for i in range(100):
        t = i * PTIME
        trusting.add_sample("a", 30, False, t)
        ignoring.add_sample("a", 30, False, t)
    assert trusting.stats("a", 2.0) == (0.0, 0.0)
    assert ignoring.stats("a", 2.0)[1] > 0.9
    assert trusting.update(2.0) is None
    assert ignoring.update(2.0) == "a"


def test_late_samples_do_not_break_ordering() -> None:
    detector = ActiveSpeakerDetector()
    for i in range(80):
        detector.add_sample("a", 20, True, i * PTIME)
    detector.add_sample("a", 20, True, 0.5)  # arrives late
    score, activity = detector.stats("a", 1.6)
    assert 0 < activity <= 1.0 and score > 0


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        ActiveSpeakerDetector(window=0)
    with pytest.raises(ValueError):
        ActiveSpeakerDetector(silence_level=200)
