"""Kafka mode of the report, on the real local broker: rollups and alerts of several weeks are in
`agent-rollups` / `agent-alerts`; the report seeks to the requested range by timestamp and
uses only that range (the requested week and its baseline week)."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from monitor.contract.alert import Alert
from monitor.contract.catalogue import runbook_url
from monitor.contract.rollup import Rollup, ToolRollup
from monitor.kafka.topics import create_topics
from monitor.report.analysis import build_review, history_start
from monitor.report.cli import add_report_arguments, run_report_command, run_scheduled_report
from monitor.report.config import ReportSettings
from monitor.report.sources import read_kafka_history
from monitor.report.week import IsoWeek
from monitor.settings import Settings

pytestmark = pytest.mark.integration

AGENTS = ("agent-a", "agent-b")
WEEK = IsoWeek.parse("2026-W46")
# executions per hour, per week: each week is recognisable in the sums
PER_HOUR = {WEEK.shift(-2): 1, WEEK.shift(-1): 2, WEEK: 3, WEEK.shift(1): 5}


def _rollup(agent: str, hour: datetime, n: int) -> Rollup:
    failing = hour.weekday() == 1 and hour.hour == 3 and agent == "agent-a"
    return Rollup(
        agent_id=agent, hour=hour, executions=n, completed=n, escalations=0, failures=0, timeouts=0, repeats=0,
        quality_sum=0.8 * n, quality_count=n, cost_usd_sum=0.01 * n, cost_count=n, unpriced_executions=0,
        tokens_sum=1000.0 * n, tokens_count=n, steps_mean=4.0, steps_p95=6.0, duration_ms_mean=900.0,
        duration_ms_p95=1500.0,
        tools={"crm.update": ToolRollup(calls=10, errors=10 if failing else 0, rate_limited=0,
                                        ok=0 if failing else 10)},
    )


def _alert(state: str, at: datetime, rule: str = "tool_error_rate") -> Alert:
    return Alert.model_validate({
        "alert_id": f"{rule}@{at.isoformat()}/{state}", "fingerprint": f"{rule}/agent-a", "rule": rule,
        "agent_id": "agent-a", "severity": "P1", "state": state, "at": at, "summary": rule,
        "metric": {"name": rule, "current": 1.0, "baseline": 0.0, "change": None, "window": "1h", "n": 10},
        "runbook_url": runbook_url("https://example.invalid", rule),
    })


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def _produce(settings: Settings, *, replay: bool = False) -> dict[str, int]:
    """Four weeks of rollups and alerts; `replay`: published now, with the wall clock as message
    timestamp (a re-published backtest), instead of at event time."""
    await create_topics(settings)
    records: list[tuple[str, bytes, bytes, int]] = []
    for week, n in PER_HOUR.items():
        for h in range(7 * 24):
            hour = week.start + timedelta(hours=h)
            for agent in AGENTS:
                # published with the hour's start as timestamp; a few with a delay, as a worker would
                delay = timedelta(minutes=random.Random(h).choice([0, 5, 70]))
                records.append((settings.topics.rollups, agent.encode(), _rollup(agent, hour, n).to_json(),
                                _ms(hour + delay)))
    tue = WEEK.start + timedelta(days=1)
    alerts = [
        _alert("firing", tue - timedelta(days=7, hours=-3)), _alert("resolved", tue - timedelta(days=7, hours=-4)),
        _alert("firing", tue + timedelta(hours=3, minutes=5)), _alert("resolved", tue + timedelta(hours=3, minutes=50)),
        _alert("firing", tue + timedelta(days=7, hours=3)),
    ]
    records += [(settings.topics.alerts, a.fingerprint.encode(), a.to_json(), _ms(a.at)) for a in alerts]
    # a broken record inside the range is counted, never fatal
    broken = b'{"agent_id": "agent-a"}'
    records.append((settings.topics.rollups, b"agent-a", broken, _ms(WEEK.start + timedelta(hours=5))))
    records.sort(key=lambda r: r[3])  # published in time order, as workers do
    producer = AIOKafkaProducer(**settings.kafka.client_options(), linger_ms=20)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, timestamp_ms=None if replay else ts)
                   for topic, key, value, ts in records]
        await producer.flush()
        for f in futures:
            await f
    finally:
        await producer.stop()
    return {"rollups": sum(1 for r in records if r[0] == settings.topics.rollups), "alerts": len(alerts)}


async def test_reads_only_the_requested_range(kafka_settings: Settings) -> None:
    produced = await _produce(kafka_settings)
    cfg = ReportSettings(baseline_weeks=1)
    history = await read_kafka_history(kafka_settings, history_start(WEEK, cfg), WEEK.end,
                                       slack=timedelta(hours=6), timeout_s=20)
    weeks = {IsoWeek.containing(r.hour) for r in history.rollups}
    assert weeks == {WEEK, WEEK.shift(-1)}
    assert len(history.rollups) == 2 * 7 * 24 * len(AGENTS)
    # the seek skipped the older week; the read stopped soon after the range (6 h of slack + delays)
    stats = history.rollup_stats
    assert stats.invalid == 1 and stats.first_errors[0].startswith(kafka_settings.topics.rollups)
    assert stats.records_read <= len(history.rollups) + 1 + 2 * 10 * len(AGENTS)
    assert stats.records_read < produced["rollups"] / 2 + 50
    assert {IsoWeek.containing(a.at) for a in history.alerts} == {WEEK, WEEK.shift(-1)}

    review = build_review(history.rollups, history.alerts, WEEK, cfg)
    a = review.agent("agent-a")
    assert a.metric("executions").current == 3 * 7 * 24  # this week only: not W47's 5 per hour
    assert a.metric("executions").previous == 2 * 7 * 24 and a.metric("executions").baseline == 2 * 7 * 24
    assert a.tool_errors.hottest is not None and (a.tool_errors.hottest.weekday, a.tool_errors.hottest.hour) == (1, 3)
    assert (a.alerts.fired, a.alerts.resolved, a.alerts.open_at_week_end) == (1, 1, 0)
    assert a.alerts.median_time_to_resolve_s == 45 * 60


async def test_records_republished_later_are_still_found(kafka_settings: Settings) -> None:
    await _produce(kafka_settings, replay=True)
    history = await read_kafka_history(kafka_settings, WEEK.shift(-1).start, WEEK.end, timeout_s=20)
    assert len(history.rollups) == 2 * 7 * 24 * len(AGENTS) and history.rollup_stats.invalid == 1
    assert {IsoWeek.containing(r.hour) for r in history.rollups} == {WEEK, WEEK.shift(-1)}
    assert len(history.alerts) == 4


async def test_scheduled_run_reviews_the_last_complete_week(kafka_settings: Settings, tmp_path: Path) -> None:
    await _produce(kafka_settings)
    due = datetime(2026, 11, 16, 7, tzinfo=UTC)  # Monday after W46
    review = await run_scheduled_report(kafka_settings, due, upload=False, out_dir=tmp_path)
    assert review.week == str(WEEK)
    assert review.agent("agent-b").metric("executions").current == 3 * 7 * 24
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"weekly-review-{WEEK}.{x}" for x in ("html", "json", "md")]


def test_report_command_reads_kafka(kafka_settings: Settings, tmp_path: Path) -> None:
    asyncio.run(_produce(kafka_settings))
    t = kafka_settings.topics
    config = tmp_path / "agentmon.toml"
    config.write_text(f'[kafka]\nbootstrap_servers = "{kafka_settings.kafka.bootstrap_servers}"\n'
                      f'[topics]\nrollups = "{t.rollups}"\nalerts = "{t.alerts}"\n')
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_report_arguments(parser)
    args = parser.parse_args(["--config", str(config), "--week", str(WEEK), "--agent", "agent-a",
                              "--format", "json", "--out", str(tmp_path)])
    assert run_report_command(args) == 0
    data = json.loads((tmp_path / f"weekly-review-{WEEK}-agent-a.json").read_text())
    [agent] = data["agents"]
    executions = next(m for m in agent["metrics"] if m["name"] == "executions")
    assert executions["current"] == 3 * 7 * 24 and executions["previous"] == 2 * 7 * 24
