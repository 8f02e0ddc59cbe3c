"""The alert pipeline (layer 3), after Prometheus Alertmanager: alert state changes from
`agent-alerts` in, Slack / Alertmanager / console / webhook notifications out, as a chain of small stages.

    receive   pipeline.AlertPipeline.receive    decode, drop stale/duplicate state changes
    group     group.Grouper                     per agent, `group_wait` (shorter for P1)
    mute      mute.MuteStage                    one Muter interface: mute.Inhibitor, silences.SilenceMuter
    dedup     dedup.dedup_decision              notification log entry -> send? + reason code
    digest    AlertPipeline._digest             hygiene rules -> one daily digest message, never a page
    route     route.route_alert                 severity / agent / team / rule / labels -> receivers
    outbox    notification_log                  durable idempotency record, per-receiver rows (SQLite
                                                in memory + notification_kafka changelog, or a file)
    deliver   delivery.Deliverer                P1 first, Retry-After exactly, ambiguity checks, loud failures
    notify    notifiers.{slack,console,webhook,alertmanager}

Watching it: `observability` (JSON decision lines, /metrics and /healthz on its own port).

Pure decisions take time as an argument; only `clock.Clock` holders read the wall clock. Nothing
here imports faust; Kafka (aiokafka) appears only in `runner`, `partitions` (one pipeline per
assigned partition), `notification_kafka` and `silence_kafka`.
"""
