"""Chaos replay: a simulated stream with incidents sent into the real local broker while a seeded
driver SIGKILLs and restarts two workers at random moments (during checkpoints, which run every
second here, and during the rebalances the kills cause); then everything the workers produced is
compared with `agentmon backtest` of the same events. Used by the integration suite (a short run)
and by `bench/soak.py` (as long as asked)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.contract.alert import Alert, decode_alert
from monitor.contract.rollup import Rollup
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.replay import replay
from monitor.settings import Settings
from tests.support.kafka_io import applied, counter, read_topic, send_paced
from tests.support.worker_process import WorkerProcess

CONFIG = DetectionConfig()


@dataclass
class ChaosResult:
    records: int = 0
    kills: int = 0
    restarts: int = 0
    kill_log: list[str] = field(default_factory=list)
    events_expected: int = 0
    events_counted: int = 0
    duplicates_expected: int = 0
    duplicates_counted: int = 0
    alerts_expected: int = 0  # distinct alert ids up to the cutoff
    alerts_delivered: int = 0
    alerts_missing: list[str] = field(default_factory=list)
    alerts_unexpected: list[str] = field(default_factory=list)
    alert_records: int = 0  # records on agent-alerts (a replay after a kill publishes some again)
    rollups_expected: int = 0
    rollups_delivered: int = 0
    rollups_differing: list[str] = field(default_factory=list)
    rollup_records: int = 0
    max_rss_mib: float = 0.0
    seconds: float = 0.0

    @property
    def equal(self) -> bool:
        return (self.events_counted == self.events_expected and self.duplicates_counted == self.duplicates_expected
                and not self.alerts_missing and not self.alerts_unexpected and not self.rollups_differing
                and self.rollups_delivered == self.rollups_expected)

    def lines(self) -> list[str]:
        return [
            f"records {self.records}, kills {self.kills}, restarts {self.restarts}, {self.seconds:.0f} s",
            f"events counted {self.events_counted} / expected {self.events_expected}; duplicates "
            f"{self.duplicates_counted} / {self.duplicates_expected}",
            f"alerts delivered {self.alerts_delivered} / expected {self.alerts_expected} (missing "
            f"{len(self.alerts_missing)}, unexpected {len(self.alerts_unexpected)}); records on agent-alerts "
            f"{self.alert_records} (replays republish with the same id)",
            f"rollups {self.rollups_delivered} / {self.rollups_expected}, differing {len(self.rollups_differing)}; "
            f"records on agent-rollups {self.rollup_records}",
            f"largest worker RSS {self.max_rss_mib:.0f} MiB",
        ]


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_chaos(settings: Settings, app_id: str, workdir: Path, records: list[tuple[bytes, str]], *,
              seed: int, kills: int, per_s: float = 1500.0, partitions: int | None = None,
              settle_timeout_s: float = 180.0) -> ChaosResult:
    """Send `records` paced while `kills` SIGKILLs hit the two workers at seeded random moments
    (each restarted 0-2 s later), then let one worker take every partition and compare."""
    rng = random.Random(seed)
    result = ChaosResult(records=len(records))
    started = time.monotonic()
    names = iter(f"w{i}" for i in range(10_000))

    def start() -> WorkerProcess:
        return WorkerProcess(settings, app_id, workdir / f"{next(names)}.log")

    workers = [start(), start()]
    sender = threading.Thread(target=lambda: asyncio.run(send_paced(settings, records, per_s)), daemon=True)
    send_s = len(records) / per_s
    try:
        sender.start()
        # the kills fall inside the sending time and a little after it (recovery while idle too)
        moments = sorted(rng.uniform(1.0, send_s + 5.0) for _ in range(kills))
        t0 = time.monotonic()
        for moment in moments:
            while time.monotonic() - t0 < moment:
                for w in workers:
                    result.max_rss_mib = max(result.max_rss_mib, _rss_mib(w.proc.pid))
                time.sleep(0.1)
            victim = rng.randrange(2)
            workers[victim].kill()
            result.kills += 1
            result.kill_log.append(f"{time.monotonic() - t0:.1f}s kill worker {victim}")
            time.sleep(rng.uniform(0.0, 2.0))
            workers[victim] = start()
            result.restarts += 1
        sender.join(send_s * 4 + 120)
        if sender.is_alive():
            raise AssertionError("the sender did not finish")
        # one worker leaves cleanly once it is up; the other takes every partition and every record
        for w in workers:
            w.wait_for(lambda s: True, 90, "the restarted worker serves /state")
        assert workers[0].stop() == 0
        want = partitions or settings.topics.events_partitions
        state = workers[1].wait_for(lambda s: len(s["partitions"]) == want and applied(s) == len(records),
                                    settle_timeout_s, "the last worker owns every partition and applied every record")
        result.max_rss_mib = max(result.max_rss_mib, _rss_mib(workers[1].proc.pid))
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.stop()
    _compare(settings, records, state, result)
    result.seconds = time.monotonic() - started
    return result


def _compare(settings: Settings, records: list[tuple[bytes, str]], state: dict[str, Any],
             result: ChaosResult) -> None:
    rollups: list[Rollup] = []
    expected = replay((v for v, _ in records), Engine(CONFIG), on_rollup=rollups.append)
    result.events_expected, result.duplicates_expected = expected.events, expected.duplicates
    result.events_counted, result.duplicates_counted = counter(state, "events"), counter(state, "duplicates")

    marks = [time_of(p["watermark"]) for p in state["partitions"].values() if p["watermark"]]
    cutoff = (min(marks) - CONFIG.allowed_lateness_s) // CONFIG.bucket_s * CONFIG.bucket_s
    live_records = asyncio.run(read_topic(settings, settings.topics.alerts, quiet_s=3.0, limit_s=60.0))
    result.alert_records = len(live_records)
    live: list[Alert] = [decode_alert(r.value) for r in live_records]
    want = {a.alert_id for a in expected.alerts if a.at.timestamp() <= cutoff}
    got = {a.alert_id for a in live if a.at.timestamp() <= cutoff}
    result.alerts_expected, result.alerts_delivered = len(want), len(got & want)
    result.alerts_missing, result.alerts_unexpected = sorted(want - got), sorted(got - want)

    hour_cutoff = cutoff // 3600 * 3600 - 3600  # hours whose rollup a live worker has surely closed
    # compared as values: the order of keys inside a rollup's maps may differ with arrival order
    expected_rollups = {(r.agent_id, r.hour.timestamp()): r.model_dump() for r in rollups
                        if r.hour.timestamp() <= hour_cutoff}
    live_rollups: dict[tuple[str, float], dict[str, Any]] = {}
    rollup_records = asyncio.run(read_topic(settings, settings.topics.rollups, quiet_s=3.0, limit_s=60.0))
    result.rollup_records = len(rollup_records)
    for r in rollup_records:
        rollup = Rollup.model_validate_json(r.value)
        key = (rollup.agent_id, rollup.hour.timestamp())
        if key[1] > hour_cutoff:
            continue
        live_rollups[key] = rollup.model_dump()  # the last for its key (a late event updates an hour)
    result.rollups_expected = len(expected_rollups)
    result.rollups_delivered = sum(1 for k in expected_rollups if k in live_rollups)
    result.rollups_differing += [f"{k}" for k, v in expected_rollups.items() if not same(live_rollups.get(k, v), v)]
    result.rollups_differing += [f"{k}: not in the backtest" for k in live_rollups if k not in expected_rollups]


def same(a: Any, b: Any) -> bool:
    """Equal, floats up to 1e-9 relative: a mean summed in another order (the backtest reorders
    within the lateness, a live partition does not) may differ in its last bit. Counts are exact."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return bool(a == b)


def time_of(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def records_of(events: list[dict[str, Any]]) -> list[tuple[bytes, str]]:
    return [(json.dumps(e, separators=(",", ":")).encode(), e["agent_id"]) for e in events]
