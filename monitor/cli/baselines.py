"""`agentmon baselines freeze|unfreeze|clear|list`: operators' commands on the compacted control
topic that every worker follows (monitor/kafka/baseline_control.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, TextIO

from monitor.settings import Settings, load_settings


def add_baselines_arguments(sub: Any) -> argparse.ArgumentParser:
    """`agentmon baselines freeze|unfreeze|clear|list`: commands in the compacted control topic."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "baselines", help="freeze or unfreeze agents' learned baselines on the live workers",
        description="Commands go to the compacted topic topics.baseline_control; every worker applies the ones "
                    "in force to the agents it holds (a command for one agent wins over --all). "
                    "Exit codes: 0 ok, 2 bad usage, 1 Kafka unreachable.")
    # SUPPRESS: never overwrite a --config the top-level parser already set.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="settings TOML file")
    common.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Kafka (default 10)")
    actions = parser.add_subparsers(dest="baselines_action", required=True, metavar="{freeze,unfreeze,clear,list}")
    for action, text in (("freeze", "keep the learned 'normal' as it is now"),
                         ("unfreeze", "let the baselines follow the trailing reference window again"),
                         ("clear", "withdraw commands: the agents keep their flag and follow "
                                   "detection.frozen_baseline_after_h again")):
        p = actions.add_parser(action, parents=[common], help=text)
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--agent", action="append", metavar="ID", help="agent id (repeatable)")
        target.add_argument("--all", action="store_true", help="every agent (key '*')")
        if action != "clear":
            p.add_argument("--reason", default="", help="why: the launch, a ticket")
            p.add_argument("--by", default=os.environ.get("USER") or "unknown", help="who (default: $USER)")
    lst = actions.add_parser("list", parents=[common], help="show the commands in force")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def cmd_baselines(args: argparse.Namespace, *, settings: Settings | None = None, out: TextIO | None = None) -> int:
    from monitor.core.baseline_commands import ALL
    from monitor.kafka.baseline_control import BaselineControlError, clear, commands_in_force, freeze

    out = out or sys.stdout
    action = args.baselines_action
    if args.timeout <= 0:
        print("agentmon baselines: --timeout must be positive", file=sys.stderr)
        return 2
    targets: list[str] | str = ALL
    if action != "list" and not args.all:
        targets = [a.strip() for a in args.agent]
        bad = [a for a in targets if not a or a == ALL]
        if bad:
            print(f"agentmon baselines: --agent {bad[0]!r} is not an agent id (use --all for every agent)",
                  file=sys.stderr)
            return 2
    settings = settings or load_settings(args.config)
    try:
        if action == "list":
            print_baseline_commands(asyncio.run(commands_in_force(settings, timeout_s=args.timeout)), out,
                                    as_json=args.json)
        elif action == "clear":
            asyncio.run(clear(settings, targets, timeout_s=args.timeout))
            print(f"baseline commands withdrawn for {_describe_targets(targets)}", file=out)
        else:
            command = asyncio.run(freeze(settings, targets, action == "freeze", args.by, args.reason,
                                         timeout_s=args.timeout))
            print(f"baselines of {_describe_targets(targets)} {action}d by {command.by} at "
                  f"{command.at.isoformat()}" + (f": {command.reason}" if command.reason else ""), file=out)
            print(f"workers apply it within worker.tick_interval_s ({settings.worker.tick_interval_s:g} s)",
                  file=out)
    except BaselineControlError as exc:
        print(f"agentmon baselines: {exc}", file=sys.stderr)
        return 1
    return 0


def _describe_targets(targets: list[str] | str) -> str:
    return "all agents (*)" if isinstance(targets, str) else ", ".join(targets)


def print_baseline_commands(commands: dict[str, Any], out: TextIO, *, as_json: bool = False) -> None:
    rows = sorted(commands.items(), key=lambda kv: (kv[0] != "*", kv[0]))
    if as_json:
        for target, command in rows:
            print(json.dumps({"target": target, **command.model_dump(mode="json")}, sort_keys=True), file=out)
        return
    if not rows:
        print("no baseline commands in force (baselines follow detection.frozen_baseline_after_h)", file=out)
        return
    table = [("TARGET", "STATE", "AT", "BY", "REASON")] + [
        (target, "frozen" if c.frozen else "unfrozen", c.at.strftime("%Y-%m-%d %H:%M:%S %Z"), c.by, c.reason)
        for target, c in rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r[:4], widths, strict=True)) + "  " + r[4], file=out)
    if "*" in commands:
        print("(* applies to every agent without a command of its own)", file=out)
