"""ReviewAccumulator: bounded whatever the event count, a uniform order-independent sample, an
exact top-k of costs, capped categories."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from monitor.contract.events import EvaluationEvent, ExecutionEvent
from monitor.contract.rollup import Rollup
from monitor.core.review_sample import (
    MAX_HIST_BINS,
    MAX_TEXT,
    OTHER,
    ReviewAccumulator,
    ReviewExtras,
    hist_bin,
    hist_quantile,
)

HOUR = datetime(2026, 11, 10, 3, tzinfo=UTC)


def execution(i: int | str, *, status: str = "completed", task_type: str | None = "billing",
              reason: str | None = None, quality: float | None = 0.8, duration: float | None = 1000.0,
              steps: int | None = 5) -> ExecutionEvent:
    return ExecutionEvent.model_validate({
        "schema_version": 1, "kind": "execution", "event_id": f"e-{i}", "agent_id": "a",
        "occurred_at": (HOUR + timedelta(seconds=hash(str(i)) % 3600)).isoformat(),
        "execution_id": f"x-{i}", "task_id": f"t-{i}", "status": status, "task_type": task_type,
        "escalation_reason": reason, "quality_score": quality, "duration_ms": duration, "steps": steps,
    })


def evaluation(i: int, evaluator: str, score: float, passed: bool | None) -> EvaluationEvent:
    return EvaluationEvent.model_validate({
        "schema_version": 1, "kind": "evaluation", "event_id": f"ev-{i}", "agent_id": "a",
        "occurred_at": HOUR.isoformat(), "execution_id": f"x-{i}", "evaluator": evaluator, "score": score,
        "passed": passed,
    })


# ---- bounds ------------------------------------------------------------------------------------

executions_strategy = st.lists(
    st.tuples(
        st.integers(0, 10_000),  # execution id (duplicates happen)
        st.sampled_from(["completed", "escalated", "failed", "timeout"]),
        st.text(min_size=1, max_size=6),  # task types: many distinct
        st.one_of(st.none(), st.floats(0, 1e6)),  # cost
        st.one_of(st.none(), st.floats(0, 1e9)),  # duration
    ),
    max_size=400,
)


@settings(max_examples=60, deadline=None)
@given(executions_strategy, st.integers(1, 30), st.integers(1, 15), st.integers(1, 10))
def test_extras_stay_within_their_bounds(rows: list, sample_size: int, top: int, cap: int) -> None:
    acc = ReviewAccumulator("a", HOUR, sample_size=sample_size, top_cost_size=top, max_categories=cap,
                            max_evaluators=cap)
    for i, status, task_type, cost, duration in rows:
        acc.observe_execution(execution(i, status=status, task_type=task_type, reason=task_type * 100,
                                        duration=duration), cost)
        acc.observe_evaluation(evaluation(i, task_type, 0.5, True))
    x = acc.result()
    assert x.executions_seen == len(rows)
    assert len(x.sample) <= sample_size
    assert len(x.top_cost) <= top
    assert len(x.task_types) <= cap + 1 and len(x.escalation_reasons) <= cap + 1 and len(x.evaluators) <= cap + 1
    assert len(x.duration_ms_hist) <= MAX_HIST_BINS and len(x.steps_hist) <= MAX_HIST_BINS
    assert all(len(s.escalation_reason or "") <= MAX_TEXT for s in x.sample + x.top_cost)
    assert sum(c.executions for c in x.task_types.values()) == len(rows)
    assert sum(x.escalation_reasons.values()) == sum(1 for r in rows if r[1] == "escalated")
    bound = 2 * sample_size + 2 * top + 3 * (cap + 1) + 2 * MAX_HIST_BINS
    assert acc.state_size() <= bound


def test_state_does_not_grow_with_the_number_of_executions() -> None:
    acc = ReviewAccumulator("a", HOUR)
    sizes = []
    rng = random.Random(1)
    for i in range(20_000):
        acc.observe_execution(execution(i, task_type=f"type-{i}", status=rng.choice(["completed", "escalated"]),
                                        reason=f"reason-{i}", duration=rng.lognormvariate(8, 1),
                                        steps=rng.randrange(1, 50)),
                              rng.random())
        if i in (999, 19_999):
            sizes.append(acc.state_size())
    assert sizes[1] <= sizes[0] + 20  # only histogram bins may still appear (bounded by MAX_HIST_BINS)
    x = acc.result()
    assert len(x.sample) == 20 and len(x.top_cost) == 10
    assert len(x.task_types) == 25 and x.task_types[OTHER].executions == 20_000 - 24
    assert len(x.model_dump_json()) < 50_000


# ---- top-k, sample: exact against brute force, order independent ---------------------------------

@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 500), st.floats(0, 1000, allow_nan=False)), max_size=120,
                unique_by=lambda r: r[0]),
       st.integers(1, 12), st.randoms(use_true_random=False))
def test_top_cost_is_exact_and_the_sample_is_the_bottom_k_whatever_the_order(
    rows: list[tuple[int, float]], k: int, rnd: random.Random,
) -> None:
    events = [(execution(i), cost) for i, cost in rows]
    acc = ReviewAccumulator("a", HOUR, sample_size=k, top_cost_size=k)
    for ev, cost in events:
        acc.observe_execution(ev, cost)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    again = ReviewAccumulator("a", HOUR, sample_size=k, top_cost_size=k)
    for ev, cost in shuffled:
        again.observe_execution(ev, cost)
    x = acc.result()
    expected_top = sorted(((c, f"x-{i}") for i, c in rows), reverse=True)[:k]
    assert [(s.cost_usd, s.execution_id) for s in x.top_cost] == expected_top
    expected_sample = sorted((acc.priority(f"x-{i}"), f"x-{i}") for i, _ in rows)[:k]
    assert [s.execution_id for s in x.sample] == [e for _, e in expected_sample]
    assert again.result() == x


def test_a_duplicate_delivery_is_sampled_and_ranked_once() -> None:
    acc = ReviewAccumulator("a", HOUR, sample_size=5, top_cost_size=5)
    for _ in range(3):
        acc.observe_execution(execution(1), 9.0)
    acc.observe_execution(execution(2), 1.0)
    x = acc.result()
    assert [s.execution_id for s in x.top_cost] == ["x-1", "x-2"]
    assert sorted(s.execution_id for s in x.sample) == ["x-1", "x-2"]


def test_sample_is_uniform_over_items() -> None:
    """Each of n items is in a k-sample with probability k/n: counted over many hours (seeds)."""
    n, k, hours = 40, 8, 2500
    events = [execution(i) for i in range(n)]
    counts = [0] * n
    for h in range(hours):
        acc = ReviewAccumulator("agent", HOUR + timedelta(hours=h), sample_size=k)
        for ev in events:
            acc.observe_execution(ev, None)
        for s in acc.result().sample:
            counts[int(s.execution_id[2:])] += 1
    expected = hours * k / n
    assert sum(counts) == hours * k
    assert chisquare(counts).pvalue > 1e-3
    assert max(abs(c - expected) for c in counts) < 0.2 * expected


def test_same_agent_hour_gives_same_sample_other_hour_another() -> None:
    def sample(hour: datetime) -> list[str]:
        acc = ReviewAccumulator("a", hour, sample_size=5)
        for i in range(200):
            acc.observe_execution(execution(i), None)
        return [s.execution_id for s in acc.result().sample]

    assert sample(HOUR) == sample(HOUR)
    assert sample(HOUR) != sample(HOUR + timedelta(hours=1))


# ---- categories, evaluators, histograms --------------------------------------------------------

def test_categories_and_evaluators_are_counted() -> None:
    acc = ReviewAccumulator("a", HOUR)
    acc.observe_execution(execution(1, status="escalated", task_type="billing", reason="policy"), 0.1)
    acc.observe_execution(execution(2, status="completed", task_type="billing"), 0.1)
    acc.observe_execution(execution(3, status="escalated", task_type=None, reason=None), None)
    acc.observe_evaluation(evaluation(1, "judge", 0.9, True))
    acc.observe_evaluation(evaluation(2, "judge", 0.3, False))
    acc.observe_evaluation(evaluation(3, "human", 0.5, None))
    x = acc.result()
    assert x.task_types["billing"].executions == 2 and x.task_types["billing"].escalations == 1
    assert x.task_types["(none)"].escalations == 1
    assert x.escalation_reasons == {"policy": 1, "(none)": 1}
    assert x.evaluators["judge"].count == 2 and x.evaluators["judge"].passed == 1
    assert x.evaluators["judge"].failed == 1 and x.evaluators["judge"].score_sum == pytest.approx(1.2)
    assert x.evaluators["human"].passed == 0 and x.evaluators["human"].failed == 0
    assert x.priced_seen == 2 and x.executions_seen == 3


def test_histogram_quantile_is_within_ten_percent() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(9, 0.8) for _ in range(5000)]
    hist: dict[int, int] = {}
    for v in values:
        hist[hist_bin(v)] = hist.get(hist_bin(v), 0) + 1
    exact = sorted(values)[int(0.95 * len(values))]
    approx = hist_quantile(hist, 0.95)
    assert approx is not None and exact <= approx * 1.001 and approx <= exact * 1.1 + 1e-9


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ReviewAccumulator("a", datetime(2026, 11, 10, 3))
    with pytest.raises(ValueError, match="sample_size"):
        ReviewAccumulator("a", HOUR, sample_size=0)


def test_rollup_carries_the_extras_and_round_trips() -> None:
    acc = ReviewAccumulator("a", HOUR)
    acc.observe_execution(execution(1, status="escalated", reason="policy"), 0.5)
    rollup = Rollup(
        agent_id="a", hour=HOUR, executions=1, completed=0, escalations=1, failures=0, timeouts=0, repeats=0,
        quality_sum=0.8, quality_count=1, cost_usd_sum=0.5, cost_count=1, unpriced_executions=0, tokens_sum=0,
        tokens_count=0, steps_mean=5, steps_p95=5, duration_ms_mean=1000, duration_ms_p95=1000,
        review=acc.result(),
    )
    back = Rollup.model_validate_json(rollup.to_json())
    assert back == rollup
    assert isinstance(back.review, ReviewExtras) and back.review.sample[0].execution_id == "x-1"
    # a rollup without extras (older workers) still decodes
    plain = rollup.model_dump(mode="json")
    del plain["review"]
    assert Rollup.model_validate(plain).review is None


def test_snapshot_and_restore_midway_gives_the_uninterrupted_result() -> None:
    rng = random.Random(5)
    events = [(execution(i, status=rng.choice(["completed", "escalated"]), task_type=f"t{i % 30}",
                         reason=f"r{i % 7}", duration=rng.random() * 1e5, steps=rng.randrange(30)), rng.random())
              for i in range(600)]
    whole = ReviewAccumulator("a", HOUR, sample_size=7, top_cost_size=4, max_categories=10)
    first = ReviewAccumulator("a", HOUR, sample_size=7, top_cost_size=4, max_categories=10)
    for ev, cost in events:
        whole.observe_execution(ev, cost)
    for ev, cost in events[:300]:
        first.observe_execution(ev, cost)
    first.observe_evaluation(evaluation(1, "judge", 0.5, True))
    whole.observe_evaluation(evaluation(1, "judge", 0.5, True))
    resumed = ReviewAccumulator.restore(json.loads(json.dumps(first.snapshot())))
    for ev, cost in events[300:]:
        resumed.observe_execution(ev, cost)
    assert resumed.result() == whole.result()
    with pytest.raises(ValueError, match="version"):
        ReviewAccumulator.restore({**first.snapshot(), "v": 99})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.floats(0, 100), st.integers(0, 3)), max_size=150,
                unique_by=lambda r: r[0]),
       st.integers(1, 10))
def test_merging_parts_equals_one_accumulator(rows: list[tuple[int, float, int]], k: int) -> None:
    """The engine may keep one accumulator per 5-minute bucket and merge them into the hour."""
    whole = ReviewAccumulator("a", HOUR, sample_size=k, top_cost_size=k)
    parts = [ReviewAccumulator("a", HOUR, sample_size=k, top_cost_size=k) for _ in range(4)]
    for i, cost, part in rows:
        ev = execution(i, status="escalated" if i % 3 else "completed", task_type=f"t{i % 5}", reason=f"r{i % 4}")
        whole.observe_execution(ev, cost)
        parts[part].observe_execution(ev, cost)
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    got, want = merged.result(), whole.result()
    assert got.sample == want.sample and got.top_cost == want.top_cost
    assert got.task_types == want.task_types and got.escalation_reasons == want.escalation_reasons
    assert got.executions_seen == want.executions_seen and got.duration_ms_hist == want.duration_ms_hist
    with pytest.raises(ValueError, match="same agent-hour"):
        merged.merge(ReviewAccumulator("b", HOUR))
