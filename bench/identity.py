"""Behaviour fingerprint: the alerts and hourly rollups of a few simulated streams with incidents
(different seeds, rates and agent counts), as SHA-256 digests of their exact bytes.

Run it before and after a change that must not change behaviour (a restructure, a speed-up) and
compare the two outputs: they must be equal line for line. `--write FILE` keeps the output;
`--check FILE` compares with a kept one and exits 1 on any difference.

    .venv/bin/python bench/identity.py --write /tmp/before.txt   # on the old code
    .venv/bin/python bench/identity.py --check /tmp/before.txt   # on the new code

Checkpoints: `--snapshot-out FILE` writes the engine snapshot taken 60 % into the first stream;
`--snapshot-in FILE` restores one (written by another version of the code) and checks that the
rest of the stream then gives the same alerts as this code's own uninterrupted run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.cli.backtest import build_engine
from monitor.contract.wire import read_event
from monitor.core.engine import Engine
from monitor.core.replay import replay
from monitor.local.simulate import Incident, default_agents, generate

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday

#: (seed, agents, executions/hour, days, incidents as (rule, agent index, onset in days, hours))
STREAMS = [
    (1, 3, 50.0, 9.0, [("tool_calls_all_failing", 0, 8.4, 3.0), ("escalation_rate_rise", 1, 8.6, 8.0)]),
    (2, 2, 20.0, 10.0, [("quality_drop", 0, 8.5, None), ("token_cost_spike", 1, 9.0, None)]),
    (3, 4, 80.0, 8.5, [("latency_spike", 2, 8.1, 6.0), ("agent_silent", 3, 8.2, 5.0),
                       ("model_version_changed", 0, 7.9, None)]),
    (4, 2, 50.0, 9.0, [("repeat_task_rate_rise", 0, 8.3, None), ("business_metric_decline", 1, 8.0, None),
                       ("invalid_events", None, 8.7, 2.0)]),
]


def stream_lines(seed: int, n_agents: int, rate: float, days: float,
                 incidents: list[tuple[str, int | None, float, float | None]]) -> list[bytes]:
    agents = default_agents(n_agents, rate, seed=seed)
    injected = [Incident(rule=rule, agent_id=None if i is None else agents[i].agent_id,
                         onset=START + timedelta(days=onset), duration_h=hours)
                for rule, i, onset, hours in incidents]
    return [json.dumps(e, separators=(",", ":")).encode() for e in generate(agents, START, days,
                                                                              incidents=injected, seed=seed)]


def fingerprint(seed: int, n_agents: int, rate: float, days: float,
                incidents: list[tuple[str, int | None, float, float | None]]) -> tuple[str, str, int, int, int]:
    lines = stream_lines(seed, n_agents, rate, days, incidents)
    engine, max_bytes = build_engine(None, rollups=True)
    alerts, rollups = hashlib.sha256(), hashlib.sha256()
    n_rollups = 0

    def on_rollup(rollup: object) -> None:
        nonlocal n_rollups
        n_rollups += 1
        rollups.update(rollup.to_json() + b"\n")  # type: ignore[attr-defined]

    result = replay(lines, engine, on_rollup=on_rollup, max_event_bytes=max_bytes)
    for alert in result.alerts:
        alerts.update(alert.to_json() + b"\n")
    return alerts.hexdigest(), rollups.hexdigest(), len(lines), len(result.alerts), n_rollups


def observed(engine: Engine, lines: list[bytes]) -> list[bytes]:
    out = []
    for line in lines:
        try:
            event = read_event(line)
        except ValueError:
            continue
        out.extend(alert.to_json() for alert in engine.observe(event))
    return out


def snapshot_check(path: Path, write: bool) -> int:
    """Write the snapshot 60 % into the first stream, or continue from one and compare."""
    lines = stream_lines(*STREAMS[0])
    cut = len(lines) * 6 // 10
    if write:
        engine = Engine()
        observed(engine, lines[:cut])
        path.write_text(json.dumps(engine.snapshot()))
        print(f"snapshot after {cut} lines written to {path} ({path.stat().st_size} bytes)")
        return 0
    whole = Engine()
    observed(whole, lines[:cut])
    expected = observed(whole, lines[cut:]) + [a.to_json() for a in whole.flush()]
    restored = Engine.restore(json.loads(path.read_text()))
    got = observed(restored, lines[cut:]) + [a.to_json() for a in restored.flush()]
    if got != expected:
        print(f"DIFFERENT: {len(got)} alerts after restoring {path}, {len(expected)} without", file=sys.stderr)
        return 1
    print(f"restored {path}: the remaining {len(lines) - cut} lines give the same {len(got)} alerts")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--check", type=Path, default=None)
    parser.add_argument("--snapshot-out", type=Path, default=None)
    parser.add_argument("--snapshot-in", type=Path, default=None)
    args = parser.parse_args()
    if args.snapshot_out or args.snapshot_in:
        return snapshot_check(args.snapshot_out or args.snapshot_in, write=args.snapshot_out is not None)
    out = []
    for seed, n_agents, rate, days, incidents in STREAMS:
        a, r, n, na, nr = fingerprint(seed, n_agents, rate, days, incidents)
        line = f"seed={seed} agents={n_agents} rate={rate:g} lines={n} alerts={na} {a} rollups={nr} {r}"
        print(line, flush=True)
        out.append(line)
    text = "\n".join(out) + "\n"
    if args.write:
        args.write.write_text(text)
    if args.check:
        kept = args.check.read_text()
        if kept != text:
            print(f"DIFFERENT from {args.check}", file=sys.stderr)
            return 1
        print(f"identical to {args.check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
