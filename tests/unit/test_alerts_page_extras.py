"""What a page shows besides summary and numbers: the suspects, a rollout comparison's two versions,
and what the page follows or is related to; and nothing extra when an alert has none of these."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts.clock import ManualClock
from alerts.config import AlertingConfig
from alerts.notification_log import SqliteNotificationLog
from alerts.notifiers.alertmanager import AlertmanagerNotifier
from alerts.notifiers.base import Notification
from alerts.notifiers.console import ConsoleNotifier
from alerts.notifiers.evidence import rollout_evidence
from alerts.notifiers.slack import SlackBlocks
from alerts.notifiers.webhook import WebhookNotifier
from alerts.pipeline import AlertPipeline
from monitor.contract.alert import Alert, AlertMetric, Suspect
from tests.support.alert_factory import T0, make_alert
from tests.support.fake_notifier import ScriptedNotifier

BLOCKS = SlackBlocks()


def suspect(text: str, value: str = "billing", share: float = 0.9) -> Suspect:
    return Suspect(
        dimension="task_type", value=value, share_of_change=share, window_share=0.4, baseline_share=0.1, text=text
    )


def with_suspects(*texts: str, **kw: Any) -> Alert:
    return make_alert("escalation_rate_rise", suspects=[suspect(t) for t in texts], **kw)


def block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e["text"] for e in block.get("elements", [])]
    return out


def rollout_alert(name: str = "escalation_rate", **metric: Any) -> Alert:
    """A `rollout_regression` page as the engine writes it (the rule name enters the catalogue with the
    rollout comparison; the notifiers key on the metric's extras, so any rule renders them)."""
    values: dict[str, Any] = {
        "name": name,
        "current": 0.310,
        "baseline": 0.151,
        "change": 1.05,
        "window": "6h",
        "n": 2431,
        "baseline_version": "v7",
        "candidate_version": "v8",
        "baseline_n": 2310,
        "candidate_n": 121,
        "baseline_ci": [0.139, 0.164],
        "candidate_ci": [0.242, 0.386],
        "difference_ci": [0.08, 0.24],
        "signal": "escalation_rate",
    }
    values.update(metric)
    base = make_alert("escalation_rate_rise", labels={})
    return base.model_copy(update={"rule": "rollout_regression", "metric": AlertMetric.model_validate(values)})


# --- suspects -------------------------------------------------------------------------------------
def test_a_firing_page_lists_at_most_three_suspects_after_the_evidence_best_first() -> None:
    alert = with_suspects("93 % of the excess came from task type billing", "second", "third", "fourth")
    blocks = BLOCKS.firing(alert, None, "first notification")
    kinds = [b["type"] for b in blocks]
    evidence_at = next(i for i, b in enumerate(blocks) if "fields" in b)
    suspects_block = blocks[evidence_at + 1]["text"]["text"]
    assert suspects_block.startswith("*Suspects*\n")
    lines = suspects_block.split("\n")[1:]
    assert lines == ["\u2022 93 % of the excess came from task type billing", "\u2022 second", "\u2022 third"]
    assert "fourth" not in json.dumps(blocks)
    assert kinds.count("section") >= 4
    text = BLOCKS.fallback_text(alert, suspects=True)
    assert "Suspects: 93 % of the excess came from task type billing; second; third" in text


def test_suspect_text_is_escaped_like_any_event_string() -> None:
    alert = with_suspects("all runs used <!channel> *gpt-4o* <http://evil.example|click>")
    page = BLOCKS.firing(alert, None, "first notification")
    body = json.dumps([*page, {"text": BLOCKS.fallback_text(alert, suspects=True)}])
    assert "<!channel>" not in body and "<http://evil" not in body
    assert "&lt;!channel&gt;" in body


def test_no_suspects_no_related_means_nothing_extra_on_the_page() -> None:
    plain = make_alert("escalation_rate_rise")
    assert plain.suspects == [] and plain.related == []
    blocks = BLOCKS.firing(plain, None, "first notification")
    body = json.dumps(blocks)
    assert "Suspect" not in body and "Related" not in body and "Follows" not in body and "Versions" not in body
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "section", "context"]
    assert "Suspects" not in BLOCKS.fallback_text(plain, suspects=True)
    assert "Suspects" not in json.dumps(BLOCKS.repeat(plain, "repeat interval elapsed"))
    out = io.StringIO()
    ConsoleNotifier(out, colour=False).send(Notification("n1", "console", "firing", "first notification", plain))
    assert "suspect" not in out.getvalue() and "related" not in out.getvalue()
    annotations = AlertmanagerNotifier("http://127.0.0.1:9", hold_s=60, now=lambda: T0).postable(
        Notification("n1", "am", "firing", "first notification", plain)
    )["annotations"]
    assert set(annotations) == {"summary", "runbook_url", "description"}


def test_a_reminder_shows_the_suspects_of_the_latest_record() -> None:
    latest = with_suspects("now: 80 % from tool crm.update")
    blocks = BLOCKS.repeat(latest, "repeat interval elapsed")
    assert "now: 80 % from tool crm.update" in blocks[0]["text"]["text"]
    assert "Suspects: now: 80 % from tool crm.update" in BLOCKS.fallback_text(latest, "Still firing: ", suspects=True)


def test_resolve_messages_carry_no_suspects() -> None:
    resolved = with_suspects("gone", state="resolved", minutes=30)
    assert "gone" not in json.dumps(BLOCKS.resolved_reply(resolved))
    assert "gone" not in BLOCKS.fallback_text(resolved, "Resolved: ")


def test_console_alertmanager_and_webhook_carry_the_suspects() -> None:
    alert = with_suspects(
        "93 % of the excess came from task type billing", related=["model_version_changed/lead-qualifier"]
    )
    note = Notification("n1", "r", "firing", "first notification", alert)
    out = io.StringIO()
    ConsoleNotifier(out, colour=False).send(note)
    assert "  suspect: 93 % of the excess came from task type billing" in out.getvalue()
    assert "  related (same agent): model_version_changed" in out.getvalue()
    body = AlertmanagerNotifier("http://127.0.0.1:9", hold_s=60, now=lambda: T0).postable(note)
    assert body["annotations"]["suspects"] == "93 % of the excess came from task type billing"
    assert body["annotations"]["related"] == "model_version_changed"
    payload = json.loads(WebhookNotifier("http://127.0.0.1:9/hook", None).payload(note))
    assert payload["alert"]["suspects"][0]["value"] == "billing"
    assert payload["alert"]["related"] == ["model_version_changed/lead-qualifier"]


# --- rollout comparison ---------------------------------------------------------------------------
def test_a_rollout_page_shows_both_versions_with_intervals_and_n_instead_of_current_vs_baseline() -> None:
    alert = rollout_alert()
    fields = [f["text"] for f in BLOCKS.evidence_fields(alert)]
    assert "*Versions*\nv7 (baseline): 15.1 % [13.9, 16.4] n=2,310\nv8 (candidate): 31.0 % [24.2, 38.6] n=121" in fields
    assert not any(f.startswith("*Current vs baseline*") for f in fields)
    repeat = BLOCKS.repeat(alert, "repeat interval elapsed")[0]["text"]["text"]
    assert "v7 (baseline): 15.1 % [13.9, 16.4] n=2,310; v8 (candidate): 31.0 % [24.2, 38.6] n=121" in repeat
    out = io.StringIO()
    ConsoleNotifier(out, colour=False).send(Notification("n1", "r", "firing", "first notification", alert))
    assert "    v8 (candidate): 31.0 % [24.2, 38.6] n=121" in out.getvalue()
    assert " vs baseline " not in out.getvalue()
    body = AlertmanagerNotifier("http://127.0.0.1:9", hold_s=60, now=lambda: T0).postable(
        Notification("n1", "am", "firing", "first notification", alert)
    )
    assert body["annotations"]["description"] == (
        "escalation_rate over 6h: v7 (baseline): 15.1 % [13.9, 16.4] n=2,310; v8 (candidate): 31.0 % [24.2, 38.6] n=121"
    )


def test_a_rollout_of_a_non_rate_signal_uses_plain_numbers() -> None:
    alert = rollout_alert(
        "p95_duration_ms", current=2950.5, baseline=1830.0, baseline_ci=[1700, 1950.4], candidate_ci=[2500, 3400]
    )
    evidence = rollout_evidence(alert)
    assert evidence is not None
    assert evidence.lines() == [
        "v7 (baseline): 1,830 [1,700, 1,950] n=2,310",
        "v8 (candidate): 2,950 [2,500, 3,400] n=121",
    ]
    assert rollout_evidence(rollout_alert("quality_share")) is not None and rollout_evidence(
        rollout_alert("quality_share")
    ).rate  # type: ignore[union-attr]


def test_a_rollout_side_without_an_interval_is_shown_without_it() -> None:
    for no_interval in ({"baseline_ci": [0.1]}, {"baseline_ci": None}, {"baseline_ci": [0.1, float("nan")]}):
        evidence = rollout_evidence(rollout_alert(**no_interval))
        assert evidence is not None
        assert evidence.lines() == ["v7 (baseline): 15.1 % n=2,310", "v8 (candidate): 31.0 % [24.2, 38.6] n=121"]


def test_malformed_rollout_extras_fall_back_to_the_generic_evidence() -> None:
    for broken in ({"candidate_n": "many"}, {"candidate_version": None}, {"baseline_n": -3}, {"baseline_n": True}):
        alert = rollout_alert(**broken)
        assert rollout_evidence(alert) is None, broken
        fields = [f["text"] for f in BLOCKS.evidence_fields(alert)]
        assert any(f.startswith("*Current vs baseline*\n0.31 vs 0.151") for f in fields), (broken, fields)
    assert rollout_evidence(make_alert()) is None


# --- what a page follows ----------------------------------------------------------------------------
def test_a_threaded_page_says_what_it_follows_and_when_that_fired() -> None:
    parent = make_alert("model_version_changed", labels={}, at=datetime(2026, 11, 21, 10, 5, 42, tzinfo=UTC))
    child = make_alert("quality_drop", minutes=80, related=[parent.fingerprint], suspects=[suspect("x")])
    blocks = BLOCKS.firing(child, None, "first notification", follows=parent)
    assert blocks[1]["text"]["text"] == ":link: Follows `model_version_changed`, fired 10:05 UTC (this thread)"
    text = BLOCKS.fallback_text(child, suspects=True, follows=parent)
    assert "P1 quality_drop lead-qualifier (follows model_version_changed, fired 10:05 UTC): " in text


def test_a_page_not_in_the_thread_names_its_related_alerts_by_rule() -> None:
    child = make_alert(
        "quality_drop",
        related=["model_version_changed/lead-qualifier", "tool_error_rate/lead-qualifier/tool=crm.update",
                 "model_version_changed/lead-qualifier/model=gpt-4o"],
    )
    texts = block_texts(BLOCKS.firing(child, None, "first notification"))
    assert ":link: Related (same agent): `model_version_changed`, `tool_error_rate`" in texts
    parent = make_alert("model_version_changed", labels={})
    texts = block_texts(BLOCKS.firing(child, None, "first notification", follows=parent))
    # the followed alert is not named again; another alert of the same rule (other labels) is
    assert texts[1].endswith("fired 09:00 UTC (this thread)\nAlso related (same agent): `tool_error_rate`,"
                             " `model_version_changed`")


def test_a_reminder_carries_the_suspects_of_the_newest_record_the_pipeline_holds(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    slack = ScriptedNotifier()
    config = AlertingConfig.model_validate(
        {"group_wait_s": 0, "repeat_interval_s": 3600, "receivers": [{"name": "s", "kind": "slack"}],
         "default_receiver": "s"}
    )
    pipeline = AlertPipeline(
        config, notifiers={"s": slack}, notification_log=SqliteNotificationLog(tmp_path / "log.sqlite3"), clock=clock
    )
    pipeline.receive(with_suspects("first: task type billing"))
    pipeline.tick()
    clock.advance(600)
    pipeline.receive(with_suspects("newer: tool crm.update", minutes=10))  # re-announced, same fingerprint
    pipeline.tick()
    clock.advance(3600)
    pipeline.tick()
    assert [n.kind for n in slack.sent] == ["firing", "repeat"]
    reminder = slack.sent[1]
    assert suspect_lines_of(BLOCKS.repeat(reminder.alert, reminder.reason)) == ["newer: tool crm.update"]


def suspect_lines_of(blocks: list[dict[str, Any]]) -> list[str]:
    text = blocks[0]["text"]["text"]
    return [line.removeprefix("\u2022 ") for line in text.split("*Suspects*\n", 1)[1].split("\n")]
