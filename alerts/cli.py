"""`agentmon silence add|list|expire` and `agentmon alerts run` (wired by monitor/cli/main.py).

    agentmon silence add --rule tool_error_rate --agent lead-qualifier --label tool=crm.update \\
        --duration 2h --author alice --reason "CRM migration CHG-1234"
    agentmon silence list [--all] [--json]
    agentmon silence expire <id>

Silences go to the compacted topic `Settings.topics.silences` (every worker sees them), or to a JSON
file with `--silences-file PATH` (single host, demo). Exit codes: 0 ok, 2 bad input, 1 store error.
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

from alerts.errors import SilenceError
from alerts.silences import (
    FileSilenceStore,
    Matcher,
    Silence,
    new_silence,
    parse_duration,
    parse_matcher,
)
from monitor.settings import Settings, load_settings


def add_silence_arguments(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `silence` command (with add/list/expire) to an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "silence",
        help="mute alerts during planned work (add, list, expire)",
        description="Silences mute firing alerts that match all given matchers, for a time window.",
    )
    _fill_silence_parser(parser)
    return parser


def build_silence_parser() -> argparse.ArgumentParser:
    """A standalone parser of the same arguments (`agentmon silence ...` without `agentmon silence`)."""
    parser = argparse.ArgumentParser(prog="agentmon silence")
    _fill_silence_parser(parser)
    return parser


def _fill_silence_parser(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: never overwrite a --config the top-level parser already set.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="settings TOML file")
    common.add_argument(
        "--silences-file",
        type=Path,
        default=None,
        help="use a JSON file instead of the Kafka topic (one host)",
    )
    actions = parser.add_subparsers(dest="silence_action", required=True, metavar="{add,list,expire}")

    add = actions.add_parser("add", parents=[common], help="create a silence")
    add.add_argument("--rule", help="rule name, e.g. tool_error_rate")
    add.add_argument("--agent", help="agent id")
    add.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="label equality (repeatable)")
    add.add_argument(
        "--matcher",
        action="append",
        default=[],
        metavar="EXPR",
        help="NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX (repeatable)",
    )
    add.add_argument("--duration", required=True, help="e.g. 90m, 2h, 1d")
    add.add_argument("--starts-at", help="RFC 3339 start (default: now)")
    add.add_argument("--author", default=os.environ.get("USER"), help="who (default: $USER)")
    add.add_argument("--reason", required=True, help="why: the planned work, a ticket")

    lst = actions.add_parser("list", parents=[common], help="show silences")
    lst.add_argument("--all", action="store_true", help="include expired silences")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")

    exp = actions.add_parser("expire", parents=[common], help="end a silence now")
    exp.add_argument("silence_id")


def matchers_from_args(args: argparse.Namespace) -> list[Matcher]:
    matchers: list[Matcher] = []
    if args.rule:
        matchers.append(Matcher(name="rule", value=args.rule))
    if args.agent:
        matchers.append(Matcher(name="agent_id", value=args.agent))
    for item in args.label:
        if "=" not in item:
            raise SilenceError(f"--label {item!r} is not KEY=VALUE")
        key, value = item.split("=", 1)
        matchers.append(Matcher(name=key.strip(), value=value.strip()))
    matchers.extend(parse_matcher(m) for m in args.matcher)
    if not matchers:
        raise SilenceError("give at least one of --rule, --agent, --label, --matcher")
    return matchers


def run_silence_command(
    args: argparse.Namespace,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    now = now or datetime.now(UTC)
    try:
        settings = settings or load_settings(getattr(args, "config", None))
        if args.silences_file is not None:
            return _run_sync(args, FileSilenceStore(args.silences_file), now, out)
        return asyncio.run(_run_kafka(args, settings, now, out))
    except SilenceError as exc:
        print(f"agentmon silence: {exc}", file=sys.stderr)
        return 1 if type(exc).__name__ == "SilenceStoreError" else 2
    except ValueError as exc:  # settings file problems
        print(f"agentmon silence: {exc}", file=sys.stderr)
        return 2


def _build(args: argparse.Namespace, now: datetime) -> Silence:
    if not args.author:
        raise SilenceError("--author is required (no $USER to default to)")
    starts_at = None
    if args.starts_at:
        try:
            starts_at = datetime.fromisoformat(args.starts_at)
        except ValueError:
            raise SilenceError(f"--starts-at {args.starts_at!r} is not an RFC 3339 time") from None
        if starts_at.tzinfo is None:
            raise SilenceError(f"--starts-at {args.starts_at!r} needs an offset, e.g. +00:00")
    return new_silence(
        matchers_from_args(args),
        now=now,
        duration=parse_duration(args.duration),
        created_by=args.author,
        comment=args.reason,
        starts_at=starts_at,
    )


def _run_sync(args: argparse.Namespace, store: FileSilenceStore, now: datetime, out: TextIO) -> int:
    if args.silence_action == "add":
        silence = _build(args, now)
        store.put(silence)
        _print_added(silence, out)
    elif args.silence_action == "expire":
        _print_expired(store.expire(args.silence_id, now), out)
    else:
        print_silences(store.silences(), now, out, include_expired=args.all, as_json=args.json)
    return 0


async def _run_kafka(args: argparse.Namespace, settings: Settings, now: datetime, out: TextIO) -> int:
    from alerts.silence_kafka import KafkaSilenceStore  # aiokafka only when the topic is used

    silence = _build(args, now) if args.silence_action == "add" else None
    async with KafkaSilenceStore(settings) as store:
        if silence is not None:
            await store.put(silence)
            _print_added(silence, out)
            await store.purge(now)
        elif args.silence_action == "expire":
            _print_expired(await store.expire(args.silence_id, now), out)
        else:
            print_silences(store.silences(), now, out, include_expired=args.all, as_json=args.json)
    return 0


def _print_added(silence: Silence, out: TextIO) -> None:
    print(
        f"silence {silence.id} added: {silence.describe()} from {silence.starts_at.isoformat()}"
        f" until {silence.ends_at.isoformat()} by {silence.created_by}: {silence.comment}",
        file=out,
    )
    print(f"end it early with: agentmon silence expire {silence.id}", file=out)


def _print_expired(silence: Silence, out: TextIO) -> None:
    print(f"silence {silence.id} expired at {silence.ends_at.isoformat()}: {silence.describe()}", file=out)


def print_silences(
    silences: Sequence[Silence], now: datetime, out: TextIO, *, include_expired: bool, as_json: bool
) -> None:
    shown = sorted(
        (s for s in silences if include_expired or s.state(now) != "expired"), key=lambda s: (s.ends_at, s.id)
    )
    if as_json:
        for s in shown:
            row = json.loads(s.to_json())
            row["state"] = s.state(now)
            print(json.dumps(row, sort_keys=True), file=out)
        return
    if not shown:
        print("no silences" + ("" if include_expired else " (active or pending); --all shows expired"), file=out)
        return
    rows = [
        (s.id, s.state(now), s.describe(), s.ends_at.strftime("%Y-%m-%d %H:%M %Z"), s.created_by, s.comment)
        for s in shown
    ]
    header = ("ID", "STATE", "MATCHERS", "ENDS", "BY", "REASON")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        print(
            "  ".join(str(v).ljust(w) for v, w in zip(r[:5], widths, strict=True)) + "  " + str(r[5]),
            file=out,
        )


# --- alerts run ---------------------------------------------------------------------------------
def add_alerts_arguments(subparsers: Any) -> argparse.ArgumentParser:
    """`agentmon alerts run`: consume `agent-alerts` and notify (Slack/console/webhook per settings)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "alerts", help="run the alert pipeline (agent-alerts -> Slack, Alertmanager, console, webhook)"
    )
    actions = parser.add_subparsers(dest="alerts_action", required=True, metavar="{run}")
    run = actions.add_parser("run", help="consume agent-alerts and deliver notifications")
    run.add_argument("--config", default=argparse.SUPPRESS, help="settings TOML file")
    run.add_argument("--console", action="store_true", help="also print every notification to stdout")
    run.add_argument("--group-id", default="agentmon-alerts", help="Kafka consumer group")
    run.add_argument("--from-file", type=Path, help="read alerts from a JSONL file (backtest output) instead")
    return parser


def run_alerts_command(args: argparse.Namespace) -> int:
    from alerts.observability import setup_logging
    from alerts.runner import run_alerts_from_file, run_alerts_from_kafka

    settings = load_settings(getattr(args, "config", None))
    setup_logging(settings.alerting.log_level)
    if args.from_file is not None:
        return run_alerts_from_file(settings, args.from_file, console=args.console)
    return asyncio.run(run_alerts_from_kafka(settings, group_id=args.group_id, console=args.console))
