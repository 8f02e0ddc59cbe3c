"""OpenTelemetry adapter: GenAI traces from the Collector's kafkaexporter become agent events.

    decode.py    OTLP requests (protobuf / JSON) -> spans and log events; split by trace id
    mapping.py   span attributes (GenAI conventions, OpenInference) -> contract fields
    assembly.py  spans in any order, late or repeated -> one execution event per agent run
    adapter.py   the two pure stages: split a record by trace; one partition's assembly
    run.py       the Kafka shell of `agentmon otel run` (the only module here that does I/O)
    config.py    its settings section (`otel` in monitor/settings.py)

See docs/otel.md.
"""
