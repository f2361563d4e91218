"""The MLS delivery service of one meeting (``docs/protocol.md``, "End-to-end encryption").

A plain domain object with no I/O: the conference tells it who joined, left or lost its
connection and hands it the clients' MLS requests; every method returns the messages to
deliver as ``(participant id, message)`` pairs, and :meth:`GroupDelivery.poll` runs the
timers (the conference calls it at :meth:`GroupDelivery.next_deadline`). The clock is
injected.

What it does (RFC 9420 leaves ordering to the delivery service, §14):

- orders handshake messages: the first commit for the current epoch wins, any other gets
  ``stale_epoch``; an accepted commit goes to every other member, and a ``Welcome`` to each
  participant it added, before any later commit;
- designates ONE committer (the earliest-joined connected MLS member; while no group
  exists, the earliest-joined participant with a key package is asked to create it) and
  gives it a task: create, add the pending key packages, remove members who left, or
  update. A task unanswered for :data:`TASK_TIMEOUT` seconds goes to the next member.
  Adds are handed out at most once per :data:`ADD_INTERVAL` since the last accepted
  commit that added someone (batching; a removal does not make the next joiner wait);
  removals at once; an ``update`` after :data:`UPDATE_AFTER` without a
  commit;
- keeps messages for a member whose connection dropped until it resumes;
- stores public material only: key packages, the latest GroupInfo and ratchet tree.

It never sees a private key or a secret: it reads only the clear MLS framing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from incamera.media.errors import ParseError

from .mls_framing import (
    ContentType,
    MlsFraming,
    SenderType,
    WireFormat,
    check_ratchet_tree,
)

CIPHER_SUITE = 0x0001  # MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
GROUP_ID_BYTES = 16
TASK_TIMEOUT = 10.0  # seconds a committer has to answer its task
ADD_INTERVAL = 1.5  # at most one commit with adds per this many seconds
UPDATE_AFTER = 15 * 60.0  # an empty commit after this long without one
MAX_ADDS_PER_TASK = 50
MAX_QUEUED_MESSAGES = 1000  # application messages kept for a disconnected member

DeliveryCode = Literal["stale_epoch", "group_exists", "not_mls_member", "bad_mls"]


class DeliveryError(Exception):
    """A refused MLS request: ``code`` is a signalling error code, ``reason`` says why."""

    def __init__(self, code: DeliveryCode, reason: str) -> None:
        super().__init__(reason)
        self.code: DeliveryCode = code
        self.reason = reason


# -- what the delivery service sends -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Task:
    """``mls_task``: the committer turns it into exactly one commit (or ``mls_create``).

    ``epoch`` is the epoch the task was computed for (None for ``create``): a client whose
    group is at another epoch ignores it and waits for the next one.
    """

    create: bool = False
    add: tuple[tuple[str, bytes], ...] = ()
    remove: tuple[str, ...] = ()
    update: bool = False
    epoch: int | None = None


@dataclass(frozen=True, slots=True)
class CommitOut:
    """``mls_commit`` to a member: the commit from ``epoch`` to ``epoch + 1``."""

    epoch: int
    commit: bytes
    sender: str


@dataclass(frozen=True, slots=True)
class WelcomeOut:
    """``mls_welcome`` to an added participant; ``epoch`` is the epoch it joins at."""

    epoch: int
    welcome: bytes
    ratchet_tree: bytes


@dataclass(frozen=True, slots=True)
class MessageOut:
    """``mls_message``: a relayed application message."""

    sender: str
    message: bytes


@dataclass(frozen=True, slots=True)
class KeyPackageRefused:
    """The committer left this participant's key package out of its commit: the
    participant must send a new one (an ``error`` ``bad_mls`` without ``rid``)."""

    reason: str


Outgoing = Task | CommitOut | WelcomeOut | MessageOut | KeyPackageRefused
Send = tuple[str, Outgoing]


# -- state -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Participant:
    skip: bool  # test hook: never handed to a committer
    connected: bool = True
    key_package: bytes | None = None  # waiting to be added
    device_key: bytes | None = None  # the MLS signature public key, fixed once known
    backlog: list[Outgoing] = field(default_factory=list)  # while disconnected


@dataclass(frozen=True, slots=True)
class _Outstanding:
    holder: str
    task: Task
    deadline: float


class GroupDelivery:
    """The delivery service of one meeting's MLS group (see the module docstring)."""

    def __init__(self, group_id: bytes, now: Callable[[], float] = time.monotonic) -> None:
        if len(group_id) != GROUP_ID_BYTES:
            raise ValueError(f"a group id has {GROUP_ID_BYTES} bytes")
        self.group_id = group_id
        self.now = now
        self.epoch: int | None = None  # None: no group yet
        self.members: list[str] = []  # the MLS roster as committed, in join order
        self.group_info: bytes | None = None  # public, latest epoch
        self.ratchet_tree: bytes | None = None  # public, latest epoch
        self._participants: dict[str, _Participant] = {}  # in meeting join order
        self._outstanding: _Outstanding | None = None
        self._passed_over: set[str] = set()  # committers that let a task time out
        self._handed: dict[str, bytes] = {}  # key packages given to a committer, not added
        self._last_add: float | None = None
        self._last_change = now()

    # -- queries ---------------------------------------------------------------------------

    @property
    def task(self) -> Task | None:
        return self._outstanding.task if self._outstanding is not None else None

    @property
    def task_holder(self) -> str | None:
        return self._outstanding.holder if self._outstanding is not None else None

    @property
    def committer(self) -> str | None:
        """The member that gets the next task (None while no group exists)."""
        if self._outstanding is not None and self.epoch is not None:
            return self._outstanding.holder
        if self.epoch is None:
            return None
        return self._pick(self._connected_members())

    def device_key(self, participant_id: str) -> bytes | None:
        participant = self._participants.get(participant_id)
        return participant.device_key if participant is not None else None

    def is_member(self, participant_id: str) -> bool:
        return participant_id in self.members

    def pending_removals(self) -> list[str]:
        return [p for p in self.members if p not in self._participants]

    def next_deadline(self) -> float | None:
        """When :meth:`poll` has something to do (None: nothing is timed)."""
        if self._outstanding is not None:
            return self._outstanding.deadline
        if self.epoch is None or not self._connected_members():
            return None  # nothing can happen until somebody joins, sends or reconnects
        times = [self._last_change + UPDATE_AFTER]
        if self._last_add is not None and self._pending_adds():
            times.append(self._last_add + ADD_INTERVAL)
        return min(times)

    # -- membership of the meeting ---------------------------------------------------------

    def join(self, participant_id: str, *, skip: bool = False) -> list[Send]:
        """A participant joined the meeting (not the MLS group: that needs a key package)."""
        if participant_id in self._participants:
            raise ValueError(f"{participant_id} joined twice")
        self._participants[participant_id] = _Participant(skip=skip)
        return []

    def disconnected(self, participant_id: str) -> list[Send]:
        """Its connection dropped: messages wait for it; it cannot be the committer."""
        participant = self._participants.get(participant_id)
        if participant is None:
            return []
        participant.connected = False
        sends: list[Send] = []
        self._advance(sends)
        return sends

    def reconnected(self, participant_id: str) -> list[Send]:
        """It resumed: what was kept for it first, in order."""
        participant = self._participants.get(participant_id)
        if participant is None:
            return []
        participant.connected = True
        self._passed_over.discard(participant_id)
        sends: list[Send] = [(participant_id, item) for item in participant.backlog]
        participant.backlog = []
        self._advance(sends)
        return sends

    def leave(self, participant_id: str) -> list[Send]:
        """It left the meeting: a member is removed by the next commit, at once."""
        participant = self._participants.pop(participant_id, None)
        if participant is None:
            return []
        self._passed_over.discard(participant_id)
        sends: list[Send] = []
        self._advance(sends)
        return sends

    # -- requests --------------------------------------------------------------------------

    def key_package(self, participant_id: str, key_package: bytes, device_key: bytes) -> list[Send]:
        """``mls_key_package``: store it (replacing an unused one) and queue an add."""
        participant = self._participant(participant_id)
        framing = _parse(key_package, WireFormat.KEY_PACKAGE, "key_package")
        if framing.cipher_suite != CIPHER_SUITE:
            raise DeliveryError("bad_mls", f"key package cipher suite {framing.cipher_suite}")
        if framing.signature_key != device_key:
            raise DeliveryError("bad_mls", "device_key is not the key package's signature key")
        if not _identity_is(framing.identity, participant_id):
            raise DeliveryError(
                "bad_mls", "the key package's credential is not this participant's identity"
            )
        if participant.device_key is not None and participant.device_key != device_key:
            raise DeliveryError("bad_mls", "the device key of a participant cannot change")
        if participant_id in self.members:
            raise DeliveryError("bad_mls", "already a member of the MLS group")
        participant.device_key = device_key
        participant.key_package = key_package
        sends: list[Send] = []
        self._advance(sends)
        return sends

    def create(self, participant_id: str, group_info: bytes, ratchet_tree: bytes) -> list[Send]:
        """``mls_create``: the first group at epoch 0 wins; its creator is the first member."""
        participant = self._participant(participant_id)
        if self.epoch is not None:
            raise DeliveryError("group_exists", "the meeting's MLS group exists already")
        if participant.skip:
            raise DeliveryError("not_mls_member", "kept outside the MLS group (test hook)")
        if participant.key_package is None:
            raise DeliveryError("bad_mls", "send mls_key_package first")
        info = _parse(group_info, WireFormat.GROUP_INFO, "group_info")
        self._check_group_info(info, 0)
        _check_tree(ratchet_tree)
        self.epoch = 0
        self.members = [participant_id]
        participant.key_package = None
        self._handed.pop(participant_id, None)
        self.group_info, self.ratchet_tree = group_info, ratchet_tree
        self._outstanding = None
        self._passed_over.clear()
        self._last_add = None  # the first adds need not wait
        self._last_change = self.now()
        sends: list[Send] = []
        self._advance(sends)
        return sends

    def commit(
        self,
        participant_id: str,
        commit: bytes,
        welcome: bytes | None,
        group_info: bytes,
        ratchet_tree: bytes,
        added: Sequence[str],
        removed: Sequence[str],
    ) -> list[Send]:
        """``mls_commit``: accepted if it is the first for the current epoch."""
        self._participant(participant_id)
        if participant_id not in self.members:
            raise DeliveryError("not_mls_member", "only a member of the MLS group can commit")
        assert self.epoch is not None
        framing = _parse(commit, (WireFormat.PUBLIC_MESSAGE, WireFormat.PRIVATE_MESSAGE), "commit")
        if framing.group_id != self.group_id:
            raise DeliveryError("bad_mls", "the commit is for another group")
        if framing.content_type is not ContentType.COMMIT:
            raise DeliveryError("bad_mls", "not a commit")
        if framing.sender_type not in (None, SenderType.MEMBER):
            raise DeliveryError("bad_mls", "only commits by members are accepted")
        if framing.epoch != self.epoch:
            raise DeliveryError(
                "stale_epoch",
                f"the commit is for epoch {framing.epoch}; the group is at epoch {self.epoch}",
            )
        epoch = self.epoch
        info = _parse(group_info, WireFormat.GROUP_INFO, "group_info")
        self._check_group_info(info, epoch + 1)
        _check_tree(ratchet_tree)
        self._check_changes(participant_id, added, removed)
        if added and welcome is None:
            raise DeliveryError("bad_mls", "a commit that adds members needs a welcome")
        if welcome is not None:
            if not added:
                raise DeliveryError("bad_mls", "a welcome without added participants")
            framing = _parse(welcome, WireFormat.WELCOME, "welcome")
            if framing.cipher_suite != CIPHER_SUITE:
                raise DeliveryError("bad_mls", f"welcome cipher suite {framing.cipher_suite}")
        # Accepted: the group moves to epoch + 1.
        sends: list[Send] = []
        recipients = [p for p in self.members if p != participant_id]
        answered = self._outstanding
        self.epoch = epoch + 1
        self.members = [p for p in self.members if p not in removed] + list(added)
        self.group_info, self.ratchet_tree = group_info, ratchet_tree
        self._outstanding = None
        now = self.now()
        self._last_change = now
        if added:
            self._last_add = now
        for recipient in recipients:
            self._send(sends, recipient, CommitOut(epoch, commit, participant_id))
        for pid in added:
            self._handed.pop(pid, None)
            joiner = self._participants.get(pid)
            if joiner is None:
                continue  # left before being added: removed by the next commit
            joiner.key_package = None
            assert welcome is not None
            self._send(sends, pid, WelcomeOut(epoch + 1, welcome, ratchet_tree))
        if (
            answered is not None
            and answered.holder == participant_id
            and answered.task.epoch == epoch
        ):
            self._drop_left_out(sends, answered.task, set(added))
        self._advance(sends)
        return sends

    def message(self, participant_id: str, message: bytes) -> list[Send]:
        """``mls_message``: an application message, relayed to every other member."""
        self._participant(participant_id)
        if participant_id not in self.members:
            raise DeliveryError("not_mls_member", "only a member of the MLS group can send")
        assert self.epoch is not None
        framing = _parse(message, WireFormat.PRIVATE_MESSAGE, "message")
        if framing.group_id != self.group_id:
            raise DeliveryError("bad_mls", "the message is for another group")
        if framing.content_type is not ContentType.APPLICATION:
            raise DeliveryError("bad_mls", "not an application message")
        if framing.epoch not in (self.epoch, self.epoch - 1):
            raise DeliveryError(
                "stale_epoch",
                f"the message is for epoch {framing.epoch}; the group is at epoch {self.epoch}",
            )
        sends: list[Send] = []
        for member in self.members:
            if member != participant_id:
                self._send(sends, member, MessageOut(participant_id, message))
        return sends

    def poll(self) -> list[Send]:
        """Run the timers: task timeouts, batched adds, the periodic update."""
        sends: list[Send] = []
        self._advance(sends)
        return sends

    # -- internals -------------------------------------------------------------------------

    def _participant(self, participant_id: str) -> _Participant:
        participant = self._participants.get(participant_id)
        if participant is None:
            raise DeliveryError("not_mls_member", "not in this meeting")
        return participant

    def _check_group_info(self, info: MlsFraming, epoch: int) -> None:
        if info.group_id != self.group_id:
            raise DeliveryError("bad_mls", "the group info is for another group")
        if info.cipher_suite != CIPHER_SUITE:
            raise DeliveryError("bad_mls", f"group info cipher suite {info.cipher_suite}")
        if info.epoch != epoch:
            raise DeliveryError("bad_mls", f"the group info is for epoch {info.epoch}, not {epoch}")

    def _check_changes(self, committer: str, added: Sequence[str], removed: Sequence[str]) -> None:
        if len(set(added)) != len(added) or len(set(removed)) != len(removed):
            raise DeliveryError("bad_mls", "a participant is listed twice")
        for pid in removed:
            if pid not in self.members:
                raise DeliveryError("bad_mls", f"removed {pid} is not a member")
            if pid == committer:
                raise DeliveryError("bad_mls", "a committer cannot remove itself")
        for pid in added:
            if pid in self.members:
                raise DeliveryError("bad_mls", f"added {pid} is a member already")
            participant = self._participants.get(pid)
            offered = pid in self._handed or (
                participant is not None and participant.key_package is not None
            )
            if not offered or (participant is not None and participant.skip):
                raise DeliveryError("bad_mls", f"no key package of {pid} was handed out")

    def _drop_left_out(self, sends: list[Send], task: Task, added: set[str]) -> None:
        """The committer answered its task but left some key packages out: they are
        refused (the participant sends a new one), so they are not handed out forever."""
        for pid, key_package in task.add:
            if pid in added:
                continue
            self._handed.pop(pid, None)
            participant = self._participants.get(pid)
            if participant is not None and participant.key_package == key_package:
                participant.key_package = None
                reason = "the committer refused your key package; send a new one"
                self._send(sends, pid, KeyPackageRefused(reason))

    def _send(self, sends: list[Send], participant_id: str, item: Outgoing) -> None:
        participant = self._participants.get(participant_id)
        if participant is None:
            return
        if participant.connected:
            sends.append((participant_id, item))
            return
        participant.backlog.append(item)
        queued = [x for x in participant.backlog if isinstance(x, MessageOut)]
        if len(queued) > MAX_QUEUED_MESSAGES:  # drop the oldest application message
            participant.backlog.remove(queued[0])

    def _connected_members(self) -> list[str]:
        return [
            p
            for p in self.members
            if (q := self._participants.get(p)) is not None and q.connected and not q.skip
        ]

    def _create_candidates(self) -> list[str]:
        return [
            pid
            for pid, p in self._participants.items()
            if p.connected and not p.skip and p.key_package is not None
        ]

    def _pick(self, candidates: Iterable[str]) -> str | None:
        ordered = list(candidates)
        for pid in ordered:
            if pid not in self._passed_over:
                return pid
        if ordered:  # everyone let a task time out: start again from the first
            self._passed_over.difference_update(ordered)
            return ordered[0]
        return None

    def _pending_adds(self) -> list[tuple[str, bytes]]:
        return [
            (pid, p.key_package)
            for pid, p in self._participants.items()
            if p.key_package is not None and not p.skip and pid not in self.members
        ][:MAX_ADDS_PER_TASK]

    def _reset_if_emptied(self) -> None:
        """Every MLS member left (nobody holds the group's secrets): start a new group."""
        if self.epoch is None or any(p in self._participants for p in self.members):
            return
        self.epoch = None
        self.members = []
        self.group_info = self.ratchet_tree = None
        self._outstanding = None
        self._handed.clear()
        self._passed_over.clear()
        self._last_add = None

    def _advance(self, sends: list[Send]) -> None:
        """Hand over or time out the outstanding task; give out the next one if due."""
        self._reset_if_emptied()
        now = self.now()
        outstanding = self._outstanding
        if outstanding is not None:
            holder = self._participants.get(outstanding.holder)
            valid = (
                holder is not None
                and holder.connected
                and (outstanding.task.create == (self.epoch is None))
                and (outstanding.task.create or outstanding.holder in self.members)
            )
            if valid and now < outstanding.deadline:
                return
            if valid:  # timed out: the next member gets it
                self._passed_over.add(outstanding.holder)
            self._outstanding = None
        if self.epoch is None:
            creator = self._pick(self._create_candidates())
            if creator is not None:
                self._give(sends, creator, Task(create=True), now)
            return
        committer = self._pick(self._connected_members())
        if committer is None:
            return
        remove = tuple(self.pending_removals())
        add = tuple(self._pending_adds())
        adds_due = bool(add) and (self._last_add is None or now >= self._last_add + ADD_INTERVAL)
        update_due = now >= self._last_change + UPDATE_AFTER
        if remove or adds_due or update_due:
            task = Task(
                add=add if (adds_due or remove) else (),
                remove=remove,
                update=not (remove or adds_due),
                epoch=self.epoch,
            )
            for pid, key_package in task.add:
                self._handed[pid] = key_package
            self._give(sends, committer, task, now)

    def _give(self, sends: list[Send], holder: str, task: Task, now: float) -> None:
        self._outstanding = _Outstanding(holder, task, now + TASK_TIMEOUT)
        self._send(sends, holder, task)


def _parse(data: bytes, expected: WireFormat | tuple[WireFormat, ...], what: str) -> MlsFraming:
    try:
        framing = MlsFraming.parse(data)
    except ParseError as error:
        raise DeliveryError("bad_mls", f"{what}: {error}") from None
    formats = expected if isinstance(expected, tuple) else (expected,)
    if framing.wire_format not in formats:
        raise DeliveryError("bad_mls", f"{what}: unexpected wire format {framing.wire_format.name}")
    return framing


def _check_tree(data: bytes) -> None:
    try:
        check_ratchet_tree(data)
    except ParseError as error:
        raise DeliveryError("bad_mls", f"ratchet_tree: {error}") from None


def _identity_is(identity: bytes | None, participant_id: str) -> bool:
    """The BasicCredential identity ``{"v":1,"id":...,"name":...}`` names this participant."""
    if identity is None:
        return False
    try:
        value = json.loads(identity.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return (
        isinstance(value, dict)
        and list(value) == ["v", "id", "name"]
        and value["v"] == 1
        and value["id"] == participant_id
        and isinstance(value["name"], str)
    )


__all__ = [
    "ADD_INTERVAL",
    "CIPHER_SUITE",
    "GROUP_ID_BYTES",
    "TASK_TIMEOUT",
    "UPDATE_AFTER",
    "CommitOut",
    "DeliveryError",
    "GroupDelivery",
    "KeyPackageRefused",
    "MessageOut",
    "Outgoing",
    "Send",
    "Task",
    "WelcomeOut",
]
