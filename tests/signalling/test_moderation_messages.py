"""The lobby and moderation messages: schemas, ``set_policy`` changes, round trips."""

from __future__ import annotations

import pytest

from incamera.signalling import messages as m
from incamera.signalling.errors import BadMessage


def test_set_policy_changes_only_what_is_present() -> None:
    message = m.parse_client_message('{"type": "set_policy", "locked": true, "pin": null}')
    assert message.changes() == {"locked": True, "pin": None}
    message = m.parse_client_message('{"type": "set_policy", "pin": "0042", "lobby": "guests"}')
    assert message.changes() == {"pin": "0042", "lobby": "guests"}
    assert m.parse_client_message('{"type": "set_policy", "rid": 3}').changes() == {}


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "set_policy", "pin": "123"}',
        '{"type": "set_policy", "pin": "1234567890123"}',
        '{"type": "set_policy", "pin": "12a4"}',
        '{"type": "set_policy", "pin": 1234}',
        '{"type": "set_policy", "lobby": "sometimes"}',
        '{"type": "set_policy", "locked": "yes"}',
        '{"type": "set_policy", "owner": "me"}',
        '{"type": "moderate", "action": "kick", "participant": "p"}',
        '{"type": "moderate", "action": "mute"}',
        '{"type": "moderate", "action": "remove", "participant": "p", "block": 1}',
        '{"type": "set_role", "participant": "p", "role": "admin"}',
        '{"type": "admit"}',
        '{"type": "deny", "participant": ""}',
        '{"type": "mute_all", "everyone": true}',
        '{"type": "end_meeting", "reason": "bye"}',
        '{"type": "list_access", "all": true}',
        '{"type": "revoke_invitation"}',
        '{"type": "revoke_invitation", "id": ""}',
        '{"type": "unblock", "id": 42}',
        '{"type": "unblock", "id": "' + "a" * 65 + '"}',
        '{"type": "hello", "versions": [1], "name": "A", "test_bypass_lobby": "yes"}',
    ],
)
def test_malformed_moderation_requests_are_bad_messages(text: str) -> None:
    with pytest.raises(BadMessage):
        m.parse_client_message(text)


def test_moderation_requests_parse() -> None:
    remove = m.parse_client_message(
        '{"type": "moderate", "action": "remove", "participant": "p", "block": true, "rid": 7}'
    )
    assert remove == m.Moderate(action="remove", participant="p", block=True, rid=7)
    assert m.parse_client_message('{"type": "moderate", "action": "mute", "participant": "p"}') == (
        m.Moderate(action="mute", participant="p", block=False)
    )
    assert m.parse_client_message('{"type": "mute_all"}') == m.MuteAll()
    assert m.parse_client_message('{"type": "end_meeting"}') == m.EndMeeting()
    assert m.parse_client_message('{"type": "admit", "participant": "x"}') == m.Admit(
        participant="x"
    )
    assert m.parse_client_message(
        '{"type": "set_role", "participant": "x", "role": "moderator"}'
    ) == m.SetRole(participant="x", role="moderator")
    assert m.parse_client_message('{"type": "list_access", "rid": 1}') == m.ListAccess(rid=1)
    assert m.parse_client_message('{"type": "revoke_invitation", "id": "ab"}') == (
        m.RevokeInvitation(id="ab")
    )
    assert m.parse_client_message('{"type": "unblock", "id": "cd"}') == m.Unblock(id="cd")


@pytest.mark.parametrize(
    "message",
    [
        m.LobbyWait(position=2),
        m.LobbyWait(),
        m.LobbyUpdate(
            waiting=[
                m.LobbyEntry(id="a", name="Ann", guest=True),
                m.LobbyEntry(id="b", name="Bo", guest=False, account="acc"),
            ]
        ),
        m.Moderated(action="stop_video", by="mod"),
        m.Removed(by="mod", blocked=True),
        m.MeetingEnded(by="mod"),
        m.PolicyChanged(
            lobby="guests", locked=True, pin_set=False, members_only=False, guests_allowed=True
        ),
        m.ParticipantUpdated(
            participant=m.Participant(id="p", name="P", role="moderator", guest=False)
        ),
        m.Reply(
            rid=4,
            access=m.AccessList(
                invitations=[
                    m.InvitationInfo(id="i" * 64, role="participant", expires_at="2030-01-01Z"),
                    m.InvitationInfo(id="j" * 64, role="moderator", name="Ines", expires_at="x"),
                ],
                blocks=[m.BlockInfo(id="b" * 64, name="Gus", kind="guest", since="y")],
            ),
        ),
        m.Reply(rid=5, access=m.AccessList(invitations=[], blocks=[])),
    ],
)
def test_server_messages_round_trip(message: m.Message) -> None:
    assert m.parse_server_message(m.encode(message)) == message


def test_policy_message_is_flat_and_never_carries_a_pin() -> None:
    text = m.encode(
        m.PolicyChanged(
            lobby="off", locked=False, pin_set=True, members_only=True, guests_allowed=False
        )
    )
    assert '"type":"policy"' in text and '"pin_set":true' in text and '"pin"' not in text
