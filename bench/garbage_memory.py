"""Memory under high-cardinality garbage: a producer that sends a fresh agent id, tool name, task id
and metric name with every event, through one partition's pipeline (pure, no Kafka). Prints the
resident memory and what the engine holds as the events go by: it must level off where the caps
(`detection.max_agents`, `max_tools_per_agent`, `max_metrics_per_agent`, `max_tasks_per_agent`)
stop it, with the refused events counted.

    .venv/bin/python bench/garbage_memory.py --events 1000000 [--max-agents 20000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.core.config import DetectionConfig  # noqa: E402
from monitor.core.engine import Engine  # noqa: E402
from monitor.core.partition import PartitionEngine  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--max-agents", type=int, default=DetectionConfig().max_agents)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second of event time")
    args = parser.parse_args()
    config = DetectionConfig(max_agents=args.max_agents)
    t0 = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
    part = PartitionEngine("agent-events", 0, lambda snap: Engine(config), max_event_bytes=512 * 1024, wall_now=t0)
    started = time.perf_counter()
    print(f"{'events':>10} {'agents':>7} {'refused':>9} {'dead letters':>12} {'RSS MiB':>8} {'s':>6}")
    step = max(1, args.events // 10)
    for i in range(args.events):
        t = t0 + i / args.rate
        when = datetime.fromtimestamp(t, tz=UTC).isoformat()
        if i % 2:
            ev = {"schema_version": 1, "kind": "execution", "event_id": f"g{i}", "occurred_at": when,
                  "agent_id": f"tenant-{i}", "execution_id": f"x{i}", "task_id": f"t{i}", "status": "completed",
                  "tool_calls": [{"tool": f"tool-{i}", "status": "error"}]}
        else:  # one busy agent with endless names
            ev = {"schema_version": 1, "kind": "outcome", "event_id": f"o{i}", "occurred_at": when,
                  "agent_id": "tenant-1", "execution_id": f"x{i}", "metric": f"metric-{i}", "value": 1.0}
        part.process(json.dumps(ev).encode(), None, i, int(t * 1000), t)
        if (i + 1) % step == 0:
            print(f"{i + 1:>10} {len(part.engine.agent_ids()):>7} {part.agents_refused:>9} {part.dead_letters:>12} "
                  f"{rss_mib():>8.0f} {time.perf_counter() - started:>6.0f}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
