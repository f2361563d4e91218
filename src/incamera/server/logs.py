"""Logging: structlog for our own events, the same renderer for library log records.

Rules, because logs are read by more people than meetings are: no display names, no
client IP addresses, no meeting ids (a meeting id is the key to the meeting). Uvicorn's
access log is off and its WebSocket handshake lines (which carry the client address and
the path) are dropped; ``redact_path`` removes ids from the paths we log ourselves.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# Any path segment long enough to be a meeting id (or another token) is hidden.
_TOKEN_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_-]{20,}(?=/|$)")


def redact_path(path: str) -> str:
    """``/m/Abc...xyz`` -> ``/m/{id}``: the path without secrets, for logs and metrics."""
    return _TOKEN_SEGMENT.sub("{id}", path)


class _DropClientAddresses(logging.Filter):
    """Drops uvicorn's per-connection lines: ``('1.2.3.4', 5) - "WebSocket /path" ...``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return '"WebSocket ' not in str(record.msg)


def configure_logging(level: str = "info", json: bool = False) -> None:
    """Configure structlog and the standard library's root logger (idempotent)."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([structlog.processors.format_exc_info] if json else []),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_DropClientAddresses())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_incamera", False):
            root.removeHandler(old)
    handler._incamera = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    # Library loggers that would print client addresses or are chatty at INFO.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("websockets").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
