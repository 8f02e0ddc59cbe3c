"""`agentmon rollout status` against a live worker (real local broker): the worker's /rollout page
gives the same verdict as a replay of the same events, and the CLI's exit code gates on it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.contract.alert import decode_alert
from monitor.local.simulate import AgentProfile, Incident, generate
from monitor.settings import Settings
from tests.support.kafka_io import applied, read_topic, send
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 2, tzinfo=UTC)
AGENT, OTHER = "lead-qualifier", "support-triage"


def test_rollout_status_reads_the_live_workers_verdict(
        topics: Settings, app_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    incident = Incident("rollout_regression", AGENT, START + timedelta(days=1), share=0.3, signal="quality_drop")
    events = list(generate([AgentProfile(AGENT), AgentProfile(OTHER, rate_per_hour=30)], START, 2.0,
                           incidents=[incident], seed=21))
    lines = [(json.dumps(e, separators=(",", ":")).encode(), e["agent_id"]) for e in events]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line, _ in lines))
    total = asyncio.run(send(topics, lines))
    worker = WorkerProcess(topics, app_id, tmp_path / "worker.log")
    try:
        worker.wait_for(lambda s: applied(s) == total, 120, f"all {total} records applied")
        url = f"http://127.0.0.1:{worker.web_port}"
        assert main(["rollout", "status", "--agent", AGENT, "--url", url, "--json"]) == 4
        live = json.loads(capsys.readouterr().out)
        assert main(["rollout", "status", "--agent", OTHER, "--url", url]) == 1
        assert "no agent_version" in capsys.readouterr().err
        assert main(["rollout", "status", "--agent", "nobody", "--url", url]) == 1
        assert "nobody" in capsys.readouterr().err
        status, _ = worker.get("/rollout")
        assert status == 400
        published = [decode_alert(r.value) for r in asyncio.run(read_topic(topics, topics.topics.alerts))]
    finally:
        assert worker.stop() == 0
    assert main(["rollout", "status", "--agent", AGENT, "--events", str(path), "--json"]) == 4
    replayed = json.loads(capsys.readouterr().out)
    (lc,), (rc,) = live["comparisons"], replayed["comparisons"]
    assert (lc["baseline_version"], lc["candidate_version"]) == (rc["baseline_version"], rc["candidate_version"])
    worse = {r["signal"] for r in lc["signals"] if r["verdict"] == "worse"}
    assert "quality" in worse and worse == {r["signal"] for r in rc["signals"] if r["verdict"] == "worse"}
    pages = [a for a in published if a.rule == "rollout_regression" and a.state == "firing"]
    assert pages and pages[0].labels["candidate_version"] == "v8"
    # the worker is down now: the CLI says so, and a deploy pipeline does not read it as a verdict
    assert main(["rollout", "status", "--agent", AGENT, "--url", url, "--timeout", "1"]) == 1
    assert "unreachable" in capsys.readouterr().err
