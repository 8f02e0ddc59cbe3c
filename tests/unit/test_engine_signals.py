"""Each signal's arithmetic on small hand-made streams, read back from the hourly rollups."""

from __future__ import annotations

import pytest

from monitor.contract.rollup import Rollup
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.signals import N
from tests.unit.test_engine_support import at, evaluation, execution, outcome

LLM = {"provider": "openai", "model": "gpt-4o", "resolved_model": "gpt-4o-2024-08-06",
       "input_tokens": 1_000_000, "output_tokens": 0}


def first_hour(events: list, config: DetectionConfig | None = None) -> Rollup:
    eng = Engine(config)
    for ev in events:
        eng.observe(ev)
    eng.advance(at(60 + 10))
    rollups = [r for r in eng.take_rollups() if r.hour == at(0)]
    assert len(rollups) == 1
    return rollups[0]


def test_volume_statuses_and_repeats() -> None:
    r = first_hour([
        execution(1, task="t1"),                      # completed
        execution(5, task="t2", status="escalated"),
        execution(10, task="t1"),                     # repeat (t1 completed at 1)
        execution(20, task="t2"),                     # not a repeat: t2 was escalated, not completed
        execution(30, task="t2", status="failed"),    # repeat of t2 completed at 20
        execution(40, task="t3", status="timeout"),
    ])
    assert (r.executions, r.completed, r.escalations, r.failures, r.timeouts, r.repeats) == (6, 3, 1, 1, 1, 2)


def test_repeat_window_bounds_repeats() -> None:
    cfg = DetectionConfig(repeat_window_s=600)
    r = first_hour([execution(0, task="t"), execution(15, task="t"), execution(20, task="t")], cfg)
    assert r.repeats == 1  # 15 is 15 min after 0 (outside 10 min); 20 is 5 min after 15


def test_repeats_follow_event_time_not_arrival_order() -> None:
    late_first = [execution(10, task="t", eid="b"), execution(8, task="t", eid="a")]
    r = first_hour(late_first)
    assert r.repeats == 1


def test_quality_counts_each_execution_once() -> None:
    r = first_hour([
        execution(1, xid="x1", quality_score=0.8),
        evaluation(5, "x1", 0.2),        # x1 already scored inline: ignored
        execution(2, xid="x2"),
        evaluation(6, "x2", 0.6),        # counted
        evaluation(9, "x2", 0.9),        # second evaluation of x2: ignored
    ])
    assert r.quality_count == 2
    assert r.quality_sum == pytest.approx(1.4)


def test_inline_score_wins_over_an_evaluation_that_arrived_first() -> None:
    r = first_hour([evaluation(3, "x1", 0.2), execution(1, xid="x1", quality_score=0.8)])
    assert r.quality_count == 1 and r.quality_sum == pytest.approx(0.8)


def test_cost_from_event_else_pricing_else_unpriced() -> None:
    unknown = dict(LLM, model="mystery-model", resolved_model="mystery-model-1")
    r = first_hour([
        execution(1, cost_usd=0.5, llm_calls=[LLM]),
        execution(2, llm_calls=[LLM]),                 # 1M input tokens of gpt-4o: 2.50 USD
        execution(3, llm_calls=[unknown]),             # cannot be priced
    ])
    assert r.cost_usd_sum == pytest.approx(3.0)
    assert r.cost_count == 2 and r.unpriced_executions == 1
    assert r.tokens_sum == 3_000_000 and r.tokens_count == 3


def test_steps_and_duration_mean_and_p95() -> None:
    evs = [execution(i, steps=s, duration_ms=d) for i, (s, d) in enumerate(
        [(2, 1000.0), (4, 2000.0), (6, 3000.0), (8, 4000.0), (30, 100000.0)])]
    r = first_hour(evs)
    assert r.steps_mean == pytest.approx(10.0)
    assert r.steps_p95 == 30
    assert r.duration_ms_mean == pytest.approx(22000.0)
    # p95 is the upper edge of a 13 %-wide bin that holds the largest value
    assert r.duration_ms_p95 is not None and 100000.0 <= r.duration_ms_p95 <= 100000.0 * 1.14


def test_tool_calls_errors_and_rate_limits() -> None:
    r = first_hour([
        execution(1, tool_calls=[{"tool": "crm", "status": "ok"}, {"tool": "crm", "status": "error"}]),
        execution(2, tool_calls=[{"tool": "crm", "status": "timeout"}, {"tool": "search", "status": "rate_limited"}]),
    ])
    assert r.tools["crm"].calls == 3 and r.tools["crm"].errors == 2 and r.tools["crm"].ok == 1
    assert r.tools["search"].rate_limited == 1 and r.tools["search"].errors == 0


def test_outcome_sums_and_resolved_models() -> None:
    r = first_hour([
        outcome(1, "converted", 1.0), outcome(2, "converted", 0.0), outcome(3, "revenue", 120.5),
        execution(4, llm_calls=[LLM, dict(LLM, resolved_model="gpt-4o-2024-11-20")]),
    ])
    assert r.outcomes["converted"].sum == 1.0 and r.outcomes["converted"].count == 2
    assert r.outcomes["revenue"].sum == pytest.approx(120.5)
    assert r.resolved_models == {"gpt-4o": ["gpt-4o-2024-08-06", "gpt-4o-2024-11-20"]}


def test_duplicate_event_ids_count_once() -> None:
    ev = execution(1, eid="same")
    eng = Engine()
    eng.observe(ev)
    eng.observe(ev)
    eng.observe(execution(2, eid="same"))
    assert eng.counters["duplicates"] == 2
    eng.advance(at(70))
    assert eng.take_rollups()[0].executions == 1


def test_late_event_inside_lateness_lands_in_its_bucket() -> None:
    cfg = DetectionConfig(allowed_lateness_s=300)
    r = first_hour([execution(1), execution(58), execution(61), execution(57)], cfg)  # 57 arrives 4 min late
    assert r.executions == 3


def test_event_behind_lateness_feeds_history_not_decided_rollup() -> None:
    eng = Engine(DetectionConfig(allowed_lateness_s=60))
    eng.observe(execution(1))
    eng.observe(execution(75))          # closes hour 0
    assert [r.executions for r in eng.take_rollups()] == [1]
    eng.observe(execution(2))           # 73 minutes late
    assert eng.counters["late_folded"] == 1
    st = eng._agents["a"]
    hour0 = int(at(0).timestamp() // 3600)
    agg = st.baseline.hours[hour0].agg
    assert agg is not None and agg.s[N] == 2  # the history (hence baseline) has it
    eng.advance(at(200))
    assert all(r.hour != at(0) for r in eng.take_rollups())  # rollup of hour 0 not re-emitted


def test_advance_without_events_is_safe_and_idempotent() -> None:
    eng = Engine()
    assert eng.advance(at(10)) == []   # nothing seen yet
    eng.observe(execution(1))
    eng.advance(at(30))
    eng.advance(at(20))                # backwards: ignored
    eng.advance(at(24 * 60))
    assert eng.watermark == at(24 * 60)


def test_frozen_baseline_stops_moving() -> None:
    eng = Engine(DetectionConfig(reference_exclude_recent_h=6))
    for m in range(0, 8 * 60, 10):
        eng.observe(execution(m))
    eng.advance(at(8 * 60 + 10))
    st = eng._agents["a"]
    before = st.baseline.base.s[N]
    assert before > 0
    assert eng.freeze_baselines() == ["a"]
    for m in range(8 * 60, 12 * 60, 2):
        eng.observe(execution(m))
    eng.advance(at(12 * 60 + 10))
    assert st.baseline.base.s[N] == before


def test_a_huge_gap_in_event_time_costs_bounded_work() -> None:
    import time

    eng = Engine()
    for m in range(0, 600, 5):
        eng.observe(execution(m))
    started = time.perf_counter()
    eng.observe(execution(60 * 24 * 365 * 3))  # three years later
    assert time.perf_counter() - started < 5
    eng.advance(at(60 * 24 * 365 * 3 + 30))
    assert eng.watermark == at(60 * 24 * 365 * 3 + 30)
