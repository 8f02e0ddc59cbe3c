"""The worker's faust agent under faust's own test tools (no broker): records flow through the
thin shell into the partition engines, outputs are enqueued, and checkpoints land in the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from monitor.checkpoint import decode_checkpoint
from monitor.settings import KafkaSettings, Settings, TopicSettings, WorkerSettings
from monitor.simulate import Incident, default_agents, generate
from monitor.worker import create_app


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
                        worker=WorkerSettings(checkpoint_max_records=2000, web_port=1, batch_max_wait_s=3600))
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
