"""Observability of the alert pipeline: JSON decision lines with reason codes, /metrics and /healthz
served on 127.0.0.1 from a live pipeline (virtual time, scripted notifiers)."""

from __future__ import annotations

import io
import json
import logging
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.error import HTTPError

import pytest
from prometheus_client import CollectorRegistry

from alerts.clock import ManualClock
from alerts.config import AlertingConfig
from alerts.errors import DeliveryError
from alerts.metrics import AlertMetrics
from alerts.notification_log import SqliteNotificationLog
from alerts.observability import ObservabilityServer, PipelineCollector, health
from alerts.pipeline import AlertPipeline
from alerts.silences import MemorySilenceStore, new_silence, parse_matcher
from monitor.logs import JsonLogFormatter
from tests.support.alert_factory import T0, make_alert
from tests.support.fake_notifier import ScriptedNotifier

CONFIG = AlertingConfig.model_validate(
    {
        "group_wait_s": 30,
        "repeat_interval_s": 3600,
        "receivers": [{"name": "slack-default", "kind": "slack"}, {"name": "oncall", "kind": "console"}],
        "routes": [{"name": "p1", "severities": ["P1"], "receivers": ["oncall"]}],
        "retry": {"max_attempts": 3, "base_delay_s": 1, "defer_s": 120},
    }
)


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock(T0)
        self.silences = MemorySilenceStore()
        self.slack = ScriptedNotifier()
        self.oncall = ScriptedNotifier()
        self.metrics = AlertMetrics()
        self.pipeline = AlertPipeline(
            CONFIG,
            notifiers={"slack-default": self.slack, "oncall": self.oncall},
            notification_log=SqliteNotificationLog(tmp_path / "log.sqlite3"),
            silences=self.silences,
            clock=self.clock,
            metrics=self.metrics,
        )

    def after(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pipeline.tick()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("agentmon.alerts")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old)


def decisions(stream: io.StringIO) -> list[dict[str, object]]:
    return [row for row in map(json.loads, stream.getvalue().splitlines()) if "decision" in row]


def test_every_decision_is_a_json_line_with_its_reason_code(world: World, json_lines: io.StringIO) -> None:
    world.silences.put(
        new_silence(
            [parse_matcher("agent_id=c")], now=T0, duration=timedelta(hours=2), created_by="alice", comment="CHG-1"
        )
    )
    world.pipeline.receive(make_alert("tool_calls_all_failing", "a"))
    world.pipeline.receive(make_alert("tool_error_rate", "a", labels={"tool": "crm.update"}))
    world.pipeline.receive(make_alert("token_cost_spike", "b"))
    world.pipeline.receive(make_alert("token_cost_spike", "c"))
    world.after(30)
    world.pipeline.receive(make_alert("token_cost_spike", "b", minutes=1))  # same episode: deduplicated
    world.after(30)

    rows = decisions(json_lines)
    by = {(r["decision"], r["agent_id"], r.get("rule")) for r in rows}
    assert ("notified", "a", "tool_calls_all_failing") in by
    assert ("inhibited", "a", "tool_error_rate") in by
    assert ("silenced", "c", "token_cost_spike") in by
    assert ("deduplicated", "b", "token_cost_spike") in by
    assert ("delivered", "a", "tool_calls_all_failing") in by
    notified_p1 = next(r for r in rows if r["decision"] == "notified" and r["agent_id"] == "a")
    assert notified_p1["receivers"] == ["oncall"] and notified_p1["route"] == "route 'p1'"
    assert notified_p1["reason"] == "first notification"
    inhibited = next(r for r in rows if r["decision"] == "inhibited")
    assert inhibited["reason"] == "inhibited by tool_calls_all_failing/a"
    silenced = next(r for r in rows if r["decision"] == "silenced")
    assert str(silenced["reason"]).startswith("silenced by ") and "CHG-1" in str(silenced["why"])
    delivered = [r for r in rows if r["decision"] == "delivered"]
    assert {(r["receiver"], r["tries"]) for r in delivered} == {("oncall", 1), ("slack-default", 1)}
    assert all(r["level"] in ("info", "warning") and r["ts"].endswith("Z") for r in rows)  # type: ignore[union-attr]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (127.0.0.1 in a test)
            return response.status, response.read().decode()
    except HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served(world: World) -> Iterator[str]:
    registry = CollectorRegistry()
    registry.register(world.metrics.collector())
    registry.register(PipelineCollector(world.pipeline))
    server = ObservabilityServer("127.0.0.1", 0, registry, lambda: health(world.pipeline, 60)).start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def test_metrics_and_healthz_on_their_own_port(world: World, served: str) -> None:
    status, body = get(served + "/healthz")
    assert status == 503 and json.loads(body)["status"] == "starting"

    world.slack.fail(*[DeliveryError("HTTP 503", retryable=True) for _ in range(5)])
    world.pipeline.receive(make_alert("token_cost_spike", "b"))
    world.pipeline.receive(make_alert("quality_drop", "a"))
    world.after(30)  # the P1 to oncall goes out; the P2 to slack fails its pass (3 s of retries) and waits
    world.clock.advance(12)

    status, body = get(served + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok", "last_loop_age_s": 12.0, "queue_depth": 1}
    status, text = get(served + "/metrics")
    assert status == 200
    for line in (
        'agentmon_alert_decisions_total{decision="notified",receiver="oncall"} 1.0',
        'agentmon_alert_decisions_total{decision="notified",receiver="slack-default"} 1.0',
        'agentmon_alerts_queue_depth{receiver="slack-default"} 1.0',
        'agentmon_alerts_oldest_undelivered_age_seconds{receiver="slack-default"} 15.0',
        "agentmon_alerts_grouped 0.0",
        'agentmon_notification_retries_total{receiver="slack-default"} 2.0',
        'agentmon_notification_delivery_latency_seconds_count{receiver="oncall"} 1.0',
    ):
        assert line in text, line
    heartbeat = next(x for x in text.splitlines() if x.startswith("agentmon_alerts_last_loop_timestamp_seconds "))
    assert float(heartbeat.split()[1]) == (T0 + timedelta(seconds=33)).timestamp()

    world.clock.advance(60)  # the loop stopped: the dead-man's switch
    status, body = get(served + "/healthz")
    assert status == 503 and json.loads(body)["status"] == "stalled"
    assert get(served + "/nope")[0] == 404


def test_a_taken_port_is_loud_but_does_not_stop_the_alerts(
    world: World, served: str, caplog: pytest.LogCaptureFixture
) -> None:
    from alerts.runner import _serve
    from monitor.settings import Settings

    taken = int(served.rsplit(":", 1)[1])
    settings = Settings(alerting=CONFIG.model_copy(update={"http_port": taken}))
    assert _serve(settings, world.pipeline, world.pipeline.metrics) is None
    assert any(r.levelno == logging.ERROR and "NO /metrics AND /healthz" in r.getMessage() for r in caplog.records)
