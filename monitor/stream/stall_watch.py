"""Which partitions have records waiting but make no progress: the worker's guard against a
partition that faust stops fetching.

A partition whose records wait (lag > 0) while its next offset has not moved for `after_s`
seconds is stalled. The worker then resumes its fetch from the engine's next offset (worker.py,
`WorkerRuntime.restart_fetch`). That is safe at any time: records already buffered are applied or
skipped as replays by offset, so a needless restart costs a re-read, never a double count.

Why it exists: in 2 of 38 looped runs of the two-worker failover test (faust's own hand-off),
partitions taken over after the other worker's death were never applied: lag 4,612 and 4,164 for
two minutes, every other partition caught up. /state showed them in faust's fetch set, not
paused, and the consumer read to the end: faust read their records right after the rebalance and
dropped them. In 2 of 12 further runs the watch resumed them 60 s after the takeover and the
test passed, every record counted once.

If restarts do not help (`restarts` counts those in a row without progress), the worker gives up
and exits with an error so that its supervisor restarts it: a fresh consumer and a rebalance,
instead of a worker that looks alive and reads nothing.

Offsets with no record behind them: a transactional producer's commit markers take offsets that
no record arrives for, so after its last transaction the lag stays above 0 for good. Whether the
consumer has read to the end (its position at the highwater) does not tell them apart from records
faust read and then dropped (the failover test caught faust dropping a taken-over partition's
records right after the rebalance, position at the end, engine 4,164 behind). So a stall is always
restarted once; if the consumer then reads to the end again and the engine still has not moved,
the remaining offsets hold no records: the partition is settled at that highwater, and not
stalled again until the highwater or its offset moves.

The same watch guards faust's table recovery (worker.py, `WorkerRuntime.watch_recovery`): there
the offsets are those of the checkpoint table's changelog partitions, and the records waiting are
those up to the highwater recovery needs. Faust's recovery waits for them forever when it does not
get them (seen in 2 of 40 looped failover runs: "No event received for active tp ... changelog").

Pure: no Kafka, no clock of its own (the caller passes `now`). One entry per assigned partition.
"""

from __future__ import annotations


class StallWatch:
    def __init__(self, after_s: float) -> None:
        if after_s <= 0:
            raise ValueError("after_s must be positive")
        self.after_s = after_s
        self._last: dict[int, tuple[int, float]] = {}  # partition -> (next offset, since when)
        self._restarts: dict[int, int] = {}  # partition -> stalls in a row without progress
        self._settled: dict[int, tuple[int, int]] = {}  # partition -> (next offset, lag) with no records left

    def observe(self, partition: int, next_offset: int, lag: int | None, now: float,
                read_to_end: bool = False) -> bool:
        """True when `partition` is stalled (then the clock restarts: at most one restart per
        `after_s`). A partition with nothing waiting, or an unknown lag, is never stalled.
        `read_to_end`: the consumer's position has reached the highwater (see the module doc)."""
        last = self._last.get(partition)
        if not lag:
            self.forget(partition)
            return False
        settled = self._settled.get(partition)
        if settled is not None:
            if settled == (next_offset, lag):
                return False
            del self._settled[partition]  # records behind the settled end, or it moved: a new clock
            self._last[partition] = (next_offset, now)
            return False
        if last is None or last[0] != next_offset:
            if last is not None:
                self._restarts.pop(partition, None)  # it moved
            self._last[partition] = (next_offset, now)
            return False
        if now - last[1] >= self.after_s:
            self._last[partition] = (next_offset, now)
            if read_to_end and self._restarts.get(partition, 0) >= 1:
                self._settled[partition] = (next_offset, lag)  # re-read to the end: nothing there
                self._restarts.pop(partition, None)
                return False
            self._restarts[partition] = self._restarts.get(partition, 0) + 1
            return True
        return False

    def settled(self, partition: int) -> bool:
        """Whether the partition's remaining offsets were found to hold no records."""
        return partition in self._settled

    def restarts(self, partition: int) -> int:
        """Stalls of `partition` in a row, without progress in between (0: it is moving)."""
        return self._restarts.get(partition, 0)

    def forget(self, partition: int) -> None:
        """The partition was revoked (or has nothing waiting)."""
        self._last.pop(partition, None)
        self._restarts.pop(partition, None)
        self._settled.pop(partition, None)

    def clear(self) -> None:
        """Forget every partition (what was watched is over, as a table recovery that completed)."""
        self._last.clear()
        self._restarts.clear()
        self._settled.clear()
