"""Observability of the alert pipeline itself: JSON log lines, and `/metrics` + `/healthz` on its own
port, so Prometheus can page when the pipeline that pages people stops.

- `setup_logging` (`monitor.logs.JsonLogFormatter`, shared with the worker): one JSON object per
  line with the `extra` fields of each record; every decision of the pipeline carries `decision`
  (notified, deduplicated, silenced, inhibited, delivered, ...) and `reason` (the dedup reason code,
  the silence or the inhibiting alert, the route), see `AlertPipeline._decide`.
- `PipelineCollector`: live state read at scrape time: queue depth and oldest undelivered age per
  receiver, alerts waiting in groups, and `agentmon_alerts_last_loop_timestamp_seconds`, the
  dead-man's metric (alert on `time() - agentmon_alerts_last_loop_timestamp_seconds > 120`).
- `ObservabilityServer`: a small threaded HTTP server on `AlertingConfig.http_host/http_port`.

The caller passes the registry in; nothing is read from the environment here.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from monitor.logs import JsonLogFormatter

log = logging.getLogger("agentmon.alerts.observability")


def setup_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for `agentmon alerts run` (replaces handlers a previous call installed)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, JsonLogFormatter)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class PipelineState(Protocol):
    """What the collector and /healthz read from a running pipeline."""

    @property
    def last_loop_at(self) -> datetime | None: ...

    def queue_stats(self) -> dict[str, tuple[int, datetime]]: ...

    def grouped(self) -> int: ...

    def now(self) -> datetime: ...


class PipelineCollector:
    """Gauges of the live pipeline, computed at scrape time."""

    def __init__(self, state: PipelineState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.state.now()
        stats = self.state.queue_stats()
        depth = GaugeMetricFamily(
            "agentmon_alerts_queue_depth", "notifications waiting for delivery, per receiver", labels=["receiver"]
        )
        oldest = GaugeMetricFamily(
            "agentmon_alerts_oldest_undelivered_age_seconds",
            "age of the oldest notification not delivered yet, per receiver (0 when none)",
            labels=["receiver"],
        )
        for receiver, (count, created_at) in sorted(stats.items()):
            depth.add_metric([receiver], count)
            oldest.add_metric([receiver], max(0.0, (now - created_at).total_seconds()))
        yield depth
        yield oldest
        yield GaugeMetricFamily(
            "agentmon_alerts_grouped", "alert state changes waiting in their group", value=self.state.grouped()
        )
        last = self.state.last_loop_at
        yield GaugeMetricFamily(
            "agentmon_alerts_last_loop_timestamp_seconds",
            "unix time of the pipeline's last completed loop (dead-man's switch: page when it stops moving)",
            value=last.timestamp() if last is not None else 0.0,
        )


def health(state: PipelineState, stale_s: float) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of /healthz: 200 while the loop runs, 503 before the first loop or when
    it has not run for `stale_s`."""
    last = state.last_loop_at
    if last is None:
        return 503, {"status": "starting"}
    age = (state.now() - last).total_seconds()
    body: dict[str, Any] = {"status": "ok" if age <= stale_s else "stalled", "last_loop_age_s": round(age, 3)}
    body["queue_depth"] = sum(count for count, _ in state.queue_stats().values())
    return (200 if age <= stale_s else 503), body


class ObservabilityServer:
    """`/metrics` (Prometheus text) and `/healthz` (JSON) in a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        healthz: Callable[[], tuple[int, dict[str, Any]]],
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(outer.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    status, body = outer.healthz()
                    self._send(status, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (scrapes are not news)
                return

        self.registry = registry
        self.healthz = healthz
        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OSError(f"cannot serve /metrics and /healthz on {host}:{port}: {exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="alerts-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> ObservabilityServer:
        self._thread.start()
        log.info("serving /metrics and /healthz on port %d", self.port, extra={"port": self.port})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
