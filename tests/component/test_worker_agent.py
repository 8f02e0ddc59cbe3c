"""The worker's faust agent under faust's own test tools (no broker): records flow through the
thin shell into the partition engines, outputs are enqueued, and checkpoints land in the table.
This is the stream route (`worker.direct_delivery` off); the direct route: test_worker_direct.py."""

from __future__ import annotations

import asyncio
import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.core.checkpoint import decode_checkpoint
from monitor.local.simulate import Incident, default_agents, generate
from monitor.settings import KafkaSettings, Settings, TopicSettings, WorkerSettings
from monitor.stream.faust_fetch import FetchConsumer
from monitor.stream.faust_handoff import HandoffConsumer
from monitor.stream.worker import create_app


def records() -> list[tuple[bytes, bytes]]:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    agents = default_agents(1, 60.0, seed=5)
    incident = Incident(rule="tool_calls_all_failing", onset=start + timedelta(days=2, hours=10),
                        agent_id=agents[0].agent_id)
    return [(json.dumps(e).encode(), e["agent_id"].encode())
            for e in generate(agents, start, 3.0, incidents=[incident], seed=5)]


async def test_agent_applies_records_publishes_alerts_and_checkpoints_state() -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                        topics=TopicSettings(events_partitions=1),
                        worker=WorkerSettings(checkpoint_max_records=2000, web_port=1, batch_max_wait_s=3600,
                                              direct_delivery=False))
    app = create_app(settings)
    app.finalize()
    app.conf.store = "memory://"
    runtime = app.agentmon  # type: ignore[attr-defined]
    sent: list[tuple[str, bytes]] = []
    for name, topic in runtime.topics.items():
        topic.send_soon = lambda *, _name=name, value=None, **kw: sent.append((_name, value))  # type: ignore[method-assign]
    data = records()
    agent = app.agents["agentmon.events"]
    async with agent.test_context() as tested:
        for value, key in data:
            await tested.put(value=value, key=key, partition=0)
        await tested.put(value=b"{broken", key=b"x", partition=0)
        # applied in runs of batch_max_records (1000 by default); the rest waits for the flush
        # timer (timers do not run in a test context): apply it as the timer would
        applied = runtime.partitions[0].next_offset
        assert applied % settings.worker.batch_max_records == 0
        assert applied + len(runtime.batch) == len(data) + 1
        assert 0 < len(runtime.batch) < settings.worker.batch_max_records
        await runtime.apply_batch()
        assert runtime.batch == []

    engine = runtime.partitions[0]
    assert engine.next_offset == len(data) + 1
    assert engine.engine.counters["events"] + engine.engine.counters["duplicates"] == len(data)
    published = {name for name, _ in sent}
    assert published == {"alerts", "rollups", "dlq"}
    rules = {json.loads(v)["rule"] for name, v in sent if name == "alerts"}
    assert "tool_calls_all_failing" in rules
    assert runtime.checkpoints >= len(data) // 2000
    stored = decode_checkpoint(0, runtime.table.get)
    assert stored is not None and stored.generation == runtime.checkpoints
    assert 0 < stored.next_offset <= engine.next_offset


def test_the_partitions_of_a_worker_are_first_due_a_checkpoint_at_staggered_times() -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                        topics=TopicSettings(events_partitions=4),
                        worker=WorkerSettings(checkpoint_interval_s=20, web_port=1))
    app = create_app(settings)
    app.finalize()
    app.conf.store = "memory://"
    runtime = app.agentmon  # type: ignore[attr-defined]
    for partition in (3, 0, 2):
        runtime.partition(partition, wall_now=1000.0)
    # due when now - last_checkpoint >= 20: partition 0 at 1020, 2 at 1010, 3 at 1005
    assert runtime.last_checkpoint == {0: 1000.0, 2: 990.0, 3: 985.0}


def test_faust_monitor_sensor_is_left_out_unless_asked_for() -> None:
    def sensors_after_init(keep: bool) -> tuple[bool, int]:
        settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                            worker=WorkerSettings(web_port=1, faust_monitor=keep))
        app = create_app(settings)
        app.finalize()
        app.on_init_dependencies()
        return app.monitor in set(app.sensors), len(set(app.sensors))

    assert sensors_after_init(False) == (False, 0)
    assert sensors_after_init(True) == (True, 1)


def _consumer(direct_handoff: bool, **worker: Any) -> Any:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                        worker=WorkerSettings(web_port=1, direct_delivery=False, direct_handoff=direct_handoff,
                                              **worker))
    return create_app(settings).consumer


def test_consumer_hands_records_over_directly_only_when_asked_for() -> None:
    assert isinstance(_consumer(True), HandoffConsumer)
    assert not isinstance(_consumer(False), HandoffConsumer)
    assert type(_consumer(False)) is FetchConsumer


async def test_both_consumers_fetch_with_the_workers_fetch_wait_instead_of_fausts_fixed_1500_ms() -> None:
    for handoff in (False, True):
        consumer = _consumer(handoff, fetch_max_wait_ms=70)
        kafka = consumer._thread._create_worker_consumer(consumer.transport)
        assert kafka._fetch_max_wait_ms == 70
        default = _consumer(handoff)
        assert default._thread._create_worker_consumer(default.transport)._fetch_max_wait_ms == 100


async def test_direct_handoff_awaits_the_callback_in_this_task_while_the_flow_runs() -> None:
    consumer = _consumer(True)
    consumer.suspend_flow.clear()
    ran: list[asyncio.Task[Any] | None] = []

    async def callback() -> None:
        ran.append(asyncio.current_task())

    await consumer.wait_first(callback(), consumer.suspend_flow.wait())
    assert ran == [asyncio.current_task()]  # no task created per record


async def test_while_the_flow_is_suspended_a_record_with_room_is_handed_over_as_faust_does() -> None:
    # During a rebalance faust's hand-off runs the callback beside the wait on `suspend_flow`, so a
    # record that finds room is still handed over. Records fetched between faust's seek to the
    # committed offsets and its resume of the flow are not fetched again: dropping them loses them.
    for direct in (False, True):  # faust's consumer is the reference
        consumer = _consumer(direct)
        consumer.suspend_flow.set()
        ran: list[bool] = []

        async def callback(ran: list[bool] = ran) -> None:
            ran.append(True)

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a coroutine never awaited nor closed would warn
            await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        assert ran == [True], f"direct_handoff={direct}"


async def test_other_waits_of_the_consumer_go_to_faust_unchanged() -> None:
    consumer = _consumer(True)
    consumer.suspend_flow.clear()

    async def slow() -> str:
        await asyncio.sleep(5)
        return "slow"

    async def quick() -> str:
        return "quick"

    results = await consumer.wait_first(slow(), quick(), timeout=1.0)
    assert results.results == ["quick"]  # faust's wait_first: the first to finish, the other cancelled


async def test_a_handoff_that_has_to_wait_is_abandoned_when_a_rebalance_suspends_the_flow() -> None:
    # Held inside the hand-off, the fetcher would keep faust's rebalance waiting for it: deadlock.
    consumer = _consumer(True)
    consumer.suspend_flow.clear()
    room = asyncio.Event()
    seen: list[str] = []

    async def callback() -> None:  # a full stream buffer: waits for room
        try:
            await room.wait()
            seen.append("delivered")
        except asyncio.CancelledError:
            seen.append("abandoned")
            raise

    handoff = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.05)
    assert not handoff.done()
    consumer.suspend_flow.set()
    await asyncio.wait_for(handoff, 2.0)
    await asyncio.sleep(0)
    assert seen == ["abandoned"]


async def test_a_handoff_that_has_to_wait_is_delivered_once_there_is_room() -> None:
    consumer = _consumer(True)
    consumer.suspend_flow.clear()
    room = asyncio.Event()
    seen: list[str] = []

    async def callback() -> None:
        await asyncio.sleep(0)  # a bare yield first, then a future
        await room.wait()
        seen.append("delivered")

    handoff = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.05)
    assert seen == [] and not handoff.done()
    room.set()
    await asyncio.wait_for(handoff, 2.0)
    assert seen == ["delivered"]


def _full_stream_buffer(consumer: Any, size: int) -> Any:
    consumer.app.flow_control.resume()  # as after the app's start
    queue = consumer.app.FlowControlQueue(maxsize=size, clear_on_resume=True)  # managed by flow control
    for i in range(size):
        queue.put_nowait(i)
    return queue


async def test_after_waiting_for_room_the_next_handoff_waits_until_the_buffer_has_ebbed() -> None:
    # Each hand-off waiting for one free slot would take faust's per-record tasks again.
    consumer = _consumer(True)
    consumer.suspend_flow.clear()
    queue = _full_stream_buffer(consumer, 8)

    async def callback() -> None:  # faust's put into the full buffer
        await queue.put("record")

    handoff = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.02)
    queue.get_nowait()  # room for the record: delivered, but the buffer is full again
    await asyncio.sleep(0.05)
    assert queue.qsize() == 8 and not handoff.done()
    for _ in range(4):
        queue.get_nowait()
    await asyncio.wait_for(handoff, 2.0)  # down to half: the fetcher goes on


async def test_waiting_for_the_buffer_to_ebb_ends_when_a_rebalance_suspends_the_flow() -> None:
    consumer = _consumer(True)
    consumer.suspend_flow.clear()
    queue = _full_stream_buffer(consumer, 8)

    async def callback() -> None:
        await queue.put("record")

    handoff = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.02)
    queue.get_nowait()
    await asyncio.sleep(0.02)
    assert not handoff.done()
    consumer.suspend_flow.set()
    await asyncio.wait_for(handoff, 2.0)
