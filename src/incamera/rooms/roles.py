"""Roles in a meeting and the moderation rules: who may do what, and who takes over.

Rules:

- A participant is a ``moderator`` or a ``participant``. Moderators come in with the
  moderator link, a moderator invitation or as the meeting's owner, or are promoted.
- Only moderators may admit or deny people waiting in the lobby, mute someone, stop their
  video, remove them, mute everyone, change the access policy, change roles, end the
  meeting, invite people personally, and see and revoke invitations and lift blocks
  (:data:`MODERATOR_ACTIONS`). A moderator may act on other moderators too, but
  not remove itself (that is ``leave``).
- A meeting that has had a moderator never ends up without one: when the last moderator
  goes, the successor is the longest-present signed-in participant, else the
  longest-present one (:func:`successor`). Demoting the last moderator is refused.
- Moderator mute is a *soft* mute: the server pauses the track at once and the participant
  may unmute itself again (as in a meeting room: a moderator can silence a noisy
  microphone, and remove someone who keeps abusing it).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol, TypeVar


class Role(StrEnum):
    MODERATOR = "moderator"
    PARTICIPANT = "participant"


class Action(StrEnum):
    """What a moderator may do (the names of the signalling requests and actions)."""

    ADMIT = "admit"
    DENY = "deny"
    MUTE = "mute"
    STOP_VIDEO = "stop_video"
    STOP_SCREEN = "stop_screen"
    REMOVE = "remove"
    MUTE_ALL = "mute_all"
    SET_POLICY = "set_policy"
    SET_ROLE = "set_role"
    END_MEETING = "end_meeting"
    INVITE = "invite"
    LIST_ACCESS = "list_access"
    REVOKE_INVITATION = "revoke_invitation"
    UNBLOCK = "unblock"


MODERATOR_ACTIONS: frozenset[Action] = frozenset(Action)

_WHAT = {
    Action.ADMIT: "let people in",
    Action.DENY: "turn people away",
    Action.MUTE: "mute others",
    Action.STOP_VIDEO: "stop others' video",
    Action.STOP_SCREEN: "stop others' screen sharing",
    Action.REMOVE: "remove participants",
    Action.MUTE_ALL: "mute everyone",
    Action.SET_POLICY: "change the meeting's access settings",
    Action.SET_ROLE: "change roles",
    Action.END_MEETING: "end the meeting",
    Action.INVITE: "invite people",
    Action.LIST_ACCESS: "see invitations and blocks",
    Action.REVOKE_INVITATION: "revoke invitations",
    Action.UNBLOCK: "let blocked people join again",
}


class ModerationError(Exception):
    """A moderation request the rules refuse; ``code`` is a signalling error code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Forbidden(ModerationError):
    def __init__(self, action: Action) -> None:
        super().__init__("forbidden", f"only moderators can {_WHAT[action]}")


class LastModerator(ModerationError):
    def __init__(self) -> None:
        super().__init__(
            "last_moderator", "the meeting's only moderator cannot stop being one: promote someone"
        )


def may(role: Role, action: Action) -> bool:
    """Whether someone with ``role`` may take ``action``."""
    return role is Role.MODERATOR or action not in MODERATOR_ACTIONS


def check(role: Role, action: Action) -> None:
    """Raise :class:`Forbidden` unless ``role`` may take ``action``."""
    if not may(role, action):
        raise Forbidden(action)


def check_target(action: Action, actor_id: str, target_id: str) -> None:
    """Refuse what a moderator may not do to this target (removing itself: that is leave)."""
    if action is Action.REMOVE and actor_id == target_id:
        raise ModerationError("bad_message", "to leave the meeting, send leave")


class Candidate(Protocol):
    """What :func:`successor` needs to know of a participant."""

    @property
    def role(self) -> Role: ...

    @property
    def guest(self) -> bool: ...


C = TypeVar("C", bound=Candidate)


def successor(present: Iterable[C]) -> C | None:
    """Who becomes moderator when none is left: ``present`` is in order of arrival.

    None when a moderator is still present or nobody is. Otherwise the longest-present
    signed-in participant, else the longest-present participant.
    """
    people = list(present)
    if not people or any(p.role is Role.MODERATOR for p in people):
        return None
    for person in people:
        if not person.guest:
            return person
    return people[0]


__all__ = [
    "MODERATOR_ACTIONS",
    "Action",
    "Candidate",
    "Forbidden",
    "LastModerator",
    "ModerationError",
    "Role",
    "check",
    "check_target",
    "may",
    "successor",
]
