"""The dashboards shipped in deploy/: Prometheus's own `promtool` accepts the config; a real
Prometheus (Debian's package, installed by scripts/test-deps.sh) scrapes a worker running on the
local broker with the shipped scrape job and answers a signal and a health metric through its HTTP
API; the Grafana dashboard queries only metrics that exist, through the provisioned data source."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.kafka.producer import AgentEventProducer
from monitor.kafka.topics import create_topics
from monitor.local.broker import free_port
from monitor.local.simulate import default_agents, generate
from monitor.settings import Settings
from tests.support.worker_process import WorkerProcess

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "agentmon.json"
#: the alert pipeline's counters (alerts/metrics.py): on the dashboard, not served by a worker
ALERT_PIPELINE = re.compile(r"agentmon_(alerts_(received|invalid|muted|dedup)|notification.*)_total")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:  # `make test` installs it (scripts/test-deps.sh): never a skip
        pytest.fail(f"{name} is not installed: run `make test-deps` (apt-get install -y prometheus)", pytrace=False)
    return found


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    exprs += [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    for panel in board["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    return exprs


def test_promtool_accepts_the_shipped_prometheus_config() -> None:
    done = subprocess.run([tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_uses_the_provisioned_data_source_and_shows_what_on_call_needs() -> None:
    board = json.loads(DASHBOARD.read_text())
    source = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "agentmon.yml").read_text())
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "agentmon.yml").read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == source["datasources"][0]["uid"]
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    # per agent: a row repeated over the agents, a panel per signal with its baseline
    signal_panel = next(p for p in panels if p.get("repeat") == "signal")
    assert {t["expr"] for t in signal_panel["targets"]} == {
        'agentmon_signal{agent="$agent", signal="$signal", series="current"}',
        'agentmon_signal{agent="$agent", signal="$signal", series="baseline"}'}
    assert any(p.get("repeat") == "agent" for p in panels if p["type"] == "row")
    # alerts as annotations; pipeline health: lag, DLQ, invalid share, checkpoint age, alert delivery
    assert any("agentmon_alerts_published_total" in a.get("expr", "") for a in board["annotations"]["list"])
    text = "\n".join(dashboard_exprs())
    for metric in ("agentmon_consumer_lag", "agentmon_dead_letters_total", "agentmon_checkpoint_age_seconds",
                   "agentmon_notifications_delivered_total", "agentmon_notifications_dead_total"):
        assert metric in text
    assert any("agentmon_dead_letters_total" in e and "agentmon_events_total" in e and "/" in e
               for e in dashboard_exprs())  # the invalid share


# ---- a real Prometheus scraping a real worker ------------------------------------------------

def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def query(port: int, promql: str) -> list[dict[str, Any]]:
    answer = http_json(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def wait_for_result(port: int, promql: str, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = query(port, promql)
        except OSError:
            found = []  # not listening yet
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"Prometheus had no result for {promql} within {timeout_s} s")


@pytest.fixture
def scraped_worker(kafka_settings: Settings, tmp_path: Path) -> Iterator[tuple[WorkerProcess, int, int]]:
    """A worker that has applied a day of two agents, and a Prometheus scraping it every second
    with the shipped job (its service discovery swapped for the worker's address). Both are
    stopped by PID."""
    asyncio.run(create_topics(kafka_settings))
    events = [json.dumps(e, separators=(",", ":")).encode()
              for e in generate(default_agents(2, 50.0, seed=5), datetime(2026, 11, 2, tzinfo=UTC), 1.0, seed=5)]

    async def send() -> None:
        async with AgentEventProducer(kafka_settings) as producer:
            for line in events:
                await producer.send_encoded(line, json.loads(line)["agent_id"])
            await producer.flush()

    asyncio.run(send())
    worker = WorkerProcess(kafka_settings, f"agentmon-test-{uuid.uuid4().hex[:8]}", tmp_path / "worker.log")
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        worker.wait_for(lambda s: sum(p["next_offset"] for p in s["partitions"].values()) == len(events), 90,
                        "all events applied")
        config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        config["global"]["scrape_interval"] = "1s"
        # the shipped worker job, pointed at this worker (the alert pipeline's job has no target here)
        (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "agentmon-worker"]
        assert {j["job_name"] for j in config["scrape_configs"]} == {"agentmon-worker", "agentmon-alerts"}
        config["scrape_configs"] = [job]
        del job["dns_sd_configs"]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{worker.web_port}"]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        with open(tmp_path / "prometheus.log", "wb") as log:
            prometheus = subprocess.Popen(
                [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        yield worker, port, len(events)
    finally:
        if prometheus is not None and prometheus.poll() is None:
            prometheus.send_signal(signal.SIGTERM)
            try:
                prometheus.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait(timeout=10)
        assert worker.stop() == 0


@pytest.mark.integration
def test_prometheus_scrapes_a_worker_and_answers_a_signal_and_a_health_metric(
    scraped_worker: tuple[WorkerProcess, int, int],
) -> None:
    worker, port, total = scraped_worker
    signals = wait_for_result(port, 'agentmon_signal{series="current"}', 60)
    assert {s["metric"]["job"] for s in signals} == {"agentmon-worker"}
    assert len({s["metric"]["agent"] for s in signals}) == 2
    assert {"agent", "signal", "series"} <= set(signals[0]["metric"])
    applied = wait_for_result(port, "sum(agentmon_events_total)", 30)
    assert 0 < float(applied[0]["value"][1]) <= total
    lag = wait_for_result(port, "sum(agentmon_consumer_lag)", 30)
    assert float(lag[0]["value"][1]) == 0.0  # the worker has applied everything
    ages = wait_for_result(port, "agentmon_checkpoint_age_seconds", 30)
    assert all(0 <= float(a["value"][1]) < 60 for a in ages)

    # every worker metric the dashboard queries is one the worker exposes (some have samples only
    # after an event of their kind: a restart, an alert)
    status, text = worker.get("/metrics")
    assert status == 200
    exposed = set()
    for kind, name in re.findall(r"^# TYPE (\S+) (\S+)$", text.decode(), flags=re.M):
        exposed.add(f"{kind}_total" if name == "counter" and not kind.endswith("_total") else kind)
    used = {m for e in dashboard_exprs() for m in re.findall(r"agentmon_[a-z_]+", e)}
    missing = {m for m in used if not ALERT_PIPELINE.fullmatch(m)} - exposed
    assert not missing, f"the dashboard queries metrics no worker exposes: {sorted(missing)}"
