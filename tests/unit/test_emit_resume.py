"""Where `agentmon emit` says to resume after giving up: the line before the first event Kafka has
not acknowledged, whatever order the acknowledgements came in, with the events after it that did
arrive counted (they will be sent twice; the worker drops repeated event ids)."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaTimeoutError, LeaderNotAvailableError

from monitor.kafka.emit import EmitSummary, _Deliveries


def settled(error: Exception | None = None) -> asyncio.Future[object]:
    loop = asyncio.new_event_loop()
    future: asyncio.Future[object] = loop.create_future()
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
    loop.close()
    return future


def test_the_resume_point_is_before_the_first_unacknowledged_line() -> None:
    clock = [0.0]
    deliveries = _Deliveries(lambda: clock[0])
    for number in (2, 3, 5, 6, 7, 9):  # 1, 4 and 8 were blank or invalid
        deliveries.sending(number, b"{}", "a")
    for number in (2, 6, 7, 9):  # partitions acknowledge out of line order
        deliveries.done(number, settled())
    assert deliveries.resume_point(last_read=9) == (2, 3)  # 3 and 5 wait; 6, 7 and 9 arrived anyway
    deliveries.done(3, settled())
    deliveries.done(5, settled())
    assert deliveries.resume_point(last_read=9) == (9, 0)


def test_a_retriable_failure_is_sent_again_and_a_final_one_moves_the_resume_point() -> None:
    clock = [0.0]
    deliveries = _Deliveries(lambda: clock[0])
    for number in (1, 2, 3):
        deliveries.sending(number, f"line {number}".encode(), f"agent-{number}")
    deliveries.done(1, settled())
    deliveries.done(2, settled(LeaderNotAvailableError()))
    deliveries.done(3, settled(KafkaTimeoutError()))  # the client's own timeout: not worth a retry
    assert deliveries.take_retries() == [(2, b"line 2", "agent-2")]
    assert deliveries.failed == {3}
    assert deliveries.resume_point(last_read=3) == (1, 0)


def test_the_stall_clock_runs_only_while_events_wait() -> None:
    clock = [100.0]
    deliveries = _Deliveries(lambda: clock[0])
    clock[0] = 200.0
    assert deliveries.stalled_for() == 0.0
    deliveries.sending(1, b"{}", "a")
    clock[0] = 230.0
    assert deliveries.stalled_for() == 30.0
    deliveries.done(1, settled())
    assert deliveries.stalled_for() == 0.0


def test_the_summary_names_the_resume_line_and_the_repeats() -> None:
    summary = EmitSummary(lines=10, sent=7, gave_up="Kafka at k:9092 acknowledged nothing for 120 s",
                          last_line_sent=4, sent_after_last_line=3, unacknowledged=3)
    text = summary.describe("events.jsonl")
    assert "Last line sent: 4 (every event up to it is in Kafka)" in text
    assert "Resume with: agentmon emit events.jsonl --from-line 5" in text
    assert "3 events after line 4 reached Kafka too; resending them is safe" in text
