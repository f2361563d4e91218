"""Bandwidth estimation: TWCC feedback recording (publisher side) and the AIMD downlink
estimate (subscriber side), driven with explicit times."""

from __future__ import annotations

from incamera.media.bandwidth import DownlinkEstimator, TwccRecorder


def test_twcc_recorder_reports_arrivals_and_gaps_in_order() -> None:
    recorder = TwccRecorder()
    assert recorder.take() is None
    for seq, t in ((65534, 1.0), (65535, 1.25), (2, 1.5)):  # wraps, 0 and 1 missing
        recorder.on_packet(seq, t)
    packets = recorder.take()
    assert packets == [
        (65534, 1_000_000),
        (65535, 1_250_000),
        (0, None),
        (1, None),
        (2, 1_500_000),
    ]
    assert recorder.take() is None


def feed(
    estimator: DownlinkEstimator,
    start: float,
    count: int,
    lose_every: int = 0,
    queue_growth: float = 0.0,
) -> float:
    """Send ``count`` 1200-byte packets 1 ms apart and feed back their arrivals."""
    packets = []
    now = start
    for i in range(count):
        seq = estimator.next_sequence(now, 1200)
        lost = lose_every and i % lose_every == 0
        arrival = None if lost else int((now + 0.005 + i * queue_growth) * 1_000_000)
        packets.append((seq, arrival))
        now += 0.001
    estimator.on_feedback(packets, now)
    return now


def test_estimate_grows_without_loss_and_backs_off_on_loss() -> None:
    estimator = DownlinkEstimator(initial=1_000_000)
    now = 10.0
    for _ in range(10):
        now = feed(estimator, now, 100)
    grown = estimator.estimate
    assert grown > 1_500_000
    for _ in range(3):
        now = feed(estimator, now, 100, lose_every=5)  # 20 % loss
    assert estimator.estimate < grown * 0.9
    assert estimator.loss > 0.1


def test_growing_queue_delay_backs_off_before_loss() -> None:
    estimator = DownlinkEstimator(initial=5_000_000)
    feed(estimator, 10.0, 100, queue_growth=0.0005)  # +50 ms over the window
    assert estimator.estimate < 5_000_000


def test_receiver_reports_only_count_without_twcc_feedback_and_remb_caps() -> None:
    estimator = DownlinkEstimator(initial=2_000_000)
    estimator.on_receiver_loss(0.3, now=10.0)
    assert estimator.estimate < 2_000_000
    before = estimator.estimate
    now = feed(estimator, 20.0, 50)
    estimator.on_receiver_loss(0.5, now=now + 0.5)  # TWCC is flowing: ignored
    assert estimator.estimate >= before
    estimator.on_remb(300_000)
    assert estimator.available == 300_000
