"""Silences in the compacted topic on the real local broker: every store instance (worker, CLI)
sees the same silences; expire and purge propagate."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta

import pytest

from alerts.cli import build_silence_parser, run_silence_command
from alerts.silence_kafka import KafkaSilenceStore
from alerts.silences import SilenceMuter, new_silence, parse_matcher
from monitor.settings import Settings
from tests.support.alert_factory import make_alert

pytestmark = pytest.mark.integration


async def wait_for(predicate, timeout_s: float = 15.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


async def test_silences_are_shared_through_the_compacted_topic(kafka_settings: Settings) -> None:
    now = datetime.now(UTC)
    silence = new_silence(
        [parse_matcher("rule=tool_error_rate"), parse_matcher("agent=lead-qualifier")],
        now=now,
        duration=timedelta(hours=2),
        created_by="alice",
        comment="CRM migration",
    )
    alert = make_alert("tool_error_rate", "lead-qualifier")
    async with KafkaSilenceStore(kafka_settings, timeout_s=20) as worker:
        worker.follow(poll_ms=200)
        async with KafkaSilenceStore(kafka_settings, timeout_s=20) as cli:
            await cli.put(silence)
        muter = SilenceMuter(worker)
        assert await wait_for(lambda: muter.mutes(alert, now) is not None), "the worker sees the new silence"

        async with KafkaSilenceStore(kafka_settings, timeout_s=20) as fresh:  # a worker that starts later
            assert [s.id for s in fresh.silences()] == [silence.id]
            await fresh.expire(silence.id, now + timedelta(minutes=5))
        later = now + timedelta(minutes=6)
        assert await wait_for(lambda: muter.mutes(alert, later) is None), "the expiry propagates"

        async with KafkaSilenceStore(kafka_settings, timeout_s=20, keep_expired=timedelta(0)) as janitor:
            assert await janitor.purge(later) == [silence.id]
        assert await wait_for(lambda: worker.silences() == []), "the tombstone removes it everywhere"
    async with KafkaSilenceStore(kafka_settings, timeout_s=20) as last:
        assert last.silences() == []


def test_silence_cli_against_the_broker(kafka_settings: Settings) -> None:
    parser = build_silence_parser()
    out = io.StringIO()
    args = parser.parse_args(
        ["add", "--agent", "support-bot", "--duration", "1h", "--author", "bob", "--reason", "prompt rollout"]
    )
    assert run_silence_command(args, settings=kafka_settings, out=out) == 0
    silence_id = out.getvalue().split()[1]

    out = io.StringIO()
    assert run_silence_command(parser.parse_args(["list"]), settings=kafka_settings, out=out) == 0
    assert silence_id in out.getvalue() and "agent_id=support-bot" in out.getvalue()

    out = io.StringIO()
    assert run_silence_command(parser.parse_args(["expire", silence_id]), settings=kafka_settings, out=out) == 0
    out = io.StringIO()
    run_silence_command(parser.parse_args(["list"]), settings=kafka_settings, out=out)
    assert silence_id not in out.getvalue()
