"""`agentmon backtest`: replay a JSONL file of events through the engine the stream workers run
(`monitor.core.replay`), in file order as a live worker would read it (or by event time with
`--sort`), and write the alert state changes (and hourly rollups)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from monitor.contract.alert import Alert
from monitor.contract.events import EventError
from monitor.contract.rollup import Rollup
from monitor.contract.wire import read_event
from monitor.core.config import DetectionConfig
from monitor.core.engine import DEFAULT_RUNBOOK_BASE, Engine
from monitor.core.pricing import PricingTable
from monitor.core.replay import (
    TimedCommand,
    read_baseline_commands,
    replay,
    scan_order,
    sorted_lines,
    sorted_order,
)
from monitor.settings import load_settings

PROGRESS_MIN_BYTES = 20 * 1024 * 1024


def build_engine(config_file: str | None, *, rollups: bool = True) -> tuple[Engine, int]:
    """The engine of a settings file. `rollups=False`: no hourly rollups nor their review samples
    (a fifth of the work per event; alerts are the same either way)."""
    settings = load_settings(config_file)
    detection: DetectionConfig = getattr(settings, "detection", DetectionConfig())
    if not rollups and detection.emit_rollups:
        detection = detection.model_copy(update={"emit_rollups": False})
    engine = Engine(
        detection,
        pricing=PricingTable(settings.pricing),
        runbook_base_url=getattr(settings, "runbook_base_url", DEFAULT_RUNBOOK_BASE),
    )
    return engine, settings.max_event_bytes


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", required=True, type=Path, help="JSONL file of events, in arrival order")
    parser.add_argument("--alerts-out", required=True, type=Path, help="JSONL file for alert state changes")
    parser.add_argument("--config", default=argparse.SUPPRESS,
                        help="settings file (TOML); [detection] holds the rules (or the global --config)")
    parser.add_argument("--rollups-out", type=Path, default=None, help="also write hourly rollups (JSONL)")
    parser.add_argument("--sort", action="store_true",
                        help="replay in event-time order instead of file (arrival) order; invalid lines keep "
                        "their place")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--baseline-commands", type=Path, default=None, metavar="FILE",
                        help="operators' baseline freeze/unfreeze commands to replay, each from its time: the "
                        "JSON lines of `agentmon baselines list --json` (several per target allowed)")


def _decodes(max_bytes: int) -> Callable[[bytes], bool]:
    """Whether a line is a valid event (for `--sort`: invalid lines keep their place)."""

    def valid(raw: bytes) -> bool:
        line = raw.strip()
        if not line:
            return False
        try:
            read_event(line, max_bytes=max_bytes)
        except EventError:
            return False
        return True

    return valid


def run_backtest_command(args: argparse.Namespace) -> int:
    try:
        # rollups are built only when they are written somewhere
        engine, max_bytes = build_engine(getattr(args, "config", None), rollups=args.rollups_out is not None)
    except Exception as exc:  # noqa: BLE001 - a bad config file is reported, not a traceback
        print(f"agentmon backtest: config: {exc}", file=sys.stderr)
        return 2
    path: Path = args.events
    if not path.is_file():
        print(f"agentmon backtest: --events {path} does not exist", file=sys.stderr)
        return 2
    commands: list[TimedCommand] = []
    if args.baseline_commands is not None:
        try:
            commands = read_baseline_commands(args.baseline_commands)
        except (OSError, ValueError) as exc:
            print(f"agentmon backtest: --baseline-commands: {exc}", file=sys.stderr)
            return 2
    size = path.stat().st_size
    bar: Any = None
    if not args.no_progress and size >= PROGRESS_MIN_BYTES:
        from tqdm import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, desc="backtest", file=sys.stderr, mininterval=0.5)
    rollups_out: IO[bytes] | None = args.rollups_out.open("wb") if args.rollups_out else None
    pending = 0

    def progress(n: int) -> None:
        nonlocal pending
        pending += n
        if pending >= 1 << 20:
            bar.update(pending)
            pending = 0

    try:
        disorder, times, offsets = scan_order(path, engine.config.event_time_gate.max_ahead_s)
        order: Sequence[int] | None = None
        if args.sort:
            order = sorted_order(path, times, _decodes(max_bytes))
        elif disorder > engine.config.allowed_lateness_s:
            print(f"agentmon backtest: some lines are up to {disorder:.0f} s behind the newest before them: "
                  f"replayed in file order, as a live worker would read them (lines more than "
                  f"{engine.config.allowed_lateness_s} s behind are late); --sort replays by event time",
                  file=sys.stderr)
        del times
        with path.open("rb") as f, args.alerts_out.open("wb") as out:
            lines: Iterable[bytes] = sorted_lines(path, order, offsets) if order is not None else f

            def on_alert(alert: Alert) -> None:
                out.write(alert.to_json() + b"\n")

            def on_rollup(rollup: Rollup) -> None:
                if rollups_out is not None:
                    rollups_out.write(rollup.to_json() + b"\n")

            result = replay(lines, engine, on_alert=on_alert, on_rollup=on_rollup,
                            max_event_bytes=max_bytes,
                            progress=progress if bar is not None else None, baseline_commands=commands,
                            line_numbers=order)
    finally:
        if bar is not None:
            bar.update(pending)
            bar.close()
        if rollups_out is not None:
            rollups_out.close()
    print(result.summary())
    print(f"alerts written to {args.alerts_out}")
    return 0
