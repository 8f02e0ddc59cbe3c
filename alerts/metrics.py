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


class AlertMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

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
        from prometheus_client.core import CounterMetricFamily

        metrics = self

        class _Collector:
            def collect(self) -> Iterator[CounterMetricFamily]:
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
