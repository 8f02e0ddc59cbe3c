"""`agentmon report`: the weekly maintenance review from recorded rollups and alerts.

Wiring (monitor/cli/main.py)::

    from monitor.report.cli import add_report_arguments, run_report_command
    p = sub.add_parser("report", help="weekly maintenance review (Markdown/HTML/JSON; Slack optional)")
    add_report_arguments(p)
    p.set_defaults(func=run_report_command)

The scheduled run in the worker: `next_report_due(now, cfg.weekday, cfg.time_of_day)` says when,
`await run_scheduled_report(settings, due)` does it (reads Kafka, writes, uploads to Slack).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

from monitor.report.config import ReportFormat, ReportSettings
from monitor.report.errors import ReportError, SlackUploadError
from monitor.report.week import IsoWeek, week_to_report

if TYPE_CHECKING:  # the heavy modules (matplotlib, slack-sdk, aiokafka) load when a report runs
    from monitor.report.review import WeeklyReview
    from monitor.report.sources import RecordedHistory
    from monitor.settings import Settings

FORMATS: tuple[ReportFormat, ...] = ("md", "html", "json")


def _formats(text: str) -> tuple[ReportFormat, ...]:
    chosen = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(f"--format: choose from {','.join(FORMATS)}, got {text!r}")
    return cast(tuple[ReportFormat, ...], chosen)


def _week(text: str) -> IsoWeek:
    try:
        return IsoWeek.parse(text)
    except ReportError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", type=_week, default=None, metavar="YYYY-Www",
                        help="ISO week to review, e.g. 2026-W46 (default: the last complete week, UTC)")
    parser.add_argument("--agent", default=None, help="only this agent")
    parser.add_argument("--out", type=Path, default=None, help="folder for the report files (default: reports/)")
    parser.add_argument("--format", type=_formats, default=None, metavar="md,html,json",
                        help="formats to write (default: md,html,json)")
    parser.add_argument("--slack", action="store_true", help="upload the HTML and a summary PNG to Slack")
    parser.add_argument("--slack-channel", default=None, help="channel ID for --slack (default: settings)")
    parser.add_argument("--rollups", type=Path, default=None, metavar="FILE",
                        help="read rollups from this JSONL file instead of the agent-rollups topic")
    parser.add_argument("--alerts", type=Path, default=None, metavar="FILE",
                        help="read alerts from this JSONL file (with --rollups)")
    parser.add_argument("--events", type=Path, default=None, metavar="FILE",
                        help="with --rollups: events JSONL with review verdicts, regression results and agent versions "
                             "(default with Kafka: the review log, notes and events topics)")
    parser.add_argument("--notes", type=Path, default=None, metavar="FILE",
                        help="with --rollups: operators' notes, one JSON object a line (id, agent_id, at, text)")
    parser.add_argument("--monthly-budget", type=float, default=None, metavar="USD",
                        help="monthly budget per agent where settings.detection sets none")


def report_settings(settings: Settings) -> ReportSettings:
    """`settings.report` once the lead adds that section, else the defaults."""
    found = getattr(settings, "report", None)
    return found if isinstance(found, ReportSettings) else ReportSettings()


def load_history(settings: Settings, cfg: ReportSettings, week: IsoWeek, rollups: Path | None,
                 alerts: Path | None, events: Path | None = None, notes: Path | None = None) -> RecordedHistory:
    from monitor.report.analysis import history_start
    from monitor.report.sources import read_jsonl_history, read_kafka_history

    start = history_start(week, cfg)
    records_from = week.shift(-1).start  # verdicts and regression runs are compared with the week before
    if rollups is not None:
        return read_jsonl_history(rollups, alerts, start, week.end, cfg.max_records, events_file=events,
                                  notes_file=notes, records_from=records_from)
    if alerts is not None or events is not None or notes is not None:
        given = ", ".join(f"--{n}" for n, f in (("alerts", alerts), ("events", events), ("notes", notes)) if f)
        raise ReportError(f"{given} needs --rollups (files are read together; without --rollups, Kafka is read)")
    return asyncio.run(read_kafka_history(settings, start, week.end, slack=timedelta(seconds=cfg.kafka_slack_s),
                                          max_records=cfg.max_records, records_from=records_from,
                                          max_event_records=cfg.max_event_records))


def run_report_command(args: argparse.Namespace) -> int:
    from monitor.report.analysis import build_review
    from monitor.report.output import report_stem, write_report
    from monitor.report.slack_upload import upload_review
    from monitor.settings import SettingsError, load_settings

    try:
        settings = load_settings(getattr(args, "config", None))
        cfg = report_settings(settings)
        if args.monthly_budget is not None:
            cfg = cfg.model_copy(update={"monthly_budget_usd": args.monthly_budget})
        now = datetime.now(UTC)
        week: IsoWeek = args.week or week_to_report(now)
        history = load_history(settings, cfg, week, args.rollups, args.alerts, getattr(args, "events", None),
                               getattr(args, "notes", None))
        review = build_review(history.rollups, history.alerts, week, cfg, detection=settings.detection,
                              agent_id=args.agent, source=history.describe(), generated_at=now,
                              recorded=history.recorded, notes=history.notes)
        written = write_report(review, args.out or cfg.out_dir, args.format or cfg.formats, args.agent)
    except (ReportError, SettingsError) as exc:
        print(f"agentmon report: {exc}", file=sys.stderr)
        return 2
    _print_summary(review, history, written)
    if args.slack:
        try:
            html = written["html"].read_text(encoding="utf-8") if "html" in written else None
            result = upload_review(review, settings, channel=args.slack_channel or cfg.slack_channel, html=html,
                                   stem=report_stem(review, args.agent))
        except SlackUploadError as exc:
            print(f"agentmon report: {exc}", file=sys.stderr)
            return 1
        print(f"uploaded to Slack channel {result.channel}: {len(result.file_ids)} file(s)")
    return 0


def _print_summary(review: WeeklyReview, history: RecordedHistory, written: dict[str, Path]) -> None:
    print(f"weekly review {review.week}: {len(review.agents)} agent(s), {len(review.findings)} finding(s); "
          f"read {history.describe()}")
    if not review.agents:
        print("  no agent had traffic or alerts in this week (is it within retention?)")
    for fmt, path in written.items():
        print(f"  {fmt:<4} {path}")


async def run_scheduled_report(
    settings: Settings, due: datetime, *, upload: bool = True, out_dir: Path | None = None
) -> WeeklyReview:
    """The worker's weekly run at `due`: review the last complete week, write it, post it."""
    from monitor.report.analysis import build_review, history_start
    from monitor.report.output import write_report
    from monitor.report.slack_upload import upload_review
    from monitor.report.sources import read_kafka_history

    cfg = report_settings(settings)
    week = week_to_report(due)
    history = await read_kafka_history(settings, history_start(week, cfg), week.end,
                                       slack=timedelta(seconds=cfg.kafka_slack_s), max_records=cfg.max_records,
                                       records_from=week.shift(-1).start, max_event_records=cfg.max_event_records)
    review = build_review(history.rollups, history.alerts, week, cfg, detection=settings.detection,
                          source=history.describe(), generated_at=due, recorded=history.recorded, notes=history.notes)
    written = await asyncio.to_thread(write_report, review, out_dir or cfg.out_dir, cfg.formats)
    if upload:
        html = written["html"].read_text(encoding="utf-8") if "html" in written else None
        await asyncio.to_thread(upload_review, review, settings, channel=cfg.slack_channel, html=html)
    return review
