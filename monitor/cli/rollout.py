"""`agentmon rollout status`: is the new agent version worse? The per-signal comparison of two
versions running side by side (monitor/core/rollout.py), from the live workers' `/rollout` page or
from a replay of an events file, with a verdict a deploy pipeline gates on by exit code:
0 `promote`, 3 `hold`, 4 `rollback` (CONTRACT.md section 4); 1 when there is nothing to judge
(unknown agent, no versions, workers unreachable), 2 on bad usage."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from monitor.core.rollout import EXIT_CODES, HOLD, ROLLBACK, format_value, spec_of

NOTHING_TO_JUDGE = 1
_RANK = {"promote": 0, "hold": 1, "rollback": 2}


def add_rollout_arguments(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "rollout", help="compare two agent versions running side by side: promote, hold or roll back",
        description="Exit codes: 0 promote, 3 hold, 4 rollback (for deploy pipelines); 1 nothing to judge "
                    "(unknown agent, no versions running side by side, workers unreachable); 2 bad usage.")
    actions = parser.add_subparsers(dest="rollout_action", required=True, metavar="{status}")
    p = actions.add_parser("status", help="the per-signal table with intervals and the verdict")
    p.add_argument("--agent", required=True, metavar="ID", help="the agent")
    p.add_argument("--baseline", metavar="V", help="the incumbent version (default: the one running longest)")
    p.add_argument("--candidate", metavar="V", help="the new version (default: every newer version running)")
    p.add_argument("--json", action="store_true", help="the whole comparison as JSON")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--url", action="append", metavar="URL",
                     help="a worker's web address (repeatable; default http://127.0.0.1:<worker.web_port>)")
    src.add_argument("--events", type=Path, metavar="FILE.jsonl",
                     help="judge from a replay of this events file instead of the live workers")
    p.add_argument("--config", default=argparse.SUPPRESS, help="settings TOML file")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per worker request (default 5)")
    return parser


def run_rollout_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        status = _from_events(args) if args.events is not None else _from_workers(args)
    except LookupError as exc:
        print(f"agentmon rollout status: {exc.args[0]}", file=sys.stderr)
        return NOTHING_TO_JUDGE
    verdict, subject = overall_verdict(status, args.candidate)
    if verdict is None:
        print(f"agentmon rollout status: {subject}", file=sys.stderr)
        return NOTHING_TO_JUDGE
    if args.json:
        out.write(json.dumps({**status, "verdict": verdict, "exit_code": EXIT_CODES[verdict]}, indent=2) + "\n")
    else:
        out.write(render(status, verdict, subject))
    return EXIT_CODES[verdict]


def overall_verdict(status: dict[str, Any], candidate: str | None) -> tuple[str | None, str]:
    """The verdict to gate on and what it is about: the worst of the running comparisons; with none
    running, the final verdict of the candidate's ended comparison (the newest one)."""
    running = status["comparisons"]
    if running:
        worst = max(running, key=lambda c: _RANK[c["verdict"]])
        return worst["verdict"], f"{worst['candidate_version']} vs {worst['baseline_version']}"
    ended = [h for h in status["ended"] if candidate is None or h["candidate"] == candidate]
    if ended:
        last = ended[-1]
        verdict = last["final"] if last["final"] in EXIT_CODES else HOLD
        return verdict, f"{last['candidate']} vs {last['baseline']} (ended {last['ended_at']}: {last['reason']})"
    versions = ", ".join(status.get("versions", {})) or "none"
    return None, (f"no two versions of {status['agent_id']} run side by side"
                  f"{' with ' + candidate if candidate else ''} (versions seen: {versions})")


def render(status: dict[str, Any], verdict: str, subject: str) -> str:
    lines = [f"agent {status['agent_id']} at {status['at']}: {verdict.upper()} ({subject})"]
    for c in status["comparisons"]:
        lines.append("")
        lines.append(f"{c['candidate_version']} (candidate) vs {c['baseline_version']} (baseline), same hours since "
                     f"{c['started_at']}: {c['verdict']}")
        lines.append(f"  {'signal':<38} {'baseline':>30} {'candidate':>30}  verdict")
        for r in c["signals"]:
            spec = spec_of(r["signal"])
            lines.append(f"  {r['label'][:38]:<38} {_side(spec, r['baseline']):>30} {_side(spec, r['candidate']):>30}"
                         f"  {r['verdict']}")
        lines.append(f"  intervals hold at every look together; chance of a false 'rollback' on equal versions "
                     f"<= {c['false_verdict_budget']:g}")
    for h in status["ended"]:
        lines.append(f"ended: {h['candidate']} vs {h['baseline']} {h['started_at']} .. {h['ended_at']}: "
                     f"{h['final']} ({h['reason']})")
    if verdict == ROLLBACK:
        lines.append("hold the rollout, then roll the candidate back (runbooks/rollout_regression.md)")
    return "\n".join(lines) + "\n"


def _side(spec: Any, side: dict[str, Any]) -> str:
    ci = side["ci"]
    rng = f" [{format_value(spec, ci[0])}, {format_value(spec, ci[1])}]" if ci else ""
    return f"{format_value(spec, side['value'])}{rng} n={side['n']:,}"


def _from_events(args: argparse.Namespace) -> dict[str, Any]:
    from monitor.cli.backtest import build_engine
    from monitor.core.replay import replay

    path: Path = args.events
    if not path.is_file():
        raise LookupError(f"--events {path} does not exist")
    engine, max_bytes = build_engine(getattr(args, "config", None), rollups=False)
    with path.open("rb") as f:
        replay(f, engine, max_event_bytes=max_bytes)
    try:
        return engine.rollout_status(args.agent, args.baseline, args.candidate)
    except KeyError as exc:
        raise LookupError(exc.args[0]) from None


def _from_workers(args: argparse.Namespace) -> dict[str, Any]:
    urls = args.url
    if not urls:
        from monitor.settings import load_settings

        urls = [f"http://127.0.0.1:{load_settings(getattr(args, 'config', None)).worker.web_port}"]
    query = urllib.parse.urlencode({k: v for k, v in (("agent", args.agent), ("baseline", args.baseline),
                                                       ("candidate", args.candidate)) if v})
    reasons: list[str] = []
    for url in urls:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/rollout?{query}", timeout=args.timeout) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            try:
                reasons.append(f"{url}: {json.loads(exc.read())['error']}")
            except (ValueError, KeyError):
                reasons.append(f"{url}: HTTP {exc.code}")
        except (urllib.error.URLError, OSError) as exc:
            reasons.append(f"{url}: unreachable ({getattr(exc, 'reason', exc)})")
    raise LookupError("; ".join(reasons))
