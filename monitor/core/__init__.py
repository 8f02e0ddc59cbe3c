"""The pure detection core: events and the event-time watermark in, alert state changes and
rollups out. No Kafka, no asyncio, no wall clock; the same lines in the same order give the same
alerts live or in a backtest.

- `engine.Engine`: buckets, windows, baselines and the rule checks per agent; snapshot/restore;
  what it keeps per agent in `state`, adds per event in `ingest`, does per closed bucket in `closing`;
- `partition.PartitionEngine`: one input partition's share of the live path (decode, admit,
  dead-letter, exactly-once offsets);
- `event_time`: which event times are admitted (`EventTimeGate`, `FileOrderClock`);
- `replay.replay`: the backtest's loop over JSON lines;
- `rules`: the checks of the catalogue; `config.DetectionConfig`: their thresholds;
- `signals`, `baselines`, `pricing`, `review_sample`, `checkpoint`, `baseline_commands`.
"""
