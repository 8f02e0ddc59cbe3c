"""agentmon: monitoring for AI agents in production (docs/architecture.md is the map).

Packages, each one concern; imports point down only (tests/unit/test_layering.py):

- `monitor.contract`  events, the fast decoder, alerts, rollups, dead letters, the rule catalogue
- `monitor.core`      the pure detection engine: no Kafka, asyncio or wall clock
- `monitor.kafka`     producer, topics, baseline control on Kafka
- `monitor.stream`    the faust worker that feeds the core from Kafka
- `monitor.report`    the weekly maintenance review
- `monitor.local`     local broker, simulator, demo (trying and testing agentmon)
- `monitor.cli`       the `agentmon` command line
- `monitor.settings`  the root settings (each section's model lives with its package)
- `monitor.sdk`       what producers import: `from monitor.sdk import SyncAgentEventProducer, execution`
"""
