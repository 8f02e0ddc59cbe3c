"""Route stage: severity / agent / team / rule / labels -> receivers; table-driven."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.config import AlertingConfig, RouteConfig
from alerts.route import DEFAULT_ROUTE_REASON, route_alert
from monitor.contract.alert import Alert
from tests.support.alert_factory import make_alert

ROUTES = [
    RouteConfig(name="payments-team", teams=["payments"], receivers=["slack-payments"]),
    RouteConfig(
        name="p1-pager",
        severities=["P1"],
        receivers=["slack-oncall", "webhook-pager"],
        continue_matching=True,
    ),
    RouteConfig(name="crm-tool", labels={"tool": "crm.update"}, receivers=["slack-crm"]),
    RouteConfig(name="pipeline", agents=["*"], receivers=["slack-platform"]),
    RouteConfig(name="cost", rules=["token_cost_spike", "spend_budget"], receivers=["slack-finops"]),
]
TEAMS = {"invoice-matcher": "payments", "refund-bot": "payments"}

CASES: list[tuple[str, Alert, tuple[str, ...], str]] = [
    (
        "team route wins first",
        make_alert("quality_drop", "invoice-matcher"),
        ("slack-payments",),
        "route 'payments-team'",
    ),
    (
        "P1 continues to the next match",
        make_alert("tool_error_rate", "lead-qualifier"),
        ("slack-oncall", "webhook-pager", "slack-crm"),
        "route 'p1-pager' + 'crm-tool'",
    ),
    (
        "P1 without a further match",
        make_alert("agent_silent", "lead-qualifier"),
        ("slack-oncall", "webhook-pager"),
        "route 'p1-pager'",
    ),
    ("pipeline-wide alert", make_alert("invalid_events", None), ("slack-platform",), "route 'pipeline'"),
    ("rule route", make_alert("token_cost_spike", "lead-qualifier"), ("slack-finops",), "route 'cost'"),
    (
        "nothing matches: default",
        make_alert("latency_spike", "lead-qualifier"),
        ("slack-default",),
        DEFAULT_ROUTE_REASON,
    ),
    (
        "severity overridden to P3",
        make_alert("tool_error_rate", "x", severity="P3", labels={"tool": "search"}),
        ("slack-default",),
        DEFAULT_ROUTE_REASON,
    ),
]


@pytest.mark.parametrize(("alert", "receivers", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_route(alert: Alert, receivers: tuple[str, ...], reason: str) -> None:
    decision = route_alert(alert, ROUTES, agent_teams=TEAMS, default_receiver="slack-default")
    assert decision.receivers == receivers
    assert decision.reason == reason


def test_config_refuses_routes_to_unknown_receivers() -> None:
    with pytest.raises(ValueError, match="unknown receivers"):
        AlertingConfig(routes=[RouteConfig(name="r", receivers=["nowhere"])])
    ok = AlertingConfig(
        receivers=[
            {"name": "slack-default", "kind": "slack"},
            {"name": "hook", "kind": "webhook", "url": "http://x"},
        ],
        routes=[RouteConfig(name="r", receivers=["hook"])],
    )
    assert [r.name for r in ok.all_receivers()] == ["slack-default", "hook"]


def test_the_documented_toml_example_loads(tmp_path: Path) -> None:
    import alerts.config as module
    from monitor.settings import load_settings

    doc = module.__doc__ or ""
    example = doc.split("Example (the settings TOML file):", 1)[1]
    toml = "\n".join(line[4:] for line in example.splitlines() if line.startswith("    ") or not line.strip())
    path = tmp_path / "agentmon.toml"
    path.write_text(toml.split('"""')[0])
    settings = load_settings(path)
    cfg = settings.alerting
    assert [r.name for r in cfg.receivers] == ["slack-default", "slack-payments", "pager", "alertmanager"]
    assert cfg.group_wait_by_severity_s == {"P1": 5}
    decision = route_alert(
        make_alert("quality_drop", "refund-bot"), cfg.routes, agent_teams=cfg.agent_teams, default_receiver="x"
    )
    assert decision.receivers == ("slack-payments", "slack-default", "pager")
