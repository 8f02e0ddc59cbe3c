"""One mute interface for silences and inhibitions (after Alertmanager's `types.Muter`): a muter
answers, for one alert, whether it is muted and by what. Two times are passed in: `now` (the
pipeline's clock: silences are operator actions in wall time) and `event_time` (where the alert
stream stands: inhibition asks whether the source alert was firing then, so a replay or a lagging
consumer that sees a whole incident at once inhibits exactly as a live run would).
Only firing notifications are muted: a resolve of something humans were told about always goes out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from alerts.config import InhibitRuleConfig
from monitor.contract.alert import Alert


@dataclass(frozen=True, slots=True)
class Mute:
    kind: Literal["silenced", "inhibited"]
    by: str  # silence id, or the fingerprint of the inhibiting alert
    reason: str
    author: str | None = None  # a silence's author and comment, for the note in the alert's thread
    comment: str | None = None
    ends_at: datetime | None = None

    def describe(self) -> str:
        return f"{self.kind} by {self.by}: {self.reason}"


class Muter(Protocol):
    def mutes(self, alert: Alert, now: datetime, event_time: datetime) -> Mute | None: ...


def alert_field(alert: Alert, name: str) -> str | None:
    """The value a matcher or an inhibit rule's `equal` compares: a top-level identity field, else a
    label. `agent` is accepted as a short name for `agent_id`."""
    if name in ("agent", "agent_id"):
        return alert.agent_id
    if name == "rule":
        return alert.rule
    if name == "severity":
        return alert.severity
    if name == "fingerprint":
        return alert.fingerprint
    return alert.labels.get(name)


def state_as_of(history: Sequence[Alert], event_time: datetime) -> Alert | None:
    """The state change in force at `event_time` (the newest with `at <= event_time`). Pure."""
    current = None
    for alert in history:
        if alert.at <= event_time and (current is None or alert.at >= current.at):
            current = alert
    return current


def inhibiting_alert(
    target: Alert, active: Iterable[Alert], rules: Sequence[InhibitRuleConfig]
) -> tuple[Alert, InhibitRuleConfig] | None:
    """The first firing alert that inhibits `target` under `rules`, or None. Pure."""
    candidates = [r for r in rules if r.target_rule == target.rule]
    if not candidates:
        return None
    for source in active:
        if source.state != "firing" or source.fingerprint == target.fingerprint:
            continue
        for rule in candidates:
            if source.rule == rule.source_rule and all(
                alert_field(source, f) == alert_field(target, f) for f in rule.equal
            ):
                return source, rule
    return None


class Inhibitor:
    """Muter over the alerts firing at an event time (`firing_at(t)` is called on every decision)."""

    def __init__(self, rules: Sequence[InhibitRuleConfig], firing_at: Callable[[datetime], Iterable[Alert]]) -> None:
        self.rules = list(rules)
        self._firing_at = firing_at

    def mutes(self, alert: Alert, now: datetime, event_time: datetime) -> Mute | None:
        if not any(r.target_rule == alert.rule for r in self.rules):
            return None
        found = inhibiting_alert(alert, self._firing_at(event_time), self.rules)
        if found is None:
            return None
        source, rule = found
        same = ", ".join(rule.equal) or "anything"
        return Mute("inhibited", source.fingerprint, f"{source.rule} is firing for the same {same}")


class MuteStage:
    """Asks each muter in order; the first that mutes wins."""

    def __init__(self, muters: Sequence[Muter]) -> None:
        self.muters = list(muters)

    def check(self, alert: Alert, now: datetime, event_time: datetime | None = None) -> Mute | None:
        if alert.state != "firing":
            return None
        for muter in self.muters:
            mute = muter.mutes(alert, now, event_time or alert.at)
            if mute is not None:
                return mute
        return None
