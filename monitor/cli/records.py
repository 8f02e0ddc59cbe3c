"""What the team records about a week, for the next weekly review:

- `agentmon review mark EXECUTION_ID --pass|--fail --agent A [--category C] [--note T] [--by NAME]`
  and `agentmon review mark --file verdicts.jsonl`: review verdicts;
- `agentmon regression record --suite S --agent A FILE`: one regression run;
- `agentmon note add --agent A "text"` / `agentmon note list`: operators' notes.

Verdicts and regression results go to the events topic as `evaluation` events
(monitor/report/records.py); notes to their compacted topic (monitor/kafka/team_records.py). Every
line of a file is checked before anything is sent: a file with a bad line sends nothing (exit 2).

The agent id is required, not looked up: it is the event's key (its partition and the agent
whose quality signal the verdict joins), an execution id alone would need a scan of the
events topic to find it, and the review prints the whole command, agent included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from monitor.report.records import RecordError, regression_event, verdict_event
from monitor.settings import Settings, load_settings

USAGE_EXIT = 2


def _when(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an RFC 3339 time, e.g. 2026-11-16T09:30:00Z, got {text!r}") \
            from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset (…Z or +01:00), got {text!r}")
    return at


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: never overwrite a --config the top-level parser already set
    parser.add_argument("--config", default=argparse.SUPPRESS, help="settings TOML file")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for Kafka (default 15)")


def add_record_arguments(sub: Any) -> None:
    """The `review`, `regression` and `note` commands."""
    review = sub.add_parser("review", help="record verdicts on the weekly review's sample",
                            description="Record whether sampled executions pass the acceptance criteria. Each "
                            "verdict is an `evaluation` event (evaluator weekly-review, score 1 or 0) on the events "
                            "topic: the quality rules count it like any late evaluation, and the next weekly "
                            "review opens with the pass rate and the failures by category. Exit codes: 0 sent, "
                            "2 bad usage or a bad line (nothing sent), 1 Kafka unreachable.")
    actions = review.add_subparsers(dest="review_action", required=True, metavar="{mark}")
    mark = actions.add_parser("mark", help="one verdict, or a JSON-lines file of them")
    mark.add_argument("execution_id", nargs="?", help="the execution reviewed (omit with --file)")
    verdict = mark.add_mutually_exclusive_group()
    verdict.add_argument("--pass", dest="passed", action="store_const", const=True, help="meets the criteria")
    verdict.add_argument("--fail", dest="passed", action="store_const", const=False, help="would not pass")
    mark.add_argument("--agent", help="the execution's agent id (required without --file)")
    mark.add_argument("--category", help="failure category: silent failure, tool issue, context issue, "
                                         "model drift (required with --fail)")
    mark.add_argument("--note", help="what was wrong, in a sentence")
    mark.add_argument("--by", default=os.environ.get("USER") or None, help="reviewer (default: $USER)")
    mark.add_argument("--at", type=_when, default=None, help="when the verdict was given (default: now)")
    mark.add_argument("--file", type=Path, help="JSON lines: execution_id, agent_id, passed, optional category, "
                                               "note, by, at")
    _common(mark)
    review.set_defaults(func=run_review_command)

    regression = sub.add_parser("regression", help="record a regression run's results",
                                description="Send one `evaluation` per case of a regression run (evaluator "
                                "regression:SUITE) so the weekly review can compare runs. FILE: JSON lines with "
                                "case_id, expected, actual, passed (docs/weekly-review.md). Exit codes: 0 sent, "
                                "2 bad usage or a bad line (nothing sent), 1 Kafka unreachable.")
    actions = regression.add_subparsers(dest="regression_action", required=True, metavar="{record}")
    rec = actions.add_parser("record", help="validate a results file and send it")
    rec.add_argument("file", type=Path, help="JSON-lines results, one case a line")
    rec.add_argument("--suite", required=True, help="the regression set, e.g. golden-25")
    rec.add_argument("--agent", required=True, help="the agent the set was run against")
    rec.add_argument("--run", default=None, help="run id (default: the run's time, e.g. 20261120T1400Z); "
                                                "recording the same run again counts once")
    rec.add_argument("--at", type=_when, default=None, help="when the run was made (default: now)")
    _common(rec)
    regression.set_defaults(func=run_regression_command)

    note = sub.add_parser("note", help="operators' notes for the review's changes timeline",
                          description="Notes of what changed that events cannot show (knowledge base updated, "
                          "prompt edited, upstream API changed), kept in a compacted topic; the weekly review "
                          "shows them in the agent's changes timeline. Exit codes: 0, 2 bad usage, 1 Kafka "
                          "unreachable.")
    actions = note.add_subparsers(dest="note_action", required=True, metavar="{add,list}")
    add = actions.add_parser("add", help="add a note")
    add.add_argument("text", help="what changed, e.g. \"knowledge base: pricing pages updated\"")
    add.add_argument("--agent", required=True, help="agent id, or * for every agent")
    add.add_argument("--at", type=_when, default=None, help="when it changed (default: now)")
    add.add_argument("--by", default=os.environ.get("USER") or "", help="who (default: $USER)")
    _common(add)
    lst = actions.add_parser("list", help="list the notes")
    lst.add_argument("--agent", default=None, help="only this agent (and notes for *)")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    _common(lst)
    note.set_defaults(func=run_note_command)


def _error(command: str, message: str) -> int:
    print(f"agentmon {command}: {message}", file=sys.stderr)
    return USAGE_EXIT


def _not_logged(command: str, exc: Exception) -> int:
    print(f"agentmon {command}: sent to the events topic, but not to the review log: {exc}; run the same command "
          "again (event ids make a resend count once)", file=sys.stderr)
    return 1


def _read_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The objects of a JSON-lines file with their line numbers (blank lines skipped)."""
    if not path.is_file():
        raise RecordError(f"no such file: {path}")
    out = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(value, dict):
                raise RecordError(f"{path}:{number}: expected a JSON object")
            out.append((number, value))
    if not out:
        raise RecordError(f"{path}: no lines to record")
    return out


def _verdicts_from_file(path: Path, now: datetime, by: str | None) -> list[dict[str, Any]]:
    events = []
    for number, line in _read_lines(path):
        unknown = sorted(set(line) - {"execution_id", "agent_id", "passed", "category", "note", "by", "at"})
        try:
            if unknown:
                raise RecordError(f"unknown field(s) {', '.join(unknown)}")
            if not isinstance(line.get("passed"), bool):
                raise RecordError(f"passed: expected true or false, got {line.get('passed')!r}")
            at = now
            if line.get("at") is not None:
                try:
                    at = _when(str(line["at"]))
                except argparse.ArgumentTypeError as exc:
                    raise RecordError(f"at: {exc}") from None
            events.append(verdict_event(agent_id=line.get("agent_id"), execution_id=line.get("execution_id"),  # type: ignore[arg-type]
                                        passed=line["passed"], at=at, category=line.get("category"),
                                        note=line.get("note"), by=line.get("by") or by))
        except RecordError as exc:
            raise RecordError(f"{path}:{number}: {exc}") from None
    return events


async def send_events(settings: Settings, events: Sequence[dict[str, Any]], *, timeout_s: float) -> int:
    """Send validated events to the events topic (for the engine) and then to the review log (for
    the reviews of the weeks after: the events topic keeps a week), waiting for every
    acknowledgement. Sending again after a failure is safe: both are keyed by event id."""
    from monitor.contract.events import encode_event, validate_event
    from monitor.kafka.producer import AgentEventProducer
    from monitor.kafka.team_records import put_table_records, records_topic
    from monitor.kafka.topics import require_events_topic

    encoded = [(e["event_id"], encode_event(validate_event(e))) for e in events]
    await require_events_topic(settings, timeout_s=timeout_s)
    async with AgentEventProducer(settings) as producer:
        deliveries = [await producer.send_encoded(value, e["agent_id"])
                      for (_, value), e in zip(encoded, events, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(d for d in deliveries if d is not None)), timeout_s)
    await put_table_records(settings, records_topic(settings), encoded, timeout_s=timeout_s)
    return len(events)


def run_review_command(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from monitor.kafka.team_records import TeamRecordsError

    out = out or sys.stdout
    now = args.at or datetime.now(UTC)
    try:
        if args.file is not None:
            if args.execution_id or args.passed is not None or args.agent or args.category or args.note:
                return _error("review", "--file takes the verdicts from the file: give no execution id, "
                                        "--pass/--fail, --agent, --category or --note with it")
            events = _verdicts_from_file(args.file, now, args.by)
        else:
            if not args.execution_id or args.passed is None or not args.agent:
                return _error("review", "give EXECUTION_ID, --pass or --fail, and --agent (or --file)")
            events = [verdict_event(agent_id=args.agent, execution_id=args.execution_id, passed=args.passed, at=now,
                                    category=args.category, note=args.note, by=args.by)]
    except RecordError as exc:
        return _error("review", str(exc))
    settings = load_settings(getattr(args, "config", None))
    try:
        sent = asyncio.run(send_events(settings, events, timeout_s=args.timeout))
    except TeamRecordsError as exc:
        return _not_logged("review", exc)
    failed = sum(1 for e in events if not e["passed"])
    print(f"recorded {sent} verdict(s) ({sent - failed} pass, {failed} fail) on {settings.topics.events}", file=out)
    return 0


def run_regression_command(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from monitor.kafka.team_records import TeamRecordsError

    out = out or sys.stdout
    at = args.at or datetime.now(UTC)
    run = args.run or at.astimezone(UTC).strftime("%Y%m%dT%H%MZ")
    try:
        lines = _read_lines(args.file)
        events, seen = [], set()
        for number, case in lines:
            try:
                event = regression_event(agent_id=args.agent, suite=args.suite, run=run, case=case, at=at)
            except RecordError as exc:
                raise RecordError(f"{args.file}:{number}: {exc}") from None
            if event["labels"]["case"] in seen:
                raise RecordError(f"{args.file}:{number}: case_id {event['labels']['case']!r} appears twice")
            seen.add(event["labels"]["case"])
            events.append(event)
    except RecordError as exc:
        return _error("regression", str(exc))
    settings = load_settings(getattr(args, "config", None))
    try:
        sent = asyncio.run(send_events(settings, events, timeout_s=args.timeout))
    except TeamRecordsError as exc:
        return _not_logged("regression", exc)
    passed = sum(1 for e in events if e["passed"])
    print(f"recorded regression run {run} of suite {args.suite} for {args.agent}: {passed} of {sent} cases passed",
          file=out)
    return 0


def run_note_command(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from monitor.kafka.team_records import TeamRecordsError, notes_topic, put_table_records, read_table
    from monitor.report.records import OperatorNote, decode_notes

    out = out or sys.stdout
    settings = load_settings(getattr(args, "config", None))
    try:
        if args.note_action == "add":
            if not args.text.strip() or not args.agent.strip():
                return _error("note", "give the note's text and --agent")
            if len(args.text) > 1000:
                return _error("note", f"a note is at most 1000 characters, got {len(args.text)}")
            note = OperatorNote.new(args.agent.strip(), args.text, args.at or datetime.now(UTC), args.by)
            asyncio.run(put_table_records(settings, notes_topic(settings), [(note.id, note.to_json())],
                                          timeout_s=args.timeout))
            print(f"note {note.id} for {note.agent_id} at {note.at.isoformat()}: {note.text}", file=out)
            return 0
        notes, invalid = decode_notes(asyncio.run(read_table(settings, notes_topic(settings), timeout_s=args.timeout)))
    except TeamRecordsError as exc:
        print(f"agentmon note: {exc}", file=sys.stderr)
        return 1
    shown = [n for n in notes if args.agent is None or n.agent_id in (args.agent, "*")]
    for n in shown:
        if args.json:
            print(n.model_dump_json(), file=out)
        else:
            print(f"{n.at:%Y-%m-%d %H:%M} UTC  {n.agent_id}  {n.text}" + (f"  ({n.by})" if n.by else "")
                  + f"  [{n.id}]", file=out)
    if not shown and not args.json:
        print("no notes", file=out)
    if invalid:
        print(f"agentmon note: {invalid} unreadable record(s) skipped", file=sys.stderr)
    return 0
