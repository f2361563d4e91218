"""SDP for incamera: parse/serialise (RFC 8866) and the SFU's offer/answer rules (RFC 8829).

- :func:`parse` / :class:`SessionDescription`: the text format.
- :func:`answer_publish`: answer a client's offer on its send transport -> producers.
- :class:`SubscribeSession`: offer consumers to a client on its recv transport.

The package deals in the media plane's typed parameters only (``incamera.media.api``,
``incamera.media.rtp_parameters``) and knows nothing of how the media plane works.
"""

from .errors import NegotiationError, SdpError, SdpStateError
from .model import MediaDescription, SessionDescription, parse
from .publish import PublishAnswer, answer_publish
from .subscribe import SubscribeSession

__all__ = [
    "MediaDescription",
    "NegotiationError",
    "PublishAnswer",
    "SdpError",
    "SdpStateError",
    "SessionDescription",
    "SubscribeSession",
    "answer_publish",
    "parse",
]
