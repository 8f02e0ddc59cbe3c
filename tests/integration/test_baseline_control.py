"""Baselines frozen by command on the real local broker: `agentmon baselines` writes to the
compacted control topic, a live `agentmon worker` subprocess applies it to the agent's partition
(watched through /state and /metrics), a restart re-reads the topic, a checkpoint restore keeps the
flag, and an unreadable control topic does not stop the stream."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from monitor.kafka.producer import AgentEventProducer
from monitor.local.simulate import default_agents, generate
from monitor.settings import Settings
from monitor.stream.worker import worker_environment
from tests.support.kafka_io import applied
from tests.support.worker_process import ROOT, WorkerProcess

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 2, tzinfo=UTC)
PARTITIONS = 3  # kafka_settings' events_partitions


@lru_cache(maxsize=1)
def stream() -> tuple[tuple[bytes, str], ...]:
    """Four agents, one day: enough for every agent to have state, short enough to apply quickly."""
    agents = default_agents(4, 30.0, seed=21)
    return tuple((json.dumps(e, separators=(",", ":")).encode(), e["agent_id"])
                 for e in generate(agents, START, 1.0, seed=21))


def agents() -> list[str]:
    return sorted({agent for _, agent in stream()})


def partition_of(agent_id: str) -> str:
    # Kafka's default partitioner: murmur2 of the key, positive, mod n.
    return str((murmur2(agent_id.encode()) & 0x7FFFFFFF) % PARTITIONS)


async def send(settings: Settings) -> int:
    n = 0
    async with AgentEventProducer(settings) as producer:
        for value, agent_id in stream():
            await producer.send_encoded(value, agent_id)
            n += 1
        await producer.flush()
    return n


def baselines(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`agentmon baselines ...` as an operator runs it, against the test broker and topics."""
    env = worker_environment(settings, "agentmon-cli", 6066)
    return subprocess.run([sys.executable, "-m", "monitor.cli.main", "baselines", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    return result.stdout


def frozen(state: dict[str, Any]) -> dict[str, int]:
    return {p: part["frozen_baselines"] for p, part in state["partitions"].items()}


def only(partition: str, n: int = 1) -> dict[str, int]:
    return {str(p): (n if str(p) == partition else 0) for p in range(PARTITIONS)}


def new_app_id() -> str:
    return f"agentmon-test-{uuid.uuid4().hex[:8]}"


def start_ready(settings: Settings, app_id: str, log_path: Path, total: int) -> tuple[WorkerProcess, dict[str, Any]]:
    """A worker that has every partition, has applied all `total` records and has read the
    control topic to its end."""
    worker = WorkerProcess(settings, app_id, log_path)
    try:
        state = worker.wait_for(
            lambda s: len(s["partitions"]) == PARTITIONS and applied(s) == total and s["baseline_control"]["loaded"],
            120, f"all {total} records applied and the control topic read")
    except BaseException:
        worker.stop()
        raise
    return worker, state


def test_freeze_and_unfreeze_reach_a_live_worker_and_a_restart_rereads_the_topic(
    topics: Settings, tmp_path: Path,
) -> None:
    total = asyncio.run(send(topics))
    agent = agents()[0]
    part = partition_of(agent)
    worker, state = start_ready(topics, new_app_id(), tmp_path / "first.log", total)
    try:
        assert frozen(state) == only(part, 0), "nothing is frozen before a command"

        ok(baselines(topics, "freeze", "--agent", agent, "--reason", "launch CHG-7", "--by", "alice"))
        state = worker.wait_for(lambda s: frozen(s) == only(part), 30, f"{agent}'s baseline frozen in partition {part}")
        assert state["baseline_control"]["commands"] == {agent: True}
        status, metrics = worker.get("/metrics")
        assert status == 200
        assert f'agentmon_frozen_baselines{{partition="{part}"}} 1.0'.encode() in metrics
        others = [p for p in range(PARTITIONS) if str(p) != part]
        assert f'agentmon_frozen_baselines{{partition="{others[0]}"}} 0.0'.encode() in metrics

        listed = ok(baselines(topics, "list"))
        row = next(line for line in listed.splitlines() if line.startswith(agent))
        assert row.split()[:2] == [agent, "frozen"] and "alice" in row and row.endswith("launch CHG-7")

        ok(baselines(topics, "unfreeze", "--agent", agent))
        worker.wait_for(lambda s: frozen(s) == only(part, 0), 30, f"{agent}'s baseline unfrozen again")

        ok(baselines(topics, "freeze", "--agent", agent))
        worker.wait_for(lambda s: frozen(s) == only(part), 30, f"{agent}'s baseline frozen again")
    finally:
        assert worker.stop() == 0

    # A new consumer group starts from fresh engines (no checkpoint to restore the flag from):
    # the freeze can only come from re-reading the compacted topic.
    again, state = start_ready(topics, new_app_id(), tmp_path / "again.log", total)
    try:
        state = again.wait_for(lambda s: frozen(s) == only(part), 30, "the freeze re-applied after the restart")
        assert state["baseline_control"]["commands"] == {agent: True}
    finally:
        assert again.stop() == 0


def test_a_checkpoint_restore_keeps_a_freeze_after_its_command_is_withdrawn(topics: Settings, tmp_path: Path) -> None:
    total = asyncio.run(send(topics))
    agent = agents()[-1]
    part = partition_of(agent)
    app_id = new_app_id()
    worker, _ = start_ready(topics, app_id, tmp_path / "first.log", total)
    try:
        # The records' checkpoints first, and the count taken before the freeze: a freeze landing
        # before a record checkpoint rides along in it, and one checkpointed before the count was
        # read is counted already; either way the checkpoint awaited below would never come.
        state = worker.wait_for(lambda s: not any(p["dirty"] for p in s["partitions"].values()), 30,
                                "every partition checkpointed after its records")
        checkpoints = state["checkpoints"]
        ok(baselines(topics, "freeze", "--agent", agent))
        worker.wait_for(lambda s: frozen(s) == only(part), 30, f"{agent}'s baseline frozen")
        # The freeze marks the partition changed, so it is checkpointed although no record arrives.
        worker.wait_for(lambda s: s["checkpoints"] > checkpoints, 30, "a checkpoint after the freeze")
        ok(baselines(topics, "clear", "--agent", agent))
        state = worker.wait_for(lambda s: s["baseline_control"]["commands"] == {}, 30, "the command withdrawn")
        assert frozen(state) == only(part), "no command: the agent keeps the flag it has"
    finally:
        assert worker.stop() == 0

    restarted, state = start_ready(topics, app_id, tmp_path / "restarted.log", total)
    try:
        assert state["partitions"][part]["generation"] > 0, "the partition was restored from its checkpoint"
        assert state["baseline_control"]["commands"] == {}
        assert frozen(state) == only(part), "the frozen flag came back with the checkpoint"
    finally:
        assert restarted.stop() == 0


def test_baselines_list_shows_the_commands_in_force(topics: Settings) -> None:
    assert ok(baselines(topics, "list")).startswith("no baseline commands in force")
    ok(baselines(topics, "freeze", "--all", "--reason", "launch"))
    ok(baselines(topics, "unfreeze", "--agent", "support-bot", "--agent", "lead-qualifier", "--reason", "noisy"))
    rows = [line.split()[:2] for line in ok(baselines(topics, "list")).splitlines()[1:4]]
    assert rows == [["*", "frozen"], ["lead-qualifier", "unfrozen"], ["support-bot", "unfrozen"]]
    listed = [json.loads(line) for line in ok(baselines(topics, "list", "--json")).splitlines()]
    assert [(c["target"], c["frozen"], c["reason"]) for c in listed] == [
        ("*", True, "launch"), ("lead-qualifier", False, "noisy"), ("support-bot", False, "noisy")]
    ok(baselines(topics, "clear", "--all"))
    ok(baselines(topics, "clear", "--agent", "support-bot"))
    listed = [json.loads(line) for line in ok(baselines(topics, "list", "--json")).splitlines()]
    assert [c["target"] for c in listed] == ["lead-qualifier"]


def test_an_unreadable_control_topic_does_not_stop_the_stream(topics: Settings, tmp_path: Path) -> None:
    total = asyncio.run(send(topics))
    broken = topics.model_copy(update={"topics": topics.topics.model_copy(
        update={"baseline_control": "not a valid topic name!"})})
    worker = WorkerProcess(broken, new_app_id(), tmp_path / "worker.log")
    try:
        state = worker.wait_for(lambda s: applied(s) == total and s["baseline_control"]["error"] is not None, 120,
                                "all records applied while the control topic fails")
        assert not state["baseline_control"]["loaded"]
        health, _ = worker.get("/healthz")
        assert health == 200
    finally:
        assert worker.stop() == 0
    assert "baseline control topic 'not a valid topic name!' unreadable, retrying" in worker.log_path.read_text()
