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

    # -- derived values ---------------------------------------------------------------------------
    def mean_var(self, total: int, sq: int, count: int) -> tuple[float, float, float]:
        """(n, mean, sample variance) of a (sum, sum of squares, count) triple of fields."""
        s = self.s
        n = s[count]
        if n <= 0:
            return 0.0, 0.0, 0.0
        mean = s[total] / n
        var = max(s[sq] - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
        return n, mean, var


def _merge_counts(mine: dict[Any, float], other: dict[Any, float], sign: float) -> None:
    get = mine.get
    if sign == 1.0:
        for k, v in other.items():
            mine[k] = get(k, 0.0) + v
    else:
        for k, v in other.items():
            mine[k] = get(k, 0.0) - v


def triple_mean_var(v: list[float]) -> tuple[float, float, float]:
    """(n, mean, variance) of a metric entry [sum, sum of squares, count]."""
    n = v[2]
    if n <= 0:
        return 0.0, 0.0, 0.0
    mean = v[0] / n
    var = max(v[1] - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
    return n, mean, var
