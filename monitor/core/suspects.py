"""Suspects: which values of the dimensions events carry explain an alert's change, and which of
an agent's other alerts belong with it.

Per agent (`SuspectState`), bounded:
- per open bucket, one row of sums per *combination* of dimension values seen in it (an execution
  adds to one row: cheap on the hot path), plus the smallest event time per combination;
- at close, the rows are split per dimension and value; each dimension keeps at most
  `detection.suspects_top_k` values per agent (a registry), the rest pooled under `OTHER`. A new
  value is admitted when there is room, or in place of the known value with the least recent
  traffic when that value's decayed count has fallen below the newcomer's count in the bucket
  (a value gone for days makes room; a live one is never pushed out). Admission runs on a closed
  bucket in a fixed order, so arrival order within the lateness never matters;
- per closed bucket of the longest detection window (and at most 12 more, pruned in batches),
  those per-value sums (at most `top_k + 1` rows per dimension): window sums are summed from
  them only when a page goes out;
- per value: a decayed count of recent traffic (for admission), the decayed count of the hours
  that entered the baseline (its baseline volume share; both decay with a half-life of
  `HALF_LIFE_H` hours) and the event time it was first seen; per hour not yet in the baseline
  (`reference_exclude_recent_h`), its executions per value.

Sums per value (`ROW_*`): executions, escalations, failures + timeouts, repeats (attributed to
the repeating execution when its bucket closes), inline quality scores (late evaluations are
*not* attributed: knowing an evaluated execution's dimensions would mean remembering them for
every execution within `score_join_window_s`), log cost, steps, log duration, and the execution's
tool calls and tool errors (of all its tools). Outcomes (`business_metric_decline`) are not
attributed either, for the same reason as late evaluations.

Attribution (`attribute`), for a firing rate, mean or quantile alert, over the window its evidence
quotes: per dimension and value, the excess (rates: hits - n x baseline rate; means: n x (mean -
baseline mean)) and its share of the whole window's excess; a value is named when it explains
most of the change (>= `MIN_SHARE_OF_CHANGE`), its own change is significant (z >= `MIN_Z`) and
either it is concentrated (its rate or mean differs significantly from the rest of the window's,
z >= `MIN_Z_CONCENTRATION` against the window's pooled rate or the baseline's variance, and its
share of the change exceeds its share of what is measured by `MIN_EXCESS_OVER_SHARE`) or it is
new / over-represented against the baseline (significantly more of the window's volume than of
the baseline's). Nothing is named when the change is spread evenly.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from operator import add as _add
from typing import Any

from monitor.contract.alert import Alert, Suspect
from monitor.core.evidence import fmt_pct
from monitor.core.lifecycle import AlertTracker
from monitor.core.rules.base import FIRING, OTHER
from monitor.core.signals import (
    CN,
    DN,
    ESC,
    LCQ,
    LCS,
    LDQ,
    LDS,
    N_ESC,
    N_REP,
    QN,
    QQ,
    QS,
    REP,
    ST,
    STN,
    STQ,
    T_CALLS,
    T_ERR,
    Agg,
)

#: the dimensions, in the order their keys are built and reported
DIMENSIONS = ("task_type", "agent_version", "resolved_model", "provider", "tool", "escalation_reason")
_TT, _AV, _RM, _PV, _TL, _ER = (d + "\x1f" for d in DIMENSIONS)

# row fields (one list of floats per value)
R_N, R_ESC, R_FAIL, R_REP, R_QS, R_QN, R_LCS, R_LCN, R_ST, R_STN, R_LDS, R_LDN, R_TC, R_TERR = range(14)
NR = 14
R_FIRST = 14  # open rows only: the smallest event time

#: half-life (hours) of the decayed counts: recent traffic (admission) and baseline volume shares
HALF_LIFE_H = 72.0
_DECAY = 0.5 ** (1.0 / HALF_LIFE_H)
LOG_EPS_USD = 1e-6

MAX_SUSPECTS = 3
_PRUNE_EVERY = 12
MIN_SHARE_OF_CHANGE = 0.5
MIN_Z = 3.0
MIN_Z_CONCENTRATION = 3.5
MIN_EXCESS_OVER_SHARE = 0.15
MIN_N = 5  # observations of a value (and of the window) below which nothing is named


class ExecutionKeys:
    """The dimension keys (`dimension\\x1fvalue`) of one execution, in a fixed order: task type,
    agent version, resolved models and providers, tools, escalation reason. On the hot path: the
    keys of the values seen before come from bounded caches (the same string objects, hashed once)."""

    __slots__ = ("_head", "_calls", "_tools", "_reasons")

    def __init__(self) -> None:
        self._head: dict[tuple[str | None, str | None], tuple[str, ...]] = {}
        self._calls: dict[tuple[str | None, str], tuple[str, ...]] = {}
        self._tools: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._reasons: dict[str, tuple[str, ...]] = {}

    def __call__(self, ev: Any) -> tuple[str, ...]:
        tt, av = ev.task_type, ev.agent_version
        keys = self._head.get((tt, av))
        if keys is None:
            keys = _cached(self._head, (tt, av), tuple(
                p + v for p, v in ((_TT, tt), (_AV, av)) if v))
        calls = ev.llm_calls
        if calls:
            c = calls[0]
            sig = (c.resolved_model, c.provider)
            got = self._calls.get(sig)
            if got is None:
                got = _cached(self._calls, sig, _call_keys(calls[:1]))
            for c in calls:
                if c.resolved_model != sig[0] or c.provider != sig[1]:
                    got = _call_keys(calls)  # calls to several models: rare, not cached
                    break
            keys = keys + got
        tcs = ev.tool_calls
        if tcs:
            names = tuple([tc.tool for tc in tcs])
            got = self._tools.get(names)
            if got is None:
                got = _cached(self._tools, names, tuple(sorted({_TL + n for n in names})))
            keys = keys + got
        er = ev.escalation_reason
        if er and ev.status == "escalated":
            got = self._reasons.get(er)
            if got is None:
                got = _cached(self._reasons, er, (_ER + er,))
            keys = keys + got
        return keys


def _call_keys(calls: Any) -> tuple[str, ...]:
    seen = set()
    for c in calls:
        if c.resolved_model:
            seen.add(_RM + c.resolved_model)
        if c.provider:
            seen.add(_PV + c.provider)
    return tuple(sorted(seen))


def _cached(cache: dict[Any, tuple[str, ...]], key: Any, value: tuple[str, ...]) -> tuple[str, ...]:
    if len(cache) < 4096:  # bounded: the values come from producers
        cache[key] = value
    return value


class SuspectState:
    """The breakdowns of one agent (see the module docstring)."""

    __slots__ = ("top_k", "bucket_s", "keep", "exclude_h", "open", "closed", "registry", "hour_vol", "pend")

    def __init__(self, top_k: int, bucket_s: int, keep_buckets: int, exclude_h: int) -> None:
        self.top_k = top_k
        self.bucket_s = bucket_s
        self.keep = keep_buckets
        self.exclude_h = exclude_h
        # bucket index -> combination of keys -> row (+ first seen)
        self.open: dict[int, dict[tuple[str, ...], list[float]]] = {}
        # bucket index -> key -> row (per value, capped); the newest `keep` closed buckets
        self.closed: dict[int, dict[str, list[float]]] = {}
        # key -> [decayed recent count, first seen, decayed baseline count]
        self.registry: dict[str, list[float]] = {}
        self.hour_vol: dict[str, float] = {}  # executions per key of the hour being closed
        self.pend: dict[int, dict[str, float]] = {}  # closed hours not yet in the baseline

    # -- per event ----------------------------------------------------------------------------
    def execution(self, b: int, keys: tuple[str, ...], t: float, status: str, q: float | None,
                  cost: float | None, steps: int | None, dur: float | None, tc: int, terr: int) -> None:
        rows = self.open.get(b)
        if rows is None:
            rows = self.open[b] = {}
        row = rows.get(keys)
        if row is None:
            row = rows[keys] = [0.0] * NR + [t]
        elif t < row[R_FIRST]:
            row[R_FIRST] = t
        row[R_N] += 1.0
        if status == "escalated":
            row[R_ESC] += 1.0
        elif status != "completed":
            row[R_FAIL] += 1.0
        if q is not None:
            row[R_QS] += q
            row[R_QN] += 1.0
        if cost is not None:
            row[R_LCS] += math.log(cost + LOG_EPS_USD)
            row[R_LCN] += 1.0
        if steps is not None:
            row[R_ST] += steps
            row[R_STN] += 1.0
        if dur is not None:
            row[R_LDS] += math.log1p(dur)
            row[R_LDN] += 1.0
        if tc:
            row[R_TC] += tc
            row[R_TERR] += terr

    def repeat(self, b: int, keys: tuple[str, ...]) -> None:
        """A repeat found when bucket `b` closes, of an execution with these keys."""
        rows = self.open.get(b)
        if rows is not None:
            row = rows.get(keys)
            if row is not None:
                row[R_REP] += 1.0

    # -- per bucket / hour ----------------------------------------------------------------------
    def close_bucket(self, b: int) -> None:
        """Split bucket `b`'s rows per value (capped), keep them for the windows."""
        combos = self.open.pop(b, None)
        if len(self.closed) > self.keep + _PRUNE_EVERY:  # pruned in batches: one pass per 12 closes
            for old in [i for i in self.closed if i <= b - self.keep]:
                del self.closed[old]
        if len(self.open) > 4:  # never left behind (defensive: bounded)
            for old in [i for i in self.open if i < b]:
                del self.open[old]
        if not combos:
            return
        per: dict[str, list[float]] = {}
        for keys, row in combos.items():
            for k in keys:
                got = per.get(k)
                if got is None:
                    per[k] = row[:]
                else:
                    first = got[R_FIRST]
                    got[:] = map(_add, got, row)
                    got[R_FIRST] = first if first < row[R_FIRST] else row[R_FIRST]
        reg = self.registry
        names = {k: k for k in per if k in reg}
        for k in names:
            reg[k][0] += per[k][R_N]
        if len(names) < len(per):
            # new values in a fixed order (volume, then name): admitted while there is room
            for k in sorted((k for k in per if k not in reg), key=lambda k: (-per[k][R_N], k)):
                dim = k.partition("\x1f")[0]
                entry = self._admit(dim, k, per[k][R_N], per[k][R_FIRST])
                if entry is None:
                    names[k] = dim + "\x1f" + OTHER
                else:
                    names[k] = k
                    entry[0] += per[k][R_N]
        out: dict[str, list[float]] = {}
        vol = self.hour_vol
        for k, row in per.items():
            name = names[k]
            n = row[R_N]
            del row[R_FIRST]
            tgt = out.get(name)
            if tgt is None:
                out[name] = row
            else:
                tgt[:] = map(_add, tgt, row)
            vol[name] = vol.get(name, 0.0) + n
        self.closed[b] = out

    def _admit(self, dim: str, key: str, count: float, first: float) -> list[float] | None:
        prefix = dim + "\x1f"
        pool = prefix + OTHER  # the pool is never evicted nor counted
        known = [k for k in self.registry if k.startswith(prefix) and k != pool]
        if len(known) >= self.top_k:
            weakest = min(known, key=lambda k: (self.registry[k][0], k))
            if self.registry[weakest][0] >= count:
                return None
            del self.registry[weakest]
        entry = self.registry[key] = [0.0, first, 0.0]
        return entry

    def close_hour(self, hour: int, frozen: bool) -> None:
        """The hour's volumes wait `exclude_h` hours, then enter the baseline counts."""
        if self.hour_vol:
            self.pend[hour] = self.hour_vol
        self.hour_vol = {}
        for entry in self.registry.values():
            entry[0] *= _DECAY
        joining = self.pend.pop(hour - self.exclude_h, None)
        for h in [h for h in self.pend if h < hour - self.exclude_h]:
            del self.pend[h]
        if frozen:
            return
        for entry in self.registry.values():
            entry[2] *= _DECAY
        if joining:
            for k, v in joining.items():
                got = self.registry.get(k)
                if got is None:  # pooled, or evicted since
                    k = k.partition("\x1f")[0] + "\x1f" + OTHER
                    got = self.registry.get(k)
                    if got is None:
                        got = self.registry[k] = [0.0, math.inf, 0.0]
                got[2] += v

    # -- per page ---------------------------------------------------------------------------------
    def window(self, at: float, secs: float) -> dict[str, list[float]]:
        """Per-value sums over the closed buckets of the `secs` before `at` (registry names;
        values evicted since pooled under OTHER)."""
        lo = at - secs
        out: dict[str, list[float]] = {}
        for b, rows in self.closed.items():
            if b * self.bucket_s < lo or (b + 1) * self.bucket_s > at:
                continue
            for k, row in rows.items():
                if k not in self.registry:
                    k = k.partition("\x1f")[0] + "\x1f" + OTHER
                tgt = out.get(k)
                if tgt is None:
                    out[k] = list(row)
                else:
                    for i in range(NR):
                        tgt[i] += row[i]
        return out

    def base_shares(self) -> dict[str, dict[str, float]]:
        """Per dimension: each value's share of the baseline's (decayed) volume."""
        tot: dict[str, float] = {}
        for k, e in self.registry.items():
            d = k.partition("\x1f")[0]
            tot[d] = tot.get(d, 0.0) + e[2]
        out: dict[str, dict[str, float]] = {}
        for k, e in self.registry.items():
            d, _, v = k.partition("\x1f")
            if tot[d] > 0:
                out.setdefault(d, {})[v] = e[2] / tot[d]
        return out

    def n_values(self) -> dict[str, int]:
        """Values per dimension held in the registry (OTHER included)."""
        out: dict[str, int] = {}
        for k in self.registry:
            d = k.partition("\x1f")[0]
            out[d] = out.get(d, 0) + 1
        return out

    # -- snapshot -------------------------------------------------------------------------------
    def to_data(self) -> dict[str, Any]:
        return {
            "open": {str(b): [[list(k), r[:NR] + [_finite(r[R_FIRST])]] for k, r in rows.items()]
                     for b, rows in self.open.items()},
            "closed": {str(b): rows for b, rows in self.closed.items()},
            "registry": {k: [e[0], _finite(e[1]), e[2]] for k, e in self.registry.items()},
            "hour_vol": self.hour_vol,
            "pend": {str(h): v for h, v in self.pend.items()},
        }

    def load_data(self, data: dict[str, Any]) -> None:
        self.open = {int(b): {tuple(k): [*r[:NR], _inf(r[NR])] for k, r in rows} for b, rows in data["open"].items()}
        self.closed = {int(b): {k: list(r) for k, r in rows.items()} for b, rows in data["closed"].items()}
        self.registry = {k: [e[0], _inf(e[1]), e[2]] for k, e in data["registry"].items()}
        self.hour_vol = dict(data["hour_vol"])
        self.pend = {int(h): dict(v) for h, v in data["pend"].items()}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _inf(x: float | None) -> float:
    return math.inf if x is None else x


# =================================================================================================
# attribution
# =================================================================================================
#: rule -> (kind, direction, what the text calls the excess)
ATTRIBUTED: dict[str, tuple[str, int, str]] = {
    "escalation_rate_rise": ("rate", 1, "excess escalations"),
    "repeat_task_rate_rise": ("rate", 1, "excess repeats"),
    "tool_error_rate": ("rate", 1, "excess tool errors"),
    "quality_drop": ("mean", -1, "quality drop"),
    "token_cost_spike": ("mean", 1, "cost rise"),
    "task_duration_rise": ("mean", 1, "step rise"),
    "latency_spike": ("mean", 1, "run-time rise"),
}

#: rule -> (numerator, denominator) row fields
_FIELDS = {
    "escalation_rate_rise": (R_ESC, R_N),
    "repeat_task_rate_rise": (R_REP, R_N),
    "tool_error_rate": (R_TERR, R_TC),
    "quality_drop": (R_QS, R_QN),
    "token_cost_spike": (R_LCS, R_LCN),
    "task_duration_rise": (R_ST, R_STN),
    "latency_spike": (R_LDS, R_LDN),
}

_WHAT = {"task_type": "task type", "agent_version": "agent version", "resolved_model": "model",
         "provider": "provider", "tool": "tool", "escalation_reason": "escalation reason"}


def baseline_stat(rule: str, base: Agg) -> tuple[float, float] | None:
    """The baseline's overall rate (and its binomial variance) or mean (and variance) of the
    quantity `rule`'s attribution measures; None without enough baseline."""
    s = base.s
    if rule == "escalation_rate_rise":
        return _rate(s[ESC], s[N_ESC])
    if rule == "repeat_task_rate_rise":
        return _rate(s[REP], s[N_REP])
    if rule == "tool_error_rate":
        calls = sum(v[T_CALLS] for v in base.tools.values())
        errs = sum(v[T_ERR] for v in base.tools.values())
        return _rate(errs, calls)
    sums = {"quality_drop": (QS, QQ, QN), "token_cost_spike": (LCS, LCQ, CN),
            "task_duration_rise": (ST, STQ, STN), "latency_spike": (LDS, LDQ, DN)}[rule]
    n = s[sums[2]]
    if n < 2:
        return None
    mu = s[sums[0]] / n
    var = max(s[sums[1]] / n - mu * mu, 1e-12)
    return mu, var


def _rate(x: float, n: float) -> tuple[float, float] | None:
    if n < MIN_N:
        return None
    p = (x + 0.5) / (n + 1)
    return p, p * (1 - p)


def attribute(rule: str, window: dict[str, list[float]], base_shares: dict[str, dict[str, float]],
              registry: dict[str, list[float]], base: tuple[float, float]) -> list[Suspect]:
    """The suspects of one firing alert (best first, at most `MAX_SUSPECTS`); see the module
    docstring for when a value is named."""
    kind, sign, what = ATTRIBUTED[rule]
    fx, fn = _FIELDS[rule]
    mu0, var0 = base
    by_dim: dict[str, list[tuple[str, list[float]]]] = {}
    for k, row in window.items():
        d, _, v = k.partition("\x1f")
        by_dim.setdefault(d, []).append((v, row))
    found: list[tuple[float, Suspect]] = []
    for dim in DIMENSIONS:
        rows = by_dim.get(dim)
        if not rows or (rule == "tool_error_rate" and dim == "tool"):
            continue
        if dim == "escalation_reason" and rule != "escalation_rate_rise":
            continue
        n_tot = sum(r[fn] for _, r in rows)
        x_tot = sum(r[fx] for _, r in rows)
        runs_tot = sum(r[R_N] for _, r in rows)
        if dim == "escalation_reason":
            # escalated runs only: compare the reasons' mix with the baseline's
            found.extend(_reasons(rows, base_shares.get(dim, {}), registry))
            continue
        total = sign * (x_tot - n_tot * mu0)  # the excess (or deficit), > 0 when it goes the alert's way
        if n_tot < MIN_N or total <= 0:
            continue
        bshares = base_shares.get(dim)
        for v, r in rows:
            n, x = r[fn], r[fx]
            if n < MIN_N or v == OTHER:
                continue
            excess = sign * (x - n * mu0)
            share = excess / total
            if share < MIN_SHARE_OF_CHANGE:
                continue
            if excess / math.sqrt(n * var0) < MIN_Z:
                continue  # its own change is noise
            wshare = r[R_N] / runs_tot  # share of the window's executions
            bshare = bshares.get(v, 0.0) if bshares is not None else None
            n_rest, x_rest = n_tot - n, x_tot - x
            concentrated = False
            if n_rest >= MIN_N:
                diff = sign * (x / n - x_rest / n_rest)
                if kind == "rate":  # the window's pooled rate: a rise everywhere is no contrast
                    pooled = min(max(x_tot / n_tot, 0.5 / n_tot), 1 - 0.5 / n_tot)
                    var = pooled * (1 - pooled)
                else:
                    var = var0
                z = diff / math.sqrt(var * (1 / n + 1 / n_rest))
                # its share of the change clearly exceeds its share of what is measured (runs,
                # scored runs, tool calls)
                concentrated = z >= MIN_Z_CONCENTRATION and share >= n / n_tot + MIN_EXCESS_OVER_SHARE
            new = False
            if bshare is not None:
                bs = max(bshare, 0.01)
                vol = (r[R_N] - runs_tot * bs) / math.sqrt(runs_tot * bs * (1 - min(bs, 0.99)))
                new = vol >= MIN_Z and wshare >= bshare + 0.25
            if not (concentrated or new):
                continue
            first = registry.get(dim + "\x1f" + v, [0.0, math.inf])[1]
            first_dt = datetime.fromtimestamp(first, tz=UTC) if math.isfinite(first) else None
            text = _text(rule, what, dim, v, share, wshare, bshare, first_dt, new and not concentrated)
            found.append((share, Suspect(
                dimension=dim, value=v, share_of_change=round(min(share, 9.99), 4),
                window_share=round(wshare, 4), baseline_share=round(bshare, 4) if bshare is not None else None,
                first_seen=first_dt, text=text, n=int(n))))
    found.sort(key=lambda p: (-p[0], p[1].dimension, p[1].value))
    return [s for _, s in found[:MAX_SUSPECTS]]


def _reasons(rows: list[tuple[str, list[float]]], bshares: dict[str, float],
             registry: dict[str, list[float]]) -> list[tuple[float, Suspect]]:
    """Escalation reasons whose share of the window's escalations rose against the baseline's mix."""
    n_tot = sum(r[R_N] for _, r in rows)
    if n_tot < MIN_N or not bshares:
        return []
    out = []
    excess = {v: r[R_N] - n_tot * bshares.get(v, 0.0) for v, r in rows}
    total = sum(e for e in excess.values() if e > 0)
    for v, r in rows:
        n = r[R_N]
        if v == OTHER or total <= 0 or n < MIN_N:
            continue
        share = excess[v] / total
        bs = max(bshares.get(v, 0.0), 0.01)
        z = (n - n_tot * bs) / math.sqrt(n_tot * bs * (1 - min(bs, 0.99)))
        if share < MIN_SHARE_OF_CHANGE or z < MIN_Z_CONCENTRATION:
            continue
        wshare = n / n_tot
        first = registry.get("escalation_reason\x1f" + v, [0.0, math.inf])[1]
        first_dt = datetime.fromtimestamp(first, tz=UTC) if math.isfinite(first) else None
        text = (f"escalation reason {v} is {fmt_pct(wshare)} of the escalations "
                f"(usually {fmt_pct(bshares.get(v, 0.0))})")
        out.append((share, Suspect(dimension="escalation_reason", value=v, share_of_change=round(share, 4),
                                   window_share=round(wshare, 4), baseline_share=round(bshares.get(v, 0.0), 4),
                                   first_seen=first_dt, text=text, n=int(n))))
    return out


def _text(rule: str, what: str, dim: str, v: str, share: float, wshare: float, bshare: float | None,
          first: datetime | None, new: bool) -> str:
    unit = "runs"
    label = f"{_WHAT[dim]} {v}"
    seen = f", first seen {first:%Y-%m-%d %H:%M} UTC" if first is not None and (bshare or 0.0) < 0.05 else ""
    head = f"{fmt_pct(min(share, 1.0))} of the {what} came from {label} ({fmt_pct(wshare)} of {unit}"
    if new and wshare >= 0.95 and share >= 0.9:
        since = f", first seen {first:%Y-%m-%d %H:%M} UTC" if first is not None else ""
        return f"all runs used {label} (new{since}): it accounts for the whole {what}"
    if new:
        usual = f"usually {fmt_pct(bshare)}" if bshare is not None and bshare >= 0.001 else "new"
        return f"{head}, {usual}{seen})"
    return f"{head}{seen})"


def window_seconds(window: str) -> float | None:
    """`AlertMetric.window` ("15m", "6h", "90s") in seconds (None: not of that form)."""
    if len(window) < 2 or not window[:-1].isdigit():
        return None
    unit = {"h": 3600, "m": 60, "s": 1}.get(window[-1])
    return int(window[:-1]) * unit if unit else None


def related(tracker: AlertTracker, fp: str, at: float, window_s: float) -> list[str]:
    """The agent's other alerts firing, or resolved within `window_s` before `at`, oldest first
    (by the first firing of their episode)."""
    out: list[tuple[float, str]] = []
    for other, st in tracker.states.items():
        if other == fp:
            continue
        if st.state == FIRING or (st.resolved_at is not None and at - st.resolved_at <= window_s):
            start = st.episode if st.episode is not None else st.since
            out.append((start, other))
    out.sort()
    return [f for _, f in out]


def enrich(alerts: Iterable[Alert], sus: SuspectState, tracker: AlertTracker, base: Agg, at: float,
           related_window_s: float) -> list[Alert]:
    """The firing alerts among `alerts` with their suspects (rate, mean and quantile rules) and
    related alerts; resolves and others unchanged (a resolve carries no `related`)."""
    out = []
    shares: dict[str, dict[str, float]] | None = None
    for alert in alerts:
        if alert.state != "firing":
            out.append(alert)
            continue
        update: dict[str, Any] = {"related": related(tracker, alert.fingerprint, at, related_window_s)}
        if alert.rule in ATTRIBUTED:
            secs = window_seconds(alert.metric.window)
            stat = baseline_stat(alert.rule, base)
            if secs is not None and stat is not None:
                if shares is None:
                    shares = sus.base_shares()
                found = attribute(alert.rule, sus.window(at, secs), shares, sus.registry, stat)
                if found:
                    update["suspects"] = found
                    update["summary"] = f"{alert.summary}; {found[0].text}"
        out.append(alert.model_copy(update=update))
    return out
