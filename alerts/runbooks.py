"""Reading runbooks: the first immediate action, shown in every Slack alert."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from monitor.contract.catalogue import runbook_path

IMMEDIATE_ACTION_HEADING = "## Immediate action"
_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*])\s+(.*)$")


def first_immediate_action(markdown: str) -> str | None:
    """The first list item (or, failing that, the first paragraph) under `## Immediate action`."""
    lines = markdown.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().lower() == IMMEDIATE_ACTION_HEADING.lower())
    except StopIteration:
        return None
    paragraph: list[str] = []
    body = lines[start + 1 :]
    for i, line in enumerate(body):
        if line.startswith("#"):
            break
        item = _ITEM.match(line)
        if item:
            if paragraph:
                break
            text = [item.group(1).strip()]
            for cont in body[i + 1 :]:  # continuation lines of the same item
                if not cont.strip() or _ITEM.match(cont) or cont.startswith("#"):
                    break
                text.append(cont.strip())
            return " ".join(text)
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            break
    return " ".join(paragraph) or None


@lru_cache(maxsize=64)
def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def runbook_first_action(rule: str, runbooks_root: Path, overrides: dict[str, str] | None = None) -> str | None:
    """`runbooks_root` is the runbooks folder, or the repository root holding `runbooks/`."""
    if overrides and rule in overrides:
        return overrides[rule]
    for candidate in (runbooks_root / f"{rule}.md", runbooks_root / runbook_path(rule)):
        text = _read(candidate)
        if text is not None:
            return first_immediate_action(text)
    return None
