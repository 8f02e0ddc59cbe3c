"""Event time cannot run away: one event far in the future (or in the distant past) is refused with
its reason, never moves a partition's watermark, and leaves detection exactly as it was; no time
the contract accepts can crash the engine."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli.backtest import run_backtest_command
from monitor.contract.alert import Alert, decode_alert
from monitor.contract.dead_letter import DeadLetter
from monitor.contract.events import EventError, decode_event
from monitor.contract.wire import read_event
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.event_time import EventTimeGate, FileOrderClock
from monitor.core.partition import PartitionEngine
from monitor.core.replay import replay
from monitor.local.simulate import Incident, default_agents, generate
from tests.unit.test_backtest_cli import _parse

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
FAR_FUTURE = "2099-01-01T00:00:00Z"
INSERT_AT = 20_000


@lru_cache(maxsize=1)
def fortnight() -> tuple[bytes, ...]:
    """Three agents, fourteen days, a tool outage on one agent on day ten; in arrival order."""
    agents = default_agents(3, 30.0, seed=24)
    outage = Incident(rule="tool_calls_all_failing", onset=START + timedelta(days=9, hours=10),
                      agent_id=agents[0].agent_id, duration_h=3.0)
    events = generate(agents, START, 14.0, incidents=[outage], seed=24)
    return tuple(json.dumps(e, separators=(",", ":")).encode() for e in events)


def with_time(line: bytes, occurred_at: str, event_id: str) -> bytes:
    """A copy of a valid event at another time and with a new id: otherwise valid."""
    data = json.loads(line)
    data["occurred_at"] = occurred_at
    data["event_id"] = event_id
    data.pop("execution_id", None)
    data["execution_id"] = event_id
    return json.dumps(data, separators=(",", ":")).encode()


def execution_line(index: int) -> bytes:
    for line in fortnight()[index:]:
        if b'"kind":"execution"' in line:
            return line
    raise AssertionError("no execution")


def live(records: list[bytes]) -> tuple[list[Alert], list[DeadLetter], PartitionEngine]:
    """The records through the live path, as a worker applies them: each record stamped by its
    producer when sent (the newest event time so far, plus a second), the wall clock a little later."""
    part = PartitionEngine("agent-events", 0, lambda snap: Engine(DetectionConfig()),
                           max_event_bytes=512 * 1024, idle_after_s=0.0, wall_now=START.timestamp())
    alerts: list[Alert] = []
    letters: list[DeadLetter] = []
    sent = START.timestamp()
    for offset, value in enumerate(records):
        try:
            t = datetime.fromisoformat(json.loads(value)["occurred_at"]).timestamp()
            if t < START.timestamp() + 20 * 86400:  # the bad event's producer stamps it now too
                sent = max(sent, t + 1.0)
        except (ValueError, KeyError):
            pass
        out = part.process(value, b"k", offset, int(sent * 1000), sent + 0.5)
        alerts.extend(out.alerts)
        if out.dead_letter is not None:
            letters.append(out.dead_letter)
    return alerts, letters, part


@lru_cache(maxsize=1)
def clean_run() -> tuple[list[Alert], list[DeadLetter], PartitionEngine]:
    return live(list(fortnight()))


def firing(alerts: list[Alert]) -> list[tuple[str, str | None]]:
    return [(a.rule, a.agent_id) for a in alerts if a.state == "firing"]


# ---- the gate ------------------------------------------------------------------------------------

def test_the_gate_refuses_a_time_ahead_of_its_arrival_before_the_floor_or_older_than_the_history() -> None:
    gate = EventTimeGate(max_ahead_s=300)
    now = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    assert gate.refusal(now + 299, now, now - 86400) is None
    assert gate.refusal(now - 10 * 86400, now, None) is None  # a backfill: older than its arrival is fine
    ahead = gate.refusal(now + 3600, now, None)
    assert ahead is not None and ahead.startswith("occurred_at is 3600 s (60 min) in the future")
    floor = gate.refusal(datetime(1999, 12, 31, tzinfo=UTC).timestamp(), now, None)
    assert floor is not None and "before 2000-01-01T00:00:00Z" in floor
    old = gate.refusal(now - 9 * 86400, now, now - 8 * 86400)
    assert old is not None and "older than anything it could still change" in old


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "3000-01-01T00:00:00Z",
                                   "9999-12-31T23:59:59Z"])
def test_the_contract_refuses_years_outside_1970_2999_in_both_decoders(stamp: str) -> None:
    line = with_time(execution_line(0), stamp, "e-range")
    for decode in (decode_event, read_event):
        with pytest.raises(EventError) as err:
            decode(line)
        assert err.value.reason.startswith("occurred_at:") and "outside 1970-2999" in err.value.reason


def test_the_file_order_clock_ignores_a_few_outliers_and_follows_a_real_jump() -> None:
    times = [float(i * 60) for i in range(100)]
    times[40:43] = [1e10, 1e10 + 1, 1e10 + 2]  # three far-future lines in a row
    jump = [1e6 + i * 60.0 for i in range(30)]  # the whole stream moves on, after a gap
    clock: FileOrderClock[int] = FileOrderClock(max_ahead_s=300, k=8)
    gate = EventTimeGate(max_ahead_s=300, floor_s=-math.inf)
    admitted, refused = [], []
    for i, t in enumerate(times + jump):
        if clock.admits(t):
            admitted.append(i)
        else:
            clock.hold(t, i)
        for t_, j, arrival in clock.decided():
            (admitted if gate.refusal(t_, arrival, None) is None else refused).append(j)
    for t_, j, arrival in clock.decided(final=True):
        (admitted if gate.refusal(t_, arrival, None) is None else refused).append(j)
    assert sorted(refused) == [40, 41, 42]
    assert sorted(admitted) == [i for i in range(130) if i not in (40, 41, 42)]


@settings(max_examples=60, deadline=None)
@given(base=st.lists(st.floats(0, 50), min_size=30, max_size=60),
       outliers=st.lists(st.tuples(st.integers(0, 1000), st.floats(1e4, 1e9)), max_size=4))
def test_no_four_lines_move_the_file_order_clock(base: list[float], outliers: list[tuple[int, float]]) -> None:
    """Law: a stream whose times keep within the drift, with up to 4 (k // 2) far-ahead lines put
    anywhere that 8 lines still follow, admits exactly the stream's own lines."""
    times = [i * 10.0 + d for i, d in enumerate(base)]
    lines = [(t, True) for t in times]
    for pos, t in outliers:
        lines.insert(pos % (len(lines) - 8), (times[-1] + 400 + t, False))
    clock: FileOrderClock[bool] = FileOrderClock(max_ahead_s=300, k=8)
    gate = EventTimeGate(max_ahead_s=300, floor_s=-math.inf)
    verdicts: list[tuple[bool, bool]] = []
    for t, good in lines:
        if clock.admits(t):
            verdicts.append((good, True))
        else:
            clock.hold(t, good)
        verdicts.extend((g, gate.refusal(t_, a, None) is None) for t_, g, a in clock.decided())
    verdicts.extend((g, gate.refusal(t_, a, None) is None) for t_, g, a in clock.decided(final=True))
    assert len(verdicts) == len(lines)
    assert all(good == admitted for good, admitted in verdicts)


def test_a_sparse_stream_in_order_is_admitted_to_its_last_line() -> None:
    """Lines an hour apart (a quiet agent, a short file): each is far ahead of the one before, and
    the lines after it (or none, at the end) go on from there."""
    clock: FileOrderClock[int] = FileOrderClock(max_ahead_s=300, k=8)
    gate = EventTimeGate(max_ahead_s=300, floor_s=-math.inf)
    admitted = []
    for i in range(12):
        if clock.admits(i * 3600.0):
            admitted.append(i)
        else:
            clock.hold(i * 3600.0, i)
        admitted += [j for t, j, a in clock.decided() if gate.refusal(t, a, None) is None]
    admitted += [j for t, j, a in clock.decided(final=True) if gate.refusal(t, a, None) is None]
    assert sorted(admitted) == list(range(12))


# ---- the blinding, reproduced and fixed -----------------------------------------------------------

def test_the_stream_used_here_detects_its_outage_without_false_pages() -> None:
    alerts, letters, part = clean_run()
    assert ("tool_calls_all_failing", default_agents(3, 30.0, seed=24)[0].agent_id) in firing(alerts)
    assert "agent_silent" not in {rule for rule, _ in firing(alerts)}
    assert len(fortnight()) > INSERT_AT + 10_000
    assert part.time_refused == 0


def test_one_far_future_event_mid_stream_changes_nothing_on_the_live_path() -> None:
    records = list(fortnight())
    bad = with_time(execution_line(INSERT_AT), FAR_FUTURE, "from-2099")
    records.insert(INSERT_AT, bad)
    alerts, letters, part = live(records)
    clean_alerts, _, clean_part = clean_run()
    assert [a.to_json() for a in alerts] == [a.to_json() for a in clean_alerts]
    assert part.engine.counters == {**clean_part.engine.counters, "invalid": 1}
    assert part.engine.counters["late_dropped"] == clean_part.engine.counters["late_dropped"]
    assert [letter.original() for letter in letters] == [bad]
    assert letters[0].error.startswith("occurred_at is ") and " in the future " in letters[0].error
    assert part.time_refused == 1 and part.engine.watermark < datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("stamp,reason", [
    ("0001-01-01T00:00:00Z", "year 1 is outside 1970-2999"),
    ("1971-06-01T00:00:00Z", "before 2000-01-01T00:00:00Z"),
    (FAR_FUTURE, "in the future"),
])
def test_an_extreme_event_as_the_partitions_first_record_is_dead_lettered(stamp: str, reason: str) -> None:
    records = list(fortnight())[:6000]
    bad = with_time(execution_line(0), stamp, f"first-{stamp}")
    alerts, letters, part = live([bad, *records])
    reference, _, reference_part = live(records)
    assert [a.to_json() for a in alerts] == [a.to_json() for a in reference]
    assert len(letters) == 1 and reason in letters[0].error
    assert part.engine.watermark == reference_part.engine.watermark


def test_one_far_future_event_mid_stream_changes_nothing_in_the_backtest() -> None:
    records = list(fortnight())
    bad = with_time(execution_line(INSERT_AT), FAR_FUTURE, "from-2099")
    clean = replay(records, Engine(DetectionConfig()))
    result = replay([*records[:INSERT_AT], bad, *records[INSERT_AT:]], Engine(DetectionConfig()))
    assert [a.to_json() for a in result.alerts] == [a.to_json() for a in clean.alerts]
    assert (result.events, result.late_dropped) == (clean.events, clean.late_dropped)
    assert result.invalid == clean.invalid + 1  # the simulator also writes a few malformed lines
    assert [r for _, r in result.invalid_examples if " in the future " in r]


def test_agentmon_backtest_refuses_the_far_future_line_and_pages_as_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    records = [line.decode() for line in fortnight()]
    (tmp_path / "events.jsonl").write_text("\n".join(records) + "\n")
    assert run_backtest_command(_parse(tmp_path)) == 0
    expected = (tmp_path / "alerts.jsonl").read_text()
    bad = with_time(execution_line(INSERT_AT), FAR_FUTURE, "from-2099").decode()
    records.insert(INSERT_AT, bad)
    (tmp_path / "events.jsonl").write_text("\n".join(records) + "\n")
    capsys.readouterr()
    assert run_backtest_command(_parse(tmp_path)) == 0
    out = capsys.readouterr()
    assert (tmp_path / "alerts.jsonl").read_text() == expected
    assert any(a.rule == "tool_calls_all_failing" for a in map(decode_alert, expected.splitlines()))
    assert f"invalid line {INSERT_AT + 1}: occurred_at is " in out.out
    assert "replayed in file order" not in out.err  # one bad line does not make the file look out of order


# ---- nothing crashes the engine -------------------------------------------------------------------

EXTREMES = st.sampled_from([
    datetime(1970, 1, 1, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC), datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC),
])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stamps=st.lists(st.one_of(EXTREMES, st.datetimes(datetime(1970, 1, 2), datetime(2999, 12, 30),
                                                         timezones=st.just(UTC))), min_size=1, max_size=12),
       seed=st.integers(0, 10))
def test_the_engine_survives_any_accepted_time_in_any_order(stamps: list[datetime], seed: int) -> None:
    """Fed straight to the engine (no gate), times across the whole accepted range: observe,
    advance, flush, snapshot, restore and the views never raise."""
    base = list(fortnight()[:40])
    rng = random.Random(seed)
    engine = Engine(DetectionConfig())
    for i, stamp in enumerate(stamps):
        line = with_time(base[rng.randrange(len(base))], stamp.isoformat().replace("+00:00", "Z"), f"x{i}")
        engine.observe(read_event(line))
        engine.observe(read_event(base[i % len(base)]))
    engine.observe_invalid(None)
    engine.signal_view()
    engine.take_rollups()
    restored = Engine.restore(json.loads(json.dumps(engine.snapshot())), DetectionConfig())
    restored.flush()
    engine.flush()


def mutate(rng: random.Random, line: bytes) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:  # any accepted-looking time
        stamp = datetime(rng.randrange(1, 9999), rng.randrange(1, 13), rng.randrange(1, 29), tzinfo=UTC)
        return with_time(line, stamp.isoformat(), f"m{rng.random()}")
    if choice == 1:  # milliseconds read as seconds, and other unit bugs
        data = json.loads(line)
        data["occurred_at"] = rng.choice(["+2026-11-02T00:00:00Z", "2026-11-02T00:00:00.000000001Z",
                                          "58773-01-01T00:00:00Z", str(1_762_000_000_000)])
        return json.dumps(data).encode()
    if choice == 2:  # a flipped byte
        i = rng.randrange(len(line))
        return line[:i] + bytes([rng.randrange(256)]) + line[i + 1:]
    if choice == 3:  # truncated
        return line[:rng.randrange(len(line))]
    if choice == 4:  # a duplicate
        return line
    day, hour = rng.randrange(1, 9), rng.randrange(24)  # a far offset
    return with_time(line, f"2026-11-0{day}T{hour:02d}:00:00+14:00", f"z{rng.random()}")


@pytest.mark.parametrize("seed", range(3))
def test_mutated_streams_never_raise_through_replay_or_the_partition_engine(seed: int) -> None:
    rng = random.Random(seed)
    records: list[bytes] = []
    for line in fortnight()[:3000]:
        records.append(line)
        if rng.random() < 0.05:
            records.append(mutate(rng, line))
    replay(records, Engine(DetectionConfig()))
    _, letters, part = live(records)
    assert part.dead_letters == len(letters) > 0
    assert part.engine.watermark is not None and part.engine.watermark < datetime(2026, 12, 1, tzinfo=UTC)


def test_settings_name_the_clock_drift_and_the_floor() -> None:
    config = DetectionConfig.model_validate({"max_future_skew_s": 60, "min_occurred_at": "2020-01-01T00:00:00Z"})
    gate: Any = config.event_time_gate
    assert gate.max_ahead_s == 60 and gate.floor_s == datetime(2020, 1, 1, tzinfo=UTC).timestamp()


def test_a_backtest_applies_lines_in_file_order_like_a_partition_from_the_first_line_on() -> None:
    """The first line waits for the lines after it (it could be far off); the lines behind it wait
    with it instead of jumping ahead, so the backtest's rollups and alerts are a live partition's."""
    lines = list(fortnight()[:6000])
    rollups: list[Any] = []
    result = replay(lines, Engine(DetectionConfig()), on_rollup=rollups.append)
    part = PartitionEngine("agent-events", 0, lambda snap: Engine(DetectionConfig()), max_event_bytes=512 * 1024,
                           wall_now=START.timestamp())
    live_rollups: list[Any] = []
    live_alerts: list[Alert] = []
    for offset, line in enumerate(lines):
        t = json.loads(line)["occurred_at"]
        arrival = datetime.fromisoformat(t).timestamp() + 1
        out = part.process(line, None, offset, int(arrival * 1000), arrival)
        live_rollups += out.rollups
        live_alerts += out.alerts
    live_alerts += part.engine.flush()
    live_rollups += part.engine.take_rollups()
    assert [r.to_json() for r in rollups] == [r.to_json() for r in live_rollups]
    assert [a.to_json() for a in result.alerts] == [a.to_json() for a in live_alerts]
    assert result.late_folded == part.engine.counters["late_folded"]
