"""Batched UDP I/O for a media worker: ``recvmmsg``/``sendmmsg`` through ctypes (Linux).

A forwarding SFU sends far more datagrams than it receives (one per subscriber), and on a
virtual machine each ``sendto`` system call costs 5 to 9 µs, more than the rest of the
forwarding work of a packet. Here outgoing packets are written straight into preallocated
slots (the SRTP layer protects them in place) and a whole batch leaves in one ``sendmmsg``;
incoming datagrams are read up to ``RECV_BATCH`` per ``recvmmsg``. No library offers this
from Python, so it is written here; ``PlainUdp`` is the portable fallback with the same
interface (one system call per datagram).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import struct
import sys
from collections.abc import Callable

Address = tuple[str, int]

SLOT_SIZE = 1536  # one datagram: MTU-sized packet plus the SRTP trailer
SEND_SLOTS = 512
RECV_BATCH = 64
RECV_SIZE = 2048
NAME_CACHE_LIMIT = 100_000  # kernel-form addresses kept by ``BatchUdp.destination``
MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
NAME_SIZE = 128  # sizeof(struct sockaddr_storage)


class _Iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint))


# Slot headers are written with struct.pack_into on views of the ctypes arrays: setting
# ctypes fields one attribute at a time cost more than the system call it saves.
MMSG_SIZE = ctypes.sizeof(_Mmsghdr)
IOV_SIZE = ctypes.sizeof(_Iovec)
assert _Msghdr.msg_namelen.offset == ctypes.sizeof(ctypes.c_void_p)  # LP64 layout
pack_name = struct.Struct("@PI").pack_into  # msg_name, msg_namelen
pack_iov_len = struct.Struct("@N").pack_into
IOV_LEN_OFFSET = _Iovec.iov_len.offset
# What recvmmsg wrote into one message, read the same way: msg_namelen, msg_flags, msg_len.
_NAMELEN_OFFSET = _Msghdr.msg_namelen.offset
_FLAGS_OFFSET = _Msghdr.msg_flags.offset
_LEN_OFFSET = _Mmsghdr.msg_len.offset
_unpack_received = struct.Struct(
    f"={_NAMELEN_OFFSET}xI{_FLAGS_OFFSET - _NAMELEN_OFFSET - 4}xi"
    f"{_LEN_OFFSET - _FLAGS_OFFSET - 4}xI"
).unpack_from
_pack_namelen = struct.Struct("=I").pack_into

Destination = tuple[int, int]  # (pointer to a sockaddr, its length)


def _libc_functions() -> tuple[object, object] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        send, recv = libc.sendmmsg, libc.recvmmsg
    except (OSError, AttributeError):
        return None
    send.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    send.restype = ctypes.c_int
    recv.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
    recv.restype = ctypes.c_int
    return send, recv


_LIBC = _libc_functions()

try:  # the receive loop in C (media/_udp.c); BatchUdp.recv's Python loop where not built
    from . import _udp
except ImportError:
    _udp = None  # type: ignore[assignment]


def encode_sockaddr(addr: Address) -> bytes:
    """struct sockaddr_in / sockaddr_in6 for ``addr`` (host byte order family, Linux)."""
    ip, port = addr[0], addr[1]
    if ":" in ip:
        packed = socket.inet_pton(socket.AF_INET6, ip)
        return struct.pack("=HHI16sI", socket.AF_INET6, socket.htons(port), 0, packed, 0)
    packed = socket.inet_pton(socket.AF_INET, ip)
    return struct.pack("=HH4s8x", socket.AF_INET, socket.htons(port), packed)


def decode_sockaddr(raw: bytes) -> Address:
    family = struct.unpack_from("=H", raw)[0]
    port = socket.ntohs(struct.unpack_from("=H", raw, 2)[0])
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    return socket.inet_ntop(socket.AF_INET, raw[4:8]), port


class BatchUdp:
    """recvmmsg/sendmmsg on a non-blocking UDP socket. Linux only (see ``available``)."""

    def __init__(self, sock: socket.socket, send_slots: int = SEND_SLOTS) -> None:
        if _LIBC is None:
            raise OSError("sendmmsg/recvmmsg are not available on this platform")
        self._sendmmsg, self._recvmmsg = _LIBC
        self.sock = sock
        self._fd = sock.fileno()
        self.errors = 0  # datagrams dropped because the kernel refused them
        # -- send side: slots the caller writes into, then commits -------------------------
        self.slots = send_slots
        # A bytearray: its buffer protocol is far cheaper than a ctypes array's for the
        # per-packet slice assignment and pack_into; ctypes only lends the raw address.
        self._send_area = bytearray(SLOT_SIZE * send_slots)
        self._send_area_c = (ctypes.c_char * len(self._send_area)).from_buffer(self._send_area)
        base = ctypes.addressof(self._send_area_c)
        area = memoryview(self._send_area)
        self.addresses = [base + i * SLOT_SIZE for i in range(send_slots)]
        self.views = [area[i * SLOT_SIZE : (i + 1) * SLOT_SIZE] for i in range(send_slots)]
        self._send_iov = (_Iovec * send_slots)()
        self._send_msgs = (_Mmsghdr * send_slots)()
        for i in range(send_slots):
            self._send_iov[i].iov_base = self.addresses[i]
            hdr = self._send_msgs[i].msg_hdr
            hdr.msg_iov = ctypes.pointer(self._send_iov[i])
            hdr.msg_iovlen = 1
        self._send_msgs_addr = ctypes.addressof(self._send_msgs)
        # Addresses for the C fan-out kernel (fanout_kernel.py), which fills slots itself.
        self.slot_size = SLOT_SIZE
        self.slots_address = base
        self.msgs_address = self._send_msgs_addr
        self.iovs_address = ctypes.addressof(self._send_iov)
        # Byte views of the message and iovec arrays: the transport's send kernel writes a
        # slot's destination and length there itself (see ``commit``).
        self.msgs_view = memoryview(self._send_msgs).cast("B")
        self.iov_view = memoryview(self._send_iov).cast("B")
        self.batched = True
        self._names: dict[Address, Destination] = {}
        self._name_buffers: list[ctypes.Array[ctypes.c_char]] = []
        # Called when the cache of kernel-form addresses is emptied (their memory freed):
        # whoever kept a Destination must drop it.
        self.on_names_reset: Callable[[], None] | None = None
        self.pending = 0
        # -- receive side ------------------------------------------------------------------
        # bytearrays lent to ctypes, as on the send side: the per-datagram reads go through
        # memoryviews (a ctypes attribute access per field cost more than the system call).
        self._recv_buffer = bytearray(RECV_SIZE * RECV_BATCH)
        self._recv_area = (ctypes.c_char * len(self._recv_buffer)).from_buffer(self._recv_buffer)
        self._names_buffer = bytearray(NAME_SIZE * RECV_BATCH)
        self._recv_names = (ctypes.c_char * len(self._names_buffer)).from_buffer(self._names_buffer)
        self._recv_view = memoryview(self._recv_buffer)
        self._names_view = memoryview(self._names_buffer)
        self._recv_iov = (_Iovec * RECV_BATCH)()
        self._recv_msgs = (_Mmsghdr * RECV_BATCH)()
        self._recv_msgs_view = memoryview(self._recv_msgs).cast("B")
        rbase = ctypes.addressof(self._recv_area)
        nbase = ctypes.addressof(self._recv_names)
        self._recv_addresses = [rbase + i * RECV_SIZE for i in range(RECV_BATCH)]
        self._name_addresses = [nbase + i * NAME_SIZE for i in range(RECV_BATCH)]
        for i in range(RECV_BATCH):
            self._recv_iov[i].iov_base = self._recv_addresses[i]
            self._recv_iov[i].iov_len = RECV_SIZE
            hdr = self._recv_msgs[i].msg_hdr
            hdr.msg_name = self._name_addresses[i]
            hdr.msg_namelen = NAME_SIZE
            hdr.msg_iov = ctypes.pointer(self._recv_iov[i])
            hdr.msg_iovlen = 1
        self._recv_msgs_addr = ctypes.addressof(self._recv_msgs)
        self._addr_cache: dict[bytes, Address] = {}
        self.compiled_recv = _udp is not None  # False: the Python loop below (tests, fallback)

    # -- sending -----------------------------------------------------------------------

    def destination(self, addr: Address) -> Destination:
        """The kernel form of ``addr`` for :meth:`commit` (cached; callers may keep it)."""
        dest = self._names.get(addr)
        if dest is None:
            if len(self._names) >= NAME_CACHE_LIMIT:  # bound the cache
                self.flush()  # nothing queued may point into the freed buffers ...
                self._names.clear()
                self._name_buffers.clear()
                if self.on_names_reset is not None:
                    self.on_names_reset()  # ... and nothing cached elsewhere either
            raw = encode_sockaddr(addr)
            buffer = ctypes.create_string_buffer(raw, len(raw))
            self._name_buffers.append(buffer)  # kept for the life of the socket
            dest = (ctypes.addressof(buffer), len(raw))
            self._names[addr] = dest
        return dest

    def reserve(self) -> int:
        """The index of a free slot (flushing first if all are taken)."""
        if self.pending == self.slots:
            self.flush()
        return self.pending

    def commit(self, slot: int, length: int, dest: Destination) -> None:
        """Queue the ``length`` bytes written into ``views[slot]`` for ``dest``."""
        pack_name(self.msgs_view, slot * MMSG_SIZE, dest[0], dest[1])
        pack_iov_len(self.iov_view, slot * IOV_SIZE + IOV_LEN_OFFSET, length)
        self.pending = slot + 1

    def send(self, data: bytes | bytearray | memoryview, addr: Address) -> None:
        """Queue a datagram given as bytes (copied into a slot)."""
        length = len(data)
        if length > SLOT_SIZE:
            self.errors += 1
            return
        slot = self.reserve()
        self.views[slot][:length] = data
        self.commit(slot, length, self.destination(addr))

    def flush(self) -> None:
        """Send everything queued with as few ``sendmmsg`` calls as the kernel allows."""
        count = self.pending
        self.pending = 0
        done = 0
        while done < count:
            sent = self._sendmmsg(
                self._fd, self._send_msgs_addr + done * MMSG_SIZE, count - done, 0
            )
            if sent > 0:
                done += sent
                continue
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            if code in (errno.EAGAIN, errno.ENOBUFS):
                self.errors += count - done  # the socket buffer is full: shed, never block
                return
            self.errors += 1  # this datagram was refused (e.g. unreachable): skip it
            done += 1

    # -- receiving ---------------------------------------------------------------------

    def recv(self) -> list[tuple[bytes, Address]]:
        """Up to ``RECV_BATCH`` datagrams waiting on the socket (empty when none)."""
        if self.compiled_recv:
            out, truncated = _udp.recv(
                self._fd,
                self._recv_msgs_addr,
                RECV_BATCH,
                self._recv_addresses[0],
                RECV_SIZE,
                self._name_addresses[0],
                NAME_SIZE,
                self._addr_cache,
                decode_sockaddr,
            )
            self.errors += truncated
            return out  # type: ignore[no-any-return]
        count = self._recvmmsg(self._fd, self._recv_msgs_addr, RECV_BATCH, MSG_DONTWAIT, None)
        if count <= 0:
            return []
        out = []
        cache = self._addr_cache
        msgs = self._recv_msgs_view
        names = self._names_view
        area = self._recv_view
        for i in range(count):
            offset = i * MMSG_SIZE
            namelen, flags, length = _unpack_received(msgs, offset)
            # The kernel wrote the address length; the next call needs the buffer's again
            # (only the messages it filled were touched).
            _pack_namelen(msgs, offset + _NAMELEN_OFFSET, NAME_SIZE)
            if flags & MSG_TRUNC:
                self.errors += 1
                continue
            start = i * NAME_SIZE
            raw = bytes(names[start : start + namelen])
            addr = cache.get(raw)
            if addr is None:
                addr = decode_sockaddr(raw)
                if len(cache) > 65536:
                    cache.clear()
                cache[raw] = addr
            start = i * RECV_SIZE
            out.append((bytes(area[start : start + length]), addr))
        return out


class PlainUdp:
    """The same interface with one system call per datagram (any platform)."""

    def __init__(self, sock: socket.socket, send_slots: int = 64) -> None:
        self.sock = sock
        self.errors = 0
        self.slots = send_slots
        self._area = bytearray(SLOT_SIZE * send_slots)
        self._area_c = (ctypes.c_char * len(self._area)).from_buffer(self._area)
        base = ctypes.addressof(self._area_c)
        area = memoryview(self._area)
        self.addresses = [base + i * SLOT_SIZE for i in range(send_slots)]
        self.views = [area[i * SLOT_SIZE : (i + 1) * SLOT_SIZE] for i in range(send_slots)]
        self._queue: list[tuple[bytes, Address]] = []
        self.pending = 0
        self.batched = False  # no raw message arrays: callers use commit()

    def destination(self, addr: Address) -> Address:
        return addr

    def reserve(self) -> int:
        return 0

    def commit(self, slot: int, length: int, dest: Address) -> None:
        self._queue.append((bytes(self.views[slot][:length]), dest))
        self.pending = len(self._queue)

    def send(self, data: bytes | bytearray | memoryview, addr: Address) -> None:
        self._queue.append((bytes(data), addr))
        self.pending = len(self._queue)

    def flush(self) -> None:
        queue, self._queue = self._queue, []
        self.pending = 0
        for data, addr in queue:
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, OSError):
                self.errors += 1

    def recv(self) -> list[tuple[bytes, Address]]:
        out = []
        for _ in range(RECV_BATCH):
            try:
                data, addr = self.sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.errors += 1
                break
            out.append((data, (addr[0], addr[1])))
        return out


def open_batch_io(sock: socket.socket) -> BatchUdp | PlainUdp:
    """Batched I/O where the platform has it, the plain fallback elsewhere."""
    if _LIBC is not None:
        return BatchUdp(sock)
    return PlainUdp(sock)
