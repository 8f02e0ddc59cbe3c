"""Rollout verdicts against the single-baseline rules on simulated canaries.

Two studies, each through the whole engine (`Engine.observe`) on `agentmon simulate` streams of one
agent (50 executions/hour on weekdays, daily and weekly seasonality, late evaluations):

1. **Regressions**: a candidate version v8 on a share (5 %, 20 %, 50 %) of traffic from the onset
   (day 3.5, after the rules' 72 h of learning) is worse on one signal; for each, the delay from the
   onset to the first `rollout_regression` page and to the first page of the single-baseline rule of
   the same signal (or "never" within the horizon), over several seeds.
2. **Equal versions**: v8 behaves exactly as v7 (random shares 5-50 %); how many comparisons ever
   say `rollback` (a `rollout_regression` page), and how many reach `promote` by the end.
3. **Time to promote** equal versions on a busier agent (`--promote-rate` executions/hour, 20 %
   and 50 % canaries): the first hour at which `agentmon rollout status` would exit 0.

    .venv/bin/python bench/rollout_detection.py [--seeds 5] [--equal 200] [--horizon-days 4] [--promote-rate 400]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.contract.events import validate_event  # noqa: E402
from monitor.core.config import DetectionConfig  # noqa: E402
from monitor.core.engine import Engine  # noqa: E402
from monitor.local.simulate import AgentProfile, Incident, generate  # noqa: E402

T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
AGENT = "lead-qualifier"
SIGNALS = {  # simulated incident on the candidate -> (magnitude, the single-baseline rule)
    "escalation_rate_rise": (0.35, "escalation_rate_rise"),  # 15 % -> 35 %
    "quality_drop": (0.25, "quality_drop"),  # scores x 0.75
    "token_cost_spike": (1.8, "token_cost_spike"),  # tokens x 1.8
}


def run_one(share: float, signal: str, magnitude: float | None, seed: int, onset: datetime,
            days: float) -> tuple[dict[str, float | None], str, int]:
    inc = Incident("rollout_regression", AGENT, onset, magnitude=magnitude, share=share, signal=signal)
    eng = Engine(DetectionConfig())
    first: dict[str, float | None] = {}
    n = 0
    for data in generate([AgentProfile(AGENT)], T0, days, incidents=[inc], seed=seed):
        n += 1
        for a in eng.observe(validate_event(data)):
            if a.state == "firing" and a.rule not in first:
                first[a.rule] = (a.at - onset).total_seconds() / 3600
    for a in eng.flush():
        if a.state == "firing" and a.rule not in first:
            first[a.rule] = (a.at - onset).total_seconds() / 3600
    status = eng.rollout_status(AGENT)
    verdicts = [c["verdict"] for c in status["comparisons"]] or [h["final"] for h in status["ended"]]
    return first, (verdicts[-1] if verdicts else "none"), n


def time_to_promote(share: float, rate: float, seed: int, onset: datetime, days: float) -> tuple[float | None, int]:
    """Hours from the onset to the first hourly look at which equal versions get `promote`."""
    inc = Incident("rollout_regression", AGENT, onset, share=share, signal="none")
    eng = Engine(DetectionConfig())
    n = 0
    next_look = onset + timedelta(hours=1)
    for data in generate([AgentProfile(AGENT, rate_per_hour=rate)], T0, days, incidents=[inc], seed=seed):
        n += 1
        eng.observe(validate_event(data))
        wm = eng.watermark
        if wm is not None and wm >= next_look:
            next_look += timedelta(hours=1)
            try:
                comparisons = eng.rollout_status(AGENT)["comparisons"]
            except KeyError:
                continue
            if comparisons and comparisons[0]["verdict"] == "promote":
                return (wm - onset).total_seconds() / 3600, n
    return None, n


def fmt(delays: list[float | None]) -> str:
    found = [d for d in delays if d is not None]
    if not found:
        return f"never (0/{len(delays)})"
    med = statistics.median(d if d is not None else float("inf") for d in delays)
    return f"{med:.1f} h ({len(found)}/{len(delays)} found)" if med != float("inf") else \
        f"median never ({len(found)}/{len(delays)} found)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--equal", type=int, default=200, help="equal-version rollouts")
    ap.add_argument("--horizon-days", type=float, default=4.0)
    ap.add_argument("--promote-rate", type=float, default=400.0, help="executions/hour of the promote study")
    args = ap.parse_args()
    onset = T0 + timedelta(days=3, hours=12)
    days = 3.5 + args.horizon_days
    t_start = time.perf_counter()
    events = 0
    print(f"# regressions: onset {onset:%a %H:%M}, horizon {args.horizon_days:g} d, {args.seeds} seeds each")
    print("| candidate worse on | share | rollout_regression: median delay | single-baseline rule: median delay |")
    print("|---|---|---|---|")
    for signal, (magnitude, rule) in SIGNALS.items():
        for share in (0.05, 0.2, 0.5):
            ro: list[float | None] = []
            single: list[float | None] = []
            for seed in range(args.seeds):
                first, _, n = run_one(share, signal, magnitude, seed, onset, days)
                events += n
                ro.append(first.get("rollout_regression"))
                single.append(first.get(rule))
            print(f"| {signal} (x{magnitude:g}) | {share:.0%} | {fmt(ro)} | {rule}: {fmt(single)} |", flush=True)
    rng = random.Random(2026)
    rollbacks = promotes = holds = false_pages = 0
    eq_onset = T0 + timedelta(hours=12)
    for i in range(args.equal):
        share = rng.uniform(0.05, 0.5)
        first, verdict, n = run_one(share, "none", None, 1000 + i, eq_onset, 3.0)
        events += n
        false_pages += "rollout_regression" in first
        rollbacks += verdict == "rollback"
        promotes += verdict == "promote"
        holds += verdict == "hold"
    print(f"\n# equal versions: {args.equal} rollouts, shares 5-50 %, 2.5 days of comparison each")
    print(f"rollout_regression pages: {false_pages}; final verdicts: rollback {rollbacks}, "
          f"hold {holds}, promote {promotes}")
    print(f"\n# time to promote equal versions at {args.promote_rate:g} executions/hour, {args.seeds} seeds")
    for share in (0.2, 0.5):
        hours: list[float | None] = []
        for seed in range(args.seeds):
            h, n = time_to_promote(share, args.promote_rate, 2000 + seed, eq_onset, 4.0)
            events += n
            hours.append(h)
        print(f"share {share:.0%}: {fmt(hours)}")
    print(f"\n{events:,} events in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
