"""Rollout verdicts (monitor/core/rollout.py): a candidate version is compared with the incumbent in
the same hours; a regression fires `rollout_regression`, equal versions never say `rollback`,
shadow runs stay out of production state, and verdicts do not depend on arrival order."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.contract.alert import Alert
from monitor.contract.events import validate_event
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.rollout import UNVERSIONED
from monitor.local.simulate import AgentProfile, Incident, generate
from tests.unit.test_engine_support import T0

AGENT = "lead-qualifier"
ONSET = T0 + timedelta(days=1)


def stream(days: float, seed: int = 3, rate: float = 50.0, **rollout: Any) -> list[dict[str, Any]]:
    inc = Incident(rule="rollout_regression", agent_id=AGENT, onset=ONSET, **rollout)
    return list(generate([AgentProfile(AGENT, rate_per_hour=rate)], T0, days, incidents=[inc], seed=seed))


def run(events: list[dict[str, Any]], engine: Engine | None = None) -> tuple[list[Alert], Engine]:
    eng = engine or Engine(DetectionConfig())
    alerts: list[Alert] = []
    for data in events:
        alerts += eng.observe(validate_event(data))
    alerts += eng.flush()
    return alerts, eng


def of_rule(alerts: list[Alert], rule: str, state: str = "firing") -> list[Alert]:
    return [a for a in alerts if a.rule == rule and a.state == state]


def test_a_worse_candidate_fires_rollout_regression_naming_signal_versions_values_and_samples() -> None:
    events = stream(2.0, share=0.2, signal="escalation_rate_rise", magnitude=0.45)
    alerts, eng = run(events)
    hits = of_rule(alerts, "rollout_regression")
    assert hits, [(a.rule, a.summary) for a in alerts]
    a = hits[0]
    assert a.labels == {"signal": "escalation_rate", "baseline_version": "v7", "candidate_version": "v8"}
    assert a.severity == "P1"
    extra = a.metric.model_extra or {}
    assert extra["baseline_version"] == "v7" and extra["candidate_version"] == "v8"
    assert a.metric.current > a.metric.baseline  # type: ignore[operator]
    lo, hi = extra["difference_ci"]
    assert 0 < lo < hi
    assert extra["candidate_n"] >= 30 and extra["baseline_n"] > extra["candidate_n"]
    assert "v8" in a.summary and "v7" in a.summary and "roll v8 back" in a.summary
    candidates = {e["execution_id"] for e in events if e.get("agent_version") == "v8"}
    escalated = {e["execution_id"] for e in events if e.get("status") == "escalated"}
    assert a.samples and set(a.samples) <= candidates & escalated
    status = eng.rollout_status(AGENT)
    assert status["comparisons"][0]["verdict"] == "rollback"
    assert status["comparisons"][0]["exit_code"] == 4


def test_at_5_percent_traffic_the_comparison_finds_what_the_single_baseline_rule_misses() -> None:
    # 15 % -> 60 % escalations on 5 % of traffic moves the agent's rate by ~2 points: diluted 20x
    alerts, _ = run(stream(4.0, share=0.05, signal="escalation_rate_rise", magnitude=0.6))
    assert of_rule(alerts, "rollout_regression")
    assert not of_rule(alerts, "escalation_rate_rise")


@pytest.mark.parametrize("seed", range(12))
def test_equal_versions_never_get_a_rollback(seed: int) -> None:
    alerts, eng = run(stream(3.0, seed=seed, share=0.3, signal="none"))
    assert not of_rule(alerts, "rollout_regression")
    verdicts = [c["verdict"] for c in eng.rollout_status(AGENT)["comparisons"]]
    assert verdicts and "rollback" not in verdicts


def test_equal_versions_with_enough_traffic_are_promoted() -> None:
    _, eng = run(stream(4.0, seed=1, rate=400.0, share=0.5, signal="none"))
    comparison = eng.rollout_status(AGENT)["comparisons"][0]
    assert comparison["verdict"] == "promote", [(r["signal"], r["verdict"]) for r in comparison["signals"]]
    assert comparison["exit_code"] == 0


def test_shadow_runs_are_compared_but_never_enter_production_state() -> None:
    with_shadow = stream(2.5, share=0.5, signal="quality_drop", shadow=True)
    shadow_ids = {e["execution_id"] for e in with_shadow if (e.get("attributes") or {}).get("deployment") == "shadow"}
    assert shadow_ids
    production_only = [e for e in with_shadow if e.get("execution_id") not in shadow_ids]
    alerts, eng = run(with_shadow)
    base_alerts, base_eng = run(production_only)
    assert of_rule(alerts, "rollout_regression")
    assert not of_rule(alerts, "quality_drop")  # the shadow's bad scores never reach the production rules
    assert [a for a in alerts if a.rule != "rollout_regression"] == \
        [a for a in base_alerts if a.rule != "rollout_regression"]
    assert eng.signal_view() == base_eng.signal_view()
    assert [c["verdict"] for c in eng.rollout_status(AGENT)["comparisons"]] == ["rollback"]


def test_a_shadow_version_is_compared_with_unversioned_production_runs() -> None:
    events = stream(2.5, share=0.5, signal="quality_drop", shadow=True)
    for e in events:
        if not e.get("attributes"):
            e.pop("agent_version", None)  # production never versioned; the shadow is "v8"
    alerts, eng = run(events)
    (page,) = of_rule(alerts, "rollout_regression")
    assert page.labels["baseline_version"] == UNVERSIONED and page.labels["candidate_version"] == "v8"
    assert not of_rule(alerts, "quality_drop")
    assert set(eng.rollout_status(AGENT)["versions"]) == {UNVERSIONED, "v8"}


def test_verdicts_do_not_depend_on_arrival_order_within_the_allowed_lateness() -> None:
    events = stream(2.0, share=0.2, signal="quality_drop")
    rng = random.Random(7)
    # shuffled within each minute of event time (and the stream's own 30 s disorder): < 120 s late
    keyed = [(int(validate_event(e).occurred_at.timestamp() // 60), rng.random(), i) for i, e in enumerate(events)]
    shuffled = [events[i] for *_, i in sorted(keyed)]
    assert shuffled != events
    a1, e1 = run(events)
    a2, e2 = run(shuffled)
    assert [(a.at, a.fingerprint, a.state) for a in a1] == [(a.at, a.fingerprint, a.state) for a in a2]
    rows1, rows2 = (e.rollout_status(AGENT)["comparisons"][0]["signals"] for e in (e1, e2))
    assert [(r["signal"], r["verdict"], r["baseline"]["n"], r["candidate"]["n"]) for r in rows1] == \
        [(r["signal"], r["verdict"], r["baseline"]["n"], r["candidate"]["n"]) for r in rows2]
    # the same sums, added in another order: equal up to floating-point rounding
    assert [r["difference"] for r in rows1] == pytest.approx([r["difference"] for r in rows2], rel=1e-9)


def test_a_snapshot_mid_rollout_continues_exactly() -> None:
    events = stream(2.0, share=0.2, signal="token_cost_spike")
    cut = len(events) // 2 + 17
    whole, _ = run(events)
    eng = Engine(DetectionConfig())
    first: list[Alert] = []
    for data in events[:cut]:
        first += eng.observe(validate_event(data))
    snap = json.loads(json.dumps(eng.snapshot()))
    assert "rollout" in snap["agents"][AGENT]
    rest, _ = run(events[cut:], Engine.restore(snap, DetectionConfig()))
    assert [a.alert_id for a in first + rest] == [a.alert_id for a in whole]


def test_a_rolled_back_candidate_ends_the_comparison_and_resolves_its_alert() -> None:
    alerts, eng = run(stream(3.0, share=0.3, signal="escalation_rate_rise", magnitude=0.5, duration_h=14))
    fired = of_rule(alerts, "rollout_regression")
    resolved = of_rule(alerts, "rollout_regression", "resolved")
    assert fired and resolved and resolved[0].at > fired[0].at
    assert "v8 had no traffic" in resolved[0].summary
    status = eng.rollout_status(AGENT)
    assert status["comparisons"] == []
    assert status["ended"][-1]["candidate"] == "v8" and status["ended"][-1]["final"] == "rollback"


def test_an_agent_without_versions_keeps_no_rollout_state() -> None:
    events = stream(1.2, share=0.2)
    for e in events:
        e.pop("agent_version", None)
    _, eng = run(events)
    with pytest.raises(KeyError, match="no agent_version"):
        eng.rollout_status(AGENT)
    assert "rollout" not in eng.snapshot()["agents"][AGENT]


# -- the command line -------------------------------------------------------------------------
def _write(tmp_path: Path, events: list[dict[str, Any]]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_rollout_status_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli.main import main

    worse = _write(tmp_path, stream(2.0, share=0.3, signal="quality_drop"))
    assert main(["rollout", "status", "--agent", AGENT, "--events", str(worse)]) == 4
    text = capsys.readouterr().out
    assert "ROLLBACK" in text and "mean quality score" in text and "worse" in text
    assert main(["rollout", "status", "--agent", AGENT, "--events", str(worse), "--json"]) == 4
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "rollback" and data["exit_code"] == 4
    quality = next(r for r in data["comparisons"][0]["signals"] if r["signal"] == "quality")
    assert quality["verdict"] == "worse" and quality["candidate"]["n"] >= 30
    assert quality["difference_ci"][1] < 0  # the candidate's scores are lower, surely

    undecided = _write(tmp_path, stream(1.3, share=0.1, signal="none"))
    assert main(["rollout", "status", "--agent", AGENT, "--events", str(undecided)]) == 3
    capsys.readouterr()
    assert main(["rollout", "status", "--agent", "nobody", "--events", str(undecided)]) == 1
    assert "unknown" in capsys.readouterr().err
    assert main(["rollout", "status", "--agent", AGENT, "--candidate", "v9", "--events", str(undecided)]) == 1
    assert "v9" in capsys.readouterr().err


def test_the_weekly_review_lists_the_weeks_rollouts_with_their_verdicts(tmp_path: Path) -> None:
    from monitor.cli.main import main

    events = tmp_path / "events.jsonl"
    assert main(["simulate", "--days", "7", "--agents", "1", "--seed", "4", "--out", str(events), "--incident",
                 "rollout_regression@2026-11-04T10:00:00Z,share=0.3,signal=quality_drop,hours=30"]) == 0
    alerts, rollups = tmp_path / "alerts.jsonl", tmp_path / "rollups.jsonl"
    assert main(["backtest", "--events", str(events), "--alerts-out", str(alerts), "--rollups-out", str(rollups)]) == 0
    assert any(json.loads(line)["rollouts"] for line in rollups.read_text().splitlines())
    out = tmp_path / "review"
    assert main(["report", "--week", "2026-W45", "--rollups", str(rollups), "--alerts", str(alerts),
                 "--out", str(out), "--format", "md,json"]) == 0
    review = json.loads(next(out.glob("*.json")).read_text())
    (item,) = review["agents"][0]["rollouts"]
    assert (item["baseline_version"], item["candidate_version"], item["verdict"]) == ("v7", "v8", "rollback")
    assert "quality" in item["worse"] and item["pages"] >= 1
    assert item["ended"] and "v8 had no traffic" in item["ended"]
    assert 0.2 < item["candidate_share"] < 0.4
    markdown = next(out.glob("*.md")).read_text()
    assert "### Rollouts" in markdown and "Rollout v8 (vs v7" in markdown
