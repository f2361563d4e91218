"""What the server's handlers share: settings, database, meeting registry, readiness.

One ``ServerContext`` per app, created by ``create_app`` and reachable from any handler
(HTTP or WebSocket) with ``ServerContext.of(request.app)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from incamera.config import Settings
from incamera.store import Database

from .registry import MeetingRegistry

if TYPE_CHECKING:
    from incamera.media.supervisor import Supervisor


@dataclass(slots=True)
class ServerContext:
    settings: Settings
    database: Database
    registry: MeetingRegistry
    ready: bool = False
    media: Supervisor | None = None  # the media plane, while the server runs

    @property
    def base_url(self) -> str:
        """The origin people open (join links are built on it), without a trailing slash."""
        return self.settings.base_url

    @staticmethod
    def of(app: Any) -> ServerContext:
        context: ServerContext = app.state.context
        return context
