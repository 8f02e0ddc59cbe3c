"""Rolling agent signals: additive aggregates of executions, scores and outcomes over fixed
event-time buckets.

An `Agg` holds sums, never samples, so that a bucket, an hour, a detection window and a baseline
are all the same object, combined with `merge` / `unmerge` (window sums slide by adding the newest
bucket and removing the oldest). Its size is bounded by the number of distinct tools, outcome
metrics, models and histogram bins, each capped per agent by the engine.

Scalar fields live in one list indexed by the constants below (cheap to add, copy and serialise).
Heavy-tailed quantities (cost, tokens, duration) also keep sums of logarithms, for tests on
geometric means; duration keeps a log-binned histogram (13 % wide bins) for p95.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from operator import add as _add
from operator import sub as _sub
from typing import Any

# -- scalar fields --------------------------------------------------------------------------------
N = 0  # executions
ESC = 1  # escalated
FAIL = 2  # failed
TMO = 3  # timeout
COMP = 4  # completed
REP = 5  # repeats of a task completed within the repeat window
QS, QQ, QN = 6, 7, 8  # quality scores: sum, sum of squares, count
CS, CN, LCS, LCQ = 9, 10, 11, 12  # cost: sum, count, sum of log, sum of squared log
TK, TKN, LTS, LTQ = 13, 14, 15, 16  # tokens per execution: same
ST, STQ, STN = 17, 18, 19  # steps: sum, sum of squares, count
DS, LDS, LDQ, DN = 20, 21, 22, 23  # duration ms: sum, sum of log, sum of squared log, count
TE, TEOK, TC, TOK = 24, 25, 26, 27  # executions with tool calls / with one ok; tool calls / ok
UNPRICED = 28  # executions whose cost could not be computed
N_ESC, N_REP = 29, 30  # denominators of the escalation and repeat shares (baseline masking)
HOURS = 31  # hours of data (baselines)
NF = 32

#: Field groups that a firing alert removes from the baseline hours it covers.
GROUP_FIELDS: dict[str, tuple[int, ...]] = {
    "escalation": (ESC, N_ESC),
    "repeat": (REP, N_REP),
    "quality": (QS, QQ, QN),
    "cost": (CS, CN, LCS, LCQ, TK, TKN, LTS, LTQ, UNPRICED),
    "duration": (ST, STQ, STN, DS, LDS, LDQ, DN),
    "tools": (TE, TEOK, TC, TOK),
}

# tool entry: [calls, errors (error|timeout), ok, rate_limited]
T_CALLS, T_ERR, T_OK, T_RL = 0, 1, 2, 3
# metric entry: [sum, sum of squares, count]

DURATION_BINS_PER_E = 8  # bin width: a factor e**(1/8) ~ 1.13
LOG_EPS_USD = 1e-6  # cost of 0 is legal; log(cost + eps)


def bin_upper(b: int) -> float:
    """Upper edge (ms) of a duration bin."""
    return math.expm1((b + 1) / DURATION_BINS_PER_E)


def hist_quantile(hist: dict[int, float], q: float) -> float | None:
    """The upper edge (ms) of the duration bin that holds the q-quantile (None when empty)."""
    b = hist_quantile_bin(hist, q)
    return None if b is None else bin_upper(b)


def hist_above(hist: dict[int, float], edge_bin: int) -> float:
    return sum(c for b, c in hist.items() if b > edge_bin)


def hist_quantile_bin(hist: Mapping[int, float], q: float) -> int | None:
    """The bin that holds the q-quantile of a histogram (None when empty), whatever its binning."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return b
    return max(hist)


def _merge_entries(mine: dict[str, list[float]], other: dict[str, list[float]], sign: float,
                   masked: frozenset[str], prefix: str) -> None:
    """Add (sign 1) or remove (sign -1) each named entry of `other` (per tool or per metric),
    except masked names."""
    op = _add if sign == 1.0 else _sub
    get = mine.get
    if not masked:
        for name, v in other.items():
            entry = get(name)
            mine[name] = [sign * x for x in v] if entry is None else list(map(op, entry, v))
        return
    for name, v in other.items():
        if prefix + name in masked:
            continue
        entry = get(name)
        mine[name] = [sign * x for x in v] if entry is None else list(map(op, entry, v))


class Agg:
    """Additive aggregate of one agent over some span of event time."""

    __slots__ = ("s", "tools", "metrics", "dur_hist", "steps_hist", "models")

    def __init__(self) -> None:
        self.s: list[float] = [0.0] * NF
        self.tools: dict[str, list[float]] = {}
        self.metrics: dict[str, list[float]] = {}
        self.dur_hist: dict[int, float] = {}
        self.steps_hist: dict[int, float] = {}
        self.models: dict[str, float] = {}  # "model\x1fresolved_model" -> calls

    # -- combination ------------------------------------------------------------------------------
    def merge(self, other: Agg, sign: float = 1.0, masked: frozenset[str] = frozenset(), full: bool = True) -> None:
        """Add (sign=1) or remove (sign=-1) `other`, leaving out the masked field groups.
        `full=False` skips what detection windows never read (steps histogram, models)."""
        if sign != 1.0 and sign != -1.0:
            raise ValueError(f"sign must be 1 or -1, got {sign}")
        if masked:
            skip = {i for g in masked if g in GROUP_FIELDS for i in GROUP_FIELDS[g]}
            s, o = self.s, other.s
            for i in range(NF):
                if i not in skip:
                    s[i] += sign * o[i]
        else:
            self.s = list(map(_add if sign == 1.0 else _sub, self.s, other.s))
        if other.tools and "tools" not in masked:
            _merge_entries(self.tools, other.tools, sign, masked, "tool:")
        if other.metrics:
            _merge_entries(self.metrics, other.metrics, sign, masked, "metric:")
        if "duration" not in masked:
            _merge_counts(self.dur_hist, other.dur_hist, sign)
            if full:
                _merge_counts(self.steps_hist, other.steps_hist, sign)
        if full and other.models:
            _merge_counts(self.models, other.models, sign)

    def prune(self) -> None:
        """Drop entries that merges and unmerges left at (about) zero."""
        self.tools = {k: v for k, v in self.tools.items() if v[T_CALLS] > 1e-9}
        self.metrics = {k: v for k, v in self.metrics.items() if v[2] > 1e-9}
        self.dur_hist = {k: v for k, v in self.dur_hist.items() if v > 1e-9}
        self.steps_hist = {k: v for k, v in self.steps_hist.items() if v > 1e-9}
        self.models = {k: v for k, v in self.models.items() if v > 1e-9}

    def copy(self) -> Agg:
        new = Agg()
        new.merge(self)
        return new

    # -- serialisation ----------------------------------------------------------------------------
    def to_data(self) -> list[Any]:
        return [
            self.s,
            self.tools,
            self.metrics,
            {str(k): v for k, v in self.dur_hist.items()},
            {str(k): v for k, v in self.steps_hist.items()},
            self.models,
        ]

    @classmethod
    def from_data(cls, data: list[Any]) -> Agg:
        new = cls()
        new.s = [float(x) for x in data[0]]
        new.tools = {k: list(v) for k, v in data[1].items()}
        new.metrics = {k: list(v) for k, v in data[2].items()}
        new.dur_hist = {int(k): v for k, v in data[3].items()}
        new.steps_hist = {int(k): v for k, v in data[4].items()}
        new.models = dict(data[5])
        return new

    # -- named readers ----------------------------------------------------------------------------
    # What the rules read, by name. Each returns the shape a CUSUM takes, `(n, tested sum, shown
    # sum, tested sum of squares)` (`mean_var` turns it into moments), so that a rule passes the
    # reader itself as its CUSUM's extract: one call and one tuple a bucket, as a lambda would be.
    def escalations(self) -> tuple[float, float, float, float]:
        """(executions, escalated, escalated, 0)."""
        s = self.s
        return s[N], s[ESC], s[ESC], 0.0

    def escalation_base(self) -> tuple[float, float]:
        """(escalated, executions that count for the baseline share)."""
        return self.s[ESC], self.s[N_ESC]

    def repeats(self) -> tuple[float, float, float, float]:
        """(executions, repeated tasks, repeated tasks, 0)."""
        s = self.s
        return s[N], s[REP], s[REP], 0.0

    def repeat_base(self) -> tuple[float, float]:
        """(repeated tasks, executions that count for the baseline share)."""
        return self.s[REP], self.s[N_REP]

    def quality(self) -> tuple[float, float, float, float]:
        """(scores, sum, sum, sum of squares) of quality scores."""
        s = self.s
        return s[QN], s[QS], s[QS], s[QQ]

    def log_cost(self) -> tuple[float, float, float, float]:
        """(priced executions, sum of log cost, sum of cost in USD, sum of squared log cost)."""
        s = self.s
        return s[CN], s[LCS], s[CS], s[LCQ]

    def log_tokens(self) -> tuple[float, float, float, float]:
        """(executions with tokens, sum of log tokens, sum of tokens, sum of squared log tokens)."""
        s = self.s
        return s[TKN], s[LTS], s[TK], s[LTQ]

    def log_duration(self) -> tuple[float, float, float, float]:
        """(timed executions, sum of log ms, sum of ms, sum of squared log ms)."""
        s = self.s
        return s[DN], s[LDS], s[DS], s[LDQ]

    def steps(self) -> tuple[float, float, float, float]:
        """(executions with steps, steps, steps, sum of squared steps)."""
        s = self.s
        return s[STN], s[ST], s[ST], s[STQ]

    def steps_above(self, edge_bin: int) -> tuple[float, float, float, float]:
        """(executions with steps, how many took more steps than bin `edge_bin` holds, steps, sum
        of squared steps)."""
        s = self.s
        return s[STN], hist_above(self.steps_hist, edge_bin), s[ST], s[STQ]

    def durations_above(self, edge_bin: int, min_n: float = -math.inf) -> tuple[float, float, float, float] | None:
        """(timed executions, how many ran longer than bin `edge_bin` holds, the same twice); None
        under `min_n` timed executions (before counting)."""
        n = self.s[DN]
        if n < min_n:
            return None
        above = hist_above(self.dur_hist, edge_bin)
        return n, above, above, 0.0

    def tool_calls(self) -> tuple[float, float, float]:
        """(tool calls, successful ones, executions with tool calls)."""
        s = self.s
        return s[TC], s[TOK], s[TE]

    def tool_errors(self, tool: str) -> tuple[float, float, float, float] | None:
        """(calls, errors, errors, 0) of one tool (errors: error or timeout); None if not called."""
        v = self.tools.get(tool)
        return None if v is None else (v[T_CALLS], v[T_ERR], v[T_ERR], 0.0)

    def tools_called(self, min_calls: float) -> list[str]:
        """The tools called at least `min_calls` times."""
        return [k for k, v in self.tools.items() if v[T_CALLS] >= min_calls]

    def add_tool_failures(self, into: dict[str, list[float]]) -> None:
        """Add each tool's [calls, errors, rate limited] to `into`."""
        for tool, v in self.tools.items():
            acc = into.setdefault(tool, [0.0, 0.0, 0.0])
            acc[0] += v[T_CALLS]
            acc[1] += v[T_ERR]
            acc[2] += v[T_RL]

    def metrics_reported(self, min_count: float) -> list[str]:
        """The outcome metrics reported at least `min_count` times."""
        return [k for k, v in self.metrics.items() if v[2] >= min_count]

    def metric_values(self, metric: str) -> tuple[float, float, float, float] | None:
        """(outcomes, sum, sum, sum of squares) of one outcome metric; None if not reported."""
        v = self.metrics.get(metric)
        return None if v is None else (v[2], v[0], v[0], v[1])

    def metric_failures(self, metric: str) -> tuple[float, float, float, float] | None:
        """(outcomes, outcomes minus their sum, the same, 0): the failures of a 0/1 metric."""
        v = self.metrics.get(metric)
        return None if v is None else (v[2], v[2] - v[0], v[2] - v[0], 0.0)

    def per_hour(self, n: float) -> float:
        """`n` per hour of data (a baseline's volume; at least one hour)."""
        return n / max(self.s[HOURS], 1.0)


def mean_var(got: tuple[float, float, float, float] | None) -> tuple[float, float, float]:
    """(n, mean, sample variance) of the tested quantity of a reader's tuple (zeros for None)."""
    if got is None:
        return 0.0, 0.0, 0.0
    n = got[0]
    if n <= 0:
        return 0.0, 0.0, 0.0
    mean = got[1] / n
    var = max(got[3] - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
    return n, mean, var


def _merge_counts(mine: dict[Any, float], other: dict[Any, float], sign: float) -> None:
    get = mine.get
    if sign == 1.0:
        for k, v in other.items():
            mine[k] = get(k, 0.0) + v
    else:
        for k, v in other.items():
            mine[k] = get(k, 0.0) - v

