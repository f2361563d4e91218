"""ICE-lite agent (RFC 8445 section 2.5) and consent freshness (RFC 7675)."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from incamera.media import stun
from incamera.media.ice import CONSENT_TIMEOUT, IceLiteAgent, IceResult, IceState

A = ("127.0.0.1", 50000)
B = ("127.0.0.1", 50001)


def check(
    agent: IceLiteAgent,
    *,
    username: str | None = None,
    password: str | None = None,
    use_candidate: bool = False,
    controlled: bool = False,
) -> tuple[stun.StunMessage, bytes]:
    attributes = [
        (stun.USERNAME, (username or f"{agent.ufrag}:peer").encode()),
        (stun.PRIORITY, (1853824767).to_bytes(4, "big")),
    ]
    role = stun.ICE_CONTROLLED if controlled else stun.ICE_CONTROLLING
    attributes.append((role, os.urandom(8)))
    if use_candidate:
        attributes.append((stun.USE_CANDIDATE, b""))
    key = (password or agent.password).encode()
    raw = stun.build(stun.BINDING_REQUEST, os.urandom(12), attributes, key, True)
    return stun.StunMessage.parse(raw), raw


def test_valid_check_is_answered_with_integrity_and_selects_the_address() -> None:
    agent = IceLiteAgent()
    message, raw = check(agent, use_candidate=True)
    result, response = agent.handle(message, raw, A, now=1.0)
    assert result is IceResult.NOMINATED and agent.selected == A
    assert agent.state is IceState.CONNECTED
    assert response is not None
    parsed = stun.StunMessage.parse(response)
    assert parsed.message_type == stun.BINDING_SUCCESS
    assert parsed.transaction_id == message.transaction_id
    assert parsed.xor_mapped_address() == A
    assert stun.verify_message_integrity(response, agent.password.encode())
    assert stun.verify_fingerprint(response)


def test_wrong_password_or_ufrag_is_rejected_without_state_change() -> None:
    agent = IceLiteAgent()
    for kwargs in ({"password": "wrong-password-wrong"}, {"username": "nobody:peer"}):
        message, raw = check(agent, use_candidate=True, **kwargs)
        result, response = agent.handle(message, raw, A, now=1.0)
        assert result is IceResult.REJECTED
        assert response is not None
        assert stun.StunMessage.parse(response).error_code()[0] in (400, 401)  # type: ignore[index]
        assert agent.selected is None and agent.state is IceState.NEW
    assert agent.rejected == 2


def test_remote_ufrag_is_enforced_once_known() -> None:
    agent = IceLiteAgent()
    agent.set_remote_ufrag("peer")
    message, raw = check(agent, username=f"{agent.ufrag}:intruder")
    assert agent.handle(message, raw, A, now=1.0)[0] is IceResult.REJECTED


def test_role_conflict_when_the_peer_claims_to_be_controlled() -> None:
    agent = IceLiteAgent()
    message, raw = check(agent, controlled=True)
    result, response = agent.handle(message, raw, A, now=1.0)
    assert result is IceResult.REJECTED
    assert stun.StunMessage.parse(response).error_code()[0] == 487  # type: ignore[arg-type,index]


def test_peer_address_change_moves_the_selected_pair() -> None:
    agent = IceLiteAgent()
    message, raw = check(agent, use_candidate=True)
    agent.handle(message, raw, A, now=1.0)
    message, raw = check(agent)  # a check without nomination does not move media
    assert agent.handle(message, raw, B, now=2.0)[0] is IceResult.ANSWERED
    assert agent.selected == A
    message, raw = check(agent, use_candidate=True)
    assert agent.handle(message, raw, B, now=3.0)[0] is IceResult.NOMINATED
    assert agent.selected == B


def test_consent_expires_after_thirty_seconds_of_silence_and_can_be_regained() -> None:
    agent = IceLiteAgent()
    message, raw = check(agent, use_candidate=True)
    agent.handle(message, raw, A, now=100.0)
    for t in (110.0, 120.0, 125.0):  # consent checks keep it alive
        message, raw = check(agent)
        agent.handle(message, raw, A, now=t)
        assert agent.check_consent(t + 1)
    assert agent.check_consent(125.0 + CONSENT_TIMEOUT - 0.5)
    assert not agent.check_consent(125.0 + CONSENT_TIMEOUT + 0.5)
    assert agent.state is IceState.DISCONNECTED and agent.selected is None
    message, raw = check(agent, use_candidate=True)
    assert agent.handle(message, raw, A, now=200.0)[0] is IceResult.NOMINATED
    assert agent.state is IceState.CONNECTED


@given(st.binary(min_size=20, max_size=200))
def test_arbitrary_stun_looking_input_never_raises_past_the_parser(data: bytes) -> None:
    agent = IceLiteAgent()
    try:
        message = stun.StunMessage.parse(data)
    except stun.ParseError:
        return
    result, _ = agent.handle(message, data, A, now=1.0)
    assert result in (IceResult.REJECTED, IceResult.IGNORED)


def test_ice_restart_changes_credentials_and_keeps_media_until_renominated() -> None:
    agent = IceLiteAgent()
    message, raw = check(agent, use_candidate=True)
    agent.handle(message, raw, A, now=1.0)
    old_ufrag, old_password = agent.ufrag, agent.password
    agent.restart()
    assert agent.ufrag != old_ufrag and agent.password != old_password
    assert agent.selected == A  # media keeps flowing meanwhile
    stale, raw = check(agent, username=f"{old_ufrag}:peer", password=old_password)
    assert agent.handle(stale, raw, B, now=2.0)[0] is IceResult.REJECTED
    message, raw = check(agent, use_candidate=True)
    assert agent.handle(message, raw, B, now=3.0)[0] is IceResult.NOMINATED
    assert agent.selected == B
