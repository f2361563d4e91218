"""Which fan-out kernel forwards a producer stream's steady-state packets.

Two implementations do the same thing (see ``Transport.fan_out``, the reference):

- ``c``: ``incamera.media._fanout`` (``_fanout.c``), built when the package is installed
  with a C compiler and Python's headers at hand (``make run`` / ``make test`` install
  both on Debian). It spends well under a microsecond per forwarded packet where the
  interpreter spends ~5 µs, which is what a worker's forwarding rate hinges on
  (docs/benchmarks.md).
- ``python``: ``Transport.fan_out`` itself; the fallback where the extension is not built,
  and for comparisons.

``INCAMERA_FANOUT_KERNEL=python`` (or ``c``) in a worker's environment chooses one; by
default the C kernel is used when it is built.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import ParseError
from .srtp import PROTECT_ADDRESS, SrtpSession, protect_error

if TYPE_CHECKING:
    from .codecs.picture_id import PictureIdRewriter
    from .consumer import FastEntry
    from .counters import Counters
    from .udp_batch import BatchUdp

try:
    from . import _fanout
except ImportError:  # not built (no compiler at install time): the Python kernel
    _fanout = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

ENV = "INCAMERA_FANOUT_KERNEL"
Kernel = Callable[..., None]

# An entry's fields (consumer.py FastEntry + Transport.fast_parts) the C table reads as
# addresses: the SRTP context and length cell.
_CONTEXT, _LENGTH = 14, 15


def choice() -> str:
    """``"c"`` or ``"python"``: the kernel this process uses."""
    wanted = os.environ.get(ENV, "").strip().lower()
    if wanted == "python":
        return "python"
    if available():
        return "c"
    if wanted == "c":
        log.warning("%s=c, but the C fan-out kernel is not built: using Python", ENV)
    return "python"


def available() -> bool:
    """True when the C kernel is built and libsrtp's protect has the signature it calls."""
    return _fanout is not None and PROTECT_ADDRESS is not None


def _rewrite_vp8(
    rewriter: PictureIdRewriter, view: memoryview, payload_offset: int, keyframe: bool
) -> None:
    """Consumer._patch_vp8 in the steady state, for the C kernel (as in Transport.fan_out)."""
    with contextlib.suppress(ParseError, ValueError):  # forwarded as it is if unreadable
        rewriter.rewrite_packet(view, payload_offset, keyframe=keyframe, switched=False)


def compile_table(
    entries: list[FastEntry],
    io: BatchUdp,
    counters: Counters,
    request_flush: Callable[[], None],
    max_template: int,
    twcc_element: int,
) -> Kernel:
    """A kernel with ``Transport.fan_out``'s signature that runs ``entries`` in C.

    The entries are read once here: a table is only valid as long as they are, which the
    producer's fan-out invalidation already guarantees (any change to a consumer, its
    transport's keys or address drops the table)."""
    assert _fanout is not None and PROTECT_ADDRESS is not None
    c_entries = []
    for entry in entries:
        fields = list(entry)
        fields[_CONTEXT] = SrtpSession.address_of(fields[_CONTEXT])
        fields[_LENGTH] = SrtpSession.address_of(fields[_LENGTH])
        c_entries.append(tuple(fields))

    def on_errors(count: int, status: int) -> None:
        reason = protect_error(status).reason
        for _ in range(count):
            counters.count_srtp_error(reason)

    # The table is the kernel: called with Transport.fan_out's arguments, it forwards to
    # its own compiled entries, adds to counters.rtp_sent and requests the flush.
    return _fanout.Table(  # type: ignore[no-any-return]
        c_entries,
        io,
        io.views,
        _rewrite_vp8,
        io.slots_address,
        io.slot_size,
        io.slots,
        io.msgs_address,
        io.iovs_address,
        PROTECT_ADDRESS,
        max_template,
        twcc_element,
        counters,
        request_flush,
        on_errors,
    )
