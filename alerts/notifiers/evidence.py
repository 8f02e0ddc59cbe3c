"""What a page says besides its summary, as plain text every notifier renders its own way (Slack
escapes it, the console prints it, Alertmanager puts it in annotations): the numbers, the two
versions of a rollout comparison, the suspects, the related alerts. Pure: no client, no clock."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from monitor.contract.alert import Alert

MAX_SUSPECTS = 3
RATE_SUFFIXES = ("_rate", "_share")


def format_number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


def format_change(change: float | None) -> str:
    return "n/a" if change is None else f"{change * 100:+.0f} %"


def is_rate(metric_name: str) -> bool:
    """Rates and shares are shown as percent (`0.151` -> `15.1 %`)."""
    return metric_name.endswith(RATE_SUFFIXES)


@dataclass(frozen=True, slots=True)
class VersionSide:
    version: str
    value: float | None
    interval: tuple[float, float] | None
    n: int


@dataclass(frozen=True, slots=True)
class RolloutEvidence:
    """A `rollout_regression` finding: the baseline version against the candidate, same windows."""

    baseline: VersionSide
    candidate: VersionSide
    rate: bool

    def lines(self) -> list[str]:
        return [_side_line(self.baseline, "baseline", self.rate), _side_line(self.candidate, "candidate", self.rate)]


def rollout_evidence(alert: Alert) -> RolloutEvidence | None:
    """The two versions of a rollout comparison, when the metric carries them (`baseline_version`,
    `candidate_version`, `baseline_n`, `candidate_n`, and the intervals `baseline_ci`, `candidate_ci`);
    None for any other alert, or when a version or an n is missing or malformed (the generic evidence
    is shown then). An interval that is missing or malformed is left out of its line."""
    extra = alert.metric.model_extra or {}
    b_version, c_version = extra.get("baseline_version"), extra.get("candidate_version")
    b_n, c_n = _count(extra.get("baseline_n")), _count(extra.get("candidate_n"))
    b_ci, c_ci = _interval(extra.get("baseline_ci")), _interval(extra.get("candidate_ci"))
    if b_version is None or c_version is None or b_n is None or c_n is None:
        return None
    metric = alert.metric
    return RolloutEvidence(
        baseline=VersionSide(str(b_version), metric.baseline, b_ci, b_n),
        candidate=VersionSide(str(c_version), metric.current, c_ci, c_n),
        rate=is_rate(metric.name),
    )


def versus_text(alert: Alert) -> str:
    """`0.23 vs 0.04 (+475 %)` (generic), or the two versions of a rollout comparison on one line."""
    rollout = rollout_evidence(alert)
    if rollout is not None:
        return "; ".join(rollout.lines())
    m = alert.metric
    return f"{format_number(m.current)} vs {format_number(m.baseline)} ({format_change(m.change)})"


def suspect_lines(alert: Alert) -> list[str]:
    """The suspects' own sentences, best first, at most `MAX_SUSPECTS`; none for an empty list."""
    return [s.text for s in alert.suspects[:MAX_SUSPECTS] if s.text.strip()]


def rule_of(fingerprint: str) -> str:
    """A fingerprint is `rule/agent[/k=v...]` and a rule name never holds a slash."""
    return fingerprint.split("/", 1)[0]


def related_rules(alert: Alert, *, leaving_out: str | None = None) -> list[str]:
    """Rule names of the alert's related alerts, oldest first, each once (not its own fingerprint,
    nor `leaving_out`: the alert whose thread it is posted in)."""
    out: list[str] = []
    for fingerprint in alert.related:
        if fingerprint in (alert.fingerprint, leaving_out):
            continue
        rule = rule_of(fingerprint)
        if rule not in out:
            out.append(rule)
    return out


def _side_line(side: VersionSide, role: str, rate: bool) -> str:
    value = _percent(side.value) if rate else format_number(side.value)
    interval = ""
    if side.interval is not None:
        lo, hi = side.interval
        interval = f" [{lo * 100:.1f}, {hi * 100:.1f}]" if rate else f" [{format_number(lo)}, {format_number(hi)}]"
    return f"{side.version} ({role}): {value}{interval} n={side.n:,}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return int(value)


def _interval(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    lo, hi = value
    if any(isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in (lo, hi)):
        return None
    return float(lo), float(hi)
