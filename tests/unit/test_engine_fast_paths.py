"""The engine's hot paths keep the semantics of the plain ones: FIFO bounds of the repeat and
score memories (with the compaction of `_COMPACT_AFTER`), the hourly pruning by event time, and
the cost of LLM calls (`PricingTable.call_cost`)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from monitor.contract.wire import LlmCall
from monitor.core import state as state_module
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.pricing import PricingTable
from monitor.core.rules import Bucket
from monitor.core.state import AgentState
from monitor.sdk import execution

START = datetime(2026, 11, 2, tzinfo=UTC)


def test_score_and_task_memories_keep_the_newest_in_insertion_order(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(state_module, "_COMPACT_AFTER", 7)  # compact often
    eng = Engine(DetectionConfig(max_scored_per_agent=100, max_tasks_per_agent=100))
    n = 1000
    for i in range(n):
        eng.observe(execution("a", execution_id=f"x{i}", task_id=f"t{i}", status="completed",
                              quality_score=0.5, occurred_at=START + timedelta(seconds=3 * i)))
    eng.advance(START + timedelta(seconds=3 * n + 3600))  # close every bucket
    st = eng._agents["a"]
    assert list(st.scored) == [f"x{i}" for i in range(n - 100, n)]
    assert list(st.tasks) == [f"t{i}" for i in range(n - 100, n)]
    assert st.scored_dead < 7 and st.tasks_dead < 7


def test_hourly_pruning_drops_exactly_the_memories_older_than_the_windows() -> None:
    cfg = DetectionConfig(repeat_window_s=3600, score_join_window_s=7200)
    eng = Engine(cfg)
    times = [START + timedelta(minutes=7 * i) for i in range(60)]  # 7 hours
    for i, at in enumerate(times):
        eng.observe(execution("a", execution_id=f"x{i}", task_id=f"t{i}", status="completed",
                              quality_score=0.5, occurred_at=at))
    eng.advance(times[-1] + timedelta(hours=1))
    st = eng._agents["a"]
    horizon = (st.hour_idx or 0) * 3600  # the end of the last closed hour
    want_tasks = [f"t{i}" for i, at in enumerate(times) if at.timestamp() >= horizon - cfg.repeat_window_s]
    want_scored = [f"x{i}" for i, at in enumerate(times) if at.timestamp() >= horizon - cfg.score_join_window_s]
    assert list(st.tasks) == want_tasks and 0 < len(want_tasks) < len(times)
    assert list(st.scored) == want_scored and len(want_tasks) < len(want_scored) < len(times)


def test_execution_cost_is_the_pricing_tables() -> None:
    rng = random.Random(5)
    pricing = PricingTable()
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "no-such-model", "gemini-2.5-flash"]
    resolved = [None, "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "unknown-checkpoint"]
    eng = Engine(pricing=pricing)
    for i in range(2000):
        calls = []
        for _ in range(rng.randint(1, 4)):
            inp = rng.randint(0, 5000)
            calls.append(LlmCall(
                provider="p", model=rng.choice(models), resolved_model=rng.choice(resolved),
                input_tokens=inp, output_tokens=rng.randint(0, 2000),
                cached_input_tokens=rng.choice([None, 0, rng.randint(0, 6000)]),
                cost_usd=rng.choice([None, None, None, rng.random()]),
            ))
        total, unpriced = pricing.calls_cost(calls)
        ev = execution("a", execution_id=f"x{i}", task_id="t", status="completed", occurred_at=START,
                       llm_calls=[{f: getattr(c, f) for f in c.__struct_fields__}
                                  for c in calls])
        st = eng._agents.get("a") or AgentState("a", eng.config, 0.0)
        got = eng._ingest.execution(st, Bucket(), ev, START.timestamp(), False)  # type: ignore[arg-type]
        assert got == (None if unpriced else total)
