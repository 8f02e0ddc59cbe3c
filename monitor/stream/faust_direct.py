"""Direct delivery of the events topic's records, from faust's fetch loop to the engine.

faust hands every fetched record to its streams through the conductor: two tasks and an
`asyncio.wait` per record (`wait_first`), a channel queue, then the stream's iteration with its
sensors and context variables. On this project's machines that path alone caps a worker near
10-13k records/s (bench/throughput.py, (b) and (b2)) before agentmon does any work.

`DirectConsumer` routes the records of one topic (the events topic) to a plain synchronous
function instead (`WorkerRuntime.take`), called by faust's own drain loop, in offset order per
partition, as the records are fetched. Every other topic (table changelogs, faust's internal
topics) keeps faust's path unchanged. faust still owns the group membership, the partition
assignment, the table recovery, the offset commits and the fetch: the records taken directly are
tracked and acked through the consumer's own bookkeeping (`track_message` / `ack`), so faust
commits exactly the offsets agentmon acks (after their checkpoint), as with the stream.

Rebalances: records that arrive while faust has the flow suspended, before the checkpoint table
is recovered, or from an older consumer generation are not applied; `WorkerRuntime.take` then
holds that partition back until it is fetched again from the first record it did not apply, so
none is lost and none is applied out of order. faust also drops records unseen (its getmany
stops mid-batch when a rebalance stops the flow) and seeks back only to committed offsets; so a
partition's first record after a rebalance must not be past the engine's next offset, and a
partition that receives nothing after a rebalance while records wait is fetched again (see
`WorkerRuntime.take` and `refetch_held`).

Measured (docs/benchmarks.md, section 2): 2.2x a worker fed through a faust stream on the same
run; the worker at 0.9x faust's own iterate-only floor with the worker's settings, while doing the
full work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as faust_aiokafka

from monitor.stream.faust_fetch import FetchConsumer


class _Taken:
    """What the routed callback returns for a record taken directly: nothing left to await."""

    __slots__ = ()


TAKEN = _Taken()


class DirectConsumer(FetchConsumer):
    """faust's consumer (with the short fetch wait), whose drain loop gives the records of
    `app.direct_topic` to `app.direct_take(message)` instead of to the conductor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conductor_callback = self.callback
        app: Any = self.app

        def route(message: Any) -> Any:
            # Called by the drain loop as `wait_first(callback(message), suspend_flow.wait())`.
            take: Callable[[Any], None] | None = getattr(app, "direct_take", None)
            if take is not None and message.topic == app.direct_topic:
                take(message)
                return TAKEN
            return conductor_callback(message)

        self.callback = route

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        if coros and coros[0] is TAKEN:
            for coro in coros[1:]:
                coro.close()  # the drain loop's `suspend_flow.wait()`, never started
            return None
        return await super().wait_first(*coros, timeout=timeout)


class DirectTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[Any]] = DirectConsumer
