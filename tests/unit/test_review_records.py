"""Review verdicts, regression results and changes: the events they become, what the engine makes
of a verdict, and the review's sections built from them (monitor/report/records.py, team.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.contract.events import encode_event, validate_event
from monitor.contract.rollup import Rollup
from monitor.contract.wire import read_event
from monitor.core.engine import Engine
from monitor.core.replay import replay
from monitor.report.records import (
    OperatorNote,
    RecordError,
    RegressionResult,
    Verdict,
    VersionSeen,
    decode_recorded,
    regression_event,
    verdict_event,
)
from monitor.report.review import AlertEpisode, CheckpointSeen
from monitor.report.team import changes_timeline, name_preceding_changes, regression_review, verdict_review
from monitor.report.totals import sum_rollups
from monitor.sdk import execution

AT = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)


def test_a_verdict_is_a_contract_evaluation_with_its_labels() -> None:
    event = verdict_event(agent_id="lead-qualifier", execution_id="x-1", passed=False, at=AT, category="tool issue",
                          note="CRM write lost", by="ana")
    encoded = encode_event(validate_event(event))
    decoded = read_event(encoded)  # the worker's decoder accepts it as it is
    assert decoded.kind == "evaluation" and decoded.score == 0.0 and decoded.passed is False
    assert decoded.evaluator == "weekly-review"
    got = decode_recorded(encoded)
    assert got == Verdict("lead-qualifier", "x-1", False, AT, "tool issue", "CRM write lost", "ana", event["event_id"])


def test_a_failing_verdict_needs_a_category_and_an_agent() -> None:
    with pytest.raises(RecordError, match="category"):
        verdict_event(agent_id="a", execution_id="x", passed=False, at=AT)
    with pytest.raises(RecordError, match="agent_id: required"):
        verdict_event(agent_id="", execution_id="x", passed=True, at=AT)
    with pytest.raises(RecordError, match="UTC offset"):
        verdict_event(agent_id="a", execution_id="x", passed=True, at=AT.replace(tzinfo=None))


def test_regression_cases_are_checked_and_a_resent_run_has_the_same_ids() -> None:
    case = {"case_id": "c1", "expected": {"tier": "A"}, "actual": {"tier": "B"}, "passed": False}
    one = regression_event(agent_id="a", suite="golden", run="r1", case=case, at=AT)
    again = regression_event(agent_id="a", suite="golden", run="r1", case=case, at=AT + timedelta(minutes=3))
    assert one["event_id"] == again["event_id"]  # the engine counts a resend once
    assert one["evaluator"] == "regression:golden" and one["labels"]["expected"] == '{"tier":"A"}'
    got = decode_recorded(encode_event(validate_event(one)))
    assert isinstance(got, RegressionResult) and (got.suite, got.case, got.passed) == ("golden", "c1", False)
    for bad, match in (({**case, "passed": "no"}, "passed"), ({**case, "extra": 1}, "unknown field"),
                       ({k: v for k, v in case.items() if k != "actual"}, "actual: required"),
                       ({**case, "score": 2}, "score")):
        with pytest.raises(RecordError, match=match):
            regression_event(agent_id="a", suite="golden", run="r1", case=bad, at=AT)


def _engine_rollups(extra: list[dict[str, object]]) -> list[Rollup]:
    """Three hours of one agent: executions with inline scores of 0.8, and one (`x-reviewed`)
    without a score; `extra` events are added at 02:30."""
    t0 = datetime(2026, 11, 16, tzinfo=UTC)
    events: list[dict[str, object]] = []
    for i in range(36):
        scored = i != 0
        events.append(json.loads(encode_event(execution(
            "a", execution_id="x-reviewed" if not scored else f"x{i}", task_id=f"t{i}", status="completed",
            occurred_at=t0 + timedelta(minutes=5 * i), quality_score=0.8 if scored else None))))
    lines = [json.dumps(e).encode() for e in events + extra]
    got: list[Rollup] = []
    replay(lines, Engine(), on_rollup=got.append)
    return sorted(got, key=lambda r: r.hour)


def test_a_failing_verdict_lowers_the_quality_signal_as_a_late_evaluation_does() -> None:
    at = datetime(2026, 11, 16, 2, 30, tzinfo=UTC)
    verdict = verdict_event(agent_id="a", execution_id="x-reviewed", passed=False, at=at, category="silent failure")
    judge = {**verdict, "event_id": "judge-1", "evaluator": "llm-judge"}
    judge.pop("labels")
    plain, with_verdict, with_judge = _engine_rollups([]), _engine_rollups([verdict]), _engine_rollups([judge])
    hour = [r.hour for r in plain].index(datetime(2026, 11, 16, 2, tzinfo=UTC))
    before, after = plain[hour], with_verdict[hour]
    assert after.quality_count == before.quality_count + 1
    assert after.quality_sum / after.quality_count < before.quality_sum / before.quality_count
    assert (after.quality_sum, after.quality_count) == (with_judge[hour].quality_sum, with_judge[hour].quality_count)
    assert after.review is not None and after.review.evaluators["weekly-review"].failed == 1
    # a verdict on an execution scored inline does not count twice: the inline score wins (engine rule)
    on_scored = _engine_rollups([{**verdict, "event_id": "v-2", "execution_id": "x5"}])
    assert on_scored[hour].quality_count == before.quality_count


def test_a_failing_regression_case_never_enters_the_quality_signal() -> None:
    at = datetime(2026, 11, 16, 2, 30, tzinfo=UTC)
    case = {"case_id": "c1", "expected": "A", "actual": "B", "passed": False, "execution_id": "x-reviewed"}
    failing = regression_event(agent_id="a", suite="golden", run="r1", case=case, at=at)
    plain, with_case = _engine_rollups([]), _engine_rollups([failing])
    hour = [r.hour for r in plain].index(datetime(2026, 11, 16, 2, tzinfo=UTC))
    assert (with_case[hour].quality_sum, with_case[hour].quality_count) == \
        (plain[hour].quality_sum, plain[hour].quality_count)
    assert with_case[hour].review is not None and "regression:golden" in with_case[hour].review.evaluators


def _v(execution: str, passed: bool, hours: float, category: str | None = None) -> Verdict:
    return Verdict("a", execution, passed, AT + timedelta(hours=hours), category, None, "ana", f"e-{execution}-{hours}")


def test_verdict_review_counts_the_newest_verdict_per_execution_by_category() -> None:
    t_prev = sum_rollups([])
    t_now = sum_rollups([])
    now = [_v("x1", False, 0, "tool issue"), _v("x1", True, 1), _v("x2", False, 0, "tool issue"),
           _v("x3", False, 0, "silent failure"), _v("x4", True, 0)]
    review = verdict_review(now, [_v("x0", True, -100)], t_now, t_prev)
    assert review is not None
    assert (review.verdicts, review.passed, review.previous_verdicts) == (4, 2, 1)
    assert {c.category: c.failures for c in review.by_category} == {"tool issue": 1, "silent failure": 1}
    assert review.pass_rate == 0.5 and review.previous_pass_rate == 1.0
    assert verdict_review([], [], t_now, t_prev) is None


def _r(case: str, passed: bool, run: str, hours: float) -> RegressionResult:
    return RegressionResult("a", "golden", run, case, passed, "A", "A" if passed else "B", AT + timedelta(hours=hours),
                            f"{run}-{case}")


def test_regression_review_names_new_failures_and_flaky_cases() -> None:
    last_week = [_r("c1", True, "w1", -100), _r("c2", True, "w1", -100), _r("c3", False, "w1", -100)]
    this_week = [_r("c1", True, "a", 1), _r("c2", False, "a", 1), _r("c3", True, "a", 1),
                 _r("c1", True, "b", 30), _r("c2", False, "b", 30), _r("c3", False, "b", 30)]
    [suite] = regression_review(this_week, last_week)
    assert [r.run for r in suite.runs] == ["a", "b"]
    assert suite.pass_rate == pytest.approx(1 / 3) and suite.previous_pass_rate == pytest.approx(2 / 3)
    assert [c.case for c in suite.newly_failing] == ["c2"] and suite.newly_failing[0].actual == "B"
    assert suite.flaky == ["c3"] and suite.failing == ["c2", "c3"]


def test_timeline_and_the_incident_that_follows_a_change() -> None:
    start, end = AT, AT + timedelta(days=7)
    versions = [VersionSeen("a", "v1", start - timedelta(days=2)), VersionSeen("a", "v1", start + timedelta(hours=1)),
                VersionSeen("a", "v2", start + timedelta(days=2)), VersionSeen("b", "v9", start + timedelta(days=1))]
    checkpoint = CheckpointSeen(model="gpt-4o", resolved_model="gpt-4o-2026-11-01",
                                first_seen=start + timedelta(days=3), last_seen=end, new_this_week=True)
    notes = [OperatorNote.new("*", "knowledge base: pricing pages updated", start + timedelta(days=1)),
             OperatorNote.new("b", "not this agent", start + timedelta(days=1))]
    changes = changes_timeline("a", start, end, versions, [checkpoint], notes)
    assert [(c.kind, c.text) for c in changes] == [
        ("note", "knowledge base: pricing pages updated"), ("agent version", "agent version v2 first seen"),
        ("model checkpoint", "gpt-4o served by new checkpoint gpt-4o-2026-11-01")]

    def episode(fired: datetime, severity: str = "P1") -> AlertEpisode:
        return AlertEpisode(fingerprint="quality_drop/a", rule="quality_drop", agent_id="a", severity=severity,
                            summary="quality fell", fired_at=fired, resolved_at=None, time_to_resolve_s=None,
                            runbook_url="https://example.invalid/runbooks/quality_drop.md")

    after_v2 = start + timedelta(days=2, hours=3)
    named = name_preceding_changes([episode(after_v2), episode(after_v2 + timedelta(days=2)),
                                    episode(after_v2, "P3")], changes, timedelta(hours=24))
    assert named[0].preceded_by == ["agent version v2 first seen at Wed 2026-11-18 09:30 UTC (3 h 00 min before)"]
    assert named[1].preceded_by == []  # two days later: the checkpoint came 27 h before, v2 51 h before
    assert named[2].preceded_by == []  # a P3 is not an incident


def test_review_mark_refuses_a_bad_file_before_it_touches_kafka(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = tmp_path / "verdicts.jsonl"
    verdicts.write_text('{"execution_id": "x1", "agent_id": "a", "passed": true}\n'
                        '{"execution_id": "x2", "agent_id": "a", "passed": false}\n')
    config = tmp_path / "agentmon.toml"
    config.write_text('[kafka]\nbootstrap_servers = "127.0.0.1:1"\n')  # nothing listens: a send would fail with 1
    assert main(["--config", str(config), "review", "mark", "--file", str(verdicts)]) == 2
    assert f"{verdicts}:2: category: a failing verdict needs one" in capsys.readouterr().err
    results = tmp_path / "results.jsonl"
    results.write_text('{"case_id": "c1", "expected": 1, "actual": 1, "passed": true}\n'
                       '{"case_id": "c1", "expected": 1, "actual": 2, "passed": false}\n')
    assert main(["--config", str(config), "regression", "record", "--suite", "s", "--agent", "a", str(results)]) == 2
    assert "case_id 'c1' appears twice" in capsys.readouterr().err
    assert main(["--config", str(config), "review", "mark", "x1", "--pass"]) == 2
    assert "--agent" in capsys.readouterr().err


def test_report_from_files_reads_verdicts_versions_and_notes(tmp_path: Path) -> None:
    from tests.support.report_week import AGENT as SIM_AGENT
    from tests.support.report_week import REPORT_WEEK, WEEK_START, simulated_rollups

    rollups = tmp_path / "rollups.jsonl"
    rollups.write_bytes(b"".join(r.to_json() + b"\n" for r in simulated_rollups()))
    monday = WEEK_START + timedelta(hours=9)
    events = [verdict_event(agent_id=SIM_AGENT, execution_id=f"x{i}", passed=i != 0, at=monday,
                            category="model drift" if i == 0 else None) for i in range(4)]
    events.append(verdict_event(agent_id=SIM_AGENT, execution_id="x-before", passed=False,
                                at=monday - timedelta(days=7), category="tool issue"))
    events.append(verdict_event(agent_id=SIM_AGENT, execution_id="x-too-old", passed=True,
                                at=monday - timedelta(days=14)))  # before the week before: not read
    events += [json.loads(encode_event(execution(SIM_AGENT, execution_id=f"r{i}", task_id="t", status="completed",
                                                 occurred_at=WEEK_START + timedelta(days=i), agent_version="v3")))
               for i in (1, 2)]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    notes_file = tmp_path / "notes.jsonl"
    notes_file.write_bytes(OperatorNote.new("*", "prompt shortened", WEEK_START + timedelta(days=3)).to_json() + b"\n")
    out = tmp_path / "out"
    assert main(["report", "--rollups", str(rollups), "--events", str(events_file), "--notes", str(notes_file),
                 "--week", REPORT_WEEK, "--agent", SIM_AGENT, "--format", "json", "--out", str(out)]) == 0
    [agent] = json.loads(next(out.iterdir()).read_text())["agents"]
    v = agent["verdicts"]
    assert (v["verdicts"], v["passed"], v["previous_verdicts"], v["previous_pass_rate"]) == (4, 3, 1, 0.0)
    assert [c["category"] for c in v["by_category"]] == ["model drift"]
    assert [(c["kind"], c["text"]) for c in agent["changes"]] == [
        ("agent version", "agent version v3 first seen"), ("note", "prompt shortened")]


def test_signal_series_holds_the_week_against_the_baseline_weeks_range() -> None:
    from monitor.contract.rollup import ToolRollup
    from monitor.report.series import BIN_HOURS, signal_series
    from monitor.report.week import IsoWeek

    def rollup(hour: datetime, quality: float, errors: int) -> Rollup:
        return Rollup(agent_id="a", hour=hour, executions=10, completed=10, escalations=1, failures=0, timeouts=0,
                      repeats=0, quality_sum=10 * quality, quality_count=10, cost_usd_sum=0.1, cost_count=10,
                      unpriced_executions=0, tokens_sum=0.0, tokens_count=0, steps_mean=None, steps_p95=None,
                      duration_ms_mean=None, duration_ms_p95=None,
                      tools={"crm": ToolRollup(calls=10, errors=errors, rate_limited=0, ok=10 - errors)})

    week = IsoWeek.parse("2026-W47")
    earlier = {week.shift(-k): [rollup(week.shift(-k).start + timedelta(hours=h), 0.7 + 0.05 * k, 0)
                                for h in range(7 * 24)] for k in (1, 2)}
    this = [rollup(week.start + timedelta(hours=h), 0.5 if h == 30 else 0.8, 5 if h == 30 else 0)
            for h in range(7 * 24)]
    series = signal_series(week, this, earlier)
    assert len(series.starts) == 7 * 24 // BIN_HOURS and series.bin_hours == BIN_HOURS
    quality = series.lines["quality_mean"]
    assert quality.low[0] == pytest.approx(0.75) and quality.high[0] == pytest.approx(0.8)
    dip = 30 // BIN_HOURS  # the bin holding hour 30: one hour of 0.5 among five of 0.8
    assert quality.values[dip] == pytest.approx((0.5 + 5 * 0.8) / 6) and quality.values[0] == pytest.approx(0.8)
    assert series.lines["tool_error_share"].values[dip] == pytest.approx(5 / 60)
    first_week = signal_series(week, this, {})
    assert all(v is None for v in first_week.lines["quality_mean"].low)  # nothing to compare with: no band
