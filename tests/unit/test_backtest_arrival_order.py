"""A backtest of a file decides what a live worker reading the same lines in the same order
decides (`monitor/core/replay.py`): late lines are late as they are live, and an invalid line is
counted when it arrives, however far behind the time it claims."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pytest

from monitor.cli.backtest import run_backtest_command
from monitor.contract.alert import Alert, decode_alert
from tests.unit.test_backtest_cli import _parse
from tests.unit.test_event_time import START, fortnight, live

DAY_MS = 86400


def claimed_time(line: bytes) -> float:
    return datetime.fromisoformat(json.loads(line)["occurred_at"]).timestamp()


def malformed_copy(line: bytes, n: int) -> bytes:
    """An old event copied with a contract violation (an empty agent id): its time is readable
    and lies days behind the lines around it."""
    data = json.loads(line)
    data["agent_id"] = ""
    data["event_id"] = f"bad-{n}"
    return json.dumps(data, separators=(",", ":")).encode()


@lru_cache(maxsize=1)
def with_malformed_burst() -> tuple[tuple[bytes, ...], tuple[int, ...], float, float]:
    """The fortnight with one malformed line after every fifth line of days 10 and 11 (~17 % of
    the traffic), each a copy of a day-1 event: (lines, their 0-based positions, burst start and
    end as event times)."""
    lines = list(fortnight())
    old = [x for x in lines if claimed_time(x) < START.timestamp() + DAY_MS]
    begin, end = START.timestamp() + 10 * DAY_MS, START.timestamp() + 11.5 * DAY_MS
    out: list[bytes] = []
    bad_at: list[int] = []
    n = 0
    for i, line in enumerate(lines):
        out.append(line)
        if begin <= claimed_time(line) < end and i % 5 == 0:
            bad_at.append(len(out))
            out.append(malformed_copy(old[n % len(old)], n))
            n += 1
    return tuple(out), tuple(bad_at), begin, end


def key(alerts: list[Alert]) -> list[tuple[str, str, datetime]]:
    return [(a.fingerprint, a.state, a.at) for a in alerts]


def backtest_file(tmp_path: Path, lines: tuple[bytes, ...], *flags: str) -> list[Alert]:
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert run_backtest_command(_parse(tmp_path, *flags)) == 0
    return [decode_alert(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]


def test_far_behind_malformed_lines_page_in_the_backtest_when_and_as_they_do_live(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    lines, bad_at, begin, end = with_malformed_burst()
    live_alerts, letters, _ = live(list(lines))
    got = backtest_file(tmp_path, lines)
    out = capsys.readouterr()
    assert key(got) == key(live_alerts)
    invalid = [a for a in got if a.rule == "invalid_events" and a.state == "firing"]
    assert invalid, "the malformed burst pages"
    assert all(begin <= a.at.timestamp() <= end + 3600 for a in invalid), [a.at for a in invalid]
    assert len(letters) >= len(bad_at)  # every malformed line dead-lettered live
    assert "replayed in file order" in out.err
    assert f"invalid line {bad_at[0] + 1}: agent_id" in out.out  # the line's number in the file


def test_sorted_replay_keeps_invalid_lines_in_place_and_names_them_by_their_file_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    lines, bad_at, begin, end = with_malformed_burst()
    got = backtest_file(tmp_path, lines, "--sort")
    out = capsys.readouterr().out
    invalid = [a for a in got if a.rule == "invalid_events" and a.state == "firing"]
    assert invalid and all(begin <= a.at.timestamp() <= end + 3600 for a in invalid), [a.at for a in invalid]
    reported = [int(x.split(":")[0]) for x in out.split("invalid line ")[1:]]
    bad_lines = {i + 1 for i in bad_at}
    assert reported and all(n in bad_lines or b'"agent_id":""' not in lines[n - 1] for n in reported)
    assert any(n in bad_lines for n in reported)


def test_the_burst_is_what_pages() -> None:
    """The stream without the burst pages no `invalid_events` (the simulator's few malformed
    lines stay under the rule's share)."""
    alerts, _, _ = live(list(fortnight()))
    assert not [a for a in alerts if a.rule == "invalid_events"]
