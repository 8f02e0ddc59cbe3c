"""Realistic multi-agent event streams, with incidents injectable by rule name.

`generate(...)` is a pure, seeded generator of event dicts in arrival order: each agent's volume
follows a daily curve (quiet nights, a working-day peak) and a weekly one (weekends at a fraction
of weekdays), with optional surges; evaluations arrive minutes to an hour after their execution
and outcomes hours after; arrival order is slightly shuffled (`disorder_s`). One incident per
catalogue rule can be injected at an onset time, abrupt or ramped in over `ramp_h` hours
(a gradual drift), optionally confined to one task type (`Incident.task_type`; the default agents
have three, drawn from a random stream of their own). `agentmon simulate` writes the stream as
JSON lines.

Incidents (`Incident.rule`) and what they do to the agent from the onset:

===========================  ==================================================================
quality_drop                 quality scores (inline and late evaluations) x (1 - magnitude=0.35)
tool_error_rate              one tool's error/timeout share -> magnitude (0.35)
tool_calls_all_failing       every tool call fails (HTTP 401)
repeat_task_rate_rise        repeat-task share -> magnitude (0.20)
escalation_rate_rise         escalation share -> magnitude (0.35)
token_cost_spike             tokens (hence cost) per execution x magnitude (2.5)
task_duration_rise           steps per task x magnitude (1.8), duration with them
business_metric_decline      outcome metric mean x (1 - magnitude=0.4)
latency_spike                duration x magnitude (3.0) on a share of runs, steps unchanged
agent_silent                 the agent sends nothing
spend_budget                 tokens per execution x magnitude (6.0) (runaway loop)
model_version_changed        the provider serves a new checkpoint behind the same label
floating_model_label         the agent calls its model by a floating label
invalid_events               a share magnitude (0.2) of all events break the contract
rollout_regression           the agent runs version v7; from the onset a candidate v8 serves a
                             share (share=0.2) of its executions and behaves as if incident
                             `signal` (escalation_rate_rise; `none`: v8 equals v7) were active
                             at `magnitude` (that rule's default); shadow=1: v8 runs beside
                             every chosen execution on a copy (attribute deployment=shadow)
===========================  ==================================================================
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from monitor.contract.catalogue import RULES

DEFAULT_MAGNITUDE: dict[str, float] = {
    "quality_drop": 0.35,
    "tool_error_rate": 0.35,
    "tool_calls_all_failing": 1.0,
    "repeat_task_rate_rise": 0.20,
    "escalation_rate_rise": 0.35,
    "token_cost_spike": 2.5,
    "task_duration_rise": 1.8,
    "business_metric_decline": 0.4,
    "latency_spike": 3.0,
    "agent_silent": 1.0,
    "spend_budget": 6.0,
    "model_version_changed": 1.0,
    "floating_model_label": 1.0,
    "invalid_events": 0.2,
    "rollout_regression": 0.0,  # the signal's own default magnitude is used (`Incident.signal`)
}
#: the incidents a rollout's candidate version can carry (they change executions)
ROLLOUT_SIGNALS = ("quality_drop", "tool_error_rate", "tool_calls_all_failing", "repeat_task_rate_rise",
                   "escalation_rate_rise", "token_cost_spike", "task_duration_rise", "latency_spike",
                   "business_metric_decline")
BASELINE_VERSION, CANDIDATE_VERSION = "v7", "v8"


@dataclass(slots=True)
class AgentProfile:
    """Normal behaviour of one simulated agent."""

    agent_id: str
    rate_per_hour: float = 50.0  # mean over a weekday
    weekend_factor: float = 0.35
    escalation: float = 0.15
    repeat: float = 0.05
    failure: float = 0.02
    timeout: float = 0.01
    quality_mean: float = 0.82
    quality_sd: float = 0.10
    inline_quality_share: float = 0.5  # the rest is scored by late evaluations (most of it)
    evaluated_share: float = 0.9
    model: str = "gpt-4o-2024-08-06"
    resolved_model: str = "gpt-4o-2024-08-06"
    input_tokens: float = 3000.0  # median
    output_tokens: float = 400.0
    tokens_sigma: float = 0.5
    steps_mean: float = 6.0
    duration_ms: float = 8000.0  # median
    duration_sigma: float = 0.45
    tools: tuple[tuple[str, float, float], ...] = (("crm.update", 0.02, 1.0), ("search", 0.03, 1.5))
    outcome_metric: str | None = "lead_converted"
    outcome_mean: float = 0.3
    outcome_share: float = 0.6
    peak_hour_utc: float = 14.0
    task_types: tuple[tuple[str, float], ...] = ()  # (name, share); drawn from a stream of their own


@dataclass(slots=True)
class Incident:
    rule: str
    agent_id: str | None
    onset: datetime
    magnitude: float | None = None
    ramp_h: float = 0.0  # 0: abrupt; else the effect grows linearly to full over ramp_h hours
    duration_h: float | None = None  # None: until the end
    share: float | None = None  # rollout_regression: the candidate's share of executions (default 0.2)
    signal: str | None = None  # rollout_regression: the candidate's incident, "none" for an equal version
    shadow: bool = False  # rollout_regression: the candidate runs in shadow beside production
    task_type: str | None = None  # only executions of this task type are affected (None: all)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"incident: unknown rule {self.rule!r}; known: {', '.join(sorted(RULES))}")
        if self.rule == "rollout_regression":
            if self.signal is None:
                self.signal = "escalation_rate_rise"
            if self.signal != "none" and self.signal not in ROLLOUT_SIGNALS:
                raise ValueError(f"rollout signal {self.signal!r}: one of none, {', '.join(ROLLOUT_SIGNALS)}")
            if self.share is None:
                self.share = 0.2
            if not 0 < self.share <= 1:
                raise ValueError(f"rollout share {self.share} is not in (0, 1]")
            if self.magnitude is None:
                self.magnitude = DEFAULT_MAGNITUDE.get(self.signal, 0.0)
        elif self.share is not None or self.signal is not None or self.shadow:
            raise ValueError("share, signal and shadow are options of rollout_regression")
        if self.magnitude is None:
            self.magnitude = DEFAULT_MAGNITUDE[self.rule]

    def level(self, t: float) -> float:
        """0 (no effect) .. 1 (full effect) at event time t."""
        start = self.onset.timestamp()
        if t < start:
            return 0.0
        if self.duration_h is not None and t >= start + self.duration_h * 3600:
            return 0.0
        if self.ramp_h <= 0:
            return 1.0
        return min(1.0, (t - start) / (self.ramp_h * 3600))


@dataclass(slots=True)
class Surge:
    agent_id: str | None
    start: datetime
    hours: float
    factor: float


@dataclass(slots=True)
class _AgentRun:
    profile: AgentProfile
    recent_completed: deque[str] = field(default_factory=lambda: deque(maxlen=300))
    task_seq: int = 0


#: the task types of `default_agents` (no draw from the profiles' random stream: fixed)
DEFAULT_TASK_TYPES: tuple[tuple[str, float], ...] = (("billing", 0.4), ("onboarding", 0.35), ("general", 0.25))


def default_agents(n: int, rate_per_hour: float = 50.0, seed: int = 0) -> list[AgentProfile]:
    """`n` agents with varied but normal behaviour."""
    rng = random.Random(seed)
    names = ["lead-qualifier", "support-triage", "invoice-extractor", "crm-enricher", "ticket-router",
             "contract-reviewer", "email-drafter", "kyc-checker"]
    models = [("gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
              ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022"),
              ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18")]
    out = []
    for i in range(n):
        name = names[i % len(names)] + ("" if i < len(names) else f"-{i // len(names)}")
        model, resolved = models[i % len(models)]
        out.append(AgentProfile(
            agent_id=name,
            rate_per_hour=rate_per_hour * rng.uniform(0.7, 1.4),
            escalation=rng.uniform(0.08, 0.2),
            repeat=rng.uniform(0.02, 0.07),
            quality_mean=rng.uniform(0.7, 0.9),
            model=model, resolved_model=resolved,
            input_tokens=rng.uniform(1500, 5000), steps_mean=rng.uniform(3, 10),
            duration_ms=rng.uniform(4000, 20000),
            tools=(("crm.update", rng.uniform(0.005, 0.04), 1.0), ("search", rng.uniform(0.005, 0.04), 1.5)),
            outcome_metric=["lead_converted", "ticket_resolved", "field_correct"][i % 3],
            outcome_mean=rng.uniform(0.2, 0.8),
            peak_hour_utc=rng.uniform(11, 17),
            task_types=DEFAULT_TASK_TYPES,
        ))
    return out


def _daily_shape(hour: float, peak: float) -> float:
    """Relative traffic at an hour of day: ~0.15 at night, 1.7 at the peak (mean ~1)."""
    x = math.cos((hour - peak) / 24 * 2 * math.pi)
    return 0.15 + 0.85 * (1 + x) ** 1.6 / 1.52


def _fmt(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds")


def generate(
    agents: list[AgentProfile],
    start: datetime,
    days: float,
    *,
    incidents: list[Incident] = (),  # type: ignore[assignment]
    surges: list[Surge] = (),  # type: ignore[assignment]
    seed: int = 0,
    disorder_s: float = 30.0,
    duplicate_share: float = 0.001,
) -> Iterator[dict[str, Any]]:
    """Events as dicts in arrival order (slightly shuffled within `disorder_s`)."""
    rng = random.Random(seed)
    # task types come from their own stream, so that every other field of a stream stays what it
    # was before agents had task types
    type_rng = random.Random(f"task-type/{seed}")
    runs = {a.agent_id: _AgentRun(a) for a in agents}
    t0 = start.timestamp()
    end = t0 + days * 86400
    pending: list[tuple[float, int, dict[str, Any]]] = []  # future evaluations / outcomes by time
    seq = 0
    by_rule: dict[str, list[Incident]] = {}
    for inc in incidents:
        by_rule.setdefault(inc.rule, []).append(inc)
    # versions are drawn from their own generator: a stream with a rollout differs from the same
    # stream without one only in the agent's executions' versions and the candidate's behaviour
    vrng = random.Random(seed * 1_000_003 + 17)
    rollouts = {inc.agent_id: inc for inc in by_rule.pop("rollout_regression", ())}

    def lvl(rule: str, agent: str, t: float, task_type: str | None = None) -> float:
        for inc in by_rule.get(rule, ()):
            if (inc.agent_id is None or inc.agent_id == agent) and \
                    (inc.task_type is None or inc.task_type == task_type):
                v = inc.level(t)
                if v > 0:
                    return v
        return 0.0

    def mag(rule: str) -> float:
        return by_rule[rule][0].magnitude or 0.0

    shadow_runs: dict[str, _AgentRun] = {}
    hour_t = t0
    while hour_t < end:
        batch: list[tuple[float, int, dict[str, Any]]] = []
        for run in runs.values():
            p = run.profile
            a = p.agent_id
            mid = hour_t + 1800
            dt = datetime.fromtimestamp(mid, tz=UTC)
            rate = p.rate_per_hour * _daily_shape(dt.hour + dt.minute / 60, p.peak_hour_utc)
            if dt.weekday() >= 5:
                rate *= p.weekend_factor
            for s in surges:
                if (s.agent_id is None or s.agent_id == a) and s.start.timestamp() <= mid < \
                        s.start.timestamp() + s.hours * 3600:
                    rate *= s.factor
            count = _poisson(rng, rate)
            # in time order: a repeat re-runs a task completed before it in event time, as in life
            # (drawn in random order, the repeat share the engine sees climbed within each hour)
            for t in sorted(hour_t + rng.random() * 3600 for _ in range(count)):
                if t >= end:
                    continue
                tt = _task_type(type_rng, p.task_types)
                if lvl("agent_silent", a, t, tt) > 0:
                    continue
                seq += 1
                roll = rollouts.get(a) or rollouts.get(None)
                cand = roll is not None and roll.level(t) > 0 and vrng.random() < (roll.share or 0.0)
                shadow = roll is not None and roll.shadow
                typed_lvl = (lambda r, a_, t_, tt=tt: lvl(r, a_, t_, tt))  # noqa: E731
                ev, later = _execution(rng, run, t, seq, *_version_effect(roll, cand and not shadow, typed_lvl, mag))
                if roll is not None:
                    ev["agent_version"] = CANDIDATE_VERSION if cand and not shadow else BASELINE_VERSION
                if tt is not None:
                    ev["task_type"] = tt
                batch.append((t + rng.random() * disorder_s, seq, ev))
                for lt, lev in later:
                    seq += 1
                    heapq.heappush(pending, (lt, seq, lev))
                if cand and shadow:  # the candidate re-does this request beside production
                    seq += 1
                    sev, slater = _execution(vrng, shadow_runs.setdefault(a, _AgentRun(p, task_seq=10**9)), t, seq,
                                             *_version_effect(roll, True, typed_lvl, mag))
                    if tt is not None:
                        sev["task_type"] = tt
                    sev["agent_version"] = CANDIDATE_VERSION
                    sev["attributes"] = {"deployment": "shadow"}
                    batch.append((t + vrng.random() * disorder_s, seq, sev))
                    for lt, lev in slater:
                        seq += 1
                        heapq.heappush(pending, (lt, seq, lev))
        while pending and pending[0][0] < hour_t + 3600:
            lt, s_, lev = heapq.heappop(pending)
            if lt < end:
                batch.append((lt + rng.random() * disorder_s, s_, lev))
        batch.sort(key=lambda x: (x[0], x[1]))
        for arrival, _, ev in batch:
            share = 0.0
            for inc in by_rule.get("invalid_events", ()):
                share = max(share, inc.level(arrival) * (inc.magnitude or 0.0))
            if share and rng.random() < share:
                yield _broken(rng, ev)
                continue
            yield ev
            if duplicate_share and rng.random() < duplicate_share:
                yield ev  # producer retry: same event_id, counts once
        hour_t += 3600


def _version_effect(roll: Incident | None, candidate: bool, lvl: Any, mag: Any) -> tuple[Any, Any]:
    """The incident level and magnitude functions of one execution: a rollout's candidate behaves
    as if its `signal` incident were fully active."""
    if roll is None or not candidate or roll.signal in (None, "none"):
        return lvl, mag
    signal, magnitude = roll.signal, roll.magnitude

    def cand_lvl(rule: str, agent: str, t: float) -> float:
        return 1.0 if rule == signal else lvl(rule, agent, t)

    def cand_mag(rule: str) -> float:
        return (magnitude or 0.0) if rule == signal else mag(rule)

    return cand_lvl, cand_mag
def _task_type(rng: random.Random, types: tuple[tuple[str, float], ...]) -> str | None:
    if not types:
        return None
    u = rng.random() * sum(w for _, w in types)
    for name, w in types:
        u -= w
        if u < 0:
            return name
    return types[-1][0]


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    threshold = math.exp(-lam)
    k, prod = 0, rng.random()
    while prod > threshold:
        k += 1
        prod *= rng.random()
    return k


def _broken(rng: random.Random, ev: dict[str, Any]) -> dict[str, Any]:
    bad = dict(ev)
    choice = rng.randrange(3)
    if choice == 0:
        bad["occurred_at"] = bad["occurred_at"][:23]  # naive timestamp
    elif choice == 1:
        bad.pop("agent_id", None)
    else:
        bad["schema_version"] = "one"
    return bad


def _execution(
    rng: random.Random, run: _AgentRun, t: float, seq: int, lvl: Any, mag: Any,
) -> tuple[dict[str, Any], list[tuple[float, dict[str, Any]]]]:
    p = run.profile
    a = p.agent_id
    # status
    esc = p.escalation
    if (v := lvl("escalation_rate_rise", a, t)) > 0:
        esc = esc + (mag("escalation_rate_rise") - esc) * v
    u = rng.random()
    if u < esc:
        status = "escalated"
    elif u < esc + p.failure:
        status = "failed"
    elif u < esc + p.failure + p.timeout:
        status = "timeout"
    else:
        status = "completed"
    # task: a repeat re-runs a recently completed task
    rep = p.repeat
    if (v := lvl("repeat_task_rate_rise", a, t)) > 0:
        rep = rep + (mag("repeat_task_rate_rise") - rep) * v
    if run.recent_completed and rng.random() < rep:
        task_id = run.recent_completed[-1 - rng.randrange(min(len(run.recent_completed), 20))]
    else:
        run.task_seq += 1
        task_id = f"{a}-task-{run.task_seq}"
    if status == "completed":
        run.recent_completed.append(task_id)
    # tokens, cost
    tok_factor = 1.0
    if (v := lvl("token_cost_spike", a, t)) > 0:
        tok_factor *= 1 + (mag("token_cost_spike") - 1) * v
    if (v := lvl("spend_budget", a, t)) > 0:
        tok_factor *= 1 + (mag("spend_budget") - 1) * v
    steps_factor = 1.0
    if (v := lvl("task_duration_rise", a, t)) > 0:
        steps_factor = 1 + (mag("task_duration_rise") - 1) * v
    steps = max(1, int(round(rng.gammavariate(4.0, p.steps_mean * steps_factor / 4.0))))
    n_calls = max(1, min(steps, 3))
    model, resolved = p.model, p.resolved_model
    if lvl("floating_model_label", a, t) > 0:
        model = model.split("-20")[0] if "-20" in model else model + "-latest"
    if lvl("model_version_changed", a, t) > 0:
        resolved = resolved.split("-20")[0] + "-2026-10-01"
    llm_calls = []
    per_call = rng.lognormvariate(0, p.tokens_sigma) * tok_factor * steps / p.steps_mean / n_calls
    for _ in range(n_calls):
        llm_calls.append({
            "provider": "anthropic" if model.startswith("claude") else "openai",
            "model": model, "resolved_model": resolved,
            "input_tokens": int(p.input_tokens * per_call), "output_tokens": int(p.output_tokens * per_call),
            "latency_ms": round(rng.lognormvariate(math.log(900), 0.4), 1),
        })
    # duration
    dur = rng.lognormvariate(math.log(p.duration_ms), p.duration_sigma) * steps / p.steps_mean
    if (v := lvl("latency_spike", a, t)) > 0 and rng.random() < 0.5 + 0.5 * v:
        dur *= 1 + (mag("latency_spike") - 1) * v
    # tools
    tool_calls = []
    all_fail = lvl("tool_calls_all_failing", a, t) > 0
    for i, (tool, err, per_exec) in enumerate(p.tools):
        k = _poisson(rng, per_exec)
        e = err
        if i == 0 and (v := lvl("tool_error_rate", a, t)) > 0:
            e = err + (mag("tool_error_rate") - err) * v
        for _ in range(k):
            if all_fail:
                tool_calls.append({"tool": tool, "status": "error", "http_status": 401, "error_type": "auth"})
            elif rng.random() < e:
                tool_calls.append({"tool": tool, "status": rng.choice(["error", "timeout"]),
                                   "latency_ms": round(rng.uniform(50, 3000), 1)})
            else:
                tool_calls.append({"tool": tool, "status": "ok", "latency_ms": round(rng.uniform(30, 400), 1)})
    # quality
    qf = 1.0
    if (v := lvl("quality_drop", a, t)) > 0:
        qf = 1 - mag("quality_drop") * v
    exec_id = f"x-{a}-{seq}"
    ev: dict[str, Any] = {
        "schema_version": 1, "kind": "execution", "event_id": f"e-{seq}", "occurred_at": _fmt(t),
        "agent_id": a, "execution_id": exec_id, "task_id": task_id, "status": status,
        "duration_ms": round(dur, 1), "steps": steps, "llm_calls": llm_calls,
    }
    if tool_calls:
        ev["tool_calls"] = tool_calls
    if status == "escalated":
        ev["escalation_reason"] = rng.choice(["low confidence", "policy", "missing data"])
    later: list[tuple[float, dict[str, Any]]] = []

    def score() -> float:
        return min(1.0, max(0.0, rng.gauss(p.quality_mean * qf, p.quality_sd)))

    if rng.random() < p.inline_quality_share:
        ev["quality_score"] = round(score(), 4)
    elif rng.random() < p.evaluated_share:
        lt = t + rng.lognormvariate(math.log(900), 0.6)
        later.append((lt, {
            "schema_version": 1, "kind": "evaluation", "event_id": f"ev-{seq}", "occurred_at": _fmt(lt),
            "agent_id": a, "execution_id": exec_id, "evaluator": "llm-judge", "score": round(score(), 4),
        }))
    if p.outcome_metric and status == "completed" and rng.random() < p.outcome_share:
        m = p.outcome_mean
        if (v := lvl("business_metric_decline", a, t)) > 0:
            m *= 1 - mag("business_metric_decline") * v
        lt = t + rng.uniform(1800, 3 * 3600)
        later.append((lt, {
            "schema_version": 1, "kind": "outcome", "event_id": f"oc-{seq}", "occurred_at": _fmt(lt),
            "agent_id": a, "metric": p.outcome_metric, "value": 1.0 if rng.random() < m else 0.0,
            "execution_id": exec_id,
        }))
    return ev, later


# =================================================================================================
# CLI
# =================================================================================================
def parse_incident(spec: str) -> Incident:
    """`RULE@ONSET[,agent=ID][,ramp=HOURS][,magnitude=X][,hours=H]`, ONSET in ISO 8601 (UTC if naive);
    rollout_regression also takes `share=S`, `signal=RULE|none`, `shadow=1`."""
    """`RULE@ONSET[,agent=ID][,ramp=HOURS][,magnitude=X][,hours=H][,task_type=NAME]`, ONSET in ISO 8601
    (UTC if naive)."""
    try:
        head, *opts = spec.split(",")
        rule, onset_s = head.split("@", 1)
        onset = datetime.fromisoformat(onset_s.replace("Z", "+00:00"))
        if onset.tzinfo is None:
            onset = onset.replace(tzinfo=UTC)
        kw: dict[str, Any] = {}
        for opt in opts:
            k, v = opt.split("=", 1)
            if k == "agent":
                kw["agent_id"] = v
            elif k == "ramp":
                kw["ramp_h"] = float(v)
            elif k == "magnitude":
                kw["magnitude"] = float(v)
            elif k == "hours":
                kw["duration_h"] = float(v)
            elif k == "share":
                kw["share"] = float(v)
            elif k == "signal":
                kw["signal"] = v
            elif k == "shadow":
                kw["shadow"] = v.lower() in ("1", "true", "yes")
            elif k == "task_type":
                kw["task_type"] = v
            else:
                raise ValueError(f"unknown option {k!r}")
        return Incident(rule=rule, agent_id=kw.pop("agent_id", None), onset=onset, **kw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--incident {spec!r}: {exc}") from None


def parse_surge(spec: str) -> Surge:
    """`START,hours=H,factor=F[,agent=ID]`."""
    try:
        head, *opts = spec.split(",")
        start = datetime.fromisoformat(head.replace("Z", "+00:00"))
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        kw = dict(o.split("=", 1) for o in opts)
        return Surge(agent_id=kw.get("agent"), start=start, hours=float(kw.get("hours", 24)),
                     factor=float(kw.get("factor", 3)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--surge {spec!r}: {exc}") from None


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="-", help="JSONL file to write, '-' for stdout (default)")
    parser.add_argument("--start", default="2026-11-02T00:00:00+00:00", help="first event time (ISO 8601)")
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--agents", type=int, default=4, help="number of simulated agents")
    parser.add_argument("--rate", type=float, default=50.0, help="mean executions per hour per agent")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--disorder", type=float, default=30.0, help="arrival shuffle in seconds")
    parser.add_argument(
        "--incident", action="append", type=parse_incident, default=[], metavar="RULE@ONSET[,opts]",
        help="inject an incident: RULE@ISO-TIME[,agent=ID][,ramp=HOURS][,magnitude=X][,hours=H][,task_type=NAME] "
        "(rollout_regression: also share=S, signal=RULE|none, shadow=1); "
        f"rules: {', '.join(RULES)}",
    )
    parser.add_argument("--surge", action="append", type=parse_surge, default=[], metavar="START,hours=H,factor=F",
                        help="multiply volume (no other change), e.g. 2026-11-10T00:00Z,hours=24,factor=3")


def run_simulate_command(args: argparse.Namespace) -> int:
    start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    agents = default_agents(args.agents, args.rate, seed=args.seed)
    names = {a.agent_id for a in agents}
    for inc in args.incident:
        if inc.agent_id is None and inc.rule != "invalid_events":
            inc.agent_id = agents[0].agent_id
        if inc.agent_id is not None and inc.agent_id not in names:
            print(f"agentmon simulate: --incident agent {inc.agent_id!r} is not one of {sorted(names)}",
                  file=sys.stderr)
            return 2
        end = start + timedelta(days=args.days)
        if not start <= inc.onset < end:
            print(f"agentmon simulate: --incident {inc.rule} starts at {inc.onset.isoformat()}, outside the simulated "
                  f"{start.isoformat()} .. {end.isoformat()} (set --start or --days)", file=sys.stderr)
            return 2
    for inc in args.incident:
        where = f" on {inc.agent_id}" if inc.agent_id else ""
        if inc.task_type:
            where += f" (task type {inc.task_type})"
        until = f" for {inc.duration_h:g} h" if inc.duration_h is not None else " to the end"
        print(f"agentmon simulate: injected {inc.rule}{where} from {inc.onset.isoformat()}{until}", file=sys.stderr)
    stream = generate(agents, start, args.days, incidents=args.incident, surges=args.surge, seed=args.seed,
                      disorder_s=args.disorder)
    n = 0
    out: TextIO
    if args.out == "-":
        out = sys.stdout
        n = write_jsonl(stream, out)
    else:
        with open(args.out, "w", encoding="utf-8") as out:
            n = write_jsonl(stream, out)
    print(f"agentmon simulate: {n} events, {len(agents)} agents ({', '.join(sorted(names))}), "
          f"{args.days:g} days from {start.isoformat()}", file=sys.stderr)
    return 0


def write_jsonl(events: Iterator[dict[str, Any]], out: TextIO) -> int:
    n = 0
    dumps = json.dumps
    for ev in events:
        out.write(dumps(ev, separators=(",", ":")))
        out.write("\n")
        n += 1
    return n


__all__ = [
    "AgentProfile", "Incident", "Surge", "add_simulate_arguments", "default_agents", "generate",
    "parse_incident", "parse_surge", "run_simulate_command", "write_jsonl",
]
