"""Speed of the OpenTelemetry adapter on one process: spans/s and executions/s.

Agent runs are traced with the real OpenTelemetry SDK (an `invoke_agent` span, a framework span,
2 chat spans and 2 tool calls each: 6 spans a run, 1 in 4 runs with a failing tool, 1 in 5 with an
evaluation log event), encoded as the Collector's kafkaexporter writes them (`--encoding`), and cut
into export requests of `--batch` spans in shuffled order (traces spread over several requests).
Timed, on records already in memory: the pure adapter end to end (`monitor.otel.adapter.assemble`:
decode each request, split it by trace and re-encode the pieces as the split stage does, decode
the pieces, map every span, assemble the runs, validate each event against the contract), and,
separately, the split stage alone and the assemble stage alone. Median of `--runs` runs.

Run:  .venv/bin/python bench/otel_adapter.py [--runs-per-batch 5000] [--encoding otlp_proto] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.otel.adapter import TracePartition, assemble, split_record  # noqa: E402
from monitor.otel.config import OtelSettings  # noqa: E402
from tests.support.otel_traces import Run, Tool, Traced, encode, log_requests, trace_requests  # noqa: E402


def workload(runs: int, batch: int, encoding: str, seed: int = 1) -> tuple[list[tuple[str, bytes]], int]:
    rng = random.Random(seed)
    traced = Traced(seed=seed)
    t0 = 1_780_000_000_000_000_000
    for i in range(runs):
        fail = rng.random() < 0.25
        traced.run(Run(agent=f"agent-{i % 20}", start_ns=t0 + i * 10**9,
                       tools=[Tool("crm.lookup"), Tool("crm.update", "AuthError" if fail else None)],
                       evaluation=("relevance", round(rng.random(), 3)) if rng.random() < 0.2 else None))
    spans, logs = traced.finished()
    records = [("traces", encode(r, encoding)) for r in trace_requests(spans, max(1, len(spans) // batch), rng)]
    records += [("logs", encode(r, encoding)) for r in log_requests(logs)]
    return records, len(spans)


def timed(fn: object) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-per-batch", type=int, default=5000, help="agent runs traced (6 spans each)")
    parser.add_argument("--batch", type=int, default=512, help="spans per export request (the batch processor's "
                        "send_batch_size)")
    parser.add_argument("--encoding", choices=["otlp_proto", "otlp_json"], default="otlp_proto")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the median is reported")
    args = parser.parse_args()
    settings = OtelSettings()
    records, n_spans = workload(args.runs_per_batch, args.batch, args.encoding)
    size = sum(len(v) for _, v in records)
    print(f"{args.runs_per_batch} runs, {n_spans} spans in {len(records)} {args.encoding} records "
          f"({size / 1e6:.1f} MB)")

    executions = 0

    def whole() -> None:
        nonlocal executions
        out = assemble(records, settings, encoding=args.encoding)  # type: ignore[arg-type]
        executions = sum(1 for e in out.events if e.kind == "execution")
        assert not out.dead_letters

    pieces: list[tuple[str, str, bytes]] = []

    def split_only() -> None:
        pieces.clear()
        for signal, value in records:
            pieces.extend((signal, trace, piece) for trace, piece in split_record(value, signal, args.encoding))  # type: ignore[arg-type]

    def assemble_only() -> None:
        part = TracePartition(settings, "bench", 0)
        for offset, (signal, trace, piece) in enumerate(pieces):
            part.process(piece, trace.encode(), signal, offset, None, 0.0)  # type: ignore[arg-type]
        part.flush()

    split_only()
    for name, fn in (("adapter, end to end", whole), ("split stage", split_only), ("assemble stage", assemble_only)):
        times = [timed(fn) for _ in range(args.repeat)]
        median = statistics.median(times)
        print(f"{name:<22} {n_spans / median:>9,.0f} spans/s  {args.runs_per_batch / median:>8,.0f} executions/s  "
              f"(median of {args.repeat}: {median:.2f} s; min {min(times):.2f}, max {max(times):.2f})")
    print(f"executions emitted: {executions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
