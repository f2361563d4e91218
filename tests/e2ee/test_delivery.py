"""The MLS delivery service as a domain object: ordering, routing, committer choice,
batching and timers, with a hand-driven clock and well-formed fake MLS messages."""

from __future__ import annotations

import os

import pytest

from incamera.e2ee.delivery import (
    ADD_INTERVAL,
    TASK_TIMEOUT,
    UPDATE_AFTER,
    CommitOut,
    DeliveryError,
    GroupDelivery,
    KeyPackageRefused,
    MessageOut,
    Send,
    Task,
    WelcomeOut,
)
from support import mls_fake as fake

GROUP = bytes(range(16))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Harness:
    """A ``GroupDelivery`` with participants that behave like well-formed clients."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.ds = GroupDelivery(GROUP, self.clock)
        self.keys: dict[str, bytes] = {}
        self.kps: dict[str, bytes] = {}

    def join(self, pid: str, *, key_package: bool = True, skip: bool = False) -> list[Send]:
        sends = self.ds.join(pid, skip=skip)
        if key_package:
            sends += self.key_package(pid)
        return sends

    def key_package(self, pid: str) -> list[Send]:
        key = self.keys.setdefault(pid, os.urandom(32))
        self.kps[pid] = fake.key_package(key, fake.identity(pid, pid.title()))
        return self.ds.key_package(pid, self.kps[pid], key)

    def create(self, pid: str) -> list[Send]:
        return self.ds.create(pid, fake.group_info(GROUP, 0), fake.ratchet_tree())

    def commit(
        self,
        pid: str,
        *,
        added: tuple[str, ...] = (),
        removed: tuple[str, ...] = (),
        epoch: int | None = None,
    ) -> tuple[bytes, list[Send]]:
        epoch = self.ds.epoch if epoch is None else epoch
        assert epoch is not None
        commit = fake.commit(GROUP, epoch)
        sends = self.ds.commit(
            pid,
            commit,
            fake.welcome() if added else None,
            fake.group_info(GROUP, epoch + 1),
            fake.ratchet_tree(2),
            list(added),
            list(removed),
        )
        return commit, sends

    def answer(self, sends: list[Send]) -> list[Send]:
        """The holder of the task among ``sends`` answers it exactly."""
        tasks = [(pid, x) for pid, x in sends if isinstance(x, Task)]
        assert len(tasks) == 1, sends
        pid, task = tasks[0]
        if task.create:
            return self.create(pid)
        _, out = self.commit(
            pid, added=tuple(p for p, _ in task.add), removed=task.remove, epoch=task.epoch
        )
        return out


def tasks(sends: list[Send]) -> list[tuple[str, Task]]:
    return [(pid, x) for pid, x in sends if isinstance(x, Task)]


def started(*pids: str) -> tuple[Harness, list[Send]]:
    """A group created by the first, with the others added (all answered at once)."""
    h = Harness()
    sends = h.join(pids[0])
    sends = h.answer(sends)
    assert h.ds.epoch == 0 and h.ds.members == [pids[0]]
    for pid in pids[1:]:
        h.clock.t += ADD_INTERVAL
        sends = h.join(pid)
        sends = h.answer(sends)
    return h, sends


def test_the_first_key_package_gets_the_create_task() -> None:
    h = Harness()
    assert h.join("ann", key_package=False) == []  # no key package: nothing yet
    sends = h.join("bo")
    assert sends == [("bo", Task(create=True))]
    assert h.ds.task_holder == "bo"
    # Ann's key package arrives: the create task stays with Bo
    assert h.key_package("ann") == []
    sends = h.create("bo")
    assert h.ds.epoch == 0 and h.ds.members == ["bo"]
    assert h.ds.group_info is not None and h.ds.ratchet_tree is not None
    # the first adds need not wait for a previous commit
    assert tasks(sends) == [("bo", Task(add=(("ann", h.kps["ann"]),), epoch=0))]
    assert h.ds.device_key("ann") == h.keys["ann"]


def test_create_is_validated_and_the_first_wins() -> None:
    h = Harness()
    h.join("ann")
    h.join("bo")
    with pytest.raises(DeliveryError) as caught:
        h.ds.create("ann", fake.group_info(bytes(16), 0), fake.ratchet_tree())
    assert caught.value.code == "bad_mls"  # another group id
    with pytest.raises(DeliveryError):
        h.ds.create("ann", fake.group_info(GROUP, 1), fake.ratchet_tree())  # not epoch 0
    with pytest.raises(DeliveryError):
        h.ds.create("ann", fake.group_info(GROUP, 0, suite=2), fake.ratchet_tree())
    with pytest.raises(DeliveryError):
        h.ds.create("ann", fake.welcome(), fake.ratchet_tree())  # not a group info
    with pytest.raises(DeliveryError):
        h.ds.create("ann", fake.group_info(GROUP, 0), b"\x00")  # empty tree
    assert h.ds.epoch is None
    h.create("ann")
    with pytest.raises(DeliveryError) as caught:
        h.create("bo")
    assert caught.value.code == "group_exists"


def test_creator_race_after_a_timeout() -> None:
    h = Harness()
    assert tasks(h.join("ann")) == [("ann", Task(create=True))]
    h.join("bo")
    h.clock.t += TASK_TIMEOUT - 0.1
    assert h.ds.poll() == []
    h.clock.t += 0.1
    assert h.ds.next_deadline() == h.clock.t
    assert tasks(h.ds.poll()) == [("bo", Task(create=True))]
    # Ann's late create arrives first: it wins, Bo's is refused and Bo gets added
    sends = h.create("ann")
    assert h.ds.members == ["ann"]
    with pytest.raises(DeliveryError) as caught:
        h.create("bo")
    assert caught.value.code == "group_exists"
    assert tasks(sends) == [("ann", Task(add=(("bo", h.kps["bo"]),), epoch=0))]


def test_first_commit_per_epoch_wins_and_goes_to_the_others() -> None:
    h, _ = started("ann", "bo", "cy")
    assert h.ds.epoch == 2 and h.ds.members == ["ann", "bo", "cy"]
    commit, sends = h.commit("bo")
    assert h.ds.epoch == 3
    assert sends == [("ann", CommitOut(2, commit, "bo")), ("cy", CommitOut(2, commit, "bo"))]
    with pytest.raises(DeliveryError) as caught:
        h.commit("cy", epoch=2)
    assert caught.value.code == "stale_epoch"
    with pytest.raises(DeliveryError) as caught:
        h.commit("cy", epoch=9)
    assert caught.value.code == "stale_epoch"
    assert h.ds.epoch == 3


def test_bad_commits_are_refused_without_moving_the_epoch() -> None:
    h, _ = started("ann", "bo")
    info, tree = fake.group_info(GROUP, 2), fake.ratchet_tree()
    cases = [
        (fake.commit(bytes(16), 1), None, info, [], []),  # another group
        (fake.public_message(GROUP, 1, content_type=2), None, info, [], []),  # a proposal
        (fake.private_message(GROUP, 1), None, info, [], []),  # application data
        (fake.public_message(GROUP, 1, sender_type=4), None, info, [], []),  # external
        (b"\x00\x01garbage", None, info, [], []),
        (fake.commit(GROUP, 1), None, fake.group_info(GROUP, 1), [], []),  # info epoch
        (fake.commit(GROUP, 1), None, info, ["zed"], []),  # no key package for zed
        (fake.commit(GROUP, 1), fake.welcome(), info, [], []),  # welcome, nobody added
        (fake.commit(GROUP, 1), None, info, [], ["ann"]),  # removes itself
        (fake.commit(GROUP, 1), None, info, [], ["zed"]),  # not a member
        (fake.commit(GROUP, 1), None, info, ["bo"], []),  # a member already
    ]
    for commit, welcome, group_info, added, removed in cases:
        with pytest.raises(DeliveryError) as caught:
            h.ds.commit("ann", commit, welcome, group_info, tree, added, removed)
        assert caught.value.code == "bad_mls", (commit, added, removed)
    h.join("cy")
    with pytest.raises(DeliveryError) as caught:  # adds without a welcome
        h.ds.commit("ann", fake.commit(GROUP, 1), None, info, tree, ["cy"], [])
    assert caught.value.code == "bad_mls"
    with pytest.raises(DeliveryError) as caught:  # not a member yet
        h.commit("cy")
    assert caught.value.code == "not_mls_member"
    assert h.ds.epoch == 1


def test_welcome_routing_and_later_commits_in_order() -> None:
    h, _ = started("ann")
    h.clock.t += ADD_INTERVAL
    sends = h.join("bo")
    assert tasks(sends) == [("ann", Task(add=(("bo", h.kps["bo"]),), epoch=0))]
    assert h.ds.next_deadline() == h.clock.t + TASK_TIMEOUT
    commit, sends = h.commit("ann", added=("bo",))
    welcomes = [(pid, x) for pid, x in sends if isinstance(x, WelcomeOut)]
    assert len(welcomes) == 1 and welcomes[0][0] == "bo"
    assert welcomes[0][1].epoch == 1 and welcomes[0][1].ratchet_tree == h.ds.ratchet_tree
    assert not any(isinstance(x, CommitOut) for _, x in sends)  # Ann was the only member
    assert h.ds.members == ["ann", "bo"] and h.ds.device_key("bo") == h.keys["bo"]
    # the joiner receives the next commit
    commit, sends = h.commit("ann")
    assert sends == [("bo", CommitOut(1, commit, "ann"))]


def test_adds_are_batched() -> None:
    h, _ = started("ann", "bo")
    # just after a commit: the key packages of cy and di wait
    h.clock.t += 0.2
    assert tasks(h.join("cy")) == []
    h.clock.t += 0.5
    assert tasks(h.join("di")) == []
    assert h.ds.next_deadline() == pytest.approx(h.clock.t - 0.7 + ADD_INTERVAL)
    h.clock.t = h.ds.next_deadline()  # type: ignore[assignment]
    sends = h.ds.poll()
    assert tasks(sends) == [("ann", Task(add=(("cy", h.kps["cy"]), ("di", h.kps["di"])), epoch=1))]
    sends = h.answer(sends)
    assert h.ds.members == ["ann", "bo", "cy", "di"]
    welcomed = sorted(pid for pid, x in sends if isinstance(x, WelcomeOut))
    assert welcomed == ["cy", "di"]
    assert sorted(pid for pid, x in sends if isinstance(x, CommitOut)) == ["bo"]


def test_removal_is_at_once_and_takes_the_pending_adds_along() -> None:
    h, _ = started("ann", "bo", "cy")
    h.clock.t += 0.1
    assert tasks(h.join("di")) == []  # batched
    sends = h.ds.leave("bo")
    assert tasks(sends) == [("ann", Task(add=(("di", h.kps["di"]),), remove=("bo",), epoch=2))]
    assert h.ds.pending_removals() == ["bo"]
    sends = h.answer(sends)
    assert h.ds.members == ["ann", "cy", "di"] and h.ds.pending_removals() == []
    assert [pid for pid, x in sends if isinstance(x, CommitOut)] == ["cy"]  # not to bo


def test_a_removal_does_not_make_the_next_joiner_wait() -> None:
    h, _ = started("ann", "bo", "cy")
    h.clock.t += ADD_INTERVAL  # the adds of the start are long done
    h.answer(h.ds.leave("bo"))  # a removal alone, committed at once
    assert h.ds.members == ["ann", "cy"]
    h.clock.t += 0.1
    # Di arrives just after the removal: her add is handed out at once...
    sends = h.join("di")
    assert tasks(sends) == [("ann", Task(add=(("di", h.kps["di"]),), epoch=3))]
    h.answer(sends)
    assert h.ds.members == ["ann", "cy", "di"]
    # ...but the next joiner after an add waits for the batch.
    h.clock.t += 0.1
    assert tasks(h.join("ed")) == []
    assert h.ds.next_deadline() == pytest.approx(h.clock.t - 0.1 + ADD_INTERVAL)


def test_update_after_fifteen_minutes_without_a_commit() -> None:
    h, _ = started("ann", "bo")
    assert h.ds.next_deadline() == h.clock.t + UPDATE_AFTER
    h.clock.t += UPDATE_AFTER - 1
    assert h.ds.poll() == []
    h.clock.t += 1
    sends = h.ds.poll()
    assert tasks(sends) == [("ann", Task(update=True, epoch=1))]
    h.answer(sends)
    assert h.ds.epoch == 2 and h.ds.next_deadline() == h.clock.t + UPDATE_AFTER


def test_committer_hand_over_on_timeout_then_late_commit_is_stale() -> None:
    h, _ = started("ann", "bo", "cy")
    h.clock.t += ADD_INTERVAL
    sends = h.join("di")
    assert tasks(sends)[0][0] == "ann"
    h.clock.t += TASK_TIMEOUT
    sends = h.ds.poll()
    assert tasks(sends) == [("bo", Task(add=(("di", h.kps["di"]),), epoch=2))]
    assert h.ds.committer == "bo"
    h.answer(sends)  # Bo commits first
    with pytest.raises(DeliveryError) as caught:  # Ann's late commit
        h.commit("ann", added=("di",), epoch=2)
    assert caught.value.code == "stale_epoch"
    # Ann stays passed over while Bo is fine
    h.clock.t += UPDATE_AFTER
    assert tasks(h.ds.poll())[0][0] == "bo"


def test_committer_hand_over_on_disconnect_and_leave() -> None:
    h, _ = started("ann", "bo", "cy")
    h.clock.t += ADD_INTERVAL
    assert tasks(h.join("di"))[0][0] == "ann"
    sends = h.ds.disconnected("ann")
    assert tasks(sends) == [("bo", Task(add=(("di", h.kps["di"]),), epoch=2))]
    sends = h.ds.leave("bo")
    assert tasks(sends) == [("cy", Task(add=(("di", h.kps["di"]),), remove=("bo",), epoch=2))]
    # Ann is disconnected: her commit copy waits for her
    commit, sends = h.commit("cy", added=("di",), removed=("bo",))
    assert [pid for pid, x in sends if isinstance(x, CommitOut)] == []
    assert [pid for pid, x in sends if isinstance(x, WelcomeOut)] == ["di"]
    # she resumes: what she missed first, then she is the committer again when due
    h.clock.t += UPDATE_AFTER
    sends = h.ds.reconnected("ann")
    assert sends[0] == ("ann", CommitOut(2, commit, "cy"))
    assert tasks(sends) == [("ann", Task(update=True, epoch=3))]


def test_messages_for_a_disconnected_member_wait_in_order() -> None:
    h, _ = started("ann", "bo")
    h.ds.disconnected("bo")
    first = fake.private_message(GROUP, 1)
    assert h.ds.message("ann", first) == []
    commit, _ = h.commit("ann")
    second = fake.private_message(GROUP, 2)
    h.ds.message("ann", second)
    assert h.ds.reconnected("bo") == [
        ("bo", MessageOut("ann", first)),
        ("bo", CommitOut(1, commit, "ann")),
        ("bo", MessageOut("ann", second)),
    ]


def test_application_messages_are_checked_and_relayed() -> None:
    h, _ = started("ann", "bo", "cy")
    message = fake.private_message(GROUP, 2)
    assert h.ds.message("bo", message) == [
        ("ann", MessageOut("bo", message)),
        ("cy", MessageOut("bo", message)),
    ]
    h.ds.message("bo", fake.private_message(GROUP, 1))  # the previous epoch is fine
    bad = {
        "stale_epoch": fake.private_message(GROUP, 0),
        "bad_mls": fake.private_message(bytes(16), 2),
    }
    for code, data in bad.items():
        with pytest.raises(DeliveryError) as caught:
            h.ds.message("bo", data)
        assert caught.value.code == code
    for data in [fake.commit(GROUP, 2), fake.private_message(GROUP, 2, content_type=3)]:
        with pytest.raises(DeliveryError) as caught:
            h.ds.message("bo", data)
        assert caught.value.code == "bad_mls"
    h.join("di")
    with pytest.raises(DeliveryError) as caught:
        h.ds.message("di", message)
    assert caught.value.code == "not_mls_member"


def test_key_packages_are_checked() -> None:
    h = Harness()
    h.ds.join("ann")
    key = os.urandom(32)
    good = fake.key_package(key, fake.identity("ann", "Ann"))
    cases = [
        (fake.key_package(key, fake.identity("ann", "Ann"), suite=2), key),
        (good, os.urandom(32)),  # device key is not the signature key
        (fake.key_package(key, fake.identity("bo", "Bo")), key),  # someone else
        (fake.key_package(key, b'{"id":"ann","v":1,"name":"Ann"}'), key),  # not canonical
        (fake.key_package(key, b"\xff"), key),
        (fake.welcome(), key),
        (good[:-3], key),
    ]
    for data, device_key in cases:
        with pytest.raises(DeliveryError) as caught:
            h.ds.key_package("ann", data, device_key)
        assert caught.value.code == "bad_mls"
    assert h.ds.device_key("ann") is None
    h.ds.key_package("ann", good, key)
    assert h.ds.device_key("ann") == key
    other = os.urandom(32)
    with pytest.raises(DeliveryError):  # the device key is fixed
        h.ds.key_package("ann", fake.key_package(other, fake.identity("ann", "Ann")), other)


def test_a_new_key_package_replaces_an_unused_one() -> None:
    h, _ = started("ann")
    h.clock.t += 0.1  # just created: adds are not batched before the first commit
    first = h.join("bo")
    assert tasks(first) == [("ann", Task(add=(("bo", h.kps["bo"]),), epoch=0))]
    old = h.kps["bo"]
    h.key_package("bo")  # a new one while the old one is in the task
    assert h.kps["bo"] != old
    h.answer(first)  # the committer used the old one: Bo is in, the new one is dropped
    assert h.ds.members == ["ann", "bo"]
    h.clock.t += ADD_INTERVAL
    assert h.ds.poll() == []
    with pytest.raises(DeliveryError):
        h.key_package("bo")  # a member needs no key package


def test_a_key_package_left_out_of_the_answer_is_refused() -> None:
    h, _ = started("ann")
    sends = h.join("bo")
    assert tasks(sends)[0][0] == "ann"
    _, sends = h.commit("ann")  # ignores the add (e.g. Bo's credential failed its check)
    assert ("bo", KeyPackageRefused(sends[0][1].reason)) in sends  # type: ignore[union-attr]
    h.clock.t += ADD_INTERVAL
    assert h.ds.poll() == []  # not handed out again
    sends = h.key_package("bo")  # a fresh one is
    assert tasks(sends) == [("ann", Task(add=(("bo", h.kps["bo"]),), epoch=1))]


def test_a_participant_leaving_before_being_added_is_removed_next() -> None:
    h, _ = started("ann", "bo")
    h.clock.t += ADD_INTERVAL
    sends = h.join("cy")
    assert tasks(sends)[0] == ("ann", Task(add=(("cy", h.kps["cy"]),), epoch=1))
    assert h.ds.leave("cy") == []  # the task stays out
    _, sends = h.commit("ann", added=("cy",))
    assert not any(isinstance(x, WelcomeOut) for _, x in sends)
    assert tasks(sends) == [("ann", Task(remove=("cy",), epoch=2))]
    h.answer(sends)
    assert h.ds.members == ["ann", "bo"]


def test_a_participant_leaving_before_its_task_is_given_is_forgotten() -> None:
    h, _ = started("ann", "bo")
    h.clock.t += 0.1
    h.join("cy")
    h.ds.leave("cy")
    h.clock.t += ADD_INTERVAL
    assert h.ds.poll() == []


def test_the_group_emptied_while_others_wait_starts_a_new_group() -> None:
    h, _ = started("ann", "bo")
    h.clock.t += 0.1
    assert tasks(h.join("cy")) == []  # batched
    h.join("di", key_package=False)
    h.ds.leave("ann")
    sends = h.ds.leave("bo")
    assert h.ds.epoch is None and h.ds.members == []
    assert sends == [("cy", Task(create=True))]
    h.key_package("di")
    sends = h.create("cy")
    assert h.ds.members == ["cy"] and h.ds.epoch == 0
    assert tasks(sends) == [("cy", Task(add=(("di", h.kps["di"]),), epoch=0))]


def test_all_members_disconnected_is_not_an_empty_group() -> None:
    h, _ = started("ann")
    h.ds.disconnected("ann")
    h.clock.t += ADD_INTERVAL
    assert tasks(h.join("bo")) == []  # nobody can commit now
    assert h.ds.epoch == 0
    h.clock.t += UPDATE_AFTER
    assert h.ds.next_deadline() is None  # no timer either
    assert h.ds.poll() == []
    sends = h.ds.reconnected("ann")
    assert tasks(sends) == [("ann", Task(add=(("bo", h.kps["bo"]),), epoch=0))]
    assert h.ds.next_deadline() == h.clock.t + TASK_TIMEOUT


def test_skipped_participants_stay_outside() -> None:
    h, _ = started("ann")
    h.clock.t += ADD_INTERVAL
    assert tasks(h.join("bot", skip=True)) == []
    assert h.ds.device_key("bot") is not None
    h.clock.t += ADD_INTERVAL
    assert h.ds.poll() == []
    with pytest.raises(DeliveryError):
        h.commit("ann", added=("bot",))
    # a meeting of a skipped participant alone never gets a create task
    lone = Harness()
    assert lone.join("bot", skip=True) == []
    with pytest.raises(DeliveryError) as caught:
        lone.create("bot")
    assert caught.value.code == "not_mls_member"


def test_create_needs_a_key_package() -> None:
    h = Harness()
    h.join("ann", key_package=False)
    with pytest.raises(DeliveryError) as caught:
        h.create("ann")
    assert caught.value.code == "bad_mls"
    with pytest.raises(DeliveryError) as caught:
        h.create("ghost")
    assert caught.value.code == "not_mls_member"


def test_a_lone_committer_gets_its_timed_out_task_again() -> None:
    h, _ = started("ann")
    h.clock.t += ADD_INTERVAL
    h.join("bo")
    h.clock.t += TASK_TIMEOUT
    assert tasks(h.ds.poll()) == [("ann", Task(add=(("bo", h.kps["bo"]),), epoch=0))]


def test_the_committer_is_the_earliest_connected_member() -> None:
    h, _ = started("ann", "bo", "cy")
    assert h.ds.committer == "ann"
    h.ds.disconnected("ann")
    assert h.ds.committer == "bo"
    h.ds.reconnected("ann")
    assert h.ds.committer == "ann"
