"""The adapter's shell without a broker: `agentmon otel run` parses into its settings, and
/metrics reports open traces, evictions and the assembler's counters from the live runtime."""

from __future__ import annotations

import argparse
import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.cli.main import build_parser
from monitor.otel import run as otel_run
from monitor.otel.config import OtelSettings
from monitor.settings import Settings
from tests.support.otel_traces import Run, Traced, encode, trace_requests


def test_otel_run_parses_and_passes_its_options_into_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def fake_run_otel(settings: Settings, **_: Any) -> None:
        seen["otel"] = settings.otel

    monkeypatch.setattr(otel_run, "run_otel", fake_run_otel)
    args = build_parser().parse_args(["otel", "run", "--encoding", "otlp_json", "--metrics-port", "0"])
    assert isinstance(args, argparse.Namespace)
    assert args.func(args, Settings()) == 0
    assert (seen["otel"].encoding, seen["otel"].metrics_port) == ("otlp_json", 0)


def test_metrics_report_open_traces_evictions_and_counters() -> None:
    settings = Settings(otel=OtelSettings(max_open_traces=1, metrics_port=0))
    runtime = otel_run.OtelRuntime(settings)
    traced = Traced()
    for i in range(3):
        traced.run(Run(start_ns=1_780_000_000_000_000_000 + i * 10**12))
    spans, _ = traced.finished()
    part = runtime.partition(0)
    for offset, s in enumerate(sp for sp in spans if sp.parent is not None):
        part.process(encode(trace_requests([s], 1, random.Random(0))[0], "otlp_proto"), None, "traces", offset,
                     None, 0.0)
    registry = CollectorRegistry()
    registry.register(otel_run._Metrics(runtime))
    text = generate_latest(registry).decode()
    assert 'agentmon_otel_open_traces{partition="0"} 1.0' in text
    assert 'agentmon_otel_evicted_total{partition="0"} 2.0' in text
    assert 'agentmon_otel_spans_total{partition="0"} 12.0' in text
    assert runtime.totals()["open_traces"] == 1
