"""Page's CUSUM of log-likelihood ratios: accumulating evidence of a change, fed by batches.

A `CusumBank` runs several designs over the same batches (a time bucket's count and sum each):
rises of a share (Bernoulli counts, `rate_designs`) and shifts of a mean (Gaussian sums with a
known variance, `mean_designs`). The rules of `monitor/core/rules/` recompute it from the buckets
they keep, so it is not a streaming `DriftDetector`: `recompute` runs every design over a list of
batches and returns the runs at threshold (their segment since the estimated onset); `advance`
moves an upper bound of each statistic over one more batch, so that a caller can skip the
recomputation while every bound stays below its threshold.

Calibration. For a CUSUM ``S <- max(0, S + Z)`` of log-likelihood ratios ``Z = ln f1(x)/f0(x)``
of single observations, the in-control drift is ``E0[Z] = -I0`` with ``I0 = KL(f0 || f1)`` and
``E0[exp(Z)] = 1``. Wald's identity with Siegmund's approximation (overshoot over ``h`` ignored)
gives the in-control average run length, in observations,

    ARL0 ~= (exp(h) - h - 1) / I0,

so the threshold for a target ``ARL0`` is the root of ``exp(h) - h - 1 = ARL0 * I0``
(`cusum_threshold`). Ignoring the overshoot makes this a lower bound: feeding observations in
batches (one update per time bucket) and restarting the statistic at the start of a finite
history only lower ``S``, so they lengthen the run too (seeded simulations of bucketed Bernoulli
streams: 1.4x to 9x longer than the formula; the larger the per-observation jump, the longer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def cusum_threshold(arl: float, kl0: float) -> float:
    """Threshold ``h`` of a CUSUM of log-likelihood ratios whose in-control average run length is
    at least about ``arl`` observations, ``kl0`` being the Kullback-Leibler divergence of the
    in-control from the designed out-of-control distribution (nats per observation): the root of
    ``exp(h) - h - 1 = arl * kl0``.

    Examples
    --------
    >>> round(cusum_threshold(1e6, 0.02), 2)
    9.9
    >>> h = cusum_threshold(5e4, 0.1)
    >>> round((math.exp(h) - h - 1) / 0.1)
    50000
    """
    if arl <= 0 or kl0 <= 0:
        raise ValueError(f"need arl > 0 and kl0 > 0, got {arl}, {kl0}")
    c = arl * kl0
    h = math.log1p(c) + math.log1p(math.log1p(c))  # above the root: Newton descends monotonically
    for _ in range(100):
        step = (math.expm1(h) - h - c) / math.expm1(h)
        h -= step
        if abs(step) < 1e-12:
            break
    return h


def bernoulli_kl(p: float, q: float) -> float:
    """``KL(Bernoulli(p) || Bernoulli(q))`` in nats.

    Examples
    --------
    >>> round(bernoulli_kl(0.35, 0.15), 3)
    0.122
    """
    if not 0 < q < 1 or not 0 <= p <= 1:
        raise ValueError(f"need 0 <= p <= 1 and 0 < q < 1, got p={p}, q={q}")
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out



RATE_DESIGN_ODDS = (1.0, 2.5, 6.25)  # designed shares: the floor, and larger rises (odds x)
MEAN_DESIGN_STEPS = (1.0, 2.0, 4.0)  # designed means: the floor's shift, and 2 and 4 times that
GRID = 0.05  # designs follow the baseline in steps of 5 %, so that a bank is rarely rebuilt
_EPS = 1e-9  # float slack of the incremental upper bound


@dataclass(slots=True)
class Design:
    """One CUSUM of a bank: the log-likelihood ratio of a batch of `n` observations that sum to
    `total` is `a * total + b * n`; it fires at `h`."""

    target: float  # the designed share or mean (in the tested scale)
    a: float
    b: float
    h: float


@dataclass(slots=True)
class Segment:
    """A design whose CUSUM is at or above its threshold, and the batches since it left 0."""

    design: Design
    statistic: float
    start: float  # the time of the first batch of the run (the estimated onset)
    n: float
    total: float
    shown: float  # sum of a quantity the caller shows (e.g. cost in USD for a test on log cost)
    sq: float  # sum of squares of the tested quantity


def grid_up(x: float, step: float = GRID) -> float:
    """`x > 0` rounded up on a logarithmic grid (steps of `step`, relative).

    >>> round(grid_up(1.0), 6), round(grid_up(1.01), 6)
    (1.0, 1.051271)
    """
    return math.exp(math.ceil(math.log(x) / step) * step)


def grid_near(x: float, step: float = GRID) -> float:
    """`x > 0` rounded to the nearest point of a logarithmic grid."""
    return math.exp(round(math.log(x) / step) * step)


def share_null(p0: float, bn: float) -> float:
    """The null share of a CUSUM on a share estimated as `p0` from `bn` trials: one standard error
    higher (its false alarm rate is very sensitive to a null set too low; one standard error brings
    its average over the uncertainty of the estimate back to about nominal), rounded up on the grid."""
    return min(grid_up(p0 + math.sqrt(p0 * (1 - p0) / (bn + 1))), 0.97)


def rate_designs(p0: float, floor: float, arl: float) -> list[Design]:
    """Designs for a rise of a share from the null `p0`: to `floor`, then larger rises in odds,
    each at the threshold that keeps the whole bank's run length at `arl` observations.

    >>> [round(d.target, 3) for d in rate_designs(0.1, 0.2, 1e5)]
    [0.2, 0.385, 0.61]
    """
    targets: list[float] = []
    odds = floor / (1 - floor) if floor < 1 else math.inf
    for m in RATE_DESIGN_ODDS:
        p1 = odds * m / (1 + odds * m)
        if p0 < p1 < 0.98:
            targets.append(p1)
    out = []
    for p1 in targets:
        kl = bernoulli_kl(p0, p1)
        if kl <= 0:  # a target a rounding error above the null (degenerate shares, e.g. steps always 3)
            continue
        b = math.log((1 - p1) / (1 - p0))
        a = math.log(p1 / p0) - b
        out.append(Design(p1, a, b, cusum_threshold(arl * len(targets), kl)))
    return out


def mean_null(mu0: float, var: float, bn: float, shift: float) -> tuple[float, float, float]:
    """(null mean, variance, shift) of a mean CUSUM: as for shares, the mean estimated from `bn`
    observations one standard error towards the shift; on a grid of 5 % of the shift (rounded
    towards it), the variance rounded up and the shift to the nearest grid step."""
    shift_q = math.copysign(grid_near(abs(shift)), shift)
    step = GRID * abs(shift_q)
    mu0c = (mu0 + math.copysign(math.sqrt(var / bn), shift)) / step
    return (math.ceil(mu0c) if shift > 0 else math.floor(mu0c)) * step, grid_up(var), shift_q


def mean_designs(mu0: float, var: float, shift: float, arl: float) -> list[Design]:
    """Designs for a shift of a mean from the null `mu0` by `shift` (signed) and by multiples of
    it, Gaussian with a known variance `var` per observation.

    >>> [(d.target, round(d.a, 2), round(d.b, 2)) for d in mean_designs(0.8, 0.04, -0.1, 1e4)][:2]
    [(0.7000000000000001, -2.5, 1.88), (0.6000000000000001, -5.0, 3.5)]
    """
    out = []
    for m in MEAN_DESIGN_STEPS:
        d = m * shift
        out.append(Design(mu0 + d, d / var, -(d * mu0 + d * d / 2) / var,
                          cusum_threshold(arl * len(MEAN_DESIGN_STEPS), d * d / (2 * var))))
    return out


#: a batch: `(time, n, tested sum, shown sum, tested sum of squares)`
Batch = tuple[float, float, float, float, float]


class CusumBank:
    """Page's CUSUM `S <- max(0, S + a * total + b * n)` of each design, over the same batches.

    `recompute(batches)` runs every design from 0 over the batches and returns those at or above
    their threshold, strongest (relative to it) first; `advance((n, total, ...))` moves an upper
    bound of each statistic over one more batch (a CUSUM over a window that slides by one batch is
    at most that) and says whether all stay below their thresholds.

    >>> bank = CusumBank(rate_designs(0.1, 0.3, 1e3))
    >>> bank.recompute([(0.0, 10.0, 1.0, 1.0, 0.0)])
    []
    >>> hits = bank.recompute([(0.0, 10.0, 1.0, 1.0, 0.0), (1.0, 10.0, 7.0, 7.0, 0.0), (2.0, 10.0, 6.0, 6.0, 0.0)])
    >>> [(round(g.design.target, 2), g.start, g.n, g.total) for g in hits]
    [(0.52, 1.0, 20.0, 13.0), (0.73, 1.0, 20.0, 13.0), (0.3, 1.0, 20.0, 13.0)]
    >>> bank.advance((10.0, 0.0, 0.0, 0.0))
    False
    """

    __slots__ = ("designs", "bounds")

    def __init__(self, designs: list[Design]) -> None:
        self.designs = designs
        self.bounds = [0.0] * len(designs)  # the statistics, or upper bounds of them after `advance`

    def advance(self, got: tuple[float, float, float, float] | None) -> bool:
        """Move the upper bounds over one more batch `(n, total, ...)` (None: no data); whether
        all stay under their thresholds."""
        bounds = self.bounds
        if got is None or not got[0] > 0:
            for u, d in zip(bounds, self.designs, strict=True):  # noqa: SIM110 - no generator per call (hot path)
                if not u < d.h - _EPS:
                    return False
            return True
        below = True
        n, total = got[0], got[1]
        for i, d in enumerate(self.designs):
            u = bounds[i] + d.a * total + d.b * n
            bounds[i] = u = u if u > 0.0 else 0.0
            if u >= d.h - _EPS:
                below = False
        return below

    def recompute(self, batches: list[Batch]) -> list[Segment]:
        """Every design's CUSUM from 0 over `batches` (batches with `n > 0`, in time order); the
        runs at or above threshold, strongest first. The statistics become the bounds."""
        hits: list[Segment] = []
        bounds = []
        for d in self.designs:
            s = 0.0
            seg = [0.0, 0.0, 0.0, 0.0, 0.0]  # start, n, total, shown, sq of the current run
            for start, n, total, shown, sq in batches:
                z = d.a * total + d.b * n
                if s + z <= 0.0:
                    s = 0.0
                    continue
                if s == 0.0:
                    seg = [start, 0.0, 0.0, 0.0, 0.0]
                s += z
                seg[1] += n
                seg[2] += total
                seg[3] += shown
                seg[4] += sq
            bounds.append(s)
            if s >= d.h:
                hits.append(Segment(d, s, seg[0], seg[1], seg[2], seg[3], seg[4]))
        self.bounds = bounds
        hits.sort(key=lambda g: g.statistic / g.design.h, reverse=True)
        return hits
