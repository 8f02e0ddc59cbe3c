"""Rollout verdicts: while two `agent_version`s of one agent run side by side (a canary, a gradual
rollout, a shadow deployment), the newer one is compared with the older one in the same hours.

The single-baseline rules compare an agent with its own past, so a canary's regression is diluted
by the traffic it does not serve (5 % of traffic: 20 times) and a gradual rollout teaches the
baseline the new behaviour as it goes. Here each version is its own sample, and the two samples
are compared hour by hour (`detectors.two_sample`): seasonality and volume cancel out, and a canary
is judged on its own executions.

Which versions are compared: the *incumbent* is the version first seen earliest among the active
versions that serve production (a shadow-only version never is); every other active version is a
*candidate* compared with it. A comparison ends when either side stops (`stopped`: rolled back, or fully rolled out), or
when the incumbent changes; its final verdict is kept (last 8).

Signals (each a sample of one value per execution, or per evaluation / outcome):

============================  ==============================================  =====================
escalation_rate               1 if escalated, else 0                          worse when higher
failure_rate                  1 if failed or timed out                        worse when higher
repeat_task_rate              1 if the task was completed within the window   worse when higher
tool_error_rate               1 if one of its tool calls failed (executions    worse when higher
                              with tool calls)
quality                       the score counted for the execution             worse when lower
cost_per_execution            log(cost USD)                                   worse when higher
steps                         log(1 + steps)                                  worse when higher
duration                      log(1 + duration ms)                            worse when higher
outcome:<metric>              the outcome value (<= 3 metrics)                 worse when lower
============================  ==============================================  =====================

Per signal, the always-valid interval of the difference (candidate - baseline) at
`rollout_false_verdicts / number of signals` gives the verdict: **worse** when it excludes 0 on the
harmful side and the estimate is at least the margin that matters (`rollout_margin_*`), **not
worse** when it excludes a harm of that margin, else undecided. The comparison's verdict:
`rollback` when a signal is worse, `promote` when every signal with enough data (and at least one)
is not worse, else `hold`.

Shadow executions (attribute `rollout_shadow_attribute` = `rollout_shadow_value`) are compared
here and nowhere else: the engine keeps them out of the buckets, baselines and other rules. Once an
agent has sent a shadow run, its production runs without `agent_version` are compared as the
version `UNVERSIONED` (a team may shadow-test v2 before it ever versioned v1).

Order: data enter a comparison when their bucket closes (never on arrival), and an hour is a
stratum, so the same events in any arrival order within the allowed lateness give the same
verdicts. Events behind the allowed lateness are not compared.

Memory per agent: nothing until an execution carries `agent_version`; then <= `rollout_max_versions`
versions, the open buckets' and the current hour's sums per version and signal, one
`StratifiedDifference` per candidate and signal, and an execution -> version memory (for late
evaluations and outcomes) of at most `rollout_max_executions` ids, kept while a comparison runs or
shadow traffic flows.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from detectors.two_sample import StratifiedDifference, always_valid_halfwidth
from monitor.core.config import RuleThresholds
from monitor.core.evidence import metric_fields
from monitor.core.rules.base import OK, Check, Evidence
from monitor.core.signals import LOG_EPS_USD

RULE = "rollout_regression"
#: the version of a shadow run that carries no `agent_version`
UNVERSIONED = "(unversioned)"
MAX_OUTCOME_METRICS = 3
MAX_HISTORY = 8
MAX_SAMPLES = 10

PROMOTE, HOLD, ROLLBACK = "promote", "hold", "rollback"
#: exit codes of `agentmon rollout status` (CONTRACT.md section 4)
EXIT_CODES = {PROMOTE: 0, HOLD: 3, ROLLBACK: 4}


@dataclass(frozen=True, slots=True)
class SignalSpec:
    name: str
    share: bool  # 0/1 values
    harm: float  # +1: higher is worse; -1: lower is worse
    scale: str  # how the margin is read: "rate" (absolute), "score" (absolute), "log" (ratio), "rel" (relative)
    label: str  # for a human


SIGNALS: dict[str, SignalSpec] = {s.name: s for s in (
    SignalSpec("escalation_rate", True, 1.0, "rate", "escalation rate"),
    SignalSpec("failure_rate", True, 1.0, "rate", "failure rate"),
    SignalSpec("repeat_task_rate", True, 1.0, "rate", "repeat-task rate"),
    SignalSpec("tool_error_rate", True, 1.0, "rate", "executions with a failed tool call"),
    SignalSpec("quality", False, -1.0, "score", "mean quality score"),
    SignalSpec("cost_per_execution", False, 1.0, "log", "cost per execution (geometric mean)"),
    SignalSpec("steps", False, 1.0, "log", "steps per execution (geometric mean)"),
    SignalSpec("duration", False, 1.0, "log", "duration (geometric mean)"),
)}


def spec_of(signal: str) -> SignalSpec:
    if signal.startswith("outcome:"):
        return SignalSpec(signal, False, -1.0, "rel", signal[len("outcome:"):] + " (outcome mean)")
    return SIGNALS[signal]


def margin_of(spec: SignalSpec, thr: RuleThresholds, base_mean: float | None) -> float:
    """The harm (in the signal's units) that matters: below it a difference is accepted."""
    if spec.scale == "rate":
        return thr.rollout_margin_rate
    if spec.scale == "score":
        return thr.rollout_margin_quality
    if spec.scale == "log":
        return math.log(thr.rollout_margin_ratio)
    return thr.rollout_margin_outcome * max(abs(base_mean or 0.0), 1e-9)


def natural(spec: SignalSpec, mean: float | None) -> float | None:
    """A sample mean in the units a human reads (a share, a score, USD, steps, ms)."""
    if mean is None:
        return None
    if spec.name == "cost_per_execution":
        return max(0.0, math.exp(mean) - LOG_EPS_USD)
    if spec.scale == "log":
        return math.expm1(mean)
    return mean


# one sample's sums in one bucket or hour: [n, sum, sum of squares]
Sums = list[float]


class _VersionBucket:
    """One version's values in one bucket: per signal its sums, and the most harmful executions."""

    __slots__ = ("sums", "worst")

    def __init__(self) -> None:
        self.sums: dict[str, Sums] = {}
        self.worst: dict[str, list[tuple[float, str]]] = {}  # signal -> heap of (harm, execution id)

    @property
    def runs(self) -> float:
        """Executions of this version here (every execution adds to escalation_rate; scores and
        outcomes alone are not activity)."""
        got = self.sums.get("escalation_rate")
        return got[0] if got is not None else 0.0

    def add(self, signal: str, x: float, xid: str | None, harm: float) -> None:
        v = self.sums.get(signal)
        if v is None:
            v = self.sums[signal] = [0.0, 0.0, 0.0]
        v[0] += 1.0
        v[1] += x
        v[2] += x * x
        if xid is not None and harm > 0:
            heap = self.worst.setdefault(signal, [])
            item = (harm, xid)
            if len(heap) < MAX_SAMPLES:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)

    def to_data(self) -> list[Any]:
        return [self.sums, {k: [list(i) for i in v] for k, v in self.worst.items()}]

    @classmethod
    def from_data(cls, data: list[Any]) -> _VersionBucket:
        vb = cls()
        vb.sums = {k: list(v) for k, v in data[0].items()}
        vb.worst = {k: [(float(h), str(x)) for h, x in v] for k, v in data[1].items()}
        for heap in vb.worst.values():
            heapq.heapify(heap)
        return vb


@dataclass(slots=True)
class Comparison:
    """One candidate version against the incumbent, from `started_at` (event time)."""

    baseline: str
    candidate: str
    started_at: float
    diffs: dict[str, StratifiedDifference] = field(default_factory=dict)
    worst: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # candidate's samples
    firing: dict[str, str] = field(default_factory=dict)  # signal -> fingerprint of a fired alert
    verdict: str = HOLD  # at the last check

    def to_data(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "candidate": self.candidate, "started_at": self.started_at,
                "diffs": {k: d.to_data() for k, d in self.diffs.items()},
                "worst": {k: [list(i) for i in v] for k, v in self.worst.items()}, "firing": self.firing,
                "verdict": self.verdict}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Comparison:
        c = cls(data["baseline"], data["candidate"], data["started_at"])
        c.diffs = {k: StratifiedDifference.from_data(v) for k, v in data["diffs"].items()}
        c.worst = {k: [(float(h), str(x)) for h, x in v] for k, v in data["worst"].items()}
        c.firing = dict(data["firing"])
        c.verdict = data["verdict"]
        return c


class Rollout:
    """The version comparisons of one agent (see the module docstring)."""

    __slots__ = ("versions", "open", "hour", "hour_sums", "comparisons", "history", "xids", "outcome_metrics",
                 "ended_firing", "total_runs", "shadow_seen")

    def __init__(self) -> None:
        # version -> [first seen, last seen (bucket edges), runs, total_runs at first / last seen,
        # production (not shadow) runs]
        self.versions: dict[str, list[float]] = {}
        self.total_runs = 0.0  # executions of every version so far (closed buckets)
        self.shadow_seen = False  # a shadow run came: production runs without a version are compared too
        self.open: dict[int, dict[str, _VersionBucket]] = {}  # bucket -> version -> values
        self.hour: int | None = None  # the hour whose closed buckets `hour_sums` holds
        self.hour_sums: dict[str, dict[str, Sums]] = {}  # version -> signal -> sums
        self.comparisons: dict[str, Comparison] = {}  # candidate -> comparison
        self.history: list[dict[str, Any]] = []  # ended comparisons, newest last
        self.xids: dict[str, tuple[str, bool, bool]] = {}  # execution id -> (version, shadow, scored), FIFO
        self.outcome_metrics: list[str] = []
        self.ended_firing: dict[str, dict[str, str]] = {}  # fingerprint -> labels, until resolved

    # -- input (per event; the bucket is open) ---------------------------------------------------
    def _bucket(self, b: int, version: str) -> _VersionBucket:
        per = self.open.get(b)
        if per is None:
            per = self.open[b] = {}
        vb = per.get(version)
        if vb is None:
            vb = per[version] = _VersionBucket()
        return vb

    def remember(self, xid: str, version: str, shadow: bool, scored: bool, max_ids: int) -> None:
        """Keep the version of an execution whose evaluations or outcomes may come later (`scored`:
        it had an inline score, which is the one counted)."""
        xids = self.xids
        if xid in xids:
            return
        xids[xid] = (version, shadow, scored)
        if len(xids) > max_ids:
            del xids[next(iter(xids))]

    def needs_ids(self) -> bool:
        return bool(self.comparisons) or len(self.versions) > 1

    def execution(self, b: int, version: str, xid: str, status: str, tool_error: bool | None,
                  quality: float | None, cost: float | None, steps: int | None, duration: float | None,
                  shadow: bool) -> None:
        """One execution of `version` in open bucket `b` (its repeat, if any, comes at the close)."""
        vb = self._bucket(b, version)
        esc = 1.0 if status == "escalated" else 0.0
        vb.add("escalation_rate", esc, xid, esc)
        fail = 1.0 if status in ("failed", "timeout") else 0.0
        vb.add("failure_rate", fail, xid, fail)
        if not shadow:  # a shadow run re-does a production task: it is not a repeat
            vb.add("repeat_task_rate", 0.0, None, 0.0)
        if tool_error is not None:
            te = 1.0 if tool_error else 0.0
            vb.add("tool_error_rate", te, xid, te)
        if quality is not None:
            vb.add("quality", quality, xid, 1.0 - quality)
        if cost is not None:
            lc = math.log(cost + LOG_EPS_USD)
            vb.add("cost_per_execution", lc, xid, lc + 20.0)
        if steps is not None:
            ls = math.log1p(steps)
            vb.add("steps", ls, xid, ls + 1.0)
        if duration is not None:
            ld = math.log1p(duration)
            vb.add("duration", ld, xid, ld + 1.0)

    def score(self, b: int, xid: str, score: float) -> bool:
        """A later evaluation's score of a remembered execution: the first one counts, unless the
        execution had an inline score. Returns whether it counted."""
        got = self.xids.get(xid)
        if got is None or got[2]:
            return False
        self.xids[xid] = (got[0], got[1], True)
        self._bucket(b, got[0]).add("quality", score, xid, 1.0 - score)
        return True

    def outcome(self, b: int, xid: str, metric: str, value: float) -> bool:
        got = self.xids.get(xid)
        if got is None:
            return False
        if metric not in self.outcome_metrics:
            if len(self.outcome_metrics) >= MAX_OUTCOME_METRICS:
                return True
            self.outcome_metrics.append(metric)
        self._bucket(b, got[0]).add("outcome:" + metric, value, xid, -value)
        return True

    def is_shadow(self, xid: str) -> bool:
        got = self.xids.get(xid)
        return got is not None and got[1]

    def repeat(self, b: int, xid: str) -> None:
        """The engine found execution `xid` (in bucket `b`, closing) to be a repeat."""
        got = self.xids.get(xid)
        per = self.open.get(b)
        if got is None or per is None:
            return
        vb = per.get(got[0])
        if vb is not None and "repeat_task_rate" in vb.sums:
            s = vb.sums["repeat_task_rate"]
            s[1] += 1.0
            s[2] += 1.0
            heap = vb.worst.setdefault("repeat_task_rate", [])
            if len(heap) < MAX_SAMPLES:
                heapq.heappush(heap, (1.0, xid))

    # -- per bucket close ------------------------------------------------------------------------
    def close(self, idx: int, bucket_s: int, end_after_s: int, max_versions: int) -> None:
        """Bucket `idx` closes: its values join the hour's; at a new hour the last hour is a stratum
        of every comparison; comparisons start and end with the versions' traffic."""
        for b in [b for b in self.open if b < idx]:  # skipped by a fast-forward over a long gap
            del self.open[b]
        per = self.open.pop(idx, None)
        hour = idx * bucket_s // 3600
        if self.hour is not None and hour != self.hour:
            self._commit_hour()
        self.hour = hour
        start, end = idx * bucket_s, (idx + 1) * bucket_s
        if per:
            for version, vb in sorted(per.items()):
                runs = vb.runs
                if runs:
                    production = vb.sums.get("repeat_task_rate", (0.0,))[0]  # shadow runs are not in it
                    total = self.total_runs
                    self.total_runs = total + runs
                    seen = self.versions.get(version)
                    if seen is None:
                        self.versions[version] = [float(start), float(end), runs, total, total + runs, production]
                    else:
                        seen[1] = float(end)
                        seen[2] += runs
                        seen[4] = total + runs
                        seen[5] += production
                sums = self.hour_sums.setdefault(version, {})
                for signal, v in vb.sums.items():
                    acc = sums.get(signal)
                    if acc is None:
                        sums[signal] = list(v)
                    else:
                        acc[0] += v[0]
                        acc[1] += v[1]
                        acc[2] += v[2]
                for c in self.comparisons.values():
                    if c.candidate == version:
                        for signal, heap in vb.worst.items():
                            merged = c.worst.setdefault(signal, [])
                            for item in heap:
                                if len(merged) < MAX_SAMPLES:
                                    heapq.heappush(merged, item)
                                elif item > merged[0]:
                                    heapq.heapreplace(merged, item)
        self._pair(float(end), end_after_s, max_versions)

    def _commit_hour(self) -> None:
        for c in self.comparisons.values():
            base = self.hour_sums.get(c.baseline, {})
            cand = self.hour_sums.get(c.candidate, {})
            for signal in base.keys() | cand.keys():
                d = c.diffs.get(signal)
                if d is None:
                    d = c.diffs[signal] = StratifiedDifference.empty()
                d.add_stratum(_t(base.get(signal)), _t(cand.get(signal)))
        self.hour_sums = {}

    def _pair(self, at: float, end_after_s: int, max_versions: int) -> None:
        total = self.total_runs
        active = sorted((v for v, seen in self.versions.items() if not stopped(seen, at, total, end_after_s)),
                        key=lambda v: (self.versions[v][5] == 0, self.versions[v][0], v))
        incumbent = active[0] if active else None
        for cand, c in list(self.comparisons.items()):
            if c.baseline != incumbent or cand not in active:
                if cand not in active:
                    reason = f"{cand} had no traffic for {_hours(at - self.versions[cand][1])}: rolled back or stopped"
                elif c.baseline not in active:
                    reason = (f"{c.baseline} had no traffic for {_hours(at - self.versions[c.baseline][1])}: "
                              f"{cand} took all traffic")
                else:
                    reason = f"{incumbent} is the incumbent now"
                self._end(c, at, reason)
        for cand in active[1:]:
            if cand not in self.comparisons:
                self.comparisons[cand] = Comparison(incumbent, cand, at)  # type: ignore[arg-type]
        if not self.comparisons and len(active) <= 1:
            self.xids.clear()  # nothing waits for late scores: keep no ids
        if len(self.versions) > max_versions:  # forget the longest-unseen versions
            for v in sorted(self.versions, key=lambda v: self.versions[v][1])[: len(self.versions) - max_versions]:
                if v not in active:
                    del self.versions[v]

    def _end(self, c: Comparison, at: float, reason: str) -> None:
        del self.comparisons[c.candidate]
        for signal, fp in c.firing.items():
            self.ended_firing[fp] = {"signal": signal, "baseline_version": c.baseline, "candidate_version": c.candidate,
                                     "reason": reason}
        self.history.append({"baseline": c.baseline, "candidate": c.candidate, "started_at": c.started_at,
                             "ended_at": at, "reason": reason, "final": ROLLBACK if c.firing else c.verdict})
        del self.history[:-MAX_HISTORY]

    # -- checks ----------------------------------------------------------------------------------
    def status(self, c: Comparison, thr: RuleThresholds, at: float) -> dict[str, Any]:
        """The per-signal table of one comparison at `at` (strata committed + the hour so far)."""
        rows: list[dict[str, Any]] = []
        signals = sorted(c.diffs.keys() | self.hour_sums.get(c.baseline, {}).keys()
                         | self.hour_sums.get(c.candidate, {}).keys(), key=_signal_order)
        n_signals = len(SIGNALS) + len(self.outcome_metrics)
        alpha = thr.rollout_false_verdicts / n_signals
        for signal in signals:
            spec = spec_of(signal)
            d = c.diffs.get(signal) or StratifiedDifference.empty()
            d = d.plus(_t(self.hour_sums.get(c.baseline, {}).get(signal)),
                       _t(self.hour_sums.get(c.candidate, {}).get(signal)))
            rows.append(_row(spec, d, thr, alpha))
        compared = [r for r in rows if r["verdict"] != "too few"]
        if any(r["verdict"] == "worse" for r in rows):
            verdict = ROLLBACK
        elif compared and all(r["verdict"] == "not worse" for r in compared):
            verdict = PROMOTE
        else:
            verdict = HOLD
        return {
            "baseline_version": c.baseline, "candidate_version": c.candidate,
            "started_at": _iso(c.started_at), "at": _iso(at), "verdict": verdict,
            "exit_code": EXIT_CODES[verdict], "false_verdict_budget": thr.rollout_false_verdicts,
            "signals": rows,
        }

    def checks(self, agent_fp: Any, thr: RuleThresholds, at: float, state_of: Any) -> Iterator[Check]:
        """`rollout_regression` checks of every comparison, and clear checks for the alerts of
        comparisons that ended (rolled back, or the candidate took all traffic)."""
        for cand in sorted(self.comparisons):
            c = self.comparisons[cand]
            st = self.status(c, thr, at)
            c.verdict = st["verdict"]
            for row in st["signals"]:
                labels = {"signal": row["signal"], "baseline_version": c.baseline, "candidate_version": cand}
                fp = agent_fp(RULE, labels)
                worse = row["verdict"] == "worse"
                if not worse and state_of(fp) == OK:
                    continue
                if worse:
                    c.firing[row["signal"]] = fp
                samples = [x for _, x in sorted(c.worst.get(row["signal"], []), reverse=True)]
                yield Check(RULE, labels, worse, False, _evidence(row, c, at, samples),
                            pending_checks=1, fp=fp)
        for fp, labels in list(self.ended_firing.items()):
            if state_of(fp) == OK:
                del self.ended_firing[fp]
                continue
            labels = {k: v for k, v in labels.items() if k != "reason"}
            spec = spec_of(labels["signal"])
            ev = Evidence(metric_fields(labels["signal"], None, None, 3600, 0, None, **labels),
                          f"rollout comparison of {labels['candidate_version']} with {labels['baseline_version']} "
                          f"ended ({self.ended_firing[fp].get('reason', 'ended')}); {spec.label} is no longer compared")
            yield Check(RULE, labels, False, True, ev, pending_checks=1, fp=fp)

    def hour_rollups(self, hour: int, thr: RuleThresholds) -> list[dict[str, Any]]:
        """The comparisons at the end of `hour` (running, or ended in it) for the hour's rollup."""
        at = float((hour + 1) * 3600)
        out: list[dict[str, Any]] = []
        for h in self.history:
            if hour * 3600 < h["ended_at"] <= at:
                out.append({"baseline_version": h["baseline"], "candidate_version": h["candidate"],
                            "verdict": h["final"], "baseline_runs": 0, "candidate_runs": 0, "ended": h["reason"]})
        for cand in sorted(self.comparisons):
            c = self.comparisons[cand]
            st = self.status(c, thr, at)
            runs = {v: int(self.hour_sums.get(v, {}).get("escalation_rate", (0.0,))[0]) for v in (c.baseline, cand)}
            out.append({"baseline_version": c.baseline, "candidate_version": cand, "verdict": st["verdict"],
                        "baseline_runs": runs[c.baseline], "candidate_runs": runs[cand],
                        "worse": [r["signal"] for r in st["signals"] if r["verdict"] == "worse"]})
        return out

    # -- snapshot --------------------------------------------------------------------------------
    def to_data(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "open": {str(b): {v: vb.to_data() for v, vb in per.items()} for b, per in self.open.items()},
            "hour": self.hour, "hour_sums": self.hour_sums,
            "comparisons": {k: c.to_data() for k, c in self.comparisons.items()},
            "history": self.history, "xids": [[k, *v] for k, v in self.xids.items()],
            "outcome_metrics": self.outcome_metrics, "ended_firing": self.ended_firing,
            "total_runs": self.total_runs, "shadow_seen": self.shadow_seen,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Rollout:
        r = cls()
        r.versions = {k: list(v) for k, v in data["versions"].items()}
        r.open = {int(b): {v: _VersionBucket.from_data(d) for v, d in per.items()} for b, per in data["open"].items()}
        r.hour = data["hour"]
        r.hour_sums = {v: {s: list(x) for s, x in per.items()} for v, per in data["hour_sums"].items()}
        r.comparisons = {k: Comparison.from_data(c) for k, c in data["comparisons"].items()}
        r.history = list(data["history"])
        r.xids = {k: (v, bool(s), bool(q)) for k, v, s, q in data["xids"]}
        r.outcome_metrics = list(data["outcome_metrics"])
        r.ended_firing = {k: dict(v) for k, v in data["ended_firing"].items()}
        r.total_runs = data["total_runs"]
        r.shadow_seen = data["shadow_seen"]
        return r


#: a version has stopped once the other versions ran so much since its last run that it would have
#: had this many runs at its usual share (no run at all then has a chance of e**-10 = 5e-5)
QUIET_EXPECTED_RUNS = 10.0
MAX_QUIET_S = 48 * 3600


def stopped(seen: list[float], at: float, total_runs: float, end_after_s: int) -> bool:
    """Whether a version has stopped (rolled back, or replaced): unseen for at least `end_after_s`
    while the agent's other traffic would have given it `QUIET_EXPECTED_RUNS` runs at its share
    of the runs since it first appeared, or unseen for 48 h. Measured in runs, not hours, so that
    a 5 % canary on a quiet night is not taken for a rollback."""
    _first, last, runs, total_at_first, total_at_last, _production = seen
    quiet = at - last
    if quiet < end_after_s:
        return False
    if quiet >= MAX_QUIET_S:
        return True
    share = runs / max(1.0, total_runs - total_at_first)
    return share * (total_runs - total_at_last) >= QUIET_EXPECTED_RUNS


def _hours(s: float) -> str:
    return f"{s / 3600:.1f} h" if s < 86400 else f"{s / 86400:.1f} d"


def _t(sums: Sums | None) -> tuple[float, float, float]:
    return (sums[0], sums[1], sums[2]) if sums is not None else (0.0, 0.0, 0.0)


def _signal_order(signal: str) -> tuple[int, str]:
    names = list(SIGNALS)
    return (names.index(signal), "") if signal in SIGNALS else (len(names), signal)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat()


def _row(spec: SignalSpec, d: StratifiedDifference, thr: RuleThresholds, alpha: float) -> dict[str, Any]:
    """One signal of a comparison: both samples with intervals, the difference, the verdict."""
    base, cand = d.base, d.cand
    margin = margin_of(spec, thr, base.mean)
    tau = 4.0 * margin  # the boundary is narrowest where decisions fall (tau^2 ~ 20 V at n of interest)
    row: dict[str, Any] = {
        "signal": spec.name, "label": spec.label, "harm": "higher" if spec.harm > 0 else "lower",
        "baseline": _side(spec, base, tau, alpha), "candidate": _side(spec, cand, tau, alpha),
        "margin": margin, "difference": None, "difference_ci": None, "relative_change": None,
    }
    est = d.estimate(spec.share)
    if base.n < thr.rollout_min_n or cand.n < thr.rollout_min_n or est is None:
        row["verdict"] = "too few"
        return row
    diff, var = est
    half = always_valid_halfwidth(var, tau, alpha)
    lo, hi = diff - half, diff + half
    row["difference"] = diff
    row["difference_ci"] = [lo, hi]
    bm, cm = natural(spec, base.mean), natural(spec, cand.mean)
    if bm and cm is not None:
        row["relative_change"] = (cm - bm) / abs(bm)
    harm_lo, harm_hi = sorted((spec.harm * lo, spec.harm * hi))
    harm = spec.harm * diff
    if harm_lo > 0 and harm >= margin:
        row["verdict"] = "worse"
    elif harm_hi < margin:
        row["verdict"] = "not worse"
    else:
        row["verdict"] = "undecided"
    return row


def _side(spec: SignalSpec, m: Any, tau: float, alpha: float) -> dict[str, Any]:
    mean = m.mean
    if mean is None:
        return {"value": None, "ci": None, "n": int(m.n)}
    half = always_valid_halfwidth(m.variance(spec.share) / m.n, tau, alpha) if m.n > 0 else math.inf
    lo, hi = mean - half, mean + half
    if spec.share:
        lo, hi = max(0.0, lo), min(1.0, hi)
    ci = None if math.isinf(half) else [natural(spec, lo), natural(spec, hi)]
    return {"value": natural(spec, mean), "ci": ci, "n": int(m.n)}


def format_value(spec: SignalSpec, x: float | None) -> str:
    if x is None:
        return "-"
    if spec.share:
        return f"{100 * x:.1f} %"
    if spec.name == "cost_per_execution":
        return f"${x:.4f}"
    if spec.name == "duration":
        return f"{x / 1000:.1f} s"
    return f"{x:.3g}"


def _evidence(row: dict[str, Any], c: Comparison, at: float, samples: list[str]) -> Evidence:
    spec = spec_of(row["signal"])
    b, k = row["baseline"], row["candidate"]
    hours = max(1, round((at - c.started_at) / 3600))
    lo_hi = row["difference_ci"] or [None, None]
    extra = {
        "signal": row["signal"], "baseline_version": c.baseline, "candidate_version": c.candidate,
        "baseline_n": b["n"], "candidate_n": k["n"], "baseline_ci": b["ci"], "candidate_ci": k["ci"],
        "difference_ci": lo_hi, "verdict": row["verdict"],
    }
    metric = metric_fields(row["signal"], k["value"], b["value"], hours * 3600, k["n"], None, **extra)

    def side(s: dict[str, Any]) -> str:
        ci = s["ci"]
        rng = f" [{format_value(spec, ci[0])}, {format_value(spec, ci[1])}]" if ci else ""
        return f"{format_value(spec, s['value'])}{rng} n={s['n']:,}"

    summary = (f"rollout {c.candidate} is worse than {c.baseline} on {spec.label}: {side(k)} vs {side(b)}, "
               f"same hours since {datetime.fromtimestamp(c.started_at, tz=UTC):%a %H:%M} UTC; "
               f"hold the rollout or roll {c.candidate} back")
    return Evidence(metric, summary, samples[:MAX_SAMPLES])
