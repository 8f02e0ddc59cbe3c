"""The named readers of `Agg` read the fields their names say, in the CUSUM's tuple shape
`(n, tested sum, shown sum, tested sum of squares)`, and the window gates built on them."""

from __future__ import annotations

import pytest

from monitor.core import signals as sg
from monitor.core.rules.base import window_above, window_below
from monitor.core.signals import Agg, mean_var


def _agg() -> Agg:
    agg = Agg()
    agg.s = [float(100 + i) for i in range(sg.NF)]  # every field a different value
    agg.tools = {"crm": [40.0, 6.0, 33.0, 2.0]}  # calls, errors, ok, rate limited
    agg.metrics = {"won": [7.0, 7.0, 10.0], "revenue": [250.0, 9000.0, 10.0]}  # sum, squares, count
    agg.dur_hist = {10: 3.0, 40: 5.0, 60: 2.0}
    agg.steps_hist = {2: 4.0, 5: 6.0}
    return agg


def test_readers_name_their_fields() -> None:
    agg, s = _agg(), _agg().s
    assert agg.escalations() == (s[sg.N], s[sg.ESC], s[sg.ESC], 0.0)
    assert agg.escalation_base() == (s[sg.ESC], s[sg.N_ESC])
    assert agg.repeats() == (s[sg.N], s[sg.REP], s[sg.REP], 0.0)
    assert agg.repeat_base() == (s[sg.REP], s[sg.N_REP])
    assert agg.quality() == (s[sg.QN], s[sg.QS], s[sg.QS], s[sg.QQ])
    assert agg.log_cost() == (s[sg.CN], s[sg.LCS], s[sg.CS], s[sg.LCQ])
    assert agg.log_tokens() == (s[sg.TKN], s[sg.LTS], s[sg.TK], s[sg.LTQ])
    assert agg.log_duration() == (s[sg.DN], s[sg.LDS], s[sg.DS], s[sg.LDQ])
    assert agg.steps() == (s[sg.STN], s[sg.ST], s[sg.ST], s[sg.STQ])
    assert agg.tool_calls() == (s[sg.TC], s[sg.TOK], s[sg.TE])
    assert agg.per_hour(s[sg.HOURS] * 3) == pytest.approx(3.0)


def test_entry_readers_and_histograms() -> None:
    agg = _agg()
    assert agg.tool_errors("crm") == (40.0, 6.0, 6.0, 0.0) and agg.tool_errors("search") is None
    assert agg.tools_called(40) == ["crm"] and agg.tools_called(41) == []
    failures: dict[str, list[float]] = {}
    agg.add_tool_failures(failures)
    agg.add_tool_failures(failures)
    assert failures == {"crm": [80.0, 12.0, 4.0]}
    assert agg.metric_values("revenue") == (10.0, 250.0, 250.0, 9000.0)
    assert agg.metric_failures("won") == (10.0, 3.0, 3.0, 0.0) and agg.metric_values("nps") is None
    assert agg.metrics_reported(10) == ["won", "revenue"]
    assert agg.durations_above(10) == (agg.s[sg.DN], 7.0, 7.0, 0.0)
    assert agg.durations_above(10, min_n=agg.s[sg.DN] + 1) is None
    assert agg.steps_above(2) == (agg.s[sg.STN], 6.0, agg.s[sg.ST], agg.s[sg.STQ])


def test_mean_var_of_a_reader_tuple() -> None:
    n, mean, var = mean_var((4.0, 10.0, 10.0, 30.0))  # values 1, 2, 3, 4
    assert (n, mean) == (4.0, 2.5) and var == pytest.approx(5 / 3)
    assert mean_var(None) == mean_var((0.0, 0.0, 0.0, 0.0)) == (0.0, 0.0, 0.0)
    assert mean_var((1.0, 3.0, 3.0, 9.0)) == (1.0, 3.0, 0.0)


def test_window_gates_need_the_count_and_the_shown_share() -> None:
    small, big = Agg(), Agg()
    small.s[sg.N], small.s[sg.ESC] = 5.0, 5.0  # all escalated, but only 5
    big.s[sg.N], big.s[sg.ESC] = 50.0, 10.0  # 20 %
    windows = [(900, small), (3600, big)]
    assert window_above(windows, Agg.escalations, 20, 0.2)
    assert not window_above(windows, Agg.escalations, 20, 0.21)
    assert window_above(windows, Agg.escalations, 5, 0.9)  # the small window reaches it
    assert window_below(windows, Agg.escalations, 20, 0.2) and not window_below(windows, Agg.escalations, 20, 0.19)
    assert not window_above([(900, Agg())], lambda a: a.tool_errors("crm"), 0, 0.0)  # None: a tool not called
