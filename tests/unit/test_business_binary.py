"""`business_metric_decline` on a 0/1 outcome metric (converted, resolved) tests a rise of the
failure share, not a Gaussian mean: near 95 % success a handful of failures is not the
one-in-10^8 event a t-test calls it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.replay import replay
from monitor.core.rules.business import is_binary
from monitor.local.simulate import AgentProfile, Incident, generate
from tests.unit.test_engine_support import T0

AGENT = AgentProfile("closer", rate_per_hour=50, outcome_metric="deal_closed", outcome_mean=0.95, outcome_share=0.7)


def test_a_metric_of_zeros_and_ones_is_binary_and_others_are_not() -> None:
    assert is_binary((5.0, 3.0, 3.0, 3.0))  # three 1s and two 0s
    assert not is_binary((5.0, 2.5, 2.5, 1.75))  # 0.5 values
    assert not is_binary((3.0, 30.0, 30.0, 500.0))  # amounts
    assert not is_binary((0.0, 0.0, 0.0, 0.0))  # nothing yet


@pytest.mark.parametrize("seed", [1, 2])
def test_a_95_percent_outcome_on_clean_days_pages_nothing(seed: int) -> None:
    lines = [json.dumps(e).encode() for e in generate([AGENT], T0, 9.0, seed=seed)]
    alerts = replay(lines, Engine(DetectionConfig())).alerts
    assert [a.summary for a in alerts if a.rule == "business_metric_decline"] == []


def test_a_fall_from_95_to_80_percent_pages_once_and_says_so_in_shares() -> None:
    onset = T0 + timedelta(days=7, hours=10)
    incident = Incident("business_metric_decline", AGENT.agent_id, onset, magnitude=0.16)  # 95 % -> 80 %
    lines = [json.dumps(e).encode() for e in generate([AGENT], T0, 8.2, incidents=[incident], seed=4)]
    alerts = [a for a in replay(lines, Engine(DetectionConfig())).alerts if a.rule == "business_metric_decline"]
    firing = [a for a in alerts if a.state == "firing"]
    assert len(firing) == 1 and onset < firing[0].at <= onset + timedelta(hours=6), [a.at for a in firing]
    assert "deal_closed" in firing[0].summary and "%" in firing[0].summary and "usually 9" in firing[0].summary
