"""The lobby: people wait in order, are admitted or denied once, or leave."""

from __future__ import annotations

import pytest

from incamera.rooms import Lobby, LobbyError, Waiting


def test_people_wait_in_order_and_know_their_position() -> None:
    lobby = Lobby()
    assert lobby.add(Waiting("a", "Ann", guest=True)) == 1
    assert lobby.add(Waiting("b", "Bo", guest=False, account="bo@example.org")) == 2
    assert lobby.add(Waiting("c", "Cy", guest=True)) == 3
    assert [w.id for w in lobby.waiting] == ["a", "b", "c"]
    assert lobby.position("c") == 3 and "b" in lobby and len(lobby) == 3
    with pytest.raises(LobbyError):
        lobby.add(Waiting("a", "Ann again", guest=True))


def test_admit_deny_and_leave_take_people_out_once() -> None:
    lobby = Lobby()
    for person in ("a", "b", "c", "d"):
        lobby.add(Waiting(person, person.upper(), guest=True))
    assert lobby.admit("b").name == "B"
    assert lobby.position("c") == 2  # everyone behind moves up
    assert lobby.deny("a").id == "a"
    assert lobby.leave("d") is not None
    assert lobby.leave("d") is None  # gone already: not an error
    assert [w.id for w in lobby.waiting] == ["c"]
    for taken in ("a", "b", "d", "nobody"):
        with pytest.raises(LobbyError):
            lobby.admit(taken)
        with pytest.raises(LobbyError):
            lobby.deny(taken)
        with pytest.raises(LobbyError):
            lobby.position(taken)
    assert lobby.position("c") == 1
