"""`agentmon alerts run` as a process on the real local broker: JSON log lines of every decision with
its reason code on stderr, `/metrics` and `/healthz` on its own port (127.0.0.1), stopped by its PID."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.error import HTTPError, URLError

import pytest
from aiokafka import AIOKafkaProducer

from monitor.kafka.topics import create_topics
from monitor.local.broker import free_port
from monitor.settings import Settings
from tests.support.alert_factory import make_alert

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (127.0.0.1 in a test)
            return response.status, response.read().decode()
    except HTTPError as exc:
        return exc.code, exc.read().decode()
    except (URLError, ConnectionError, TimeoutError):
        return 0, ""


def wait_for(check: object, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


async def produce(settings: Settings, alerts: list[object]) -> None:
    producer = AIOKafkaProducer(**settings.kafka.client_options())
    await producer.start()
    try:
        for alert in alerts:
            await producer.send_and_wait(
                settings.topics.alerts,
                alert.to_json(),  # type: ignore[attr-defined]
                key=(alert.agent_id or "*").encode(),  # type: ignore[attr-defined]
            )
    finally:
        await producer.stop()


def test_alerts_run_logs_json_decisions_and_serves_metrics_and_healthz(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    asyncio.run(create_topics(kafka_settings))
    port = free_port()
    t = kafka_settings.topics
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTMON_")}
    env.update(
        {
            "AGENTMON_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.kafka.bootstrap_servers,
            "AGENTMON_TOPICS__ALERTS": t.alerts,
            "AGENTMON_TOPICS__SILENCES": t.silences,
            "AGENTMON_ALERTING__RECEIVERS": '[{"name": "console", "kind": "console"}]',
            "AGENTMON_ALERTING__DEFAULT_RECEIVER": "console",
            "AGENTMON_ALERTING__GROUP_WAIT_S": "30",  # P1 waits 5 s (group_wait_by_severity_s), P2 30 s
            "AGENTMON_ALERTING__NOTIFICATION_LOG_PATH": str(tmp_path / "nflog.sqlite3"),
            "AGENTMON_ALERTING__RUNBOOKS_DIR": str(REPO / "runbooks"),
            "AGENTMON_ALERTING__HTTP_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    stderr_path = tmp_path / "alerts.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli.main", "alerts", "run", "--group-id", "obs-test"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            assert wait_for(lambda: get(base + "/healthz")[0] == 200), stderr_path.read_text()[-2000:]
            p1 = make_alert("quality_drop", "support-bot")
            produced = time.monotonic()
            asyncio.run(produce(kafka_settings, [p1, make_alert("quality_drop", "support-bot", minutes=1)]))

            def notified() -> bool:
                # decided, then delivered once the log's "in flight" mark is acked by the broker
                text = get(base + "/metrics")[1]
                return (
                    'agentmon_alert_decisions_total{decision="notified",receiver="console"} 1.0' in text
                    and 'agentmon_notifications_delivered_total{kind="firing",receiver="console"} 1.0' in text
                )

            assert wait_for(notified), stderr_path.read_text()[-2000:]
            p1_latency = time.monotonic() - produced
            status, text = get(base + "/metrics")
            assert status == 200
            for name in (
                "agentmon_alerts_queue_depth",
                "agentmon_alerts_oldest_undelivered_age_seconds",
                "agentmon_alerts_last_loop_timestamp_seconds",
                'agentmon_notifications_delivered_total{kind="firing",receiver="console"} 1.0',
                'agentmon_notification_delivery_latency_seconds_count{receiver="console"} 1.0',
            ):
                assert name in text, name
            heartbeat = next(x for x in text.splitlines() if x.startswith("agentmon_alerts_last_loop_timestamp"))
            assert time.time() - float(heartbeat.split()[1]) < 5
            health = json.loads(get(base + "/healthz")[1])
            assert health["status"] == "ok" and health["queue_depth"] == 0
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0

    lines = [json.loads(x) for x in stderr_path.read_text().splitlines() if x.startswith("{")]
    decisions = [x for x in lines if "decision" in x]
    codes = {(x["decision"], x["reason"]) for x in decisions}
    assert ("notified", "first notification") in codes, decisions
    assert ("delivered", "first notification") in codes
    notified = next(x for x in decisions if x["decision"] == "notified")
    assert notified["receivers"] == ["console"] and notified["route"] == "default route"
    assert notified["fingerprint"] == p1.fingerprint and notified["severity"] == "P1"
    print(f"\nagentmon alerts run: P1 from the topic to the console receiver in {p1_latency:.1f} s (group wait 5 s)")
    assert p1_latency < 12, "a P1 does not wait the 30 s group wait"
