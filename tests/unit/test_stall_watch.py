"""StallWatch: which partitions have records waiting but make no progress (monitor/stream/stall_watch.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.stream.stall_watch import StallWatch


def test_a_partition_stuck_with_records_waiting_is_stalled_after_the_interval_and_then_once_per_interval() -> None:
    watch = StallWatch(after_s=60)
    assert not watch.observe(2, next_offset=2125, lag=4164, now=0)
    assert not watch.observe(2, next_offset=2125, lag=4164, now=59.9)
    assert watch.observe(2, next_offset=2125, lag=4164, now=60)
    assert not watch.observe(2, next_offset=2125, lag=4164, now=61)  # the clock restarted
    assert not watch.observe(2, next_offset=2125, lag=4164, now=119.9)
    assert watch.observe(2, next_offset=2125, lag=4164, now=120)


def test_a_partition_with_nothing_waiting_or_an_unknown_lag_is_never_stalled() -> None:
    watch = StallWatch(after_s=10)
    for t in range(0, 100, 5):
        assert not watch.observe(0, next_offset=500, lag=0, now=t)
        assert not watch.observe(1, next_offset=500, lag=None, now=t)


def test_progress_restarts_the_clock() -> None:
    watch = StallWatch(after_s=10)
    assert not watch.observe(0, next_offset=100, lag=50, now=0)
    assert not watch.observe(0, next_offset=101, lag=49, now=9)
    assert not watch.observe(0, next_offset=101, lag=49, now=18)  # 9 s since it moved
    assert watch.observe(0, next_offset=101, lag=49, now=19)


def test_a_caught_up_partition_starts_afresh_when_records_wait_again() -> None:
    watch = StallWatch(after_s=10)
    assert not watch.observe(0, next_offset=100, lag=5, now=0)
    assert not watch.observe(0, next_offset=100, lag=0, now=8)  # caught up (the highwater moved back to it)
    assert not watch.observe(0, next_offset=100, lag=5, now=12)  # new records: a new clock
    assert not watch.observe(0, next_offset=100, lag=5, now=21)
    assert watch.observe(0, next_offset=100, lag=5, now=22)


def test_partitions_are_watched_separately_and_a_revoked_one_is_forgotten() -> None:
    watch = StallWatch(after_s=10)
    watch.observe(0, next_offset=1, lag=3, now=0)
    watch.observe(1, next_offset=1, lag=3, now=5)
    assert watch.observe(0, next_offset=1, lag=3, now=10)
    assert not watch.observe(1, next_offset=1, lag=3, now=10)
    watch.forget(1)
    assert not watch.observe(1, next_offset=1, lag=3, now=15)  # a new owner's clock starts now


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StallWatch(after_s=0)


@given(steps=st.lists(st.tuples(st.integers(1, 1000), st.floats(0, 1e4)), min_size=1, max_size=50),
       lag=st.integers(1, 10**6))
def test_a_partition_whose_offset_moves_at_every_look_is_never_stalled(
    steps: list[tuple[int, float]], lag: int,
) -> None:
    watch = StallWatch(after_s=1)
    offset, now = 0, 0.0
    for advance, wait in steps:
        offset, now = offset + advance, now + wait
        assert not watch.observe(0, next_offset=offset, lag=lag, now=now)


def test_restarts_count_stalls_in_a_row_and_progress_or_catching_up_resets_them() -> None:
    watch = StallWatch(after_s=10)
    watch.observe(0, next_offset=7, lag=3, now=0)
    assert [watch.observe(0, next_offset=7, lag=3, now=t) for t in (10, 20, 30)] == [True, True, True]
    assert watch.restarts(0) == 3
    watch.observe(0, next_offset=8, lag=2, now=31)  # it moved
    assert watch.restarts(0) == 0
    assert watch.observe(0, next_offset=8, lag=2, now=41) and watch.restarts(0) == 1
    watch.observe(0, next_offset=8, lag=0, now=42)  # caught up
    assert watch.restarts(0) == 0
    assert watch.observe(0, next_offset=8, lag=2, now=43) is False and watch.restarts(0) == 0
    watch.observe(0, next_offset=8, lag=2, now=53)
    watch.forget(0)
    assert watch.restarts(0) == 0


def test_offsets_with_no_records_behind_them_are_restarted_once_then_settled() -> None:
    # A transactional producer's last commit marker: lag 1 for good, the consumer read to the end.
    watch = StallWatch(after_s=10)
    assert not watch.observe(0, next_offset=500, lag=1, now=0, read_to_end=True)
    assert watch.observe(0, next_offset=500, lag=1, now=10, read_to_end=True)  # once: it may be dropped records
    assert not watch.observe(0, next_offset=500, lag=1, now=20, read_to_end=True)  # re-read, nothing came
    assert watch.settled(0) and watch.restarts(0) == 0
    assert not any(watch.observe(0, next_offset=500, lag=1, now=t, read_to_end=True) for t in range(21, 200, 5))


def test_records_faust_read_and_dropped_are_restarted_although_the_consumer_read_to_the_end() -> None:
    watch = StallWatch(after_s=10)
    watch.observe(2, next_offset=2125, lag=4164, now=0, read_to_end=True)
    assert watch.observe(2, next_offset=2125, lag=4164, now=10, read_to_end=True)
    assert not watch.observe(2, next_offset=2300, lag=3989, now=12, read_to_end=False)  # the re-read arrived
    assert watch.restarts(2) == 0 and not watch.settled(2)


def test_new_records_behind_a_settled_end_get_a_new_clock() -> None:
    watch = StallWatch(after_s=10)
    watch.observe(0, next_offset=500, lag=1, now=0, read_to_end=True)
    watch.observe(0, next_offset=500, lag=1, now=10, read_to_end=True)
    watch.observe(0, next_offset=500, lag=1, now=20, read_to_end=True)
    assert watch.settled(0)
    assert not watch.observe(0, next_offset=500, lag=40, now=100)  # new records: not stalled at once
    assert not watch.settled(0)
    assert not watch.observe(0, next_offset=500, lag=40, now=109)
    assert watch.observe(0, next_offset=500, lag=40, now=110)


def test_a_consumer_that_has_not_read_to_the_end_is_never_settled() -> None:
    watch = StallWatch(after_s=10)
    watch.observe(1, next_offset=0, lag=917, now=0)
    assert [watch.observe(1, next_offset=0, lag=917, now=t) for t in (10, 20, 30, 40)] == [True] * 4
    assert watch.restarts(1) == 4 and not watch.settled(1)


def test_clear_forgets_every_partition_and_its_restarts() -> None:
    watch = StallWatch(after_s=10)
    for p in (0, 1):
        watch.observe(p, 5, 3, now=0)
        assert watch.observe(p, 5, 3, now=10)
    watch.clear()
    assert watch.restarts(0) == watch.restarts(1) == 0
    assert not watch.observe(0, 5, 3, now=11)  # a new clock
    assert not watch.observe(0, 5, 3, now=20)
    assert watch.observe(0, 5, 3, now=21)
