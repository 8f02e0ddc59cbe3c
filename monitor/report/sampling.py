"""The executions to review by hand: a stratified random sample of the week.

Each hour's `ReviewExtras.sample` is a uniform sample of that hour; an item of an hour with n
executions and k sampled stands for n / k executions. A weighted sample without replacement
(Efraimidis-Spirakis: key u ** (1 / w)) over all hours is therefore a uniform sample of the week.
Items are put in the first stratum that fits, in this order: escalated, low quality (the week's
lowest decile of sampled quality scores), costly (the week's highest decile of sampled costs),
ordinary; each stratum gets an equal quota, and a short stratum's places go to the others.
The random generator is seeded from the week and the agent: the same week gives the same sample.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from monitor.contract.rollup import Rollup
from monitor.core.review_sample import ExecutionSample
from monitor.report.review import ReviewPick, Stratum

STRATA: tuple[Stratum, ...] = ("escalated", "low quality", "costly", "ordinary")


def weighted_items(rollups: Sequence[Rollup]) -> list[tuple[ExecutionSample, float]]:
    """Every sampled execution of the period with the number of executions it stands for."""
    out: list[tuple[ExecutionSample, float]] = []
    for r in rollups:
        if r.review is None or not r.review.sample:
            continue
        weight = r.review.executions_seen / len(r.review.sample)
        out.extend((item, weight) for item in r.review.sample)
    return out


def weighted_quantile(values: Sequence[tuple[float, float]], q: float) -> float | None:
    """q-quantile of (value, weight) pairs."""
    if not values:
        return None
    ordered = sorted(values)
    total = sum(w for _, w in ordered)
    acc = 0.0
    for value, w in ordered:
        acc += w
        if acc >= q * total:
            return value
    return ordered[-1][0]


def stratum_of(item: ExecutionSample, low_quality_max: float | None, costly_min: float | None) -> Stratum:
    if item.status == "escalated":
        return "escalated"
    if low_quality_max is not None and item.quality_score is not None and item.quality_score <= low_quality_max:
        return "low quality"
    if costly_min is not None and item.cost_usd is not None and item.cost_usd >= costly_min:
        return "costly"
    return "ordinary"


def stratified_sample(rollups: Sequence[Rollup], size: int, seed_text: str) -> list[ReviewPick]:
    items = weighted_items(rollups)
    if not items:
        return []
    low_quality_max = weighted_quantile([(i.quality_score, w) for i, w in items if i.quality_score is not None], 0.1)
    costly_min = weighted_quantile([(i.cost_usd, w) for i, w in items if i.cost_usd is not None], 0.9)
    rng = random.Random(int.from_bytes(hashlib.blake2b(seed_text.encode(), digest_size=8).digest(), "big"))
    # Efraimidis-Spirakis keys; sorting by them gives a weighted random order without replacement
    keyed = sorted(
        ((rng.random() ** (1.0 / w), i.execution_id, i) for i, w in sorted(items, key=lambda x: x[0].execution_id)),
        key=lambda e: (-e[0], e[1]),
    )
    by_stratum: dict[Stratum, list[ExecutionSample]] = {s: [] for s in STRATA}
    for _, _, item in keyed:
        by_stratum[stratum_of(item, low_quality_max, costly_min)].append(item)
    picks: list[ReviewPick] = []
    quota = size // len(STRATA)
    taken = {s: 0 for s in STRATA}
    for s in STRATA:
        for item in by_stratum[s][:quota]:
            picks.append(ReviewPick(stratum=s, execution=item))
            taken[s] += 1
    # fill what short strata left, round robin over the strata that still have items
    while len(picks) < size:
        progressed = False
        for s in STRATA:
            if len(picks) >= size:
                break
            if taken[s] < len(by_stratum[s]):
                picks.append(ReviewPick(stratum=s, execution=by_stratum[s][taken[s]]))
                taken[s] += 1
                progressed = True
        if not progressed:
            break
    order = {s: n for n, s in enumerate(STRATA)}
    picks.sort(key=lambda p: (order[p.stratum], p.execution.occurred_at, p.execution.execution_id))
    return picks
