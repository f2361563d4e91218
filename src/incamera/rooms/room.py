"""One meeting's room: participants, their published tracks, mute and hand state, and the
chat with its sequence numbers.

Rules:

- A participant's tracks are identified by the media plane's producer ids; each has a
  source (``mic`` audio, ``camera`` or ``screen`` video).
- Muting a source marks the participant muted and every track of that source paused; a
  track added later for a muted source starts paused.
- ``screen_sharing`` is true while a participant has a screen track.
- Everybody receives every other participant's tracks (:meth:`Room.wanted_by`).
- Chat messages get consecutive sequence numbers from 1; the room keeps the last
  ``history`` of them for newcomers.
- Each participant has a role (:mod:`incamera.rooms.roles`); ``participants`` is in order of
  arrival. When the last moderator leaves, :meth:`Room.leave` promotes a successor
  (:func:`~incamera.rooms.roles.successor`); :meth:`Room.set_role` refuses to demote the
  last moderator.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from .roles import LastModerator, Role, successor

CHAT_HISTORY = 100


class RoomError(Exception):
    """An operation the room's rules refuse (unknown participant, wrong kind for a source)."""


class Source(StrEnum):
    MIC = "mic"
    CAMERA = "camera"
    SCREEN = "screen"

    @property
    def kind(self) -> str:
        return "audio" if self is Source.MIC else "video"


@dataclass(slots=True)
class Track:
    producer_id: str
    participant_id: str
    source: Source
    paused: bool = False

    @property
    def kind(self) -> str:
        return self.source.kind


@dataclass(slots=True)
class Participant:
    id: str
    name: str
    audio_muted: bool = False
    video_muted: bool = False
    hand_raised: bool = False
    reconnecting: bool = False
    role: Role = Role.PARTICIPANT
    guest: bool = True  # False: signed in with an account
    account: str | None = None  # the signed-in account's id
    invite_proof: str | None = None  # E2EE: proof of a personal invitation's key (docs/e2ee.md)
    tracks: dict[str, Track] = field(default_factory=dict)  # producer id -> track

    @property
    def moderator(self) -> bool:
        return self.role is Role.MODERATOR

    @property
    def screen_sharing(self) -> bool:
        return any(t.source is Source.SCREEN for t in self.tracks.values())

    def muted(self, source: Source) -> bool:
        if source is Source.MIC:
            return self.audio_muted
        if source is Source.CAMERA:
            return self.video_muted
        return False


@dataclass(frozen=True, slots=True)
class ChatEntry:
    seq: int
    sender: str  # participant id
    name: str
    text: str
    ts: float


class Room:
    def __init__(self, history: int = CHAT_HISTORY) -> None:
        self.participants: dict[str, Participant] = {}
        self.chat: deque[ChatEntry] = deque(maxlen=history)
        self._seq = 0
        self._tracks: dict[str, Track] = {}  # producer id -> track, over all participants

    # -- membership ------------------------------------------------------------------------

    def join(
        self,
        participant_id: str,
        name: str,
        *,
        role: Role = Role.PARTICIPANT,
        guest: bool = True,
        account: str | None = None,
    ) -> Participant:
        if participant_id in self.participants:
            raise RoomError("already in the room")
        participant = Participant(participant_id, name, role=role, guest=guest, account=account)
        self.participants[participant_id] = participant
        return participant

    def leave(self, participant_id: str) -> Participant | None:
        """Take a participant out with its tracks; returns it (None if it was not in).

        When it was a moderator, call :meth:`hand_over` next.
        """
        participant = self.participants.pop(participant_id, None)
        if participant is not None:
            for producer_id in participant.tracks:
                self._tracks.pop(producer_id, None)
        return participant

    def hand_over(self) -> Participant | None:
        """After a moderator left: promote the successor if no moderator is left.

        Returns the promoted participant (None: a moderator is still here, or nobody).
        """
        heir = successor(self.participants.values())
        if heir is not None:
            heir.role = Role.MODERATOR
        return heir

    @property
    def moderators(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.moderator]

    def set_role(self, participant_id: str, role: Role) -> bool:
        """Change a role; returns True if it changed. Raises :class:`LastModerator` for
        the demotion of the only moderator."""
        participant = self.get(participant_id)
        if participant.role is role:
            return False
        if participant.moderator and len(self.moderators) == 1:
            raise LastModerator()
        participant.role = role
        return True

    def get(self, participant_id: str) -> Participant:
        try:
            return self.participants[participant_id]
        except KeyError:
            raise RoomError("no such participant") from None

    def others(self, participant_id: str) -> list[Participant]:
        return [p for p in self.participants.values() if p.id != participant_id]

    @property
    def empty(self) -> bool:
        return not self.participants

    def set_reconnecting(self, participant_id: str, reconnecting: bool) -> bool:
        """Returns True if the flag changed."""
        participant = self.get(participant_id)
        changed = participant.reconnecting != reconnecting
        participant.reconnecting = reconnecting
        return changed

    def set_hand(self, participant_id: str, raised: bool) -> bool:
        participant = self.get(participant_id)
        changed = participant.hand_raised != raised
        participant.hand_raised = raised
        return changed

    # -- tracks ----------------------------------------------------------------------------

    def add_track(self, participant_id: str, producer_id: str, source: Source, kind: str) -> Track:
        """Record a published track; it starts paused when its source is muted."""
        participant = self.get(participant_id)
        if kind != source.kind:
            raise RoomError(f"a {source} track must be {source.kind}, not {kind}")
        if producer_id in self._tracks:
            raise RoomError("track exists")
        track = Track(producer_id, participant_id, source, paused=participant.muted(source))
        participant.tracks[producer_id] = track
        self._tracks[producer_id] = track
        return track

    def remove_track(self, producer_id: str) -> Track | None:
        track = self._tracks.pop(producer_id, None)
        if track is not None:
            owner = self.participants.get(track.participant_id)
            if owner is not None:
                owner.tracks.pop(producer_id, None)
        return track

    def track(self, producer_id: str) -> Track | None:
        return self._tracks.get(producer_id)

    def owner_of(self, producer_id: str) -> Participant | None:
        track = self._tracks.get(producer_id)
        return None if track is None else self.participants.get(track.participant_id)

    def wanted_by(self, participant_id: str) -> list[Track]:
        """The tracks ``participant_id`` should receive: every other participant's."""
        return [t for t in self._tracks.values() if t.participant_id != participant_id]

    def set_muted(self, participant_id: str, source: Source, muted: bool) -> list[Track]:
        """Mute or unmute a source; returns the tracks whose ``paused`` changed."""
        participant = self.get(participant_id)
        if source is Source.MIC:
            participant.audio_muted = muted
        elif source is Source.CAMERA:
            participant.video_muted = muted
        else:
            raise RoomError("only mic and camera can be muted")
        changed = []
        for track in participant.tracks.values():
            if track.source is source and track.paused != muted:
                track.paused = muted
                changed.append(track)
        return changed

    # -- chat ------------------------------------------------------------------------------

    def post(self, participant_id: str, text: str, ts: float) -> ChatEntry:
        participant = self.get(participant_id)
        self._seq += 1
        entry = ChatEntry(self._seq, participant.id, participant.name, text, ts)
        self.chat.append(entry)
        return entry

    def chat_history(self) -> list[ChatEntry]:
        return list(self.chat)
