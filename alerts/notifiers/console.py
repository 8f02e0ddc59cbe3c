"""Console notifier: a readable block per notification, for the demo and local runs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from alerts.notifiers.base import Notification, Receipt
from alerts.notifiers.evidence import (
    format_change,
    format_number,
    related_rules,
    rollout_evidence,
    suspect_lines,
)

_MARK = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED", "mark_resolved": "", "digest": ""}
_COLOUR = {"P1": "\033[1;31m", "P2": "\033[1;33m", "P3": "\033[1;36m"}
_GREEN, _RESET = "\033[1;32m", "\033[0m"
FirstAction = Callable[[str], str | None]


def _printable(text: object) -> str:
    """Event strings may carry terminal escapes; show them, never execute them."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class ConsoleNotifier:
    def __init__(
        self,
        stream: TextIO | None = None,
        colour: bool | None = None,
        first_action: FirstAction | None = None,
    ) -> None:
        self.stream = stream or sys.stdout
        self.colour = self.stream.isatty() if colour is None else colour
        self._first_action = first_action or (lambda rule: None)

    def send(self, notification: Notification) -> Receipt:
        if notification.kind == "mark_resolved":
            return Receipt()
        if notification.kind == "digest":
            lines = [f"[DAILY DIGEST] {len(notification.digest)} hygiene finding(s)"]
            for d in notification.digest:
                agent = _printable(d.agent_id or "pipeline")
                lines.append(f"  {d.severity} {d.rule} \u00b7 {agent}: {_printable(d.summary)}")
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
            return Receipt()
        a = notification.alert
        colour = (_GREEN if a.state == "resolved" else _COLOUR.get(a.severity, "")) if self.colour else ""
        reset = _RESET if self.colour else ""
        m = a.metric
        agent = _printable(a.agent_id or "pipeline")
        lines = [
            f"{colour}[{_MARK[notification.kind]}] {a.severity} {a.rule} \u00b7 {agent}{reset}"
            f"  ({notification.reason})",
            f"  {_printable(a.summary)}",
        ]
        rollout = rollout_evidence(a)
        if rollout is not None:
            lines.append(f"  {_printable(m.name)}, window {_printable(m.window)}, at {a.at.isoformat()}:")
            lines += [f"    {_printable(line)}" for line in rollout.lines()]
        else:
            lines.append(
                f"  {_printable(m.name)}: {format_number(m.current)} vs baseline {format_number(m.baseline)}"
                f" ({format_change(m.change)}), window {_printable(m.window)}, n={m.n}, at {a.at.isoformat()}"
            )
        if a.state == "firing":
            lines += [f"  suspect: {_printable(line)}" for line in suspect_lines(a)]
            related = related_rules(a)
            if related:
                lines.append("  related (same agent): " + ", ".join(_printable(r) for r in related))
        if a.labels:
            lines.append(
                "  labels: " + ", ".join(f"{_printable(k)}={_printable(v)}" for k, v in sorted(a.labels.items()))
            )
        if a.samples:
            lines.append("  samples: " + " ".join(_printable(s) for s in a.samples))
        if a.state == "firing":
            action = self._first_action(a.rule)
            if action:
                lines.append(f"  first action: {action}")
            lines.append(f"  runbook: {_printable(a.runbook_url)}")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        return Receipt()

    def find_delivered(self, notification: Notification) -> Receipt | None:
        return None
