"""Client-to-mixer audio level (RFC 6464) and active-speaker detection.

The RTP header extension ``urn:ietf:params:rtp-hdrext:ssrc-audio-level`` carries one byte
(RFC 6464 §3), in both the one-byte (len field 0) and two-byte (length 1) header forms::

         0 1 2 3 4 5 6 7
        +-+-+-+-+-+-+-+-+
        |V|    level    |
        +-+-+-+-+-+-+-+-+

V is the sender's voice activity flag (meaningful only when ``vad=on`` was negotiated);
level is the audio level in -dBov, 0 (loudest) to 127 (silence). Both stay in clear
under SFrame, since they are RTP header data, which is what lets an end-to-end encrypted
SFU still tell who is speaking.

:class:`ActiveSpeakerDetector` turns these samples into a dominant speaker: pure logic,
fed with explicit timestamps, no I/O and no clock of its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from incamera.media.errors import ParseError

SILENCE_LEVEL = 127  # -127 dBov: digital silence (RFC 6464 §3)
_VOICE = 0x80
_LEVEL_MASK = 0x7F


@dataclass(frozen=True, slots=True)
class AudioLevel:
    """One RFC 6464 §3 audio level element."""

    voice: bool
    level: int  # -dBov, 0..127

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> AudioLevel:
        if len(data) != 1:
            raise ParseError("audio level extension element must be exactly one byte")
        b = data[0]
        return cls(voice=bool(b & _VOICE), level=b & _LEVEL_MASK)

    def __bytes__(self) -> bytes:
        if not 0 <= self.level <= _LEVEL_MASK:
            raise ValueError("audio level must be 0..127")
        return bytes(((_VOICE if self.voice else 0) | self.level,))


def parse_audio_level(data: bytes | bytearray | memoryview) -> tuple[bool, int]:
    """(voice, level in -dBov 0..127) from the extension element's data (RFC 6464 §3)."""
    if len(data) != 1:
        raise ParseError("audio level extension element must be exactly one byte")
    b = data[0]
    return bool(b & _VOICE), b & _LEVEL_MASK


class _Track:
    """Recent samples of one producer: (time, loudness above the silence floor in dB)."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float]] = deque()


class ActiveSpeakerDetector:
    """Chooses one dominant speaker among audio producers from their RFC 6464 levels.

    Each sample's loudness is how far it sits above the silence floor: ``silence_level -
    level`` dB, 0 for any level above ``silence_level`` (60, i.e. quieter than -60 dBov,
    counts as silence; 127 is silence by definition). A sample holds until the next one,
    but at most ``max_sample_gap`` seconds, so a producer that stops sending (Opus DTX, a
    muted or lost peer) fades to silence instead of keeping its last level.

    Over the last ``window`` seconds each producer gets

    * a *score*: the time-weighted mean loudness (silence and gaps count as 0), and
    * an *activity*: the fraction of the window during which it was above the floor.

    Hysteresis: a producer may take the floor only with an activity of at least
    ``min_activity`` (a cough of a few hundred milliseconds never reaches it) and, when
    someone already holds the floor, only with a score more than ``switch_margin`` dB
    above the holder's, and not within ``min_hold`` seconds of the last change. The holder
    keeps the floor through silence until someone else qualifies.

    With ``use_vad=True`` samples whose V bit is 0 count as silence (only sensible when
    the senders negotiated ``vad=on``).
    """

    def __init__(
        self,
        *,
        window: float = 1.5,
        silence_level: int = 60,
        min_activity: float = 0.4,
        switch_margin: float = 3.0,
        min_hold: float = 1.0,
        max_sample_gap: float = 0.2,
        use_vad: bool = False,
    ) -> None:
        if window <= 0 or max_sample_gap <= 0:
            raise ValueError("window and max_sample_gap must be positive")
        if not 0 <= silence_level <= SILENCE_LEVEL:
            raise ValueError("silence_level must be 0..127")
        self.window = window
        self.silence_level = silence_level
        self.min_activity = min_activity
        self.switch_margin = switch_margin
        self.min_hold = min_hold
        self.max_sample_gap = max_sample_gap
        self.use_vad = use_vad
        self._tracks: dict[str, _Track] = {}
        self._dominant: str | None = None
        self._changed_at: float | None = None

    @property
    def dominant(self) -> str | None:
        """The producer currently holding the floor, or None."""
        return self._dominant

    def add_sample(self, producer_id: str, level: int, voice: bool, now: float) -> None:
        """Record one audio level sample (one packet's extension) of ``producer_id``."""
        track = self._tracks.get(producer_id)
        if track is None:
            track = self._tracks[producer_id] = _Track()
        loudness = 0.0
        if level < self.silence_level and (voice or not self.use_vad):
            loudness = float(self.silence_level - level)
        samples = track.samples
        if samples and now < samples[-1][0]:
            now = samples[-1][0]  # late sample: keep the list ordered
        samples.append((now, loudness))
        self._prune(samples, now)

    def remove_producer(self, producer_id: str) -> None:
        """Forget a producer (closed or paused); it loses the floor if it held it."""
        self._tracks.pop(producer_id, None)
        if self._dominant == producer_id:
            self._dominant = None

    def _prune(self, samples: deque[tuple[float, float]], now: float) -> None:
        horizon = now - self.window
        # A sample is useless once the next one starts before the window does.
        while len(samples) >= 2 and samples[1][0] <= horizon:
            samples.popleft()
        if len(samples) == 1 and samples[0][0] + self.max_sample_gap <= horizon:
            samples.popleft()

    def stats(self, producer_id: str, now: float) -> tuple[float, float]:
        """(score, activity) of one producer over the window ending at ``now``."""
        track = self._tracks.get(producer_id)
        if track is None:
            return 0.0, 0.0
        self._prune(track.samples, now)
        start = now - self.window
        energy = 0.0
        active = 0.0
        prev: tuple[float, float] | None = None
        for sample in (*track.samples, (now, 0.0)):
            if prev is not None:
                t, loudness = prev
                end = min(sample[0], t + self.max_sample_gap, now)
                begin = max(t, start)
                if end > begin and loudness > 0.0:
                    energy += loudness * (end - begin)
                    active += end - begin
            prev = sample
        return energy / self.window, active / self.window

    def update(self, now: float) -> str | None:
        """Re-evaluate the floor at ``now``; return the new dominant speaker if it changed."""
        if (
            self._dominant is not None
            and self._changed_at is not None
            and now - self._changed_at < self.min_hold
        ):
            return None
        best: str | None = None
        best_score = 0.0
        dominant_score = 0.0
        for producer_id in self._tracks:
            score, activity = self.stats(producer_id, now)
            if producer_id == self._dominant:
                dominant_score = score
                continue
            if activity >= self.min_activity and score > best_score:
                best, best_score = producer_id, score
        if best is None:
            return None
        if self._dominant is not None and best_score <= dominant_score + self.switch_margin:
            return None
        self._dominant = best
        self._changed_at = now
        return best
