"""The worker's log filter that holds back repeats of the Kafka client's lines."""

from __future__ import annotations

import logging

import pytest

from monitor.stream.log_repeats import RepeatSuppressor


def record(name: str, msg: str, at: float, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    r = logging.LogRecord(name, level, __file__, 1, msg, args or None, None)
    r.created = at
    return r


def test_the_first_line_of_a_kind_passes_and_repeats_within_the_window_are_held_back_and_counted() -> None:
    f = RepeatSuppressor(window_s=10)
    assert f.filter(record("aiokafka", "Unable connect to node with id %s: %s", 0.0, 1, "refused"))
    held = [f.filter(record("aiokafka", "Unable connect to node with id %s: %s", t, 1, "refused"))
            for t in (0.1, 2.0, 9.9)]
    assert held == [False, False, False]
    after = record("aiokafka", "Unable connect to node with id %s: %s", 10.0, 1, "refused")
    assert f.filter(after)
    assert after.suppressed_repeats == 3  # type: ignore[attr-defined]
    again = record("aiokafka", "Unable connect to node with id %s: %s", 25.0, 1, "refused")
    assert f.filter(again)
    assert not hasattr(again, "suppressed_repeats")  # nothing held back since the last one


def test_kinds_differ_by_logger_level_and_template_not_by_arguments() -> None:
    f = RepeatSuppressor(window_s=10)
    assert f.filter(record("aiokafka", "Unable connect to node with id %s", 0.0, 1))
    assert not f.filter(record("aiokafka", "Unable connect to node with id %s", 1.0, 2))  # other args: same kind
    assert f.filter(record("aiokafka.consumer.fetcher", "Unable connect to node with id %s", 1.0, 1))
    assert f.filter(record("aiokafka", "Unable connect to node with id %s", 1.0, 1, level=logging.WARNING))
    assert f.filter(record("aiokafka", "Unable to update metadata from %s", 1.0, 1))


def test_agentmons_own_lines_are_never_held_back() -> None:
    f = RepeatSuppressor(window_s=10)
    for t in range(5):
        assert f.filter(record("agentmon.worker", "dead letter from %s", float(t), "x"))
        assert f.filter(record("aiokafkaish", "not the library", float(t)))


def test_memory_is_bounded_by_the_number_of_kinds() -> None:
    f = RepeatSuppressor(window_s=10, max_kinds=8)
    for i in range(100):
        f.filter(record("faust", f"template {i}", 0.0))
        assert len(f._kinds) <= 8


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RepeatSuppressor(window_s=0)
