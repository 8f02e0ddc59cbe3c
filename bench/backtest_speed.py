"""Backtest speed and engine state size.

1. events/s of parse + observe + evaluate (`monitor.core.replay.replay` over JSON lines already in
   memory: decode with the contract's fast decoder `monitor.contract.wire.read_event`, reorder buffer,
   Engine.observe, every bucket-boundary evaluation, flush), on one core, median of `--runs` runs,
   two ways in turn: as `agentmon backtest` runs without `--rollups-out` (no hourly rollups, no
   review samples), and with the rollups (as with `--rollups-out`, and as the stream worker does);
   and three floors under the same loop: decoding alone; decoding and the replay's reorder loop
   with an engine that does nothing; the same with an engine that only adds each event into its
   agent's 5-minute bucket (dedup set, a few sums, per-call and per-tool counts: no lateness, no
   samples, no repeats, no windows, no checks). The last is a lower bound of any engine in
   Python fed one decoded event at a time, however it is shaped;
2. bytes of engine state per agent after the whole file (default ~1M events): the size of the
   JSON snapshot per agent, and the traced Python heap (tracemalloc) of the engine per agent,
   measured at 1/4, 1/2 and all of the file to show it does not grow with the event count.

Run:  .venv/bin/python bench/backtest_speed.py [--events-file F] [--agents 20] [--rate 300] [--days 4.2]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datetime import UTC, datetime  # noqa: E402

from monitor.core.config import DetectionConfig  # noqa: E402
from monitor.core.engine import Engine  # noqa: E402
from monitor.core.replay import replay  # noqa: E402
from monitor.local.simulate import default_agents, generate, write_jsonl  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events-file", type=Path, default=Path("/tmp/agentmon-bench-events.jsonl"))
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rate", type=float, default=300.0, help="mean executions/hour per agent")
    parser.add_argument("--days", type=float, default=4.2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()

    path: Path = args.events_file
    if args.regenerate or not path.exists():
        t = time.perf_counter()
        with path.open("w") as f:
            n = write_jsonl(generate(default_agents(args.agents, args.rate, seed=1),
                                     datetime(2026, 11, 2, tzinfo=UTC), args.days, seed=1), f)
        print(f"generated {n} events into {path} in {time.perf_counter() - t:.0f} s")
    lines = path.read_bytes().splitlines()
    size = sum(len(x) for x in lines) / len(lines)
    print(f"{len(lines)} events, {size:.0f} bytes per line on average, from {path}")

    variants = {"alerts only (agentmon backtest)": False, "with rollups (--rollups-out)": True}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    floors: dict[str, list[float]] = {name: [] for name in _FLOORS}
    for i in range(args.runs):
        for name, floor in _FLOORS.items():
            floors[name].append(floor(lines))
        for name, rollups in variants.items():
            gc.collect()
            eng = Engine(DetectionConfig(emit_rollups=rollups))
            t = time.perf_counter()
            result = replay(lines, eng)
            dt = time.perf_counter() - t
            rates[name].append(len(lines) / dt)
            print(f"run {i + 1}, {name}: {dt:.1f} s, {len(lines) / dt:,.0f} events/s; {result.events} events, "
                  f"{len(result.alerts)} alert state changes, {eng.counters['checks']} agent checks")
    if args.runs:
        for name, got in floors.items():
            print(f"median, floor, {name}: {statistics.median(got):,.0f} events/s")
        for name, got in rates.items():
            print(f"median, {name}: {statistics.median(got):,.0f} events/s (parse + observe + evaluate, one core)")

    # state size, with the heap traced (slower: not timed)
    gc.collect()
    tracemalloc.start()
    eng = Engine()
    base = tracemalloc.get_traced_memory()[0]
    bounds = [0, len(lines) // 4, len(lines) // 2, len(lines)]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        _continue(eng, lines[lo:hi])
        gc.collect()
        heap = tracemalloc.get_traced_memory()[0] - base
        snap = eng.snapshot()
        agents = snap["agents"]
        per_agent_json = sum(len(json.dumps(a, separators=(",", ":"))) for a in agents.values()) / len(agents)
        dedup_ids = len(snap["seen"]) + len(snap["seen_prev"])
        print(f"after {eng.counters['events']:,} events: {len(agents)} agents, snapshot "
              f"{per_agent_json / 1024:,.0f} KiB per agent (JSON) + {dedup_ids:,} dedup ids engine-wide; "
              f"traced heap {heap / len(agents) / 1024:,.0f} KiB per agent (dedup set included)")
        del snap, agents  # else the next heap figure would count this snapshot
    tracemalloc.stop()
    return 0


def _decode_only(lines: list[bytes]) -> float:
    """events/s of `read_event` alone, each event dropped (freed) before the next, as in a replay."""
    from monitor.contract.events import EventError
    from monitor.contract.wire import read_event

    gc.collect()
    t = time.perf_counter()
    for raw in lines:
        try:  # noqa: SIM105 - contextlib.suppress would add its own cost per event
            read_event(raw)
        except EventError:
            pass
    return len(lines) / (time.perf_counter() - t)


def _null_replay(lines: list[bytes]) -> float:
    """events/s of `replay` (decode, reorder buffer, the loop) into an engine that does nothing."""
    return _timed_replay(lines, _NullEngine())


def _additions_replay(lines: list[bytes]) -> float:
    """events/s of `replay` into an engine that only adds each event into its bucket."""
    return _timed_replay(lines, _AdditionsEngine())


def _timed_replay(lines: list[bytes], engine: object) -> float:
    gc.collect()
    t = time.perf_counter()
    replay(lines, engine)  # type: ignore[arg-type]
    return len(lines) / (time.perf_counter() - t)


class _NullEngine:
    """What `replay` calls on an engine, doing nothing."""

    counters = {"events": 0, "duplicates": 0, "late_folded": 0, "late_dropped": 0}

    def observe(self, event: object, t: float) -> list[object]:
        return []

    def observe_invalid(self, at: float | None = None) -> list[object]:
        return []

    def flush(self) -> list[object]:
        return []

    def take_rollups(self) -> list[object]:
        return []


class _AdditionsEngine(_NullEngine):
    """The least an engine does per event: dedup, find the agent's bucket, add the execution's
    fields (sums, logs for geometric means, a duration histogram bin, per-model and per-tool
    counts) or the outcome into it. Not an engine: no lateness, samples, repeats, score joins,
    windows, baselines or checks."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.agents: dict[str, dict[int, list[Any]]] = {}

    def observe(self, ev: Any, t: float) -> list[object]:
        eid = ev.event_id
        if eid in self.seen:
            return []
        self.seen.add(eid)
        b = int(t // 300)
        st = self.agents.get(ev.agent_id)
        if st is None:
            st = self.agents[ev.agent_id] = {}
        bk = st.get(b)
        if bk is None:
            bk = st[b] = [[0.0] * 32, {}, {}, {}, {}]
        s = bk[0]
        s[0] += 1.0
        kind = ev.kind
        if kind == "evaluation":
            s[6] += ev.score
            return []
        if kind != "execution":
            m = bk[4].get(ev.metric)
            if m is None:
                m = bk[4][ev.metric] = [0.0, 0.0, 0.0]
            m[0] += ev.value
            m[2] += 1.0
            return []
        s[{"completed": 1, "escalated": 2, "failed": 3}.get(ev.status, 4)] += 1.0
        q = ev.quality_score
        if q is not None:
            s[6] += q
            s[7] += q * q
            s[8] += 1.0
        tokens = 0
        models = bk[2]
        for call in ev.llm_calls or ():
            tokens += call.input_tokens + call.output_tokens
            models[call.model] = models.get(call.model, 0.0) + 1.0
        lt = math.log1p(tokens)
        s[13] += tokens
        s[14] += lt
        c = ev.cost_usd
        if c is not None:
            lc = math.log(c + 1e-6)
            s[9] += c
            s[11] += lc
            s[12] += lc * lc
        d = ev.duration_ms
        if d is not None:
            ld = math.log1p(d)
            s[20] += d
            s[21] += ld
            s[22] += ld * ld
            hb = int(ld * 8)
            bk[3][hb] = bk[3].get(hb, 0.0) + 1.0
        tools = bk[1]
        for tc in ev.tool_calls or ():
            v = tools.get(tc.tool)
            if v is None:
                v = tools[tc.tool] = [0.0, 0.0, 0.0]
            v[0] += 1.0
            v[1 if tc.status == "ok" else 2] += 1.0
        return []


_FLOORS = {
    "decode only (read_event, each event then freed)": _decode_only,
    "decode + reorder loop, an engine doing nothing": _null_replay,
    "decode + reorder loop + additions into buckets (no windows, no checks)": _additions_replay,
}


def _continue(eng: Engine, chunk: list[bytes]) -> None:
    """Feed more lines into the same engine (replay() flushes at its end; here the stream goes on).
    Rollups are output, not state: taken as they come, as the backtest and the worker do."""
    from monitor.contract.events import EventError
    from monitor.contract.wire import read_event

    for raw in chunk:
        try:
            eng.observe(read_event(raw))
        except EventError:
            eng.observe_invalid()
        eng.take_rollups()


if __name__ == "__main__":
    sys.exit(main())
