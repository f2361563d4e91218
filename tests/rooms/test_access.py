"""The join decision, PINs, rate limits and blocks (incamera.rooms.access)."""

from __future__ import annotations

import pytest

from incamera.identity.principal import Guest, SignedInAccount
from incamera.rooms.access import (
    AccessLimits,
    AccessPolicy,
    Admit,
    Argon2PinHasher,
    BlockList,
    Credentials,
    Gatekeeper,
    Invitation,
    Joiner,
    Limit,
    MeetingAccess,
    PolicyError,
    Refuse,
    Wait,
    check_pin_format,
    is_guest_id,
    new_secret,
    secret_digest,
    secret_matches,
)

MEETING = "m" * 22
T0 = 1_700_000_000.0
PINS = Argon2PinHasher(time_cost=1, memory_cost_kib=64)  # real argon2id, cheap for tests
ALICE = SignedInAccount(account_id="acc-alice", display_name="Alice", method="password")
OWNER = SignedInAccount(account_id="acc-owner", display_name="Olga", method="oidc")
GUEST = Joiner(principal=Guest(), source="192.0.2.1", guest_id="g" * 22)
MEMBER = Joiner(principal=ALICE, source="192.0.2.2")


def gate(limits: AccessLimits | None = None) -> Gatekeeper:
    return Gatekeeper(limits, PINS)


def meeting(**policy: object) -> tuple[MeetingAccess, str]:
    key = new_secret()
    pin = policy.pop("pin", None)
    access_policy = AccessPolicy().changed({**policy, **({"pin": pin} if pin else {})}, PINS)
    return (
        MeetingAccess(
            meeting_id=MEETING,
            policy=access_policy,
            moderator_key_digest=secret_digest(key),
            owner_account_id=OWNER.account_id,
        ),
        key,
    )


def code(decision: object) -> str:
    assert isinstance(decision, Refuse), decision
    return decision.code


def test_secrets_are_128_bit_and_stored_as_digests() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and len(a) == 22
    assert secret_digest(a) != a and secret_matches(a, secret_digest(a))
    assert not secret_matches(b, secret_digest(a))
    assert not secret_matches(None, secret_digest(a)) and not secret_matches(a, None)
    assert is_guest_id(a) and not is_guest_id("short") and not is_guest_id(None)


def test_open_meeting_admits_guests_and_members_as_participants() -> None:
    access, _ = meeting()
    g = gate()
    assert g.decide(access, GUEST, Credentials(), T0) == Admit("participant")
    assert g.decide(access, MEMBER, Credentials(), T0) == Admit("participant")


def test_moderator_key_and_owner_are_moderators_and_wrong_key_is_refused() -> None:
    access, key = meeting()
    g = gate()
    assert g.decide(access, GUEST, Credentials(moderator_key=key), T0) == Admit("moderator")
    owner = Joiner(principal=OWNER, source="192.0.2.3")
    assert g.decide(access, owner, Credentials(), T0) == Admit("moderator")
    assert code(g.decide(access, GUEST, Credentials(moderator_key=new_secret()), T0)) == (
        "invalid_moderator_key"
    )


def test_locked_refuses_newcomers_but_never_the_moderator_key() -> None:
    access, key = meeting(locked=True, pin="123456", members_only=True, lobby="everyone")
    g = gate()
    refused = g.decide(access, MEMBER, Credentials(pin="123456"), T0)
    assert refused == Refuse(
        "meeting_locked", "This meeting is locked. Ask a moderator to unlock it."
    )
    # A guest with the moderator link: no PIN, no sign-in, no lobby, not locked out.
    assert g.decide(access, GUEST, Credentials(moderator_key=key), T0) == Admit("moderator")


def test_members_only_and_guests_not_allowed_refuse_guests_only() -> None:
    for policy in ({"members_only": True}, {"guests_allowed": False}):
        access, _ = meeting(**policy)
        g = gate()
        assert code(g.decide(access, GUEST, Credentials(), T0)) == "sign_in_required"
        assert g.decide(access, MEMBER, Credentials(), T0) == Admit("participant")


def test_pin_required_wrong_and_right() -> None:
    access, _ = meeting(pin="4711")
    g = gate()
    assert code(g.decide(access, GUEST, Credentials(), T0)) == "pin_required"
    assert code(g.decide(access, GUEST, Credentials(pin="4712"), T0)) == "wrong_pin"
    assert g.decide(access, GUEST, Credentials(pin="4711"), T0) == Admit("participant")


def test_pin_cannot_be_brute_forced_even_the_right_pin_is_refused_after_the_limit() -> None:
    limits = AccessLimits()
    access, _ = meeting(pin="424242")
    g = gate(limits)
    now = T0
    for guess in range(limits.pin_failures_per_source.count):
        assert code(g.decide(access, GUEST, Credentials(pin=f"{guess:06d}"), now)) == "wrong_pin"
        now += 1
    refused = g.decide(access, GUEST, Credentials(pin="424242"), now)
    assert refused == Refuse("rate_limited", "Too many attempts. Try again in 10 minutes.")
    # After the window the right PIN works again.
    later = T0 + limits.pin_failures_per_source.window + 1
    assert g.decide(access, GUEST, Credentials(pin="424242"), later) == Admit("participant")


def test_pin_limit_per_meeting_holds_across_many_source_addresses() -> None:
    limits = AccessLimits()
    access, _ = meeting(pin="424242")
    g = gate(limits)
    guesses = 0
    source = 0
    while guesses < limits.pin_failures_per_meeting.count:
        joiner = Joiner(principal=Guest(), source=f"198.51.100.{source}")
        for _ in range(2):
            decision = g.decide(access, joiner, Credentials(pin=f"{guesses:06d}"), T0 + guesses)
            assert code(decision) == "wrong_pin"
            guesses += 1
        source += 1
    fresh = Joiner(principal=Guest(), source="203.0.113.99")
    assert code(g.decide(access, fresh, Credentials(pin="424242"), T0 + guesses)) == "rate_limited"
    assert code(g.decide(access, fresh, Credentials(pin="000000"), T0 + guesses)) == "rate_limited"


def test_trying_every_six_digit_pin_takes_years_at_the_configured_rate() -> None:
    limits = AccessLimits()
    seconds = limits.seconds_to_try_every_pin(6)
    # 20 wrong guesses per hour and meeting, whatever the sources: (10^6 - 20) / 20 hours.
    assert seconds == pytest.approx((10**6 - 20) * 3600 / 20)
    assert seconds / (365 * 24 * 3600) > 5  # more than five years for all, 2.8 on average
    assert limits.seconds_to_try_every_pin(4) / 86400 > 20  # even 4 digits: three weeks


def test_right_pins_do_not_use_up_the_guess_budget() -> None:
    limits = AccessLimits()
    access, _ = meeting(pin="2468")
    g = gate(limits)
    for n in range(limits.pin_failures_per_meeting.count + 5):
        joiner = Joiner(principal=Guest(), source=f"198.51.100.{n}")
        assert g.decide(access, joiner, Credentials(pin="2468"), T0 + n) == Admit("participant")


def test_join_attempts_are_rate_limited_per_source_and_per_meeting() -> None:
    limits = AccessLimits(joins_per_source=Limit(3, 60), joins_per_meeting=Limit(5, 60))
    access, key = meeting()
    g = gate(limits)
    for _ in range(3):
        assert g.decide(access, GUEST, Credentials(), T0) == Admit("participant")
    refused = g.decide(access, GUEST, Credentials(moderator_key=key), T0)
    assert refused == Refuse("rate_limited", "Too many attempts. Try again in 1 minute.")
    other = Joiner(principal=Guest(), source="192.0.2.77")
    assert g.decide(access, other, Credentials(), T0) == Admit("participant")
    assert g.decide(access, other, Credentials(), T0) == Admit("participant")
    third = Joiner(principal=Guest(), source="192.0.2.78")
    assert code(g.decide(access, third, Credentials(), T0)) == "rate_limited"
    assert g.decide(access, third, Credentials(), T0 + 61) == Admit("participant")


def test_a_flood_from_many_addresses_does_not_lock_out_moderators_or_invited_people() -> None:
    limits = AccessLimits(joins_per_source=Limit(3, 60), joins_per_meeting=Limit(5, 60))
    access, key = meeting(lobby="everyone")
    token = new_secret()
    invitation = Invitation(secret_digest(token), MEETING, "participant", expires_at=T0 + 3600)
    access = MeetingAccess(
        **{**_fields(access), "invitation": invitation, "owner_account_id": OWNER.account_id}
    )
    g = gate(limits)
    for n in range(20):
        flooder = Joiner(principal=Guest(), source=f"203.0.113.{n}")
        g.decide(access, flooder, Credentials(), T0)
    latecomer = Joiner(principal=Guest(), source="192.0.2.200")
    assert code(g.decide(access, latecomer, Credentials(), T0)) == "rate_limited"
    # still refused: a wrong moderator key, an unknown invitation
    assert code(g.decide(access, latecomer, Credentials(moderator_key=new_secret()), T0)) == (
        "invalid_moderator_key"
    )
    moderator = Joiner(principal=Guest(), source="192.0.2.201")
    assert g.decide(access, moderator, Credentials(moderator_key=key), T0) == Admit("moderator")
    owner = Joiner(principal=OWNER, source="192.0.2.202")
    assert g.decide(access, owner, Credentials(), T0) == Admit("moderator")
    invited = Joiner(principal=Guest(), source="192.0.2.203")
    assert g.decide(access, invited, Credentials(invite=token), T0) == Admit("participant")
    # the per-address limit still applies to them
    for _ in range(2):
        g.decide(access, moderator, Credentials(moderator_key=key), T0)
    assert code(g.decide(access, moderator, Credentials(moderator_key=key), T0)) == "rate_limited"


def test_lobby_rules() -> None:
    access, key = meeting(lobby="guests")
    g = gate()
    assert g.decide(access, GUEST, Credentials(), T0) == Wait()
    assert g.decide(access, MEMBER, Credentials(), T0) == Admit("participant")
    access, key = meeting(lobby="everyone")
    assert g.decide(access, MEMBER, Credentials(), T0) == Wait()
    assert g.decide(access, GUEST, Credentials(moderator_key=key), T0) == Admit("moderator")


def test_invitations_skip_lobby_and_pin_not_the_lock_and_expire() -> None:
    token = new_secret()
    access, _ = meeting(lobby="everyone", pin="13579")
    invitation = Invitation(secret_digest(token), MEETING, "participant", expires_at=T0 + 3600)
    invited = MeetingAccess(**{**_fields(access), "invitation": invitation})
    g = gate()
    assert g.decide(invited, GUEST, Credentials(invite=token), T0) == Admit("participant")
    assert code(g.decide(invited, GUEST, Credentials(invite=token), T0 + 3600)) == (
        "invalid_invite"
    )
    assert code(g.decide(invited, GUEST, Credentials(invite=new_secret()), T0)) == "invalid_invite"
    locked = MeetingAccess(
        **{**_fields(invited), "policy": AccessPolicy(locked=True, lobby="everyone")}
    )
    assert code(g.decide(locked, GUEST, Credentials(invite=token), T0)) == "meeting_locked"
    moderator_invite = Invitation(secret_digest(token), MEETING, "moderator", T0 + 60)
    locked_mod = MeetingAccess(**{**_fields(locked), "invitation": moderator_invite})
    assert g.decide(locked_mod, GUEST, Credentials(invite=token), T0) == Admit("moderator")


def test_blocked_accounts_and_guest_browsers_are_refused() -> None:
    access, _ = meeting()
    blocks = BlockList(account_ids=frozenset({ALICE.account_id}), guest_ids=frozenset({"g" * 22}))
    blocked = MeetingAccess(**{**_fields(access), "blocks": blocks})
    g = gate()
    assert code(g.decide(blocked, MEMBER, Credentials(), T0)) == "removed"
    assert code(g.decide(blocked, GUEST, Credentials(), T0)) == "removed"
    other_browser = Joiner(principal=Guest(), source=GUEST.source, guest_id="h" * 22)
    assert g.decide(blocked, other_browser, Credentials(), T0) == Admit("participant")
    no_cookie = Joiner(principal=Guest(), source=GUEST.source)
    assert g.decide(blocked, no_cookie, Credentials(), T0) == Admit("participant")


def test_policy_changes_validate_and_never_expose_the_pin() -> None:
    policy = AccessPolicy().changed({"pin": "98765", "lobby": "guests"}, PINS)
    assert policy.pin_hash is not None and "98765" not in policy.pin_hash
    assert policy.public() == {
        "lobby": "guests",
        "locked": False,
        "pin_set": True,
        "members_only": False,
        "guests_allowed": True,
    }
    assert AccessPolicy.from_stored(policy.stored()) == policy
    assert AccessPolicy.from_stored(None) == AccessPolicy()
    assert policy.changed({"pin": None}, PINS).pin_hash is None
    for bad in (
        {"pin": "12"},
        {"pin": "12a45"},
        {"pin": 1234},
        {"lobby": "sometimes"},
        {"locked": "yes"},
        {"colour": "red"},
    ):
        with pytest.raises(PolicyError):
            AccessPolicy().changed(bad, PINS)
    assert check_pin_format("0000") == "0000"


def test_limit_state_is_forgotten_after_the_window() -> None:
    access, _ = meeting(pin="1111")
    g = gate()
    for n in range(50):
        joiner = Joiner(principal=Guest(), source=f"10.0.0.{n}")
        g.decide(access, joiner, Credentials(pin="2222"), T0)
    assert g.tracked_keys() > 50
    g.prune(T0 + 3599)
    assert g.tracked_keys() == 1  # the meeting-wide PIN failures (one hour)
    g.prune(T0 + 3600)
    assert g.tracked_keys() == 0


def _fields(access: MeetingAccess) -> dict[str, object]:
    return {name: getattr(access, name) for name in MeetingAccess.__slots__}
