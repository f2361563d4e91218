"""The meeting domain: who is in a room, what they publish, their mute/hand state, the chat.

Plain Python objects with no I/O and no clock (times are passed in), tested without a
network. The signalling layer (``incamera.signalling``) drives them and talks to the media
plane.
"""

from .room import ChatEntry, Participant, Room, RoomError, Source, Track

__all__ = ["ChatEntry", "Participant", "Room", "RoomError", "Source", "Track"]
