"""Every rule of the catalogue has a runbook with the sections on-call needs, and every alert's
runbook_url points at a runbook that exists (STYLE.md house rule 4)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from alerts.runbooks import first_immediate_action, runbook_first_action
from monitor.contract.catalogue import RULES, runbook_path, runbook_url
from monitor.settings import Settings
from tests.support.alert_factory import make_alert

REPO = Path(__file__).resolve().parents[2]
REQUIRED_SECTIONS = (
    "Symptom",
    "Likely failure category",
    "Severity",
    "Immediate action",
    "Root-cause investigation",
    "Confirm recovery",
    "Silence during planned work",
)


def sections(markdown: str) -> dict[str, str]:
    out: dict[str, str] = {}
    current = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return out


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_has_a_runbook_with_the_required_sections(rule: str) -> None:
    path = REPO / runbook_path(rule)
    assert path.is_file(), f"missing {path}"
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"# {rule}\n")
    found = sections(text)
    for name in REQUIRED_SECTIONS:
        assert name in found, f"{rule}: no '## {name}' section"
        assert len(found[name].strip()) >= 40, f"{rule}: section '{name}' is (nearly) empty"
    assert "TODO" not in text and "<fill" not in text.lower()


@pytest.mark.parametrize("rule", sorted(RULES))
def test_runbook_states_the_catalogue_severity_and_category(rule: str) -> None:
    spec = RULES[rule]
    text = (REPO / runbook_path(rule)).read_text(encoding="utf-8")
    assert f"**Severity:** {spec.severity}" in text
    assert f"**Failure category:** {spec.category}" in text
    assert spec.severity in sections(text)["Severity"]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_runbook_has_one_clear_first_action_for_the_slack_message(rule: str) -> None:
    action = runbook_first_action(rule, REPO / "runbooks")
    assert action is not None and 40 <= len(action) <= 600, action
    assert "\n" not in action


@pytest.mark.parametrize("rule", sorted(RULES))
def test_runbook_silence_example_is_a_valid_silence_command_for_this_rule(rule: str) -> None:
    from alerts.cli import build_silence_parser

    block = re.search(
        r"```\n(agentmon silence add.*?)```",
        sections((REPO / runbook_path(rule)).read_text())["Silence during planned work"],
        re.S,
    )
    assert block, f"{rule}: no `agentmon silence add` example"
    argv = shlex.split(block.group(1).replace("\\\n", " "))[2:]  # drop "agentmon silence"
    args = build_silence_parser().parse_args(argv)
    assert args.rule == rule
    assert args.reason and args.duration


def test_no_runbook_without_a_rule() -> None:
    files = {p.stem for p in (REPO / "runbooks").glob("*.md")}
    assert files - set(RULES) <= {"README"}, files - set(RULES)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_alert_links_an_existing_runbook(rule: str) -> None:
    base = Settings().runbook_base_url
    alert = make_alert(rule, None if not RULES[rule].per_agent else "lead-qualifier")
    assert alert.runbook_url == runbook_url(base, rule)
    assert alert.runbook_url.startswith(base.rstrip("/") + "/")
    relative = alert.runbook_url[len(base.rstrip("/")) + 1 :]
    assert (REPO / relative).is_file(), relative


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("## Immediate action\n\n1. Do A now.\n2. Then B.\n", "Do A now."),
        (
            "## Immediate action\n- Pause the agent\n  and page its owner.\n- Other\n",
            "Pause the agent and page its owner.",
        ),
        (
            "## Immediate action\n\nRoll back the deploy.\nThen wait.\n\n## Next\n",
            "Roll back the deploy. Then wait.",
        ),
        ("## Symptom\nnothing\n", None),
        ("## Immediate action\n## Next\n1. not this\n", None),
    ],
)
def test_first_immediate_action_extraction(markdown: str, expected: str | None) -> None:
    assert first_immediate_action(markdown) == expected


def test_runbook_index_lists_every_rule_with_its_catalogue_severity() -> None:
    index = (REPO / "runbooks" / "README.md").read_text(encoding="utf-8")
    for rule, spec in RULES.items():
        assert f"| [{rule}]({rule}.md) | {spec.severity} | {spec.category} |" in index, rule
