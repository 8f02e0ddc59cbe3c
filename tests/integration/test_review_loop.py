"""The weekly discipline as a closed loop, on the real local broker: verdicts, regression runs and a
note recorded through the `agentmon` command line during 2026-W47 appear in that week's review
(made the Monday after) with the right counts, next to the week before's; an agent version first
seen in W47 is in the changes timeline, and the incident that followed it names it."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from monitor.cli.main import main
from monitor.contract.alert import Alert
from monitor.contract.catalogue import runbook_url
from monitor.contract.rollup import Rollup, ToolRollup
from monitor.kafka.producer import AgentEventProducer
from monitor.kafka.table import read_to_end
from monitor.kafka.topics import create_topics
from monitor.report.week import IsoWeek
from monitor.sdk import execution
from monitor.settings import Settings

pytestmark = pytest.mark.integration

AGENT = "agent-a"
WEEK = IsoWeek.parse("2026-W47")  # 2026-11-16 .. 2026-11-23
PREV = WEEK.shift(-1)
V2_AT = WEEK.start + timedelta(days=2, hours=10)  # Wed 10:00: agent version v2 first seen
INCIDENT_AT = V2_AT + timedelta(hours=2)


def _rollup(hour: datetime) -> Rollup:
    return Rollup(
        agent_id=AGENT, hour=hour, executions=10, completed=9, escalations=1, failures=0, timeouts=0, repeats=0,
        quality_sum=8.0, quality_count=10, cost_usd_sum=0.1, cost_count=10, unpriced_executions=0, tokens_sum=1e4,
        tokens_count=10, steps_mean=4.0, steps_p95=6.0, duration_ms_mean=900.0, duration_ms_p95=1500.0,
        tools={"crm.update": ToolRollup(calls=10, errors=0, rate_limited=0, ok=10)},
    )


def _alert(state: str, at: datetime) -> Alert:
    return Alert.model_validate({
        "alert_id": f"quality_drop@{at.isoformat()}/{state}", "fingerprint": f"quality_drop/{AGENT}",
        "rule": "quality_drop", "agent_id": AGENT, "severity": "P1", "state": state, "at": at,
        "summary": "quality fell 30 %", "metric": {"name": "quality_mean", "current": 0.5, "baseline": 0.8,
                                                   "change": -0.37, "window": "1h", "n": 40},
        "runbook_url": runbook_url("https://example.invalid", "quality_drop"),
    })


async def _pipeline_history(settings: Settings) -> None:
    """What the workers would have published: rollups of W45-W47, one incident in W47, and
    executions on the events topic (v1 since W46, v2 from Wednesday of W47)."""
    await create_topics(settings)
    producer = AIOKafkaProducer(**settings.kafka.client_options())
    await producer.start()
    try:
        for h in range(3 * 7 * 24):
            hour = WEEK.shift(-2).start + timedelta(hours=h)
            await producer.send(settings.topics.rollups, _rollup(hour).to_json(), key=AGENT.encode(),
                                timestamp_ms=int(hour.timestamp() * 1000))
        for state, at in (("firing", INCIDENT_AT), ("resolved", INCIDENT_AT + timedelta(hours=3))):
            await producer.send(settings.topics.alerts, _alert(state, at).to_json(), key=AGENT.encode(),
                                timestamp_ms=int(at.timestamp() * 1000))
        await producer.flush()
    finally:
        await producer.stop()
    async with AgentEventProducer(settings) as events:
        seen = [("v1", PREV.start + timedelta(hours=5)), ("v1", WEEK.start + timedelta(hours=1)),
                ("v2", V2_AT), ("v2", V2_AT + timedelta(hours=5))]
        for i, (version, at) in enumerate(seen):
            await events.send_and_wait(execution(AGENT, execution_id=f"x-run-{i}", task_id=f"t{i}", status="completed",
                                                 occurred_at=at, agent_version=version))


def _cli(config: Path, *argv: str) -> None:
    assert main(["--config", str(config), *argv]) == 0, argv


async def _evaluations(settings: Settings) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(**settings.kafka.client_options(), group_id=None, enable_auto_commit=False)
    got: list[dict[str, Any]] = []
    await consumer.start()
    try:
        await read_to_end(consumer, settings.topics.events,
                          lambda r: got.append(json.loads(r.value)) if b'"evaluation"' in r.value else None,
                          timeout_s=20)
    finally:
        await consumer.stop()
    return got


def test_recorded_verdicts_runs_and_notes_appear_in_the_next_review(
    kafka_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = kafka_settings  # its own topics, the notes and the review log included
    asyncio.run(_pipeline_history(settings))
    t = settings.topics
    config = tmp_path / "agentmon.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{settings.kafka.bootstrap_servers}"\n'
        f'[topics]\nevents = "{t.events}"\nrollups = "{t.rollups}"\nalerts = "{t.alerts}"\n'
        f'[report]\nnotes_topic = "{settings.report.notes_topic}"\n'
        f'records_topic = "{settings.report.records_topic}"\n')

    # the week before: one verdict, one regression run (c1, c2 pass; c3 fails)
    _cli(config, "review", "mark", "x-old", "--pass", "--agent", AGENT, "--at", "2026-11-10T09:00:00Z")
    run = tmp_path / "run.jsonl"

    def regression(at: str, name: str, outcomes: dict[str, bool]) -> None:
        run.write_text("".join(json.dumps({"case_id": c, "expected": "A", "actual": "A" if ok else "B", "passed": ok})
                               + "\n" for c, ok in outcomes.items()))
        _cli(config, "regression", "record", "--suite", "golden", "--agent", AGENT, "--run", name, "--at", at,
             str(run))

    regression("2026-11-13T14:00:00Z", "w46", {"c1": True, "c2": True, "c3": False})
    # the reported week: 5 verdicts (one by file), two runs, a note
    _cli(config, "review", "mark", "x1", "--fail", "--category", "tool issue", "--note", "CRM write lost",
         "--agent", AGENT, "--at", "2026-11-16T09:00:00Z", "--by", "ana")
    _cli(config, "review", "mark", "x2", "--pass", "--agent", AGENT, "--at", "2026-11-16T09:05:00Z")
    verdicts = tmp_path / "verdicts.jsonl"
    verdicts.write_text("".join(json.dumps(v) + "\n" for v in [
        {"execution_id": "x3", "agent_id": AGENT, "passed": True, "at": "2026-11-16T09:10:00Z"},
        {"execution_id": "x4", "agent_id": AGENT, "passed": True, "at": "2026-11-16T09:11:00Z"},
        {"execution_id": "x5", "agent_id": AGENT, "passed": False, "category": "silent failure",
         "note": "said done, wrote nothing", "at": "2026-11-16T09:12:00Z"}]))
    _cli(config, "review", "mark", "--file", str(verdicts))
    _cli(config, "review", "mark", "--file", str(verdicts))  # sent twice by mistake: counted once
    regression("2026-11-18T14:00:00Z", "w47-a", {"c1": True, "c2": False, "c3": True})
    regression("2026-11-20T14:00:00Z", "w47-b", {"c1": True, "c2": False, "c3": False})
    _cli(config, "note", "add", "--agent", AGENT, "--at", "2026-11-17T08:00:00Z",
         "knowledge base: pricing pages updated")
    capsys.readouterr()
    _cli(config, "note", "list", "--agent", AGENT)
    assert "knowledge base: pricing pages updated" in capsys.readouterr().out

    # every verdict and case reached the events topic as an evaluation, for the quality rules
    evaluations = asyncio.run(_evaluations(settings))
    assert sum(1 for e in evaluations if e["evaluator"] == "weekly-review") == 1 + 2 + 3 * 2
    assert sum(1 for e in evaluations if e["evaluator"] == "regression:golden") == 9

    out = tmp_path / "reports"
    _cli(config, "report", "--week", str(WEEK), "--format", "json,html", "--out", str(out))
    review = json.loads((out / f"weekly-review-{WEEK}.json").read_text())
    [agent] = review["agents"]
    v = agent["verdicts"]
    assert (v["verdicts"], v["passed"], v["previous_verdicts"], v["previous_pass_rate"]) == (5, 3, 1, 1.0)
    assert {c["category"]: c["executions"] for c in v["by_category"]} == {"tool issue": ["x1"],
                                                                          "silent failure": ["x5"]}
    [suite] = agent["regressions"]
    assert [r["run"] for r in suite["runs"]] == ["w47-a", "w47-b"]
    assert suite["pass_rate"] == pytest.approx(1 / 3) and suite["previous_pass_rate"] == pytest.approx(2 / 3)
    assert [c["case"] for c in suite["newly_failing"]] == ["c2"] and suite["flaky"] == ["c3"]
    changes = [(c["kind"], c["text"]) for c in agent["changes"]]
    assert changes == [("note", "knowledge base: pricing pages updated"),
                       ("agent version", "agent version v2 first seen")]  # v1 was seen the week before
    [incident] = agent["alerts"]["episodes"]
    assert incident["preceded_by"] == ["agent version v2 first seen at Wed 2026-11-18 10:00 UTC (2 h 00 min before)"]
    assert any("it followed: agent version v2" in f for f in agent["findings"])
    kinds = [item["kind"] for item in review["agenda"]]
    assert "regression" in kinds
    html = (out / f"weekly-review-{WEEK}.html").read_text()
    assert "Regression runs" in html and "knowledge base: pricing pages updated" in html
