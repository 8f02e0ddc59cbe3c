"""What the team records about a week, as `evaluation` events on the events topic: review
verdicts (evaluator `weekly-review`) and regression runs (evaluator `regression:<suite>`).

Both are ordinary evaluations of the contract (score, `passed`), so the quality rules see a
human verdict as they see any late evaluation. What the review needs beyond the contract travels
in one optional extra field, `labels` (string to string; the contract keeps unknown fields and
the engine ignores them):

- verdicts: `category` (failure category), `note`, `by`;
- regression results: `suite`, `case`, `run`, `expected`, `actual`.

`occurred_at` is when the verdict was given or the run made, not when the execution ran: the
engine dead-letters events older than what it could still change, and a verdict given on
Monday is news on Monday. Event ids are derived from what the record is about, so sending the
same file twice counts once (the engine drops a repeated event id).

Pure: builds and parses events, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from monitor.contract.events import REGRESSION_EVALUATOR_PREFIX

REVIEW_EVALUATOR = "weekly-review"
REGRESSION_PREFIX = REGRESSION_EVALUATOR_PREFIX
#: the failure categories of the review discipline; others are accepted as given
CATEGORIES = ("silent failure", "tool issue", "context issue", "model drift")
MAX_LABEL = 128
MAX_NOTE = 1000


class RecordError(ValueError):
    """A verdict or regression case that cannot be recorded; the message says which field."""


def _text(value: object, name: str, limit: int = MAX_LABEL, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise RecordError(f"{name}: required")
        return None
    if not isinstance(value, str):
        raise RecordError(f"{name}: expected a string, got {type(value).__name__}")
    value = value.strip()
    if not value and required:
        raise RecordError(f"{name}: required")
    if len(value) > limit:
        raise RecordError(f"{name}: at most {limit} characters, got {len(value)}")
    return value or None


def _outcome(value: object, name: str) -> str:
    """expected / actual of a regression case as one label (JSON for anything but a string)."""
    if value is None:
        raise RecordError(f"{name}: required")
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= MAX_NOTE else text[: MAX_NOTE - 1] + "…"


def _stamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise RecordError(f"at: need a time with a UTC offset, got {at.isoformat()}")
    return at.isoformat(timespec="milliseconds")


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=10).hexdigest()


def regression_evaluator(suite: str) -> str:
    suite = _text(suite, "suite", MAX_LABEL - len(REGRESSION_PREFIX)) or ""
    return REGRESSION_PREFIX + suite


def verdict_event(
    *, agent_id: str, execution_id: str, passed: bool, at: datetime, category: str | None = None,
    note: str | None = None, by: str | None = None,
) -> dict[str, Any]:
    """The `evaluation` event of one review verdict (score 1 pass, 0 fail). A failing verdict
    needs its category: that is what next week's review counts."""
    agent = _text(agent_id, "agent_id")
    execution = _text(execution_id, "execution_id")
    category = _text(category, "category", required=False)
    if not passed and category is None:
        raise RecordError(f"category: a failing verdict needs one (e.g. {', '.join(CATEGORIES)})")
    labels = {"category": category, "note": _text(note, "note", MAX_NOTE, required=False),
              "by": _text(by, "by", required=False)}
    return {
        "schema_version": 1, "kind": "evaluation",
        # one verdict per execution and reviewer: a corrected verdict is a new event (the newest counts here)
        "event_id": f"review-{_digest(str(agent), str(execution), labels['by'] or '', _stamp(at))}",
        "occurred_at": _stamp(at), "agent_id": agent, "execution_id": execution,
        "evaluator": REVIEW_EVALUATOR, "score": 1.0 if passed else 0.0, "passed": passed,
        "labels": {k: v for k, v in labels.items() if v is not None},
    }


def regression_event(
    *, agent_id: str, suite: str, run: str, case: Mapping[str, Any], at: datetime,
) -> dict[str, Any]:
    """The `evaluation` event of one regression case: `case` is a line of the results file
    (`case_id`, `expected`, `actual`, `passed`, optional `score` and `execution_id`)."""
    evaluator = regression_evaluator(suite)
    agent = _text(agent_id, "agent_id")
    run = _text(run, "run") or ""
    case_id = _text(case.get("case_id"), "case_id") or ""
    passed = case.get("passed")
    if not isinstance(passed, bool):
        raise RecordError(f"passed: expected true or false, got {passed!r}")
    score = case.get("score", 1.0 if passed else 0.0)
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
        raise RecordError(f"score: a number in [0, 1], got {score!r}")
    unknown = sorted(set(case) - {"case_id", "expected", "actual", "passed", "score", "execution_id"})
    if unknown:
        raise RecordError(f"unknown field(s) {', '.join(unknown)} (expected case_id, expected, actual, passed, "
                          "optional score, execution_id)")
    execution = _text(case.get("execution_id"), "execution_id", required=False)
    return {
        "schema_version": 1, "kind": "evaluation",
        "event_id": f"regression-{_digest(str(agent), evaluator, run, case_id)}",
        "occurred_at": _stamp(at), "agent_id": agent,
        "execution_id": execution or f"{evaluator}/{run}/{case_id}"[:128],
        "evaluator": evaluator, "score": float(score), "passed": passed,
        "labels": {"suite": evaluator.removeprefix(REGRESSION_PREFIX), "case": case_id, "run": run,
                   "expected": _outcome(case.get("expected"), "expected"),
                   "actual": _outcome(case.get("actual"), "actual")},
    }


# ---- reading them back -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Verdict:
    agent_id: str
    execution_id: str
    passed: bool
    at: datetime
    category: str | None
    note: str | None
    by: str | None
    event_id: str


@dataclass(frozen=True, slots=True)
class RegressionResult:
    agent_id: str
    suite: str
    run: str
    case: str
    passed: bool
    expected: str
    actual: str
    at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class VersionSeen:
    """An execution's `agent_version` (the first of each per agent is what the timeline needs)."""

    agent_id: str
    version: str
    at: datetime


Recorded = Verdict | RegressionResult | VersionSeen


def _labels(event: Mapping[str, Any]) -> dict[str, str]:
    raw = event.get("labels")
    return {str(k): v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, Mapping) else {}


def recorded_of(event: Mapping[str, Any]) -> Recorded | None:
    """What the review keeps of one decoded event: a verdict, a regression result, an agent
    version, or None (anything else). Events are taken as the topic holds them: one that lacks
    what it needs is None, not an error (the worker dead-letters the broken ones)."""
    try:
        agent = event["agent_id"]
        at = datetime.fromisoformat(event["occurred_at"])
        kind = event["kind"]
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(agent, str) or at.tzinfo is None:
        return None
    if kind == "execution":
        version = event.get("agent_version")
        return VersionSeen(agent, version, at) if isinstance(version, str) and version else None
    if kind != "evaluation":
        return None
    evaluator, passed = event.get("evaluator"), event.get("passed")
    if not isinstance(evaluator, str):
        return None
    if not isinstance(passed, bool):
        score = event.get("score")
        if not isinstance(score, int | float):
            return None
        passed = score >= 0.5
    labels = _labels(event)
    event_id = str(event.get("event_id", ""))
    if evaluator == REVIEW_EVALUATOR:
        return Verdict(agent, str(event.get("execution_id", "")), passed, at, labels.get("category"),
                       labels.get("note"), labels.get("by"), event_id)
    if evaluator.startswith(REGRESSION_PREFIX):
        return RegressionResult(agent, evaluator.removeprefix(REGRESSION_PREFIX), labels.get("run", ""),
                                labels.get("case") or str(event.get("execution_id", "")), passed,
                                labels.get("expected", ""), labels.get("actual", ""), at, event_id)
    return None


def decode_recorded(raw: bytes | str) -> Recorded | None:
    """`recorded_of` of a JSON text; None for what is not JSON, or not of interest. Only events
    that can be of interest are parsed (a byte test first): a week of executions without
    `agent_version` costs a substring search each."""
    data = raw.encode() if isinstance(raw, str) else raw
    if b'"evaluation"' not in data and b'"agent_version"' not in data:
        return None
    try:
        event = json.loads(data)
    except ValueError:
        return None
    return recorded_of(event) if isinstance(event, dict) else None


# ---- operators' notes (kept in a compacted topic: monitor/kafka/team_records.py) ------------------

class OperatorNote(BaseModel):
    """What changed that the events cannot show ("knowledge base: pricing pages updated")."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    agent_id: str = Field(min_length=1, max_length=128, description="the agent, or * for every agent")
    at: AwareDatetime = Field(description="when the change happened (default: when the note was written)")
    text: str = Field(min_length=1, max_length=MAX_NOTE)
    by: str = Field(default="", max_length=MAX_LABEL)

    @classmethod
    def new(cls, agent_id: str, text: str, at: datetime, by: str = "") -> OperatorNote:
        return cls(id=uuid.uuid4().hex[:16], agent_id=agent_id, at=at, text=text.strip(), by=by)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


def decode_notes(table: Mapping[str, bytes]) -> tuple[list[OperatorNote], int]:
    """The notes of the notes table (key -> newest value), oldest first, and how many were unreadable."""
    notes, invalid = [], 0
    for value in table.values():
        try:
            notes.append(OperatorNote.model_validate_json(value))
        except ValidationError:
            invalid += 1
    return sorted(notes, key=lambda n: (n.at, n.id)), invalid


def mark_command(agent_id: str, execution_id: str, *, passed: bool) -> str:
    """The command line that records a verdict on one execution (shown in the review)."""
    import shlex

    verdict = "--pass" if passed else "--fail --category 'tool issue' --note '...'"
    return f"agentmon review mark {shlex.quote(execution_id)} --agent {shlex.quote(agent_id)} {verdict}"
