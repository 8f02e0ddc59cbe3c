"""A/B of worker settings: `agentmon worker` under several environments, against the same
pre-loaded topic on one local broker, runs interleaved (these VMs are noisy: compare medians or
per-run ratios).

    .venv/bin/python bench/worker_ab.py --events 150000 --runs 3 \\
        wait100: wait1500:AGENTMON_WORKER__FETCH_MAX_WAIT_MS=1500

Each configuration is `NAME:VAR=VALUE,VAR=VALUE` (AGENTMON_ settings of the worker); the stream and
the timing are those of (c) in bench/throughput.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from throughput import START, preloaded_broker, simulated  # noqa: E402

from tests.support.worker_process import WorkerProcess  # noqa: E402


def parse(spec: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = spec.partition(":")
    return name, dict(a.split("=", 1) for a in assignments.split(",") if a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="NAME:VAR=VALUE,...")
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0, help="executions per hour per agent")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    configs = [parse(c) for c in args.configs]
    days = args.events / (args.agents * args.rate * 24) * 1.05
    records = simulated(args.agents, args.rate, START, days, seed=1)[: args.events]
    n = len(records)
    rates: dict[str, list[float]] = {name: [] for name, _ in configs}
    with tempfile.TemporaryDirectory(prefix="agentmon-worker-ab-") as tmp, preloaded_broker(
        Path(tmp) / "kafka", records, f"{args.agents} agents, {days:.1f} days",
    ) as settings:

        def applied(s: dict[str, Any]) -> int:
            return sum(p["next_offset"] for p in s["partitions"].values())

        for run in range(args.runs):
            for name, env in configs:
                worker = WorkerProcess(
                    settings, f"ab-{uuid.uuid4().hex[:6]}", Path(tmp) / f"{name}.log",
                    **{"AGENTMON_WORKER__CHECKPOINT_INTERVAL_S": "10", "AGENTMON_WORKER__TICK_INTERVAL_S": "15",
                       "AGENTMON_WORKER__SESSION_TIMEOUT_S": "10", "AGENTMON_WORKER__LOG_LEVEL": "warning",
                       **env})
                try:
                    started = worker.wait_for(lambda s: applied(s) > 0, 120, "first record applied")
                    t0, first = time.perf_counter(), applied(started)
                    worker.wait_for(lambda s: applied(s) >= n, 900, "all records applied")
                    rates[name].append((n - first) / (time.perf_counter() - t0))
                finally:
                    worker.stop()
                print(f"run {run + 1} {name}: {rates[name][-1]:,.0f} events/s", flush=True)
    base = rates[configs[0][0]]
    for name, values in rates.items():
        ratios = ", ".join(f"{v / b:.2f}" for v, b in zip(values, base, strict=True))
        print(f"{name}: median {statistics.median(values):,.0f} events/s; per run / {configs[0][0]}: {ratios}")


if __name__ == "__main__":
    main()
