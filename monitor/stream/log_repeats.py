"""Hold back repeats of the Kafka client's log lines: while the broker is away, aiokafka logs each
reconnect attempt, metadata refresh and failed fetch, ~1,400 error lines in a 3-second broker
restart under one worker (tests/integration/test_worker.py). The first line of each kind goes
through at once; identical ones (same logger, level and message template) within `window_s` are
counted, and the next one after the window carries `suppressed_repeats`, how many were held back.

Only the libraries' loggers are thinned (aiokafka, faust, mode by default): agentmon's own lines
(alerts, dead letters, stalls) are never held back. The count of the last window of a run of
repeats is not reported if no line of that kind comes after it. Memory is bounded by `max_kinds`.
"""

from __future__ import annotations

import logging


class RepeatSuppressor(logging.Filter):
    def __init__(self, window_s: float = 30.0, loggers: tuple[str, ...] = ("aiokafka", "faust", "mode"),
                 max_kinds: int = 1024) -> None:
        super().__init__()
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self.loggers = loggers
        self.max_kinds = max_kinds
        self._kinds: dict[tuple[str, int, str], list[float | int]] = {}  # kind -> [passed at, held back]

    def _thinned(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.loggers)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._thinned(record.name):
            return True
        kind = (record.name, record.levelno, str(record.msg))
        seen = self._kinds.get(kind)
        if seen is not None and record.created - seen[0] < self.window_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.suppressed_repeats = int(seen[1])
        if seen is None and len(self._kinds) >= self.max_kinds:
            self._kinds.clear()
        self._kinds[kind] = [record.created, 0]
        return True
