"""What the weekly review needs about one agent-hour that hourly sums cannot give.

`ReviewAccumulator` is a pure accumulator (no I/O, no clock, no global randomness) fed with the
executions and evaluations of one agent in one event-time hour; `result()` gives the
`ReviewExtras` that travel inside that hour's `Rollup` (field `review`), so the weekly report can
be rebuilt from `agent-rollups` alone for any week within retention.

Bounds (per agent-hour, whatever the number of events):

- execution sample: at most `sample_size` (default 20) `ExecutionSample`s;
- most expensive executions: at most `top_cost_size` (default 10);
- executions / escalations per `task_type` and escalations per `escalation_reason`: at most
  `max_categories` (default 24) named keys each, the rest counted under `"other"`;
- evaluations: at most `max_evaluators` (default 12) named evaluators, the rest under `"other"`;
- duration and steps histograms: log-spaced bins 10 % wide, at most `MAX_HIST_BINS` each;
- strings are cut to `MAX_TEXT` characters.

An `ExecutionSample` is under 1 KiB; one hour's extras are about 10 KiB in JSON for ordinary
traffic and under 64 KiB with the longest strings everywhere (Kafka's default message limit is
1 MB).

The sample is a *bottom-k* sample: each execution gets a pseudo-random priority from a keyed
hash of its `execution_id`, the key being derived from `agent_id` and the hour, and the
`sample_size` lowest priorities are kept. That is a uniform random sample without replacement
(each of n executions is in it with probability k/n), like reservoir sampling, but it does not
depend on arrival order: the live worker and a backtest that see the same events in different
orders keep the same sample, and a duplicate delivery of an execution cannot be sampled twice.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.contract.review import (
    REVIEW_EXTRAS_VERSION,
    CategoryCounts,
    EvaluatorStats,
    ExecutionSample,
    ReviewExtras,
)
from monitor.contract.wire import AnyEvaluation, AnyExecution
from monitor.core.signals import hist_quantile_bin

OTHER = "other"
NO_CATEGORY = "(none)"
MAX_TEXT = 200
#: bin i (i >= 1) holds values in [1.1**(i-1), 1.1**i); bin 0 holds values below 1.
HIST_GROWTH = 1.1
#: 1.1**400 is about 4e16: any duration in ms or any step count fits.
MAX_HIST_BINS = 400
DEFAULT_SAMPLE_SIZE = 20
DEFAULT_TOP_COST_SIZE = 10
DEFAULT_MAX_CATEGORIES = 24
DEFAULT_MAX_EVALUATORS = 12


_LOG_GROWTH = math.log(HIST_GROWTH)
_LAST_BIN = MAX_HIST_BINS - 1
_log = math.log
_from_bytes = int.from_bytes


def hist_bin(value: float) -> int:
    """Log-spaced bin of a non-negative value (bin 0: below 1)."""
    if value < 1:
        return 0
    return min(MAX_HIST_BINS - 1, 1 + int(math.log(value) / _LOG_GROWTH))


def hist_bin_upper(index: int) -> float:
    """Upper edge of a bin (what a quantile read from the histogram reports)."""
    return 1.0 if index <= 0 else HIST_GROWTH**index


def hist_quantile(hist: dict[int, int], q: float) -> float | None:
    """The q-quantile of a histogram, as the upper edge of the bin that holds it."""
    index = hist_quantile_bin(hist, q)
    return None if index is None else hist_bin_upper(index)


def _cut(text: str | None) -> str | None:
    return None if text is None else text[:MAX_TEXT]


# A sampled execution is kept as a plain tuple of ExecutionSample's fields (in field order) and
# becomes a model only when the extras are read or saved: most candidates leave the sample again.
_Row = tuple[Any, ...]
_SAMPLE_FIELDS = tuple(ExecutionSample.model_fields)


def _row_of(event: AnyExecution, cost_usd: float | None) -> _Row:
    return (event.execution_id, event.occurred_at, event.status, _cut(event.task_type), event.quality_score,
            cost_usd, event.steps, event.duration_ms, _cut(event.escalation_reason))


_new_sample = ExecutionSample.__new__
_set_attr = object.__setattr__
# what ExecutionSample.model_construct leaves out of the instance with every field given
assert ExecutionSample.__pydantic_post_init__ is None and not ExecutionSample.__pydantic_root_model__
assert ExecutionSample.model_config.get("extra") in (None, "ignore", "forbid")
assert all(f.alias is None and f.validation_alias is None for f in ExecutionSample.model_fields.values())


def _sample_of(row: _Row) -> ExecutionSample:
    # The row's values come from a validated event (and the engine's cost): no second validation.
    # The instance `ExecutionSample.model_construct(**fields)` builds (all fields given, no
    # aliases, extras or private attributes), without its generic loop over the fields, which
    # cost more than the rest of a rollup (30 samples an agent-hour).
    sample = _new_sample(ExecutionSample)
    _set_attr(sample, "__dict__", dict(zip(_SAMPLE_FIELDS, row, strict=True)))
    _set_attr(sample, "__pydantic_fields_set__", set(_SAMPLE_FIELDS))
    _set_attr(sample, "__pydantic_extra__", None)
    _set_attr(sample, "__pydantic_private__", None)
    return sample


def _row_from(sample: ExecutionSample) -> _Row:
    return tuple(getattr(sample, name) for name in _SAMPLE_FIELDS)


class ReviewAccumulator:
    """Accumulates one agent-hour's review extras in bounded memory.

    Parameters
    ----------
    agent_id, hour
        The agent and the start of the event-time hour; together they key the sample's hash,
        so the same events always give the same sample.
    sample_size, top_cost_size, max_categories, max_evaluators
        The bounds (module docstring).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> acc = ReviewAccumulator("a", datetime(2026, 11, 16, 3, tzinfo=UTC), sample_size=2)
    >>> acc.result().executions_seen
    0
    """

    def __init__(
        self,
        agent_id: str,
        hour: datetime,
        *,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        top_cost_size: int = DEFAULT_TOP_COST_SIZE,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        max_evaluators: int = DEFAULT_MAX_EVALUATORS,
    ) -> None:
        if hour.tzinfo is None:
            raise ValueError(f"hour: must be timezone-aware, got {hour!r}")
        for name, value in (("sample_size", sample_size), ("top_cost_size", top_cost_size),
                            ("max_categories", max_categories), ("max_evaluators", max_evaluators)):
            if value < 1:
                raise ValueError(f"{name}: must be at least 1, got {value}")
        self.agent_id = agent_id
        self.hour = hour
        self.sample_size = sample_size
        self.top_cost_size = top_cost_size
        self.max_categories = max_categories
        self.max_evaluators = max_evaluators
        self._key = hashlib.blake2b(f"{agent_id}\x1f{hour.timestamp():.0f}".encode(), digest_size=16).digest()
        # the keyed hash with the key block already absorbed: a copy of it hashes one execution id
        self._keyed = hashlib.blake2b(key=self._key, digest_size=8)
        # max-heap of the lowest priorities, as (-priority, tiebreak, sample)
        self._sample: list[tuple[int, str, _Row]] = []
        self._sampled_ids: set[str] = set()
        # min-heap of the highest costs, as (cost, execution_id, sample)
        self._top_cost: list[tuple[float, str, _Row]] = []
        self._top_cost_ids: set[str] = set()
        self._executions = 0
        self._priced = 0
        self._task_types: dict[str, list[int]] = {}
        self._reasons: dict[str, int] = {}
        self._evaluators: dict[str, list[float]] = {}
        self._duration_hist: dict[int, int] = {}
        self._steps_hist: dict[int, int] = {}

    # -- observing ------------------------------------------------------------------------------

    def priority(self, execution_id: str) -> int:
        """The execution's sampling priority (lowest ones are sampled); uniform on 64 bits: the
        blake2b-64 of the id keyed with the agent-hour's key."""
        h = self._keyed.copy()
        h.update(execution_id.encode())
        return _from_bytes(h.digest(), "big")

    def observe_execution(self, event: AnyExecution, cost_usd: float | None) -> None:
        """One execution of this agent-hour; `cost_usd` as the engine priced it (None: unknown).
        Long because it is inlined for speed (see the comment below)."""
        # Hot path (once per execution): the heap keys (-priority, id) and (cost, id) are compared
        # field by field, as tuples compare, without building them; the sample item is only built
        # when it enters the sample or the top list.
        self._executions += 1
        item: _Row | None = None
        execution_id = event.execution_id
        if execution_id not in self._sampled_ids:  # a duplicate has the same priority: never twice
            h = self._keyed.copy()
            h.update(execution_id.encode())
            neg = -_from_bytes(h.digest(), "big")
            sample = self._sample
            if len(sample) < self.sample_size:
                item = _row_of(event, cost_usd)
                heapq.heappush(sample, (neg, execution_id, item))
                self._sampled_ids.add(execution_id)
            else:
                low = sample[0]
                if neg > low[0] or (neg == low[0] and execution_id > low[1]):
                    item = _row_of(event, cost_usd)
                    self._sampled_ids.discard(heapq.heapreplace(sample, (neg, execution_id, item))[1])
                    self._sampled_ids.add(execution_id)
        if cost_usd is not None:
            self._priced += 1
            top_cost = self._top_cost
            if execution_id not in self._top_cost_ids:
                if len(top_cost) < self.top_cost_size:
                    heapq.heappush(top_cost, (cost_usd, execution_id, item or _row_of(event, cost_usd)))
                    self._top_cost_ids.add(execution_id)
                else:
                    cheapest = top_cost[0]
                    if cost_usd > cheapest[0] or (cost_usd == cheapest[0] and execution_id > cheapest[1]):
                        top = (cost_usd, execution_id, item or _row_of(event, cost_usd))
                        self._top_cost_ids.discard(heapq.heapreplace(top_cost, top)[1])
                        self._top_cost_ids.add(execution_id)
        escalated = event.status == "escalated"
        # categories: `max_categories` named keys, the rest under OTHER (as `_category`)
        task_type = event.task_type
        task_type = task_type[:MAX_TEXT] if task_type else NO_CATEGORY
        task_types = self._task_types
        counts = task_types.get(task_type)
        if counts is None:
            if len(task_types) >= self.max_categories:
                task_type = OTHER
            counts = task_types.setdefault(task_type, [0, 0])
        counts[0] += 1
        counts[1] += escalated
        if escalated:
            reason = self._category(self._reasons, _cut(event.escalation_reason) or NO_CATEGORY, self.max_categories)
            self._reasons[reason] = self._reasons.get(reason, 0) + 1
        value = event.duration_ms
        if value is not None:
            b = 0 if value < 1 else min(_LAST_BIN, 1 + int(_log(value) / _LOG_GROWTH))  # hist_bin
            hist = self._duration_hist
            hist[b] = hist.get(b, 0) + 1
        value = event.steps
        if value is not None:
            b = 0 if value < 1 else min(_LAST_BIN, 1 + int(_log(value) / _LOG_GROWTH))  # hist_bin
            hist = self._steps_hist
            hist[b] = hist.get(b, 0) + 1

    def observe_evaluation(self, event: AnyEvaluation) -> None:
        """One evaluation (late score) that arrived in this agent-hour."""
        name = self._category(self._evaluators, event.evaluator[:MAX_TEXT], self.max_evaluators)
        stats = self._evaluators.setdefault(name, [0.0, 0, 0, 0])
        stats[0] += event.score
        stats[1] += 1
        if event.passed is True:
            stats[2] += 1
        elif event.passed is False:
            stats[3] += 1

    @staticmethod
    def _category(table: Mapping[str, object], key: str, cap: int) -> str:
        # `cap` named keys plus "other": a producer with unbounded categories cannot grow state.
        if key in table or len(table) < cap:
            return key
        return OTHER

    # -- result ---------------------------------------------------------------------------------

    def result(self) -> ReviewExtras:
        sample = [_sample_of(e[2]) for e in sorted(self._sample, key=lambda e: (-e[0], e[1]))]
        # ties of cost are ranked by execution_id, higher first, as the heap keeps them
        top = [_sample_of(e[2]) for e in sorted(self._top_cost, key=lambda e: (e[0], e[1]), reverse=True)]
        return ReviewExtras(
            executions_seen=self._executions,
            sample=sample,
            top_cost=top,
            priced_seen=self._priced,
            task_types={k: CategoryCounts(executions=v[0], escalations=v[1]) for k, v in self._task_types.items()},
            escalation_reasons=dict(self._reasons),
            evaluators={
                k: EvaluatorStats(score_sum=v[0], count=int(v[1]), passed=int(v[2]), failed=int(v[3]))
                for k, v in self._evaluators.items()
            },
            duration_ms_hist=dict(self._duration_hist),
            steps_hist=dict(self._steps_hist),
        )

    def merge(self, other: ReviewAccumulator) -> None:
        """Add another accumulator of the same agent-hour (e.g. the engine's 5-minute buckets of
        one hour): the result is the one a single accumulator fed with both streams gives, as long
        as categories stay under their caps."""
        if (other.agent_id, other.hour) != (self.agent_id, self.hour):
            raise ValueError(f"merge: {other.agent_id}@{other.hour.isoformat()} into "
                             f"{self.agent_id}@{self.hour.isoformat()}: not the same agent-hour")
        self._executions += other._executions
        self._priced += other._priced
        for p, i, x in other._sample:
            if i in self._sampled_ids:
                continue
            if len(self._sample) < self.sample_size:
                heapq.heappush(self._sample, (p, i, x))
                self._sampled_ids.add(i)
            elif (p, i) > self._sample[0][:2]:
                self._sampled_ids.discard(heapq.heapreplace(self._sample, (p, i, x))[1])
                self._sampled_ids.add(i)
        for c, i, x in other._top_cost:
            if i in self._top_cost_ids:
                continue
            if len(self._top_cost) < self.top_cost_size:
                heapq.heappush(self._top_cost, (c, i, x))
                self._top_cost_ids.add(i)
            elif (c, i) > self._top_cost[0][:2]:
                self._top_cost_ids.discard(heapq.heapreplace(self._top_cost, (c, i, x))[1])
                self._top_cost_ids.add(i)
        for k, (n, e) in other._task_types.items():
            acc = self._task_types.setdefault(self._category(self._task_types, k, self.max_categories), [0, 0])
            acc[0] += n
            acc[1] += e
        for k, n in other._reasons.items():
            key = self._category(self._reasons, k, self.max_categories)
            self._reasons[key] = self._reasons.get(key, 0) + n
        for k, v in other._evaluators.items():
            ev = self._evaluators.setdefault(self._category(self._evaluators, k, self.max_evaluators),
                                             [0.0, 0, 0, 0])
            for j in range(4):
                ev[j] += v[j]
        for b, n in other._duration_hist.items():
            self._duration_hist[b] = self._duration_hist.get(b, 0) + n
        for b, n in other._steps_hist.items():
            self._steps_hist[b] = self._steps_hist.get(b, 0) + n

    # -- checkpoint state -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-serialisable state (for the engine's checkpoints); `restore` reads it back."""
        return {
            "v": REVIEW_EXTRAS_VERSION,
            "agent_id": self.agent_id,
            "hour": self.hour.isoformat(),
            "params": [self.sample_size, self.top_cost_size, self.max_categories, self.max_evaluators],
            "executions": self._executions,
            "priced": self._priced,
            "sample": [[-p, i, _sample_of(x).model_dump(mode="json")] for p, i, x in self._sample],
            "top_cost": [[c, i, _sample_of(x).model_dump(mode="json")] for c, i, x in self._top_cost],
            "task_types": self._task_types,
            "reasons": self._reasons,
            "evaluators": self._evaluators,
            "duration_hist": [[b, n] for b, n in self._duration_hist.items()],
            "steps_hist": [[b, n] for b, n in self._steps_hist.items()],
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> ReviewAccumulator:
        if state.get("v") != REVIEW_EXTRAS_VERSION:
            raise ValueError(f"review accumulator state: version {state.get('v')!r}, "
                             f"expected {REVIEW_EXTRAS_VERSION}")
        sample_size, top_cost_size, max_categories, max_evaluators = state["params"]
        acc = cls(state["agent_id"], datetime.fromisoformat(state["hour"]), sample_size=sample_size,
                  top_cost_size=top_cost_size, max_categories=max_categories, max_evaluators=max_evaluators)
        acc._executions = int(state["executions"])
        acc._priced = int(state["priced"])
        acc._sample = [(-int(p), i, _row_from(ExecutionSample.model_validate(x))) for p, i, x in state["sample"]]
        heapq.heapify(acc._sample)
        acc._sampled_ids = {i for _, i, _ in acc._sample}
        acc._top_cost = [(float(c), i, _row_from(ExecutionSample.model_validate(x))) for c, i, x in state["top_cost"]]
        heapq.heapify(acc._top_cost)
        acc._top_cost_ids = {i for _, i, _ in acc._top_cost}
        acc._task_types = {k: [int(v[0]), int(v[1])] for k, v in state["task_types"].items()}
        acc._reasons = {k: int(v) for k, v in state["reasons"].items()}
        acc._evaluators = {k: [float(x) for x in v] for k, v in state["evaluators"].items()}
        acc._duration_hist = {int(b): int(n) for b, n in state["duration_hist"]}
        acc._steps_hist = {int(b): int(n) for b, n in state["steps_hist"]}
        return acc

    def state_size(self) -> int:
        """Number of entries held (what the bounds limit); for tests and metrics."""
        return (len(self._sample) + len(self._sampled_ids) + len(self._top_cost) + len(self._top_cost_ids)
                + len(self._task_types) + len(self._reasons) + len(self._evaluators)
                + len(self._duration_hist) + len(self._steps_hist))


__all__ = [
    "NO_CATEGORY",
    "OTHER",
    "CategoryCounts",
    "EvaluatorStats",
    "ExecutionSample",
    "ReviewAccumulator",
    "ReviewExtras",
    "hist_bin",
    "hist_quantile",
]
