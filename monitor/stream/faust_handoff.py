"""A direct hand-off from faust's fetcher to the stream (worker setting `worker.direct_handoff`).

faust's consumer drain loop hands every fetched message to the streams with

    await self.wait_first(callback(message), self.suspend_flow.wait())

so that a rebalance (which sets `suspend_flow`) can abandon a hand-off that waits on a full stream
buffer. That costs two tasks and an `asyncio.wait` per message, whether or not anything waits: on
this project's machines it is the largest single cost in faust's per-message floor
(docs/benchmarks.md, `bench/faust_floor.py --variant direct-drain`).

`HandoffConsumer` keeps those semantics and drops the per-message tasks in the common case:
- flow suspended (a rebalance under way) or the consumer stopping when the hand-off starts:
  faust's own `wait_first`, unchanged. (It does not simply drop the message: it runs the callback
  beside the wait, and one that finds room completes. An earlier version dropped it instead; the
  failover test then counted 12 events fewer than the backtest in one run.)
- otherwise the callback's coroutine is stepped once by hand. Almost always it runs to the end
  in that step (the stream buffer has room, nothing to wait for), and that is all;
- if it has to wait (a full buffer), it is finished the way faust does it: as a task raced against
  `suspend_flow`, so that a rebalance abandons it. (Awaiting it directly instead stalled the
  two-worker failover test after its rebalance.) It then also waits, raced the same way, until
  the full buffer is down to half: a stream slower than the fetcher otherwise keeps its buffer
  full, and every hand-off would wait for one free slot, with faust's tasks each time.

Any other `wait_first` call of the consumer goes to faust's implementation unchanged.

Experimental, off by default. With it on, the two-worker failover test (tests/integration/
test_worker.py) failed in 3 of 4 runs: twice before the fix above (12 events short; a partition
never fetched, a shape also seen with it off), once after it with faust's table recovery waiting
forever for changelog records. With it off, before the stall watch, the same test failed in
3 of 38 runs (twice a taken-over partition never applied, once the same recovery wait): faust's
own path has these failures too, but the hand-off is one more thing in the takeover path for a
gain of +7 to +19 % on the worker (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as faust_aiokafka

from monitor.stream.faust_fetch import FetchConsumer

#: After a hand-off had to wait for room, the next waits until each full buffer is down to this share
#: of its size (polled every EBB_POLL_S, at most EBB_MAX_POLLS times: bounded however slow the stream).
EBB_RATIO = 0.5
EBB_POLL_S = 0.005
EBB_MAX_POLLS = 200


def _buffers_waited_on(app: Any) -> list[Any]:
    """The stream buffers that are full with a put waiting (the fetcher's is the only put): what
    the hand-off waits for. Not other full buffers (a buffer nobody reads, a hand-off that waits
    on the producer or on flow control): waiting on those would only add latency."""
    return [q for q in getattr(app.flow_control, "_queues", ()) if q.full() and getattr(q, "_putters", None)]


def _is_drain_handoff(coros: tuple[Any, ...]) -> bool:
    """The drain loop's call shape: (callback(message), suspend_flow.wait()), both coroutines."""
    return (len(coros) == 2 and isinstance(coros[0], Coroutine) and isinstance(coros[1], Coroutine)
            and getattr(coros[1], "__qualname__", "") == "Event.wait")


class HandoffConsumer(FetchConsumer):
    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        if timeout is None and _is_drain_handoff(coros):
            callback, suspended = coros
            if self.suspend_flow.is_set() or self._stopped.is_set() or self._crashed.is_set():
                # A rebalance (or a stop) is under way: faust's own path, whose outcome depends on
                # timing. It runs the callback as a task beside the wait, so a record that finds room
                # is still handed over. That matters between faust's seek to the committed offsets
                # and its resume of the flow: a record fetched then is not fetched again.
                return await super().wait_first(callback, suspended)
            try:
                first = callback.send(None)
            except StopIteration:
                suspended.close()  # handed over in one step: no task, no wait
                return None
            # It has to wait (the stream's buffer is full): finish it as faust does, abandoned if the
            # flow is suspended meanwhile; then let the buffer ebb before the next hand-off, so that
            # the ones after it complete in one step again instead of each waiting for one free slot.
            full = _buffers_waited_on(self.app)
            return await super().wait_first(self._deliver_then_ebb(_Started(callback, first), full), suspended)
        return await super().wait_first(*coros, timeout=timeout)

    @staticmethod
    async def _deliver_then_ebb(handoff: Awaitable[Any], full: list[Any]) -> None:
        await handoff
        for _ in range(EBB_MAX_POLLS):
            if all(q.qsize() <= q.maxsize * EBB_RATIO for q in full):
                break
            await asyncio.sleep(EBB_POLL_S)


class _Started:
    """A coroutine already stepped by hand (it yielded `first`), made awaitable again, so that a
    task can drive it on exactly where it stopped (values, exceptions and cancellation pass
    through)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro, self._first = coro, first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the task: passed on
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class HandoffTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[Any]] = HandoffConsumer
