"""`agentmon otel run`: OpenTelemetry GenAI traces from the Collector's kafkaexporter topics
become agentmon events (monitor/otel/, docs/otel.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from monitor.settings import Settings, load_settings


def add_otel_arguments(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "otel", help="ingest OpenTelemetry GenAI traces (Collector kafkaexporter) as agent events",
        description="Reads otel.spans_topic and otel.logs_topic, assembles each agent run (an invoke_agent / "
        "AGENT span and its descendants) into an execution event, evaluations into evaluation events, and "
        "writes them to topics.events keyed by agent_id. See docs/otel.md.")
    parser.add_argument("action", choices=["run"])
    parser.add_argument("--encoding", choices=["otlp_proto", "otlp_json"],
                        help="the kafkaexporter's encoding (default from settings: otlp_proto)")
    parser.add_argument("--metrics-port", type=int, help="port of /metrics (default 6067; 0: none)")
    return parser


def run_otel_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    from monitor.otel.run import run_otel

    settings = settings or load_settings(getattr(args, "config", None))
    update: dict[str, Any] = {}
    if args.encoding:
        update["encoding"] = args.encoding
    if args.metrics_port is not None:
        update["metrics_port"] = args.metrics_port
    if update:
        settings = settings.model_copy(update={"otel": settings.otel.model_copy(update=update)})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        o = settings.otel
        logging.getLogger("agentmon.otel").info(
            "reading %s and %s (%s) into %s via %s", o.spans_topic, o.logs_topic, o.encoding,
            settings.topics.events, o.traces_topic)
        await run_otel(settings, stop=stop)

    asyncio.run(main())
    return 0
