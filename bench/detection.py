"""Detection benchmark: simulated scenarios through the backtest path (JSON lines -> decode ->
reorder -> Engine), with default settings.

Scenarios
- clean: two weeks, several agents, weekends, one 24 h 3x volume surge (and a 0.5x dip): counts
  false P1/P2 alerts per agent-week (P3 `floating_model_label` is not a false alarm: it is a
  finding about configuration, and clean agents use pinned models anyway);
- one per catalogue rule, abrupt (full effect at onset) and, for the statistical rules, gradual
  (the effect ramps in linearly over 3 h): 9 days of history, onset on a weekday between 09:00 and
  17:00 UTC (seeded), incident agent at ~50 executions/hour; recall, time to detect (first firing
  alert of the rule for the incident agent, from onset), and false P1/P2 alerts (any P1/P2 before
  onset, or on another agent);
- large abrupt rises of the escalation share (10 % -> 50 %) and of the repeat share (4 % -> 40 %),
  the kind of change that should page within 30 minutes;
- targets (`--part targets`): the issue's two paced cases, one tool's error share 1 % -> 25 % at
  ~40 calls/hour and a 0/1 outcome 95 % -> 80 % at ~35 outcomes/hour (outcomes arrive 0.5-3 h
  after their execution), each beside the delay of an oracle: a CUSUM that knows both shares
  exactly, with the rule's whole share of the false-alarm budget (its window tests' half and its
  CUSUM's), on the same arrival process
  (median of 400 simulations);
- sustained (`--part sustained`): for the statistical rules, an abrupt incident that lasts 3 days
  (nights and a weekend-free stretch included) and then ends: firings per incident (one page is
  right; each further firing is a re-page of the same incident) and the resolve's delay after
  the end.

Run:  .venv/bin/python bench/detection.py [--seeds N] [--agents N]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.cusum import bernoulli_kl, cusum_threshold  # noqa: E402
from monitor.contract.alert import Alert  # noqa: E402
from monitor.contract.catalogue import RULES  # noqa: E402
from monitor.core.config import DetectionConfig, RuleThresholds  # noqa: E402
from monitor.core.engine import Engine  # noqa: E402
from monitor.core.replay import replay  # noqa: E402
from monitor.local.simulate import AgentProfile, Incident, Surge, default_agents, generate  # noqa: E402

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
GRADUAL = {
    "quality_drop", "tool_error_rate", "repeat_task_rate_rise", "escalation_rate_rise", "token_cost_spike",
    "task_duration_rise", "business_metric_decline", "latency_spike",
}


def lines_of(events: Iterable[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(e, separators=(",", ":")).encode() for e in events]


def run(events: list[bytes], config: DetectionConfig | None = None) -> list[Alert]:
    return replay(events, Engine(config)).alerts


def serious(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.state == "firing" and a.severity in ("P1", "P2")]


def clean(seed: int, n_agents: int, rate: float = 50.0) -> tuple[int, float, list[Alert], int]:
    agents = default_agents(n_agents, rate, seed=seed)
    surges = [
        Surge(None, START + timedelta(days=8), 24, 3.0),  # Tuesday of week 2, all agents
        Surge(agents[0].agent_id, START + timedelta(days=10, hours=10), 8, 0.5),
    ]
    events = lines_of(generate(agents, START, 14, surges=surges, seed=seed))
    alerts = run(events)
    return len(events), n_agents * 2.0, serious(alerts), sum(a.state == "firing" for a in alerts)


@dataclass
class Outcome:
    rule: str
    ramp_h: float
    detected: bool
    ttd_min: float | None
    false: list[Alert]
    onset: datetime
    summary: str


# large abrupt rises of a share: (usual share, share from the onset)
LARGE = {"escalation_rate_rise": (0.10, 0.50), "repeat_task_rate_rise": (0.04, 0.40)}


def incident(rule: str, seed: int, n_agents: int, ramp_h: float, large: bool = False, rate: float = 50.0) -> Outcome:
    rng = random.Random(f"{rule}-{seed}-{ramp_h}")
    agents = default_agents(n_agents, rate, seed=seed)
    target = agents[0]
    target.rate_per_hour = rate
    magnitude = None
    if large:
        usual, magnitude = LARGE[rule]
        if rule == "escalation_rate_rise":
            target.escalation = usual
        else:
            target.repeat = usual
    day = 8 + rng.randrange(2)  # Tuesday or Wednesday of week 2
    onset = START + timedelta(days=day, hours=rng.uniform(9, 17))
    inc = Incident(rule=rule, agent_id=None if rule == "invalid_events" else target.agent_id, onset=onset,
                   ramp_h=ramp_h, magnitude=magnitude)
    horizon_h = 8.0
    days = (onset - START).total_seconds() / 86400 + horizon_h / 24
    config = None
    if rule == "spend_budget":
        # explicit budget (auto budgets need a week of spend): ~3x the agent's usual daily spend
        config = DetectionConfig(agents={target.agent_id: {"daily_budget_usd": 3.0 * usual_daily(target)}})
    events = lines_of(generate(agents, START, days, incidents=[inc], seed=seed))
    alerts = run(events, config)
    hits = [a for a in alerts if a.rule == rule and a.state == "firing" and a.at >= onset
            and (a.agent_id == inc.agent_id)]
    false = [a for a in serious(alerts) if a.at < onset or (a.agent_id not in (inc.agent_id, None))]
    ttd = (hits[0].at - onset).total_seconds() / 60 if hits else None
    return Outcome(rule, ramp_h, bool(hits), ttd, false, onset, hits[0].summary if hits else "")


def target_one(kind: str, seed: int, n_agents: int) -> tuple[float | None, float]:
    """(minutes from onset to the first page, observations of the tested kind per hour around
    the onset) of one paced target case (`targets`)."""
    rng = random.Random(f"target-{kind}-{seed}")
    agents = default_agents(n_agents, 50.0, seed=seed)
    target = agents[0]
    target.rate_per_hour = 50.0
    onset = START + timedelta(days=8, hours=rng.uniform(9, 15))
    if kind == "tool":
        target.tools = (("crm.update", 0.01, 0.8), ("search", 0.03, 1.5))
        inc = Incident("tool_error_rate", target.agent_id, onset, magnitude=0.25)
    else:
        target.outcome_metric, target.outcome_mean, target.outcome_share = "deal_closed", 0.95, 1.0
        inc = Incident("business_metric_decline", target.agent_id, onset, magnitude=1 - 0.80 / 0.95)
    events = list(generate(agents, START, (onset - START).total_seconds() / 86400 + 0.5, incidents=[inc], seed=seed))
    alerts = run(lines_of(events))
    hits = [a for a in alerts if a.rule == inc.rule and a.state == "firing" and a.agent_id == target.agent_id
            and a.at >= onset]
    lo, hi = (onset - timedelta(hours=3)).isoformat(), (onset + timedelta(hours=3)).isoformat()
    if kind == "tool":
        n = sum(sum(1 for c in e.get("tool_calls") or [] if c.get("tool") == "crm.update") for e in events
                if e.get("agent_id") == target.agent_id and lo <= e["occurred_at"] <= hi and e["kind"] == "execution")
    else:
        n = sum(1 for e in events if e.get("agent_id") == target.agent_id and e["kind"] == "outcome"
                and lo <= e["occurred_at"] <= hi)
    return ((hits[0].at - onset).total_seconds() / 60 if hits else None), n / 6.0


def oracle_delay_min(p0: float, p1: float, per_hour: float, entries: int, lag: tuple[float, float] | None,
                     rng: random.Random, years: float) -> float:
    """Minutes an oracle CUSUM (exact shares p0 -> p1, Poisson arrivals at `per_hour`) needs after
    the onset, at the run length the rule's own CUSUM bank gets (`years` for `entries` entries).
    `lag`: outcomes arrive uniformly lag[0]-lag[1] hours after the execution they report on."""
    arl = years * 8766 * per_hour * entries
    h = cusum_threshold(arl, bernoulli_kl(p0, p1))
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    s, t = 0.0, 0.0
    while True:
        t += rng.expovariate(per_hour)  # hours after the onset
        # with a lag: the share of outcomes arriving now whose execution came after the onset
        changed = lag is None or rng.random() < min(max((t - lag[0]) / (lag[1] - lag[0]), 0.0), 1.0)
        bad = rng.random() < (p1 if changed else p0)
        s = max(0.0, s + (up if bad else down))
        if s >= h:
            return t * 60


def targets(seeds: range, n_agents: int, only: set[str] | None = None) -> None:
    from monitor.core.config import RuleThresholds as _R

    years = _R().cusum_false_alarm_years / 2  # the oracle may spend the rule's whole share of the budget
    print("## paced targets (onset weekday 09-15 UTC, agent at ~50 executions/hour; minutes from onset)")
    print(f"{'case':<34} {'ttd median':>10} {'ttd max':>8} {'oracle median':>13} {'ratio':>6} {'target':>7}")
    cases = [c for c in [("tool", "crm.update errors 1 % -> 25 %", 0.01, 0.25, 2, None, 45),
                         ("outcome", "0/1 outcome 95 % -> 80 %", 0.05, 0.20, 1, (0.5, 3.0), 150)]
             if only is None or c[0] in only]
    for kind, label, p0, p1, entries, lag, goal in cases:
        got = [target_one(kind, seed, n_agents) for seed in seeds]
        ttds = [g[0] for g in got if g[0] is not None]
        rate = statistics.median(g[1] for g in got)
        rng = random.Random(f"oracle-{kind}")
        oracle = statistics.median(oracle_delay_min(p0, p1, rate, entries, lag, rng, years) for _ in range(400))
        med = statistics.median(ttds) if ttds else float("nan")
        print(f"{label:<34} {med:>10.0f} {max(ttds, default=float('nan')):>8.0f} {oracle:>13.0f} "
              f"{med / oracle:>6.2f} {goal:>7}   ({len(ttds)}/{len(got)} found; {rate:.0f} observations/hour)")
    print()


def sustained_one(rule: str, seed: int, n_agents: int, rate: float = 50.0,
                  duration_h: float = 72.0) -> tuple[int, float | None, float | None]:
    """(firings, minutes from onset to the first, minutes from the end to the last resolve) of one
    incident lasting `duration_h` hours, followed by 12 quiet hours."""
    rng = random.Random(f"sustained-{rule}-{seed}")
    agents = default_agents(n_agents, rate, seed=seed)
    target = agents[0]
    target.rate_per_hour = rate
    onset = START + timedelta(days=7, hours=rng.uniform(9, 17))  # Monday of week 2
    inc = Incident(rule=rule, agent_id=target.agent_id, onset=onset, duration_h=duration_h)
    end = onset + timedelta(hours=duration_h)
    days = (end - START).total_seconds() / 86400 + 0.5
    alerts = [a for a in run(lines_of(generate(agents, START, days, incidents=[inc], seed=seed)))
              if a.rule == rule and a.agent_id == target.agent_id and a.at >= onset]
    firings = [a for a in alerts if a.state == "firing"]
    resolves = [a for a in alerts if a.state == "resolved" and a.at >= end]
    ttd = (firings[0].at - onset).total_seconds() / 60 if firings else None
    ttr = (resolves[-1].at - end).total_seconds() / 60 if resolves and alerts[-1].state == "resolved" else None
    return len(firings), ttd, ttr


def sustained(seeds: range, n_agents: int, rules: list[str], rate: float = 50.0) -> None:
    print(f"## sustained incidents (3 days from a weekday 09-17 UTC onset, then 12 h clean; ~{rate:g} "
          "executions/hour)")
    print(f"{'rule':<26} {'pages median':>12} {'pages max':>9} {'ttd median':>10} {'resolved':>8} "
          f"{'resolve after end median':>24}")
    for rule in rules:
        res = [sustained_one(rule, seed, n_agents, rate) for seed in seeds]
        pages = [r[0] for r in res]
        ttds = [r[1] for r in res if r[1] is not None]
        ttrs = [r[2] for r in res if r[2] is not None]
        med_ttd = f"{statistics.median(ttds):.0f}" if ttds else "-"
        med_ttr = f"{statistics.median(ttrs):.0f} min" if ttrs else "-"
        print(f"{rule:<26} {statistics.median(pages):>12g} {max(pages):>9} {med_ttd:>10} "
              f"{len(ttrs):>3}/{len(res):<4} {med_ttr:>24}")
    print()


def usual_daily(profile: AgentProfile) -> float:
    """Rough usual daily spend of a simulated agent, measured on one clean weekday."""
    events = lines_of(generate([profile], START, 1, seed=0))
    eng = Engine(DetectionConfig(rules=RuleThresholds(auto_budget_factor=None)))
    replay(events, eng)
    return float(sum(eng._agents[profile.agent_id].spend_days.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2, help="seeds per scenario")
    parser.add_argument("--agents", type=int, default=4, help="agents per scenario")
    parser.add_argument("--rules", default="all", help="comma-separated rules (default all)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here")
    parser.add_argument("--part", choices=("all", "clean", "incidents", "sustained", "targets"), default="all")
    parser.add_argument("--cases", default="tool,outcome", help="--part targets: cases to run")
    parser.add_argument("--kinds", default="abrupt,large,ramp3h", help="incident kinds to run")
    parser.add_argument("--rate", type=float, default=50.0,
                        help="mean weekday executions/hour of the agents (and of the incident agent)")
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    t_start = time.perf_counter()

    if args.part in ("all", "clean"):
        clean_weeks(seeds, args.agents, args.rate)
    if args.part in ("all", "targets"):
        targets(seeds, args.agents, set(args.cases.split(",")))
    if args.part in ("all", "sustained"):
        sustained(seeds, args.agents, [r for r in (list(RULES) if args.rules == "all" else args.rules.split(","))
                                       if r in GRADUAL], args.rate)
    if args.part in ("all", "incidents"):
        incidents(seeds, args.agents, list(RULES) if args.rules == "all" else args.rules.split(","),
                  set(args.kinds.split(",")), args.rate)
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")
    return 0


def describe(a: Alert) -> str:
    m = a.metric
    return (f"{a.rule} {a.agent_id} {a.at:%a %H:%M}: {a.summary} [window {m.window}, n {m.n}, "
            f"statistic {getattr(m, 'statistic', None)}, p {getattr(m, 'p_value', None)}]")


def clean_weeks(seeds: range, n_agents: int, rate: float = 50.0) -> None:
    print(f"## clean weeks ({n_agents} agents at ~{rate:g} executions/hour x 2 weeks, weekends, 24 h 3x surge, "
          "8 h 0.5x dip)")
    total_false = 0
    total_agent_weeks = 0.0
    for seed in seeds:
        n_events, agent_weeks, false, firing = clean(seed, n_agents, rate)
        total_false += len(false)
        total_agent_weeks += agent_weeks
        print(f"seed {seed}: {n_events} events, {firing} firing alerts of any severity, {len(false)} P1/P2")
        for a in false:
            print(f"    false: {describe(a)}")
    print(f"false P1/P2 per agent-week on clean weeks: {total_false / total_agent_weeks:.3f} "
          f"({total_false} in {total_agent_weeks:g} agent-weeks)\n")


def incidents(seeds: range, n_agents: int, rules: list[str], only: set[str], rate: float = 50.0) -> None:
    print(f"## incidents (onset weekday 09-17 UTC, ~{rate:g} executions/hour; ttd = minutes from onset)")
    print(f"{'rule':<26} {'kind':<8} {'recall':>7} {'ttd median':>10} {'ttd max':>8} {'false P1/P2':>11}")
    for rule in rules:
        kinds = [(0.0, False), (3.0, False)] if rule in GRADUAL else [(0.0, False)]
        if rule in LARGE:
            kinds.insert(1, (0.0, True))
        for ramp, large in kinds:
            kind = "large" if large else "abrupt" if ramp == 0 else f"ramp{ramp:g}h"
            if kind not in only:
                continue
            results = [incident(rule, seed, n_agents, ramp, large, rate) for seed in seeds]
            ttds = [r.ttd_min for r in results if r.ttd_min is not None]
            recall = sum(r.detected for r in results) / len(results)
            n_false = sum(len(r.false) for r in results)
            med = f"{statistics.median(ttds):.0f}" if ttds else "-"
            mx = f"{max(ttds):.0f}" if ttds else "-"
            print(f"{rule:<26} {kind:<8} {recall:>7.0%} {med:>10} {mx:>8} {n_false:>11}")
            for r in results:
                for a in r.false:
                    print(f"    false: {describe(a)}")


if __name__ == "__main__":
    sys.exit(main())
