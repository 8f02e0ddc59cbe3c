"""The review accumulator's hot paths give exactly what the plain versions give."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from monitor.contract.wire import read_event
from monitor.core.review_sample import _SAMPLE_FIELDS, ExecutionSample, ReviewAccumulator, _row_of, _sample_of, hist_bin


def _execution(i: int, **extra: object) -> bytes:
    fields = {"schema_version": 1, "kind": "execution", "event_id": f"e-{i}",
              "occurred_at": "2026-11-16T03:00:05.250+00:00", "agent_id": "a", "execution_id": f"x-{i}",
              "task_id": f"t-{i % 7}", "status": "escalated" if i % 5 == 0 else "completed", **extra}
    return json.dumps(fields).encode()


def test_sample_of_is_model_construct() -> None:
    ev = read_event(_execution(1, task_type="lead", steps=4, duration_ms=12.5, quality_score=0.5))
    row = _row_of(ev, 0.25)  # type: ignore[arg-type]
    fast = _sample_of(row)
    plain = ExecutionSample.model_construct(**dict(zip(_SAMPLE_FIELDS, row, strict=True)))
    assert fast == plain
    assert fast.__dict__ == plain.__dict__ and list(fast.__dict__) == list(plain.__dict__)
    assert fast.model_fields_set == plain.model_fields_set
    assert fast.__pydantic_extra__ == plain.__pydantic_extra__
    assert fast.__pydantic_private__ == plain.__pydantic_private__
    assert fast.model_dump_json() == plain.model_dump_json()


def test_priority_is_the_keyed_blake2b() -> None:
    hour = datetime(2026, 11, 16, 3, tzinfo=UTC)
    acc = ReviewAccumulator("agent-1", hour)
    key = hashlib.blake2b(f"agent-1\x1f{hour.timestamp():.0f}".encode(), digest_size=16).digest()
    for xid in ("x-1", "x-2", "ü-3", "x" * 128):
        digest = hashlib.blake2b(xid.encode(), key=key, digest_size=8).digest()
        assert acc.priority(xid) == int.from_bytes(digest, "big")


def test_observe_execution_keeps_the_lowest_priorities_and_highest_costs() -> None:
    hour = datetime(2026, 11, 16, 3, tzinfo=UTC)
    acc = ReviewAccumulator("a", hour, sample_size=5, top_cost_size=3, max_categories=2)
    costs = {}
    for i in range(200):
        ev = read_event(_execution(i, task_type=f"type-{i % 4}", steps=i % 9, duration_ms=float(i) * 3.3,
                                   escalation_reason="r" if i % 5 == 0 else None))
        cost = float(i % 13) if i % 3 else None
        costs[f"x-{i}"] = cost
        acc.observe_execution(ev, cost)  # type: ignore[arg-type]
    got = acc.result()
    ids = [f"x-{i}" for i in range(200)]
    want = sorted(ids, key=lambda x: (acc.priority(x), x))[:5]
    assert [s.execution_id for s in got.sample] == sorted(want, key=lambda x: (acc.priority(x), x))
    priced = [(c, x) for x, c in costs.items() if c is not None]
    assert [(s.cost_usd, s.execution_id) for s in got.top_cost] == sorted(priced, reverse=True)[:3]
    assert set(got.task_types) == {"type-0", "type-1", "other"}
    assert sum(c.executions for c in got.task_types.values()) == 200
    assert got.duration_ms_hist == _count(hist_bin(float(i) * 3.3) for i in range(200))
    assert got.steps_hist == _count(hist_bin(i % 9) for i in range(200))


def _count(bins: object) -> dict[int, int]:
    out: dict[int, int] = {}
    for b in bins:  # type: ignore[attr-defined]
        out[b] = out.get(b, 0) + 1
    return out
