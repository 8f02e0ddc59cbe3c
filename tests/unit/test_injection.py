"""Injection strings end to end: event data chosen to break out of Slack mrkdwn, a shell command or
HTML goes through the engine into alerts, Slack pages and the weekly review, and stays text."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from alerts.notifiers.slack import SlackBlocks, silence_hint
from monitor.contract.alert import Alert
from monitor.contract.rollup import Rollup
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.replay import replay
from monitor.local.simulate import Incident, default_agents, generate
from monitor.report.analysis import build_review
from monitor.report.config import ReportSettings
from monitor.report.output import write_report
from monitor.report.slack_upload import summary_comment
from monitor.report.week import IsoWeek

START = datetime(2026, 11, 2, tzinfo=UTC)
EVIL_AGENT = "<!channel> *x* <http://evil.example|click> <script>alert(1)</script> $(rm -rf ~) `id`; ' \""
EVIL_TOOL = "<img src=x onerror=alert(2)>|<@U123>"
EVIL_REASON = "</td><script>alert(3)</script><a href=javascript:alert(4)>"


@lru_cache(maxsize=1)
def evil_run() -> tuple[list[Alert], list[Rollup]]:
    """Ten days of two agents, one of them named to break out of everything, whose tools fail on
    day ten; its tool and escalation reasons are hostile too."""
    agents = default_agents(2, 40.0, seed=9)
    victim = agents[0].agent_id
    incident = Incident(rule="tool_calls_all_failing", onset=START + timedelta(days=9, hours=9),
                        agent_id=victim, duration_h=3.0)
    lines = []
    for ev in generate(agents, START, 10.0, incidents=[incident], seed=9):
        if ev["agent_id"] == victim:
            ev["agent_id"] = EVIL_AGENT
            for call in ev.get("tool_calls") or []:
                call["tool"] = EVIL_TOOL
            if ev.get("escalation_reason"):
                ev["escalation_reason"] = EVIL_REASON
            if ev.get("task_type"):
                ev["task_type"] = EVIL_REASON
        lines.append(json.dumps(ev).encode())
    rollups: list[Rollup] = []
    result = replay(lines, Engine(DetectionConfig()), on_rollup=rollups.append)
    return result.alerts, rollups


def test_hostile_event_data_in_a_slack_page_forms_no_mention_link_or_formatting() -> None:
    alerts, _ = evil_run()
    page = next(a for a in alerts if a.rule == "tool_calls_all_failing" and a.state == "firing")
    assert page.agent_id == EVIL_AGENT and EVIL_TOOL in page.summary  # the data did reach the page
    blocks = SlackBlocks().firing(page, "Pause the agent's queue.", "first notification")
    for text in _texts(blocks):
        # the only link is our runbook's; nothing the events carried forms one
        for formed in ("<!channel", "<http://evil", "<@U123", "<script", "<img"):
            assert formed not in text, (formed, text)
        assert text.count("<") == text.count("<https://github.com/agentmon/agentmon/blob/main/runbooks/"), text
    header = blocks[0]["text"]
    assert header["type"] == "plain_text"


def test_the_silence_command_in_a_page_is_one_safe_shell_word_per_value() -> None:
    alerts, _ = evil_run()
    page = next(a for a in alerts if a.rule == "tool_calls_all_failing")
    words = shlex.split(silence_hint(page))
    assert words[words.index("--agent") + 1] == EVIL_AGENT  # one argument, exactly the id: nothing runs


def test_hostile_event_data_in_the_html_review_is_text(tmp_path: Path) -> None:
    alerts, rollups = evil_run()
    review = build_review(rollups, alerts, IsoWeek.parse("2026-W46"), ReportSettings())
    html = write_report(review, tmp_path, ["html"])["html"].read_text()
    parser = _Tags()
    parser.feed(html)
    assert "script" not in parser.tags and "iframe" not in parser.tags
    assert not [a for a in parser.attrs if a[0].startswith("on")], parser.attrs[:5]
    assert not [a for a in parser.attrs if a[1] and a[1].strip().lower().startswith("javascript:")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, as text


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.extend(attrs)


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["text"]] if isinstance(node.get("text"), str) else []
        return out + [t for v in node.values() for t in _texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return []


def test_hostile_event_data_in_the_markdown_review_and_its_slack_message_is_text(tmp_path: Path) -> None:
    alerts, rollups = evil_run()
    review = build_review(rollups, alerts, IsoWeek.parse("2026-W46"), ReportSettings())
    markdown = write_report(review, tmp_path, ["md"])["md"].read_text()
    assert EVIL_AGENT.split()[0] not in markdown and "<script" not in markdown and "<img" not in markdown
    assert "&lt;script>alert(1)&lt;/script>" in markdown
    comment = summary_comment(review)
    assert EVIL_AGENT in "".join(review.findings)  # the findings do name the agent
    for formed in ("<!channel", "<http://evil", "<@U123", "<script"):
        assert formed not in comment
