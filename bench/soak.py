"""Soak: the chaos replay of the fault suite, round after round for as long as asked, on a local
broker this script starts (free ports, a temporary folder) and stops by PID.

Each round sends a fresh simulated stream with incidents (its own topics, consumer group and
seed) while two workers are SIGKILLed and restarted at random moments, then compares what they
produced with the backtest of the same events. Not part of CI (the suite runs one short round).

    .venv/bin/python bench/soak.py --minutes 10 [--kills-per-round 8] [--days 4] [--agents 6]

Prints one block per round and a total; exits 1 if any round differed from its backtest.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.kafka.topics import create_topics  # noqa: E402
from monitor.local.broker import LocalBroker, free_port  # noqa: E402
from monitor.local.simulate import Incident, default_agents, generate  # noqa: E402
from monitor.settings import KafkaSettings, LocalBrokerSettings, Settings, TopicSettings  # noqa: E402
from tests.support.chaos import records_of, run_chaos  # noqa: E402

START = datetime(2026, 11, 2, tzinfo=UTC)
RULES = ("tool_calls_all_failing", "quality_drop", "token_cost_spike", "tool_error_rate", "latency_spike")


def round_stream(seed: int, days: float, agents: int) -> list[tuple[bytes, str]]:
    profiles = default_agents(agents, 50.0, seed=seed)
    incidents = []
    for i, rule in enumerate(RULES[: min(len(RULES), agents)]):
        onset = START + timedelta(days=days - 1.0 + 0.1 * i) if rule != "tool_calls_all_failing" else \
            START + timedelta(days=1.4)
        incidents.append(Incident(rule=rule, onset=onset, agent_id=profiles[i].agent_id, duration_h=4))
    return records_of(list(generate(profiles, START, days, incidents=incidents, seed=seed)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--kills-per-round", type=int, default=8)
    parser.add_argument("--days", type=float, default=4.0)
    parser.add_argument("--agents", type=int, default=6)
    parser.add_argument("--rate", type=float, default=1500.0, help="records sent per second")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="agentmon-soak-"))
    broker = LocalBroker(LocalBrokerSettings(data_dir=workdir / "kafka", port=free_port(), controller_port=free_port()))
    broker.start()
    deadline = time.monotonic() + args.minutes * 60
    totals = {"rounds": 0, "records": 0, "kills": 0, "alerts": 0, "rollups": 0, "differed": 0}
    max_rss = 0.0
    try:
        seed = 1
        while time.monotonic() < deadline:
            suffix = uuid.uuid4().hex[:8]
            settings = Settings(
                kafka=KafkaSettings(bootstrap_servers=broker.bootstrap),
                topics=TopicSettings(events=f"agent-events-{suffix}", dlq=f"dlq-{suffix}", alerts=f"alerts-{suffix}",
                                     rollups=f"rollups-{suffix}", silences=f"silences-{suffix}",
                                     baseline_control=f"control-{suffix}", events_partitions=args.partitions))
            asyncio.run(create_topics(settings))
            round_dir = workdir / f"round-{seed}"
            round_dir.mkdir()
            records = round_stream(seed, args.days, args.agents)
            result = run_chaos(settings, f"soak-{suffix}", round_dir, records, seed=seed,
                               kills=args.kills_per_round, per_s=args.rate, partitions=args.partitions)
            print(f"round {seed} ({'equal' if result.equal else 'DIFFERED'}):")
            if not result.equal:
                differing = result.rollups_differing + result.alerts_missing + result.alerts_unexpected
                print(f"  differing: {differing[:5]}")
            for line in result.lines():
                print(f"  {line}")
            sys.stdout.flush()
            totals["rounds"] += 1
            totals["records"] += result.records
            totals["kills"] += result.kills
            totals["alerts"] += result.alerts_expected
            totals["rollups"] += result.rollups_expected
            totals["differed"] += not result.equal
            max_rss = max(max_rss, result.max_rss_mib)
            seed += 1
    finally:
        broker.stop()
    print(f"total: {totals['rounds']} rounds, {totals['records']} records, {totals['kills']} kills, "
          f"{totals['alerts']} alerts and {totals['rollups']} rollups compared, {totals['differed']} rounds differed; "
          f"largest worker RSS {max_rss:.0f} MiB")
    return 1 if totals["differed"] else 0


if __name__ == "__main__":
    sys.exit(main())
