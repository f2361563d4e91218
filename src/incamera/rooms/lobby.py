"""The lobby of a meeting: the people waiting for a moderator to let them in.

Rules:

- People wait in order of arrival; each knows its position (1 = next).
- A moderator admits or denies one waiting person by id; someone who gives up (closes the
  page, loses the connection) just leaves the lobby. Each of these takes the person out,
  and a person can be taken out only once (a second admit or deny of the same id is
  refused: the other moderator was faster).
- A waiting person has the participant id it will keep once admitted, so a moderator's
  end-to-end encrypted admission message can name it in advance.
"""

from __future__ import annotations

from dataclasses import dataclass


class LobbyError(Exception):
    """Nobody with this id is waiting (admitted, denied or gone meanwhile)."""


@dataclass(frozen=True, slots=True)
class Waiting:
    id: str
    name: str
    guest: bool
    account: str | None = None  # the signed-in account's display handle, if any


class Lobby:
    def __init__(self) -> None:
        self._waiting: dict[str, Waiting] = {}  # in order of arrival

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._waiting

    @property
    def waiting(self) -> list[Waiting]:
        return list(self._waiting.values())

    def add(self, person: Waiting) -> int:
        """Put someone at the end of the queue; returns its position (1-based)."""
        if person.id in self._waiting:
            raise LobbyError("already waiting")
        self._waiting[person.id] = person
        return len(self._waiting)

    def position(self, person_id: str) -> int:
        for index, waiting_id in enumerate(self._waiting, start=1):
            if waiting_id == person_id:
                return index
        raise LobbyError("nobody with this id is waiting")

    def admit(self, person_id: str) -> Waiting:
        """Take someone out to let them in."""
        return self._take(person_id)

    def deny(self, person_id: str) -> Waiting:
        """Take someone out to turn them away."""
        return self._take(person_id)

    def leave(self, person_id: str) -> Waiting | None:
        """Someone gave up waiting (None if they were not waiting any more)."""
        return self._waiting.pop(person_id, None)

    def _take(self, person_id: str) -> Waiting:
        person = self._waiting.pop(person_id, None)
        if person is None:
            raise LobbyError("nobody with this id is waiting")
        return person


__all__ = ["Lobby", "LobbyError", "Waiting"]
