"""Harness for real media tests: headless Chromium and aiortc participants, a lossy UDP proxy.

Every participant has the SFU's two peer connections: a SEND pc (client offers, server
answers) and a RECV pc (server offers and re-offers, client answers). The test plays the
signalling server. A test against the SFU reads like this (SFU names are illustrative)::

    @pytest.mark.browser
    async def test_forwards(chromium, sfu):
        alice, bob = await chromium.new_peer("alice"), await chromium.new_peer("bob")
        await alice.publish(sfu.answer_publish_offer, simulcast=True, width=1280, height=720)
        answer = await bob.subscribe_offer(await sfu.subscribe_offer_for("bob"))
        await sfu.apply_subscribe_answer("bob", answer)
        stats = await bob.wait_for(lambda s: any(v.frames_decoded > 10 for v in s.inbound_video()))
        assert stats.inbound_video()[0].frame_width == 1280

Modules: ``browser`` (Chromium via Playwright, ``BrowserPeer``), ``aiortc_peer``
(``AiortcPeer``), ``udp_proxy`` (``LossyUdpProxy``, SDP candidate helpers). Fixtures are in
``tests/conftest.py``; self-tests in ``tests/support_tests/``.
"""
