"""The worker's record route (monitor/stream/faust_direct.py) on faust's own consumer and
messages, without a broker: the drain loop's callback gives events records to the runtime, they
are applied in offset order, their outputs enqueued, acked only after their checkpoint, and
records that arrive while a rebalance has the flow suspended are never applied out of order."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

from faust.types import TP
from faust.types.tuples import ConsumerMessage

from monitor.core.checkpoint import decode_checkpoint
from monitor.local.simulate import Incident, default_agents, generate
from monitor.settings import KafkaSettings, Settings, TopicSettings, WorkerSettings
from monitor.stream.faust_direct import TAKEN, DirectConsumer
from monitor.stream.worker import WorkerCollector, create_app

EVENTS = "agent-events"
SENT = datetime(2026, 11, 3, tzinfo=UTC).timestamp()  # the records' timestamp: after their events


def _app(**worker: Any) -> Any:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                        topics=TopicSettings(events=EVENTS, events_partitions=2),
                        worker=WorkerSettings(web_port=1, **worker))
    app = create_app(settings)
    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()
    app.consumer.suspend_flow.clear()
    app.topics._acking_topics.add(EVENTS)  # what faust's subscription does once the agent runs
    return app


def _values(n: int) -> list[bytes]:
    agents = default_agents(1, 600.0, seed=3)
    events = generate(agents, datetime(2026, 11, 2, tzinfo=UTC), 1.0, seed=3)
    return [json.dumps(e).encode() for e, _ in zip(events, range(n), strict=False)]


def _message(app: Any, partition: int, offset: int, value: bytes, *, topic: str = EVENTS,
             generation: int | None = None, timestamp: float = SENT) -> ConsumerMessage:
    return ConsumerMessage(topic, partition, offset, timestamp, 0, [], b"k", value, None, 1, len(value),
                           TP(topic, partition),
                           generation_id=app.consumer_generation_id if generation is None else generation)


def _assign_and_record_seeks(consumer: Any, assigned: set[TP]) -> list[tuple[TP, int]]:
    """Give the consumer the assignment `assigned` (the set itself: a test may change it) and
    return its seeks, recorded instead of sent (there is no broker here)."""
    seeks: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    consumer.seek = seek
    consumer.assignment = lambda: assigned
    return seeks


def test_the_worker_uses_the_direct_consumer() -> None:
    assert isinstance(_app().consumer, DirectConsumer)


async def test_the_drain_loops_callback_takes_events_records_and_leaves_others_to_faust() -> None:
    app = _app()
    consumer = app.consumer
    taken: list[int] = []
    app.direct_take = lambda message: taken.append(message.offset)
    assert consumer.callback(_message(app, 0, 7, b"{}")) is TAKEN
    assert taken == [7]
    other = consumer.callback(_message(app, 0, 8, b"{}", topic="some-changelog"))
    assert other is not TAKEN and asyncio.iscoroutine(other)  # faust's conductor: a coroutine
    other.close()
    assert taken == [7]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the drain loop's suspend_flow.wait() is closed, not left
        assert await consumer.wait_first(TAKEN, consumer.suspend_flow.wait()) is None


async def test_records_are_applied_their_outputs_published_and_their_state_checkpointed() -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    agents = default_agents(1, 60.0, seed=5)
    incident = Incident(rule="tool_calls_all_failing", onset=start + timedelta(days=2, hours=10),
                        agent_id=agents[0].agent_id)
    values = [json.dumps(e).encode() for e in generate(agents, start, 3.0, incidents=[incident], seed=5)]
    values.append(b"{broken")
    app = _app(checkpoint_max_records=2000)
    runtime = app.agentmon
    runtime.partition(0, wall_now=time.time())
    sent: list[tuple[str, bytes]] = []
    for name, topic in runtime.topics.items():
        topic.send_soon = lambda *, _name=name, value=None, **kw: sent.append((_name, value))
    arrived = time.time()  # after every event of the stream
    for offset, value in enumerate(values):
        app.consumer.callback(_message(app, 0, offset, value, timestamp=arrived))

    engine = runtime.partitions[0]
    assert engine.next_offset == len(values)
    assert engine.engine.counters["events"] + engine.engine.counters["duplicates"] == len(values) - 1
    assert {name for name, _ in sent} == {"alerts", "rollups", "dlq"}
    assert "tool_calls_all_failing" in {json.loads(v)["rule"] for name, v in sent if name == "alerts"}
    assert runtime.checkpoints >= len(values) // 2000
    stored = decode_checkpoint(0, runtime.table.get)
    assert stored is not None and stored.generation == runtime.checkpoints
    assert 0 < stored.next_offset <= engine.next_offset


async def test_records_are_applied_in_order_and_acked_only_after_their_checkpoint() -> None:
    app = _app(checkpoint_max_records=50, checkpoint_interval_s=3600)
    runtime = app.agentmon
    runtime.partition(0, wall_now=time.time())  # partition 0: first due a whole interval from now
    consumer = app.consumer
    tp = TP(EVENTS, 0)
    values = _values(120)
    for offset, value in enumerate(values):
        consumer.callback(_message(app, 0, offset, value))
    engine = runtime.partitions[0]
    assert engine.next_offset == 120
    assert engine.engine.counters["events"] + engine.engine.counters["duplicates"] == 120
    assert runtime.checkpoints == 2  # after 50 and 100 records
    assert sorted(consumer._acked[tp]) == list(range(100))  # what faust may commit: checkpointed only
    assert len(runtime.pending[0]) == 20
    assert len(consumer.unacked) == 20
    runtime.checkpoint(0, wall_now=time.time())
    assert sorted(consumer._acked[tp]) == list(range(120)) and not consumer.unacked


async def test_records_fetched_during_a_rebalance_hold_their_partition_back_until_it_is_fetched_again() -> None:
    app = _app(checkpoint_max_records=1000)
    runtime = app.agentmon
    runtime.partition(0, wall_now=0.0)
    runtime.partition(1, wall_now=0.0)
    consumer = app.consumer
    seeks = _assign_and_record_seeks(consumer, {TP(EVENTS, 0), TP(EVENTS, 1)})
    values = _values(40)
    take = consumer.callback
    for offset in range(10):
        take(_message(app, 0, offset, values[offset]))
    # a rebalance suspends the flow: offsets 10..14 arrive and are not applied
    consumer.suspend_flow.set()
    for offset in range(10, 15):
        take(_message(app, 0, offset, values[offset]))
    take(_message(app, 1, 0, values[0]))
    consumer.suspend_flow.clear()
    engine = runtime.partitions[0]
    assert engine.next_offset == 10
    # the rest of the batch fetched before (15..19) must not be applied ahead of 10..14
    for offset in range(15, 20):
        take(_message(app, 0, offset, values[offset]))
    assert engine.next_offset == 10 and runtime.held_back == 11
    await asyncio.sleep(0)
    assert seeks == [(TP(EVENTS, 0), 10)]  # asked once (at most every 2 s)
    # fetched again from 10: everything applied once, in order; the hold is over
    for offset in range(10, 40):
        take(_message(app, 0, offset, values[offset]))
    assert engine.next_offset == 40 and 0 not in runtime.resync
    assert engine.engine.counters["events"] + engine.engine.counters["duplicates"] == 40
    assert runtime.refetches[0] == 1
    # partition 1 is held from offset 0: a refetch from there (faust's seek to the committed offset) ends it
    take(_message(app, 1, 0, values[0]))
    assert runtime.partitions[1].next_offset == 1 and 1 not in runtime.resync


async def test_a_record_of_an_older_consumer_generation_is_not_applied() -> None:
    app = _app()
    runtime = app.agentmon
    runtime.partition(0, wall_now=0.0)
    values = _values(3)
    app.consumer.callback(_message(app, 0, 0, values[0], generation=app.consumer_generation_id - 1))
    assert runtime.partitions[0].next_offset == 0
    assert runtime.resync == {0: 0}
    app.consumer.callback(_message(app, 0, 0, values[0]))  # fetched again under this generation
    assert runtime.partitions[0].next_offset == 1 and runtime.resync == {}


async def test_the_direct_consumer_fetches_with_the_workers_fetch_wait_instead_of_fausts_fixed_1500_ms() -> None:
    consumer = _app(fetch_max_wait_ms=70).consumer
    assert consumer._thread._create_worker_consumer(consumer.transport)._fetch_max_wait_ms == 70
    default = _app().consumer
    assert default._thread._create_worker_consumer(default.transport)._fetch_max_wait_ms == 100


async def test_other_waits_of_the_consumer_go_to_faust_unchanged() -> None:
    consumer = _app().consumer

    async def slow() -> str:
        await asyncio.sleep(5)
        return "slow"

    async def quick() -> str:
        return "quick"

    results = await consumer.wait_first(slow(), quick(), timeout=1.0)
    assert results.results == ["quick"]  # faust's wait_first: the first to finish, the other cancelled


async def test_a_held_back_partition_that_receives_nothing_more_is_fetched_again_once_the_flow_resumes() -> None:
    # Everything fetched of it arrived during the rebalance: no later record would end the hold.
    app = _app()
    runtime = app.agentmon
    consumer = app.consumer
    assigned = {TP(EVENTS, 1)}
    seeks = _assign_and_record_seeks(consumer, assigned)
    values = _values(5)
    consumer.suspend_flow.set()
    for offset in range(5):
        consumer.callback(_message(app, 1, offset, values[offset]))
    runtime.refetch_held()
    await asyncio.sleep(0)
    assert seeks == [] and runtime.resync == {1: 0}  # the flow is still suspended
    consumer.suspend_flow.clear()
    runtime.refetch_held()
    await asyncio.sleep(0)
    assert seeks == [(TP(EVENTS, 1), 0)]  # its engine, restored (fresh here), starts at offset 0
    for offset in range(5):
        consumer.callback(_message(app, 1, offset, values[offset]))
    assert runtime.partitions[1].next_offset == 5 and runtime.resync == {}
    # a hold on a partition this worker is no longer assigned simply ends
    consumer.suspend_flow.set()
    consumer.callback(_message(app, 1, 5, values[0]))
    consumer.suspend_flow.clear()
    assigned.clear()
    runtime.refetch_held()
    assert runtime.resync == {}


async def test_a_first_record_after_a_rebalance_past_the_next_offset_waits_for_the_records_before_it() -> None:
    # faust's getmany drops the rest of a batch when a rebalance stops the flow, and seeks back only
    # to committed offsets: records 10..14 were fetched and dropped, and the fetch goes on from 15.
    app = _app()
    runtime = app.agentmon
    consumer = app.consumer
    seeks = _assign_and_record_seeks(consumer, {TP(EVENTS, 0)})
    values = _values(30)
    for offset in range(10):
        consumer.callback(_message(app, 0, offset, values[offset]))
    app.consumer_generation_id += 1  # a rebalance
    for offset in range(15, 20):
        consumer.callback(_message(app, 0, offset, values[offset]))
    engine = runtime.partitions[0]
    assert engine.next_offset == 10
    await asyncio.sleep(0)
    assert seeks == [(TP(EVENTS, 0), 10)]
    for offset in range(10, 30):  # fetched again from 10
        consumer.callback(_message(app, 0, offset, values[offset]))
    assert engine.next_offset == 30 and runtime.resync == {}
    assert engine.engine.counters["events"] + engine.engine.counters["duplicates"] == 30


async def test_a_partition_that_receives_nothing_after_a_rebalance_while_records_wait_is_fetched_again() -> None:
    app = _app()
    runtime = app.agentmon
    consumer = app.consumer
    seeks = _assign_and_record_seeks(consumer, {TP(EVENTS, 0)})
    highwater = {TP(EVENTS, 0): 0}
    consumer.highwater = highwater.__getitem__
    runtime.partition(0, wall_now=time.time())
    runtime._flow_generation, runtime._flow_since = app.consumer_generation_id, time.monotonic() - 10
    runtime.refetch_held()
    assert seeks == []  # nothing waits
    highwater[TP(EVENTS, 0)] = 7
    runtime.refetch_held()
    runtime.refetch_held()
    await asyncio.sleep(0)
    assert seeks == [(TP(EVENTS, 0), 0)]  # once per rebalance


def test_refetches_are_counted_on_the_metrics_page() -> None:
    app = _app()
    runtime = app.agentmon
    runtime.refetches[2] += 3
    metrics = {m.name: m for m in WorkerCollector(runtime).collect()}
    samples = [(s.labels, s.value) for s in metrics["agentmon_refetches"].samples if s.name.endswith("_total")]
    assert samples == [({"partition": "2"}, 3)]


async def test_records_fetched_during_a_clean_stop_are_left_to_the_next_owner() -> None:
    # The stop checkpoints every partition and faust then commits: a record applied after that
    # would be in neither the checkpoint nor the commit (harmless, but read twice).
    app = _app()
    runtime = app.agentmon
    runtime.partition(0, wall_now=time.time())
    values = _values(2)
    app.consumer.callback(_message(app, 0, 0, values[0]))
    runtime.stopping = True
    app.consumer.callback(_message(app, 0, 1, values[1]))
    assert runtime.partitions[0].next_offset == 1 and len(runtime.pending[0]) == 1
    assert len(app.consumer.unacked) == 1
