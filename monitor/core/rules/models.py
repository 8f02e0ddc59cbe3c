"""Rules on the models an agent calls: `model_version_changed` (a label now served by a checkpoint
not seen before, after the learning period) and `floating_model_label` (calls by a label the
provider may repoint any day). Their memory (models known, new, floating) lives in the agent's
state; `note_models` updates it from each closed bucket."""

from __future__ import annotations

import re
from collections.abc import Iterator

from monitor.core.evidence import metric_fields
from monitor.core.rules.base import OK, OTHER, Bucket, Check, Evidence, RuleContext

_PINNED = re.compile(r"(\d{4}-\d{2}-\d{2}|\d{8}|-\d{3,4}$|@\d|:\d{3,}|-v\d+(\.\d+)*$|-\d{4}$)")


def is_floating_label(model: str) -> bool:
    """A model label that the provider may point at a new checkpoint any day (e.g. `gpt-4o`,
    `claude-3-5-sonnet-latest`), as opposed to a pinned one (`gpt-4o-2024-08-06`,
    `claude-3-5-sonnet-20241022`, `gemini-1.5-pro-002`)."""
    return "latest" in model or not _PINNED.search(model)


def note_models(
    ctx: RuleContext, last: Bucket | None, first_at: float, models_known: dict[str, dict[str, float]],
    model_new: dict[str, list[float]], floating: dict[str, float], label_cache: dict[str, bool],
) -> None:
    """Record the models of the bucket just closed (`last`): floating labels in use, resolved
    checkpoints known (all of them during the learning period after `first_at`) or new (calls and
    first seen). `label_cache` memoises `is_floating_label`."""
    at = ctx.at
    if last is None or not last.agg.models:
        return
    learning = at - first_at <= ctx.thr.model_learning_hours * 3600
    for key, calls in last.agg.models.items():
        model, _, resolved = key.partition("\x1f")
        if model == OTHER:
            continue
        is_floating = label_cache.get(model)
        if is_floating is None:
            is_floating = label_cache[model] = is_floating_label(model)
            if len(label_cache) > 10_000:
                label_cache.clear()
        if is_floating:
            floating[model] = at
        if not resolved:
            continue
        known = models_known.get(model)
        if known is None or learning:
            models_known.setdefault(model, {}).setdefault(resolved, at)
            continue
        if resolved in known:
            continue
        entry = model_new.get(key)
        if entry is None:
            model_new[key] = [calls, at]
        else:
            entry[0] += calls


def check_model_version_changed(
    ctx: RuleContext, models_known: dict[str, dict[str, float]], model_new: dict[str, list[float]],
) -> Iterator[Check]:
    """A new checkpoint behind a known label, once it has served enough calls; it resolves after
    `model_change_hold_h`, and then counts as known."""
    thr = ctx.thr
    at = ctx.at
    for key, (calls, first) in list(model_new.items()):
        model, _, resolved = key.partition("\x1f")
        labels = {"model": model, "resolved_model": resolved}
        detected = calls >= thr.model_change_min_calls
        clear = at - first >= thr.model_change_hold_h * 3600
        if not detected:
            continue
        previous = sorted(models_known.get(model, {}))
        ev = Evidence(
            metric_fields("resolved_model_calls", calls, 0.0, at - first, calls, None,
                          previous_resolved_models=previous),
            f"{ctx.agent_id}: requests for {model} are now served by {resolved} "
            f"({int(calls)} calls), previously {', '.join(previous) or 'unknown'}",
            [],
        )

        def known_now(when: float, model: str = model, resolved: str = resolved) -> None:
            models_known.setdefault(model, {})[resolved] = when
            model_new.pop(model + "\x1f" + resolved, None)

        yield Check("model_version_changed", labels, not clear, clear, ev, pending_checks=1, on_resolve=known_now)


def check_floating_model_label(ctx: RuleContext, floating: dict[str, float]) -> Iterator[Check]:
    """Calls by a floating label; it resolves once the label has not been seen for
    `floating_label_quiet_h`, and is then forgotten."""
    thr = ctx.thr
    at = ctx.at
    for model, seen in list(floating.items()):
        quiet = at - seen >= thr.floating_label_quiet_h * 3600
        if not quiet and ctx.state_of(ctx.fp("floating_model_label", {"model": model})) != OK:
            continue  # firing and still in use: nothing to decide
        ev = Evidence(
            metric_fields("floating_label_last_seen_s_ago", at - seen, None, at - seen, 0, None),
            f"{ctx.agent_id}: calls model {model!r} by a floating label; pin a dated checkpoint "
            "so provider updates do not change behaviour silently",
        )

        def forget(_when: float, model: str = model) -> None:
            floating.pop(model, None)

        yield Check("floating_model_label", {"model": model}, not quiet, quiet, ev, pending_checks=1,
                    on_resolve=forget)
