"""Escaping of event-provided strings for Slack mrkdwn, table-driven."""

from __future__ import annotations

import pytest

from alerts.escape import ZWSP, code, escape_mrkdwn, plain
from alerts.notifiers.slack import safe_link

Z = ZWSP

CASES = [
    ("<!channel>", "&lt;!channel&gt;"),
    ("<!here> and <!everyone>", "&lt;!here&gt; and &lt;!everyone&gt;"),
    ("<@U123ABC>", "&lt;@U123ABC&gt;"),
    ("<#C1|general>", "&lt;#C1|general&gt;"),
    ("<http://evil.example|click>", "&lt;http://evil.example|click&gt;"),
    ("a & b", "a &amp; b"),
    ("&lt;!channel&gt;", "&amp;lt;!channel&amp;gt;"),  # pre-escaped text cannot sneak through
    ("*bold*", f"{Z}*{Z}bold{Z}*{Z}"),
    ("_it_", f"{Z}_{Z}it{Z}_{Z}"),
    ("~strike~", f"{Z}~{Z}strike{Z}~{Z}"),
    ("`code`", f"{Z}`{Z}code{Z}`{Z}"),
    ("lead_qualifier", "lead_qualifier"),  # identifiers stay intact
    ("2*3*4", "2*3*4"),
    ("plain text", "plain text"),
]


@pytest.mark.parametrize(("raw", "escaped"), CASES)
def test_escape_mrkdwn(raw: str, escaped: str) -> None:
    assert escape_mrkdwn(raw) == escaped


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("lead-qualifier", "`lead-qualifier`"),
        ("a`b", "`a\u02cbb`"),
        ("<!channel>", "`&lt;!channel&gt;`"),
        ("", "` `"),
    ],
)
def test_code(raw: str, expected: str) -> None:
    assert code(raw) == expected


def test_truncation_and_plain() -> None:
    assert escape_mrkdwn("x" * 50, max_len=10) == "x" * 9 + "\u2026"
    assert plain("<!channel>") == "&lt;!channel&gt;"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/a/b/runbooks/x.md", "<https://github.com/a/b/runbooks/x.md|runbooks/x.md>"),
        ("https://x.example/a|<!channel>", "<https://x.example/a%7C&lt;!channel&gt;|runbooks/x.md>"),
        ("javascript:alert(1)", "`javascript:alert(1)`"),
        ("https://x.example/a b", "`https://x.example/a b`"),
    ],
)
def test_runbook_links_cannot_break_out(url: str, expected: str) -> None:
    assert safe_link(url, "runbooks/x.md") == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "< 1 min"),
        (60, "1 min"),
        (2700, "45 min"),
        (3600, "1 h"),
        (6120, "1 h 42 min"),
        (86400 + 3 * 3600, "1 d 3 h"),
    ],
)
def test_incident_durations_read_like_a_human_wrote_them(seconds: float, text: str) -> None:
    from alerts.notifiers.slack import format_duration

    assert format_duration(seconds) == text
