"""Route stage: which receivers get an alert, by severity, agent, team, rule and labels. Pure; the
reason names the route that decided, and is logged with the notification."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alerts.config import RouteConfig
from monitor.contract.alert import Alert

DEFAULT_ROUTE_REASON = "default route"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    receivers: tuple[str, ...]
    reason: str


def route_matches(route: RouteConfig, alert: Alert, team: str | None) -> bool:
    agent = alert.agent_id if alert.agent_id is not None else "*"
    return (
        (not route.severities or alert.severity in route.severities)
        and (not route.agents or agent in route.agents)
        and (not route.teams or (team is not None and team in route.teams))
        and (not route.rules or alert.rule in route.rules)
        and all(alert.labels.get(k) == v for k, v in route.labels.items())
    )


def route_alert(
    alert: Alert,
    routes: Sequence[RouteConfig],
    *,
    agent_teams: Mapping[str, str],
    default_receiver: str,
) -> RouteDecision:
    team = agent_teams.get(alert.agent_id) if alert.agent_id is not None else None
    receivers: list[str] = []
    names: list[str] = []
    for route in routes:
        if not route_matches(route, alert, team):
            continue
        names.append(route.name)
        receivers.extend(r for r in route.receivers if r not in receivers)
        if not route.continue_matching:
            break
    if not names:
        return RouteDecision((default_receiver,), DEFAULT_ROUTE_REASON)
    return RouteDecision(tuple(receivers), "route " + " + ".join(repr(n) for n in names))
