"""A seeded mutation fuzzer over valid events: the bad input a Kafka topic open to any producer
receives. Each mutant keeps its base event's `event_id` where it still has one, so a mutant that
happens to stay valid is a duplicate of an event already applied and changes nothing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

Event = dict[str, Any]

FIELDS = ("schema_version", "kind", "event_id", "occurred_at", "agent_id", "execution_id", "task_id", "status",
          "duration_ms", "steps", "llm_calls", "tool_calls", "quality_score", "evaluator", "score", "metric", "value")


def _dumps(ev: Any) -> bytes:
    return json.dumps(ev, separators=(",", ":")).encode()


def _field(rng: random.Random, ev: Event) -> str:
    present = [f for f in FIELDS if f in ev]
    return rng.choice(present)


def truncated(rng: random.Random, ev: Event) -> bytes:
    raw = _dumps(ev)
    return raw[: rng.randrange(1, len(raw) - 1)]


def wrong_type(rng: random.Random, ev: Event) -> bytes:
    out = dict(ev)
    name = _field(rng, ev)
    value = out[name]
    out[name] = rng.choice([[value], {"v": value}, True, None, 12.5 if isinstance(value, str) else "text"])
    return _dumps(out)


def huge_string(rng: random.Random, ev: Event) -> bytes:
    out = dict(ev)
    name = rng.choice(["agent_id", "task_id", "execution_id", "escalation_reason"])
    out[name] = "x" * rng.choice([129, 5000, 70_000])
    return _dumps(out)


def huge_array(rng: random.Random, ev: Event) -> bytes:
    out = dict(ev)
    call = {"tool": "search", "status": "ok"}
    out["kind"] = "execution"
    out["tool_calls"] = [call] * rng.choice([1001, 5000])
    return _dumps(out)


def deep_nesting(rng: random.Random, ev: Event) -> bytes:
    depth = rng.choice([300, 5000])
    raw = _dumps(ev)
    return raw[:-1] + b',"attributes":' + b"[" * depth + b"]" * depth + b"}"


def bad_time(rng: random.Random, ev: Event) -> bytes:
    out = dict(ev)
    out["occurred_at"] = rng.choice([
        ev["occurred_at"][:19],  # naive
        "2099-01-01T00:00:00Z",  # far future: refused by the event-time gate
        "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1999-06-01T00:00:00Z",  # ancient
        "not a time", "2026-13-45T25:61:61Z", 1_700_000_000,
    ])
    return _dumps(out)


def non_finite(rng: random.Random, ev: Event) -> bytes:
    out = dict(ev)
    name = rng.choice(["duration_ms", "steps", "quality_score", "score", "value", "cost_usd"])
    token = rng.choice(["NaN", "Infinity", "-Infinity", "1e400"])
    raw = _dumps({**out, name: 0})
    return raw.replace(f'"{name}":0'.encode(), f'"{name}":{token}'.encode(), 1)


def invalid_utf8(rng: random.Random, ev: Event) -> bytes:
    raw = _dumps(ev)
    at = raw.index(b'"agent_id":"') + len(b'"agent_id":"')
    return raw[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]) + raw[at:]


def unknown_kind(rng: random.Random, ev: Event) -> bytes:
    return _dumps({**ev, "kind": rng.choice(["heartbeat", "EXECUTION", "", "execution ", "trace"])})


def oversized(rng: random.Random, ev: Event) -> bytes:
    return _dumps({**ev, "attributes": {f"k{i}": "v" * 4000 for i in range(140)}})  # ~560 KiB


def null_bytes(rng: random.Random, ev: Event) -> bytes:
    raw = _dumps(ev)
    where = rng.choice(["inside", "before", "after"])
    if where == "before":
        return b"\x00" + raw
    if where == "after":
        return raw + b"\x00"
    at = raw.index(b'"agent_id":"') + len(b'"agent_id":"')
    return raw[:at] + b"\x00" + raw[at:]


def missing_field(rng: random.Random, ev: Event) -> bytes:
    out = dict(ev)
    out.pop(rng.choice(["kind", "occurred_at", "agent_id", "event_id", "schema_version"]), None)
    return _dumps(out)


def not_an_object(rng: random.Random, ev: Event) -> bytes:
    return rng.choice([b"", b"null", b"[]", b'"event"', b"42", b"{", b"}", b"\xef\xbb\xbf" + _dumps(ev),
                       _dumps([ev]), b"{}"])


def schema_version(rng: random.Random, ev: Event) -> bytes:
    return _dumps({**ev, "schema_version": rng.choice([0, 2, "1", 1.5, -1])})


def negative_numbers(rng: random.Random, ev: Event) -> bytes:
    out = dict(ev)
    name = rng.choice(["duration_ms", "steps", "cost_usd"])
    out[name] = rng.choice([-1, -0.001, 10**30])
    if name == "steps" and not isinstance(out[name], int):
        out[name] = -5
    return _dumps(out)


MUTATIONS: dict[str, Callable[[random.Random, Event], bytes]] = {
    "truncated": truncated, "wrong_type": wrong_type, "huge_string": huge_string, "huge_array": huge_array,
    "deep_nesting": deep_nesting, "bad_time": bad_time, "non_finite": non_finite, "invalid_utf8": invalid_utf8,
    "unknown_kind": unknown_kind, "oversized": oversized, "null_bytes": null_bytes, "missing_field": missing_field,
    "not_an_object": not_an_object, "schema_version": schema_version, "negative_numbers": negative_numbers,
}


# the costly ones (hundreds of KiB each) are rarer
WEIGHTS = {name: 0.1 if name in ("oversized", "huge_array") else 1.0 for name in MUTATIONS}


def mutants(ev: Event, rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
    """`n` mutants of one valid event, each as (mutation name, bytes)."""
    names = sorted(MUTATIONS)
    weights = [WEIGHTS[name] for name in names]
    for name in rng.choices(names, weights, k=n):
        yield name, MUTATIONS[name](rng, ev)
