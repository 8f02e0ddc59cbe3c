"""The worker's web views: /healthz, /metrics (Prometheus, read from the live runtime at scrape
time) and /state (JSON)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import faust
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from monitor.stream.runtime import WorkerRuntime


def state_view(rt: WorkerRuntime) -> dict[str, Any]:
    """Per partition: offsets, lag, watermark, counters, checkpoint size and time, fetch state;
    and the worker's totals."""
    parts = {}
    now = time.time()
    for partition, engine in sorted(rt.partitions.items()):
        wm = engine.engine.watermark
        parts[str(partition)] = {
            "next_offset": engine.next_offset,
            "lag": rt.lag(partition, engine),
            "watermark": wm.isoformat() if wm else None,
            # > 0: event time ahead of this worker's clock (never more than the allowed drift)
            "watermark_lead_s": round(wm.timestamp() - now, 1) if wm else None,
            "time_refused": engine.time_refused,
            "agents_refused": engine.agents_refused,
            "generation": engine.generation,
            "agents": len(engine.engine.agent_ids()),
            "skipped_replays": engine.skipped_replays,
            "dead_letters": engine.dead_letters,
            "counters": dict(engine.engine.counters),
            "checkpoint_bytes": rt.checkpoint_bytes.get(partition),
            "checkpoint_seconds": round(rt.checkpoint_seconds[partition], 3),
            "frozen_baselines": sum(engine.engine.baseline_flags().values()),
            # agents whose baselines still learn (at most 100 listed): their statistical rules do not page
            "learning": dict(sorted(engine.engine.learning().items())[:100]),
            "fetch": rt.fetch_state(partition),
            "fetch_restarts": rt.fetch_restarts[partition],
            "dirty": engine.dirty,
        }
    control = rt.control
    return {"partitions": parts, "checkpoints": rt.checkpoints,
            "baseline_control": {"topic": control.topic, "loaded": control.loaded, "error": control.error,
                                 "commands": {k: c.frozen for k, c in sorted(control.commands.items())}},
            "alerts_published": {f"{r}/{s}": n for (r, s), n in sorted(rt.published.items())},
            "dead_letters": rt.dead_letters, "uptime_s": round(time.time() - rt.started, 1),
            "recovery_restarts": {str(p): n for p, n in sorted(rt.recovery_restarts.items())},
            "held_back_records": rt.held_back,
            "refetches": {str(p): n for p, n in sorted(rt.refetches.items())},
            "last_tick_s_ago": None if rt.last_tick is None else round(time.time() - rt.last_tick, 1)}


class WorkerCollector:
    """Prometheus metrics read from the live runtime at scrape time."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Any:
        rt = self.runtime
        events = CounterMetricFamily("agentmon_events", "valid events applied", labels=["partition"])
        dups = CounterMetricFamily("agentmon_duplicate_events", "events dropped as duplicates (event_id)",
                                   labels=["partition"])
        late = CounterMetricFamily("agentmon_late_events", "events later than the allowed lateness",
                                   labels=["partition"])
        dlq = CounterMetricFamily("agentmon_dead_letters", "records sent to the dead-letter topic",
                                  labels=["partition"])
        replays = CounterMetricFamily("agentmon_replayed_records_skipped",
                                      "records skipped after a restart because the state already held them",
                                      labels=["partition"])
        lag = GaugeMetricFamily("agentmon_consumer_lag", "records not yet applied", labels=["partition"])
        watermark = GaugeMetricFamily("agentmon_watermark_seconds", "event-time watermark (unix seconds)",
                                      labels=["partition"])
        lead = GaugeMetricFamily("agentmon_watermark_lead_seconds", "event-time watermark less this worker's clock: "
                                 "above 0 means event time runs ahead (bounded by detection.max_future_skew_s)",
                                 labels=["partition"])
        refused = CounterMetricFamily("agentmon_event_time_refused", "valid events dead-lettered for their time: "
                                      "ahead of their arrival, before the floor, or older than anything they could "
                                      "change (monitor/core/event_time.py)", labels=["partition"])
        unverifiable = CounterMetricFamily("agentmon_late_unverifiable", "late events older than the event-id "
                                           "memory (detection.dedup_window_s): dropped, since a resend of an event "
                                           "already counted cannot be told apart", labels=["partition"])
        agents = GaugeMetricFamily("agentmon_agents", "agents with state", labels=["partition"])
        agents_refused = CounterMetricFamily("agentmon_agents_refused", "events of new agents dead-lettered because "
                                             "the partition holds detection.max_agents already", labels=["partition"])
        ckpt = GaugeMetricFamily("agentmon_checkpoint_bytes", "size of the last checkpoint", labels=["partition"])
        ckpt_time = CounterMetricFamily("agentmon_checkpoint_seconds", "wall time spent writing checkpoints (snapshot, "
                                        "encoding, table writes), which the event loop spends on nothing else",
                                        labels=["partition"])
        ckpt_age = GaugeMetricFamily("agentmon_checkpoint_age_seconds", "time since the partition's last checkpoint "
                                     "pass (state and offset written, or found unchanged); it should stay under about "
                                     "twice worker.checkpoint_interval_s", labels=["partition"])
        frozen = GaugeMetricFamily("agentmon_frozen_baselines", "agents whose learned baseline is frozen",
                                   labels=["partition"])
        now = time.time()
        for partition, engine in sorted(rt.partitions.items()):
            p = str(partition)
            c = engine.engine.counters
            events.add_metric([p], c["events"])
            dups.add_metric([p], c["duplicates"])
            late.add_metric([p], c["late_folded"] + c["late_dropped"])
            unverifiable.add_metric([p], c["late_unverifiable"])
            agents_refused.add_metric([p], engine.agents_refused)
            dlq.add_metric([p], engine.dead_letters)
            replays.add_metric([p], engine.skipped_replays)
            behind = rt.lag(partition, engine)
            if behind is not None:
                lag.add_metric([p], behind)
            wm = engine.engine.watermark
            if wm is not None:
                watermark.add_metric([p], wm.timestamp())
                lead.add_metric([p], wm.timestamp() - now)
            refused.add_metric([p], engine.time_refused)
            agents.add_metric([p], len(engine.engine.agent_ids()))
            frozen.add_metric([p], sum(engine.engine.baseline_flags().values()))
            if partition in rt.checkpoint_bytes:
                ckpt.add_metric([p], rt.checkpoint_bytes[partition])
            ckpt_time.add_metric([p], rt.checkpoint_seconds[partition])
            if partition in rt.last_checkpoint:
                ckpt_age.add_metric([p], max(0.0, now - rt.last_checkpoint[partition]))
        restarts = CounterMetricFamily("agentmon_fetch_restarts", "stalled partitions whose fetch was resumed "
                                       "(monitor/stream/stall_watch.py); any is worth a look", labels=["partition"])
        for partition, n in sorted(rt.fetch_restarts.items()):
            restarts.add_metric([str(partition)], n)
        recovery = CounterMetricFamily("agentmon_recovery_restarts", "checkpoint changelog partitions whose table "
                                       "recovery stalled and had its fetch resumed; any is worth a look",
                                       labels=["partition"])
        for partition, n in sorted(rt.recovery_restarts.items()):
            recovery.add_metric([str(partition)], n)
        refetches = CounterMetricFamily("agentmon_refetches", "partitions fetched again from the engine's next "
                                        "offset after a rebalance left records unapplied (faust_direct.py)",
                                        labels=["partition"])
        for partition, n in sorted(rt.refetches.items()):
            refetches.add_metric([str(partition)], n)
        signals = GaugeMetricFamily("agentmon_signal", "per agent: a signal's value over the last hour "
                                    "(series=current) and its learned baseline (series=baseline)",
                                    labels=["agent", "signal", "series"])
        for engine in rt.partitions.values():
            for agent, values in engine.engine.signal_view().items():
                for name, (current, baseline) in values.items():
                    if current is not None:
                        signals.add_metric([agent, name, "current"], current)
                    if baseline is not None:
                        signals.add_metric([agent, name, "baseline"], baseline)
        alerts = CounterMetricFamily("agentmon_alerts_published", "alert state changes published",
                                     labels=["rule", "state"])
        for (rule, state), n in sorted(rt.published.items()):
            alerts.add_metric([rule, state], n)
        yield from (events, dups, late, unverifiable, dlq, replays, lag, watermark, lead, refused, agents,
                    agents_refused, frozen, ckpt, ckpt_time, ckpt_age, restarts, recovery, refetches, signals, alerts)


def add_pages(app: faust.App, runtime: WorkerRuntime, registry: CollectorRegistry) -> None:
    """/healthz, /metrics and /state on the app's web server."""

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        ok = app.consumer is not None and not app.should_stop
        return web.json({"status": "ok" if ok else "stopping", "partitions": sorted(runtime.partitions)},
                        status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 anyway.
        return web.bytes(generate_latest(registry), content_type="text/plain; version=0.0.4")

    @app.page("/state")
    async def state(web: Any, request: Any) -> Any:
        return web.json(runtime.state())

    @app.page("/rollout")
    async def rollout(web: Any, request: Any) -> Any:
        status, body = rollout_view(runtime, dict(request.query))
        return web.json(body, status=status)


def rollout_view(rt: WorkerRuntime, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """`/rollout?agent=ID[&baseline=V][&candidate=V]`: the agent's version comparisons from the
    partition that holds it (`agentmon rollout status` reads it); 404 with the reason otherwise."""
    agent = query.get("agent")
    if not agent:
        return 400, {"error": "?agent=ID is required"}
    reasons = []
    for _partition, holder in sorted(rt.partitions.items()):
        try:
            return 200, holder.engine.rollout_status(agent, query.get("baseline"), query.get("candidate"))
        except KeyError as exc:
            if "unknown here" not in exc.args[0]:
                reasons.append(exc.args[0])
    return 404, {"error": reasons[0] if reasons else f"agent {agent!r} is not on this worker's partitions"}
