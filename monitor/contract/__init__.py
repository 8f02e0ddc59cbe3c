"""The contract outside parties depend on (shared/design/CONTRACT.md).

- `events`: the event models (`ExecutionEvent`, `EvaluationEvent`, `OutcomeEvent`), `decode_event`,
  `EventError`, the JSON Schema's source;
- `wire`: `read_event`, the fast validating decoder that accepts exactly what `decode_event` does;
- `alert`: `Alert`, the alert state change published to `agent-alerts`;
- `rollup`, `review`: `Rollup`, the hourly per-agent summary with its review extras;
- `dead_letter`: `DeadLetter`, a refused record with its reason;
- `catalogue`: `RULES`, the rule catalogue (severity, signal, runbook).
"""
