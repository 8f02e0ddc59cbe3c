"""Rules on shares of executions or tool calls: escalations, repeated tasks, one tool's errors
(each a rise against the baseline share: window tests plus accumulated evidence), and tool calls
that all fail (an outage: no test needed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import methodcaller
from typing import Any

from detectors import ProportionRise
from monitor.core.evidence import StatResult, fmt_pct, fmt_window, metric_fields
from monitor.core.rules.base import OK, Check, Evidence, Reader, RuleContext, detector, scan, window_above
from monitor.core.rules.cusum import cusum_note, share_cusum, share_metric, with_cusum
from monitor.core.signals import Agg


def check_escalation_rate_rise(ctx: RuleContext) -> Iterator[Check]:
    t = ctx.thr
    yield from _rate_rule(ctx, "escalation_rate_rise", Agg.escalations, Agg.escalation_base, t.escalation_min_ratio,
                          t.escalation_min_increase, t.escalation_min_n, "escalation", "escalated",
                          "escalation")


def check_repeat_task_rate_rise(ctx: RuleContext) -> Iterator[Check]:
    t = ctx.thr
    yield from _rate_rule(ctx, "repeat_task_rate_rise", Agg.repeats, Agg.repeat_base, t.repeat_min_ratio,
                          t.repeat_min_increase, t.repeat_min_n, "repeat-task", "repeat", "repeat")


def _rate_rule(
    ctx: RuleContext, rule: str, counts: Callable[[Agg], tuple[float, float, float, float]],
    base_counts: Callable[[Agg], tuple[float, float]],
    ratio: float, increase: float, min_n: int, what: str, sample_kind: str, group: str,
) -> Iterator[Check]:
    """A rise of a share of the agent's executions over its baseline share: `counts(agg)` gives
    `(executions, hits, hits, 0)`, `base_counts(baseline)` the baseline's `(hits, executions)`."""
    if not ctx.base_ready("shares"):
        return
    thr = ctx.thr
    bx, bn = base_counts(ctx.base)
    det = detector(ctx, rule, lambda: ProportionRise(
        alpha=thr.alpha / len(ctx.windows), min_ratio=ratio, min_increase=increase,
        min_n=min_n, min_baseline_n=thr.min_baseline_n))
    fp = ctx.fp(rule)
    p0 = (bx + 0.5) / (bn + 1) if bn else 0.0
    floor = max(p0 * ratio, p0 + increase)
    seg = share_cusum(ctx, fp, bx, bn, floor, min_n, ctx.base.per_hour(bn), 1, counts)
    if seg is None and ctx.state_of(fp) == OK and not window_above(ctx.windows, counts, min_n, floor):
        return  # cheap effect-size gate: nothing to test

    def test(agg: Agg) -> Any:
        n, x, _, _ = counts(agg)
        return det.update(x, n, bx, bn, t=ctx.at)

    def evidence(secs: int, agg: Agg, res: StatResult) -> Evidence:
        n, x, _, _ = counts(agg)
        share = x / n if n else 0.0
        return Evidence(
            metric_fields(f"{what}_rate", share, p0, secs, n, res, count=int(x)),
            f"{ctx.agent_id}: {what} rate {fmt_pct(share)} over the last {fmt_window(secs)} "
            f"({int(x)} of {int(n)}), usually {fmt_pct(p0)}",
            ctx.samples(secs, sample_kind),
        )

    detected, clear, ev = scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        secs = int(ctx.at - seg.start)
        ev = Evidence(
            share_metric(f"{what}_rate", seg, p0, bx, bn, secs, count=int(seg.total)),
            f"{ctx.agent_id}: {what} rate {fmt_pct(seg.total / seg.n)} over the last {fmt_window(secs)} "
            f"({int(seg.total)} of {int(seg.n)}), usually {fmt_pct(p0)}" + cusum_note(seg),
            ctx.samples(secs, sample_kind),
        )
    yield with_cusum(Check(rule, {}, detected, clear, ev, group=group, fp=fp), seg, window_ev)


def check_tool_error_rate(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready("shares"):
        return
    thr = ctx.thr
    longest = ctx.windows[-1][1]
    # one test per tool: Bonferroni over the tools that have a baseline, too
    base = ctx.base
    tested = base.tools_called(thr.min_baseline_n)
    k = max(1, len(tested))
    for tool in tested:
        cur = longest.tool_errors(tool)
        if (cur is None or cur[1] < thr.tool_error_min_share * thr.tool_error_min_calls) \
                and not ctx.has_open_alerts:
            continue
        bn, bx, _, _ = base.tool_errors(tool)  # type: ignore[misc]  # a tool of the baseline
        check = _tool_error_check(ctx, tool, bx, bn, k)
        if check is not None:
            yield check


def _tool_error_check(ctx: RuleContext, tool: str, bx: float, bn: float, k: int) -> Check | None:
    """`tool_error_rate` for one tool (`bx` errors in `bn` baseline calls; `k` tools tested)."""
    thr = ctx.thr
    fp = ctx.fp("tool_error_rate", {"tool": tool})
    p0 = (bx + 0.5) / (bn + 1)
    floor = max(p0 * thr.tool_error_min_ratio, thr.tool_error_min_share)
    errors: Reader = methodcaller("tool_errors", tool)
    seg = share_cusum(ctx, fp, bx, bn, floor, thr.tool_error_min_calls, ctx.base.per_hour(bn), k, errors)
    if seg is None and ctx.state_of(fp) == OK and not window_above(
            ctx.windows, errors, thr.tool_error_min_calls, floor):
        return None
    det = detector(ctx, f"tool_error_rate:{k}", lambda: ProportionRise(
        alpha=thr.alpha / len(ctx.windows) / k, min_ratio=thr.tool_error_min_ratio,
        min_share=thr.tool_error_min_share, min_n=thr.tool_error_min_calls,
        min_baseline_n=thr.min_baseline_n))

    def test(agg: Agg) -> Any:
        got = agg.tool_errors(tool)
        if got is None:
            return None
        return det.update(got[1], got[0], bx, bn, t=ctx.at)

    def evidence(secs: int, agg: Agg, res: StatResult) -> Evidence:
        calls, errs, _, _ = agg.tool_errors(tool) or (0.0, 0.0, 0.0, 0.0)
        share = errs / calls if calls else 0.0
        return Evidence(
            metric_fields("tool_error_share", share, p0, secs, calls, res, errors=int(errs)),
            f"{ctx.agent_id}: tool {tool} fails {fmt_pct(share)} of calls over the last "
            f"{fmt_window(secs)} ({int(errs)} of {int(calls)}), usually {fmt_pct(p0)}",
            ctx.samples(secs, "tool_error:" + tool),
        )

    detected, clear, ev = scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        secs = int(ctx.at - seg.start)
        share = seg.total / seg.n
        ev = Evidence(
            share_metric("tool_error_share", seg, p0, bx, bn, secs, errors=int(seg.total)),
            f"{ctx.agent_id}: tool {tool} fails {fmt_pct(share)} of calls over the last {fmt_window(secs)} "
            f"({int(seg.total)} of {int(seg.n)}), usually {fmt_pct(p0)}" + cusum_note(seg),
            ctx.samples(secs, "tool_error:" + tool),
        )
    return with_cusum(Check("tool_error_rate", {"tool": tool}, detected, clear, ev, group="tool:" + tool,
                            fp=fp), seg, window_ev)


_NO_CALLS = (0.0, 0.0, 0.0)


def check_tool_calls_all_failing(ctx: RuleContext) -> Iterator[Check]:
    """None of the tool calls since the newest bucket with a successful one succeeded (within the
    window). Counted from there rather than over the whole window, an outage is seen at the end of
    its first whole bucket, where `tool_error_rate` usually sees it too: one group, in which the
    inhibition mutes that one, instead of two pages a bucket or two apart."""
    thr = ctx.thr
    b_calls, b_ok, _ = ctx.base.tool_calls()
    usual: float | None = None  # the share of calls that usually succeed
    if b_calls >= thr.min_baseline_n:
        usual = b_ok / b_calls
        if usual < thr.all_failing_baseline_ok_share:
            return
    start = ctx.at - thr.all_failing_window_s
    calls = execs = 0.0  # in the buckets after the newest one with a successful call
    run_start = ctx.at
    w_calls = w_ok = w_execs = 0.0  # in the whole window: what a resolving alert quotes
    in_run = True
    by_tool: dict[str, list[float]] = {}  # in the run: tool -> [calls, errors, rate limited]
    for idx, bucket in reversed(ctx.recent):
        if idx * ctx.bucket_s < start:
            break
        b_calls, b_ok, b_execs = bucket.agg.tool_calls() if bucket is not None else _NO_CALLS
        if not b_calls:
            continue  # no tool call: neither a success nor a failure
        w_calls += b_calls
        w_ok += b_ok
        w_execs += b_execs
        in_run = in_run and not b_ok
        if in_run:
            calls += b_calls
            execs += b_execs
            run_start = idx * ctx.bucket_s
            bucket.agg.add_tool_failures(by_tool)  # type: ignore[union-attr]  # a bucket with calls
    fp = ctx.fp("tool_calls_all_failing")
    detected = calls >= thr.all_failing_min_calls and execs >= thr.all_failing_min_executions
    state = ctx.state_of(fp)
    if usual is None and (detected or state != OK):
        # learning: this rule needs no baseline, only the agent's own record of calls that succeed
        usual = _usual_ok_share(ctx)
        if usual is None or usual < thr.all_failing_baseline_ok_share:
            detected = False
            if state == OK:
                return
    if usual is None:
        return
    clear = calls == 0 if w_calls > 0 else None  # the newest calls include a success
    ev = None
    if detected or state != OK:
        if not clear:
            secs = int(ctx.at - run_start) or thr.all_failing_window_s  # no call at all: the window
            ev = Evidence(
                metric_fields("tool_call_success_share", 0.0, usual, secs, calls, executions=int(execs),
                              tools={k: int(v[0]) for k, v in by_tool.items() if v[0]}),
                f"{ctx.agent_id}: none of {int(calls)} tool calls in {int(execs)} executions succeeded "
                f"over the last {fmt_window(secs)} (usually {fmt_pct(usual)} succeed){_tools_failing(by_tool)}",
                ctx.samples(secs, "tool_all_fail"),
            )
        else:  # calls succeed again: the window's record, as the alert resolves
            ev = _all_failing_resolved(ctx, w_calls, w_ok, w_execs, usual)
    yield Check("tool_calls_all_failing", {}, detected, clear, ev, group="tools", pending_checks=1, fp=fp)


def _tools_failing(by_tool: dict[str, list[float]], shown: int = 4) -> str:
    """"; failing: crm.update 12 calls (errors), search 3 (rate limited)", most calls first."""
    ranked = sorted(((v[0], k, v) for k, v in by_tool.items() if v[0]), key=lambda x: (-x[0], x[1]))
    if not ranked:
        return ""
    parts = []
    for calls, tool, v in ranked[:shown]:
        kind = "rate limited" if v[2] >= calls else "errors" if v[1] >= calls else "errors, rate limited"
        parts.append(f"{tool} {int(calls)} ({kind})")
    more = f", +{len(ranked) - shown} more" if len(ranked) > shown else ""
    return "; failing: " + ", ".join(parts) + more


def _usual_ok_share(ctx: RuleContext) -> float | None:
    """While the baseline learns: the share of the agent's calls that succeeded in its closed hours
    (None under the rule's minimum of calls)."""
    calls = ok = 0.0
    for rec in ctx.baseline.hours.values():
        if rec.agg is not None:
            h_calls, h_ok, _ = rec.agg.tool_calls()
            calls += h_calls
            ok += h_ok
    return ok / calls if calls >= ctx.thr.all_failing_min_calls else None


def _all_failing_resolved(ctx: RuleContext, w_calls: float, w_ok: float, w_execs: float, usual: float) -> Evidence:
    window = ctx.thr.all_failing_window_s
    share = w_ok / w_calls
    return Evidence(
        metric_fields("tool_call_success_share", share, usual, window, w_calls, executions=int(w_execs)),
        f"{ctx.agent_id}: {int(w_ok)} of {int(w_calls)} tool calls in {int(w_execs)} executions "
        f"succeeded over the last {fmt_window(window)} ({fmt_pct(share)}; usually "
        f"{fmt_pct(usual)} succeed)",
        ctx.samples(window, "tool_all_fail"),
    )
