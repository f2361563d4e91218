"""Free UDP ports on 127.0.0.1 for media workers started by tests."""

from __future__ import annotations

import os
import socket


def free_udp_port_range(count: int) -> int:
    """A base port with ``count`` consecutive free UDP ports on 127.0.0.1 (searched from a
    per-process start so that concurrent test runs rarely collide)."""
    for base in range(42000 + os.getpid() % 997, 60000, 89):
        socks: list[socket.socket] = []
        try:
            for i in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port range")
