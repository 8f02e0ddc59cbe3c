"""The stream worker: a thin faust-streaming app that feeds `monitor.core` from `agent-events`,
checkpoints each partition's engine with the offset it covers, publishes alerts and rollups, and
serves /healthz, /metrics and /state (`worker.create_app`, `worker.run_worker`)."""
