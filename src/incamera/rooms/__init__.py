"""The meeting domain: who is in a room, what they publish, their mute/hand state, the chat.

Plain Python objects with no I/O and no clock (times are passed in), tested without a
network. The signalling layer (``incamera.signalling``) drives them and talks to the media
plane.
"""

from .lobby import Lobby, LobbyError, Waiting
from .roles import Action, Forbidden, LastModerator, ModerationError, Role
from .room import ChatEntry, Participant, Room, RoomError, Source, Track

__all__ = [
    "Action",
    "ChatEntry",
    "Forbidden",
    "LastModerator",
    "Lobby",
    "LobbyError",
    "ModerationError",
    "Participant",
    "Role",
    "Room",
    "RoomError",
    "Source",
    "Track",
    "Waiting",
]
