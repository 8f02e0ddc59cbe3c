"""Backtest: replay a JSONL file of events through the same `Engine` the stream workers use.

A backtest decides what a live worker reading the same lines in the same order decides. The
lines are read in file order, as their arrival order, and go to the engine one by one as a
worker's records do: the engine's allowed lateness absorbs small disorder, later lines are late
as they would be live (folded into the baseline only, or dropped), and an invalid line is counted
when it arrives, at the newest event time so far. A first pass that decodes nothing (about a
microsecond a line) measures the disorder, so the command can say how far out of order the file
is.

`--sort` replays the file in event-time order instead (seeking by the offsets of the first pass;
memory 16 bytes per line): for files whose order means nothing, such as a concatenation of
exports. Invalid lines keep their place among the others then, and every report names the line
by its number in the file.

Invalid lines (bad JSON, contract violations) are counted, reported and passed to the engine as
invalid events (pipeline health), never fatal. So are events whose time the live worker would
refuse (`monitor/core/event_time.py`): far ahead of the lines around them, before the floor, or older
than anything they could change; they never move event time.
"""

from __future__ import annotations

import gc
import json
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeAlias

from pydantic import ValidationError

from monitor.contract.alert import Alert
from monitor.contract.events import DEFAULT_MAX_EVENT_BYTES, EventError
from monitor.contract.rollup import Rollup
from monitor.contract.wire import DecodedEvent, read_event
from monitor.core.baseline_commands import BaselineCommand, apply_to_engine
from monitor.core.engine import Engine
from monitor.core.event_time import FileOrderClock


@dataclass
class BacktestResult:
    events: int = 0
    invalid: int = 0
    duplicates: int = 0
    late_folded: int = 0
    late_dropped: int = 0
    late_unverifiable: int = 0
    agents_refused: int = 0
    alerts: list[Alert] = field(default_factory=list)
    invalid_examples: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def by_rule_and_agent(self, state: str = "firing") -> Counter[tuple[str, str]]:
        return Counter((a.rule, a.agent_id or "*") for a in self.alerts if a.state == state)

    def summary(self) -> str:
        lines = [
            f"events: {self.events} valid, {self.invalid} invalid, {self.duplicates} duplicates, "
            f"{self.late_folded} late (baseline only), {self.late_dropped} too late to use"
            + (f", {self.late_unverifiable} late past the event-id memory (dropped: a resend cannot be told apart)"
               if self.late_unverifiable else "")
            + (f", {self.agents_refused} of new agents past detection.max_agents (dropped)"
               if self.agents_refused else ""),
            f"alert state changes: {len(self.alerts)} "
            f"({sum(1 for a in self.alerts if a.state == 'firing')} firing, "
            f"{sum(1 for a in self.alerts if a.state == 'resolved')} resolved)",
        ]
        for (rule, agent), n in sorted(self.by_rule_and_agent().items()):
            lines.append(f"  {rule:<26} {agent:<28} {n} firing")
        for lineno, reason in self.invalid_examples:
            lines.append(f"  invalid line {lineno}: {reason}")
        if self.invalid > len(self.invalid_examples):
            lines.append(f"  ... {self.invalid - len(self.invalid_examples)} more invalid lines")
        return "\n".join(lines)


def replay(
    lines: Iterable[bytes],
    engine: Engine,
    *,
    on_alert: Callable[[Alert], None] | None = None,
    on_rollup: Callable[[Rollup], None] | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_invalid_examples: int = 10,
    progress: Callable[[int], None] | None = None,
    baseline_commands: Sequence[TimedCommand] = (),
    line_numbers: Sequence[int] | None = None,
) -> BacktestResult:
    """Decode, reorder (bounded), observe and flush; returns the counts and every alert.
    `baseline_commands`: operators' freeze / unfreeze commands (`read_baseline_commands`), each
    applied from its `at` in event time as a worker applies the commands in force.
    `line_numbers`: the file's line number (from 0) of each line given, when they come in
    another order (`sorted_order`), so that reports name the line in the file."""
    result = BacktestResult()
    alerts = result.alerts

    def emit(got: list[Alert]) -> None:
        alerts.extend(got)
        if on_alert is not None:
            for a in got:
                on_alert(a)

    # The replay keeps many small objects alive (reorder buffer, engine state) and makes few
    # reference cycles: generational GC passes over them would cost more than the work itself.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _replay_lines(lines, engine, result, emit, on_rollup, max_event_bytes,
                      max_invalid_examples, progress, baseline_commands, line_numbers)
    finally:
        if gc_was_enabled:
            gc.enable()
    c = engine.counters
    result.events = c["events"]
    result.duplicates = c["duplicates"]
    result.late_folded = c["late_folded"]
    result.late_dropped = c["late_dropped"]
    result.late_unverifiable = c["late_unverifiable"]
    result.agents_refused = c["agents_refused"]
    return result


def _replay_lines(
    lines: Iterable[bytes], engine: Engine, result: BacktestResult, emit: Callable[[list[Alert]], None],
    on_rollup: Callable[[Rollup], None] | None, max_event_bytes: int,
    max_invalid_examples: int, progress: Callable[[int], None] | None,
    baseline_commands: Sequence[TimedCommand] = (),
    line_numbers: Sequence[int] | None = None,
) -> None:
    """Decode, admit (event_time.py) and observe each line, in the order given, as a live worker
    observes the records of its partition (`partition.PartitionEngine`). One function on purpose: the
    per-line loop keeps its state in locals and closures over them, which is what keeps the
    backtest's overhead per line small (methods would pay attribute lookups on every line)."""
    observe = _following(engine, baseline_commands) if baseline_commands else engine.observe
    newest = float("-inf")

    def drain_rollups() -> None:
        got = engine.take_rollups()
        if on_rollup is not None:
            for r in got:
                on_rollup(r)

    gate = engine.config.event_time_gate
    ahead = gate.max_ahead_s
    clock: FileOrderClock[tuple[int, DecodedEvent]] = FileOrderClock(ahead)
    held = clock.waiting
    limit = -math.inf  # newest + ahead: a line up to here is admitted at once (event_time.py)
    low = gate.floor_s  # a line before this is checked against the floor and the history
    refresh_low = -math.inf

    def refuse(lineno: int, reason: str) -> None:
        result.invalid += 1
        if len(result.invalid_examples) < max_invalid_examples:
            result.invalid_examples.append((lineno if line_numbers is None else line_numbers[lineno - 1] + 1, reason))
        engine.observe_invalid(newest if newest > -math.inf else None)

    def admit(t: float, event: DecodedEvent) -> None:
        nonlocal newest, low, limit, refresh_low
        got = observe(event, t)
        if got:
            emit(got)
        if t > newest:
            newest = clock.newest = t
            limit = t + ahead
            if t >= refresh_low:  # the history floor moves with the watermark; a minute's lag is harmless
                refresh_low = t + 60
                floor = engine.history_floor_s
                low = gate.floor_s if floor is None or floor < gate.floor_s else floor

    def admit_held(final: bool = False) -> None:
        for t, (lineno, event), arrival in clock.decided(final):
            reason = gate.refusal(t, arrival, engine.history_floor_s)
            if reason is None:
                admit(t, event)
            else:
                refuse(lineno, reason)

    for lineno, raw in enumerate(lines, 1):
        if not lineno & 0x3FFF:
            drain_rollups()
            if not lineno & 0xFFFFF:
                gc.collect(0)
        if progress is not None:
            progress(len(raw))
        line = raw.strip()
        if not line:
            continue
        try:
            event = read_event(line, max_bytes=max_event_bytes)
        except EventError as exc:
            refuse(lineno, exc.reason)
            continue
        t = event.occurred_at.timestamp()
        # A file has no arrival times: the clock estimates them from the lines around (event_time.py).
        if t <= limit and not held:
            if t < low:
                reason = gate.refusal(t, None, engine.history_floor_s)
                if reason is not None:
                    refuse(lineno, reason)
                    continue
            admit(t, event)
            continue
        if not clock.admits(t):
            clock.hold(t, (lineno, event))
        else:
            reason = gate.refusal(t, None, engine.history_floor_s) if t < low else None
            if reason is None:
                admit(t, event)
            else:
                refuse(lineno, reason)
        admit_held()
    admit_held(final=True)
    emit(engine.flush())
    drain_rollups()


#: a baseline command and its `at` as epoch seconds
TimedCommand: TypeAlias = tuple[float, str, BaselineCommand]


def read_baseline_commands(path: Path) -> list[TimedCommand]:
    """Baseline commands from a JSON-lines file, as `agentmon baselines list --json` prints them:
    `{"target": agent id or "*", "frozen": bool, "at": ISO-8601, "by": ..., "reason": ...}`, one
    per line; several lines may name the same target (a history). Sorted by `at`.
    Raises ValueError naming the line of a bad one."""
    out: list[TimedCommand] = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            target = data.pop("target", None) if isinstance(data, dict) else None
            if not isinstance(target, str) or not target:
                raise ValueError('no "target" (an agent id, or "*" for all agents)')
            command = BaselineCommand.model_validate(data)
        except (ValueError, ValidationError) as exc:
            reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()) \
                if isinstance(exc, ValidationError) else str(exc)
            raise ValueError(f"{path} line {lineno}: {reason}") from None
        out.append((command.at.timestamp(), target, command))
    out.sort(key=lambda c: c[0])
    return out


def _following(engine: Engine, commands: Sequence[TimedCommand]) -> Callable[[DecodedEvent, float], list[Alert]]:
    """`engine.observe`, preceded by the baseline commands in force at the event's time: applied
    when their `at` comes and again at every bucket boundary, for agents first seen since (what a
    worker does on its tick). Commands naming the same target: the newest in force wins."""
    observe = engine.observe
    bucket_s = engine.config.bucket_s
    in_force: dict[str, BaselineCommand] = {}
    i = 0
    due = commands[0][0]

    def observe_following(event: DecodedEvent, t: float) -> list[Alert]:
        nonlocal i, due
        if t >= due:
            while i < len(commands) and commands[i][0] <= t:
                in_force[commands[i][1]] = commands[i][2]
                i += 1
            if in_force:
                apply_to_engine(in_force, engine)
            due = (t // bucket_s + 1) * bucket_s
            if i < len(commands):
                due = min(due, commands[i][0])
        return observe(event, t)

    return observe_following


def quick_event_time(raw: bytes) -> float | None:
    """`occurred_at` of a JSON line without decoding it (for ordering only; None if unreadable)."""
    i = raw.find(b'"occurred_at"')
    if i < 0:
        return None
    j = raw.find(b'"', raw.find(b":", i + 13) + 1)
    k = raw.find(b'"', j + 1)
    if j < 0 or k < 0:
        return None
    try:
        return datetime.fromisoformat(raw[j + 1:k].decode()).timestamp()
    except (ValueError, UnicodeDecodeError):
        return None


def scan_order(path: Path, max_ahead_s: float = 300.0) -> tuple[float, array[float], array[int]]:
    """One cheap pass (no JSON decoding): the largest lateness of a line behind the newest event
    time before it, and each line's event time and byte offset (16 bytes per line). A line whose
    time the replay will refuse as far ahead (`FileOrderClock`) does not count as the newest."""
    times: array[float] = array("d")
    offsets: array[int] = array("q")
    clock: FileOrderClock[None] = FileOrderClock(max_ahead_s)
    held = clock.waiting
    worst = 0.0
    offset = 0
    with path.open("rb") as f:
        for raw in f:
            t = quick_event_time(raw)
            if t is None:
                t = -math.inf
            else:
                newest = clock.newest
                if t <= newest + max_ahead_s and not held:  # FileOrderClock.admits without the call
                    if t > newest:
                        clock.newest = t
                    elif newest - t > worst:
                        worst = newest - t
                elif clock.admits(t):
                    if newest - t > worst:
                        worst = newest - t
                else:
                    clock.hold(t, None)
                if held:
                    clock.decided()
            times.append(t)
            offsets.append(offset)
            offset += len(raw)
    return worst, times, offsets


def sorted_order(path: Path, times: array[float], is_valid: Callable[[bytes], bool]) -> array[int]:
    """The line indices of a JSONL file in event-time order (stable). A line `is_valid` refuses
    (unreadable, or breaking the contract) keeps its place: it sorts with the line before it, so
    it is counted where it arrived, not where its claimed time would put it."""
    keys = array("d", times)
    last = -math.inf
    with path.open("rb") as f:
        for i, raw in enumerate(f):  # the lines of the first pass, in the same order
            t = keys[i]
            if t == -math.inf or not is_valid(raw):
                keys[i] = last
            else:
                last = t
    return array("q", sorted(range(len(keys)), key=keys.__getitem__))


def sorted_lines(path: Path, order: Sequence[int], offsets: array[int]) -> Iterator[bytes]:
    """The lines of a JSONL file in the given order (`sorted_order`)."""
    with path.open("rb") as f:
        for i in order:
            f.seek(offsets[i])
            yield f.readline()
