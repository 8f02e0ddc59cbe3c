"""Counters of the alert pipeline. The caller passes an `AlertMetrics` in (nothing global); a
Prometheus collector can read `snapshot()` at scrape time."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

# Names, so that callers and dashboards agree.
RECEIVED = "alerts_received_total"
INVALID = "alerts_invalid_total"
MUTED = "alerts_muted_total"
DEDUP = "alerts_dedup_total"
ENQUEUED = "notifications_enqueued_total"
DELIVERED = "notifications_delivered_total"
ATTEMPT_FAILED = "notification_attempts_failed_total"
PASS_FAILED = "notification_delivery_failed_total"
DEAD = "notifications_dead_total"
RECOVERED_AMBIGUOUS = "notifications_found_after_ambiguous_failure_total"
RATE_LIMITED = "notification_rate_limited_total"
RETRIES = "notification_retries_total"
DECISIONS = "alert_decisions_total"
# Observations (histograms): seconds from enqueue to delivery.
DELIVERY_LATENCY = "notification_delivery_latency_seconds"
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)


class AlertMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        # name -> labels -> (bucket counts, sum, count)
        self._observed: dict[str, dict[tuple[tuple[str, str], ...], tuple[list[int], float, int]]] = {}

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._observed.setdefault(name, {})
            buckets, total, count = series.get(key, ([0] * len(LATENCY_BUCKETS), 0.0, 0))
            buckets = [b + (1 if value <= bound else 0) for b, bound in zip(buckets, LATENCY_BUCKETS, strict=True)]
            series[key] = (buckets, total + value, count + 1)

    def observations(self, name: str) -> dict[tuple[tuple[str, str], ...], tuple[list[int], float, int]]:
        with self._lock:
            return {k: (list(b), s, c) for k, (b, s, c) in self._observed.get(name, {}).items()}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] += amount

    def get(self, name: str, **labels: str) -> int:
        """Sum over every label set that includes `labels`."""
        wanted = set(labels.items())
        with self._lock:
            return sum(v for (n, ls), v in self._counts.items() if n == name and wanted <= set(ls))

    def snapshot(self) -> dict[str, dict[tuple[tuple[str, str], ...], int]]:
        out: dict[str, dict[tuple[tuple[str, str], ...], int]] = {}
        with self._lock:
            for (name, labels), value in self._counts.items():
                out.setdefault(name, {})[labels] = value
        return out

    def collector(self) -> Any:
        """A prometheus_client custom collector reporting these counters at scrape time; register it
        on the caller's registry: `registry.register(metrics.collector())`."""
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        metrics = self

        class _Collector:
            def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
                for name in sorted(metrics._observed):
                    observed = metrics.observations(name)
                    label_names = sorted({k for labels in observed for k, _ in labels})
                    hist = HistogramMetricFamily(
                        f"agentmon_{name}", f"agentmon alert pipeline: {name}", labels=label_names
                    )
                    for labels, (buckets, total, count) in observed.items():
                        as_dict = dict(labels)
                        cumulative = [(str(bound), float(b)) for bound, b in zip(LATENCY_BUCKETS, buckets, strict=True)]
                        hist.add_metric(
                            [as_dict.get(k, "") for k in label_names],
                            [*cumulative, ("+Inf", float(count))],
                            total,
                        )
                    yield hist
                for name, series in sorted(metrics.snapshot().items()):
                    label_names = sorted({k for labels in series for k, _ in labels})
                    family = CounterMetricFamily(
                        f"agentmon_{name.removesuffix('_total')}",
                        f"agentmon alert pipeline: {name}",
                        labels=label_names,
                    )
                    for labels, value in series.items():
                        as_dict = dict(labels)
                        family.add_metric([as_dict.get(k, "") for k in label_names], value)
                    yield family

        return _Collector()
