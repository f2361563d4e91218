"""Signalling: the WebSocket protocol between participants and the server.

- ``messages``: the protocol's messages (pydantic), ``parse_client_message``, ``encode``;
- ``errors``: ``SignallingError`` (code + reason) and ``BadMessage``;
- ``conference``: one meeting's live conference (room + media plumbing);
- ``conferences``: all conferences, routing of media-plane events;
- ``session`` / ``endpoint``: one WebSocket connection's protocol handling, the route;
- ``client``: an asyncio client of the protocol (tests, bots).

See ``docs/protocol.md``.
"""
