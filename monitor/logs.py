"""JSON log lines, one object per line, shared by the stream worker and the alert pipeline (a leaf:
it imports nothing of ours, so every layer may use it)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and every `extra` field of the
    record (the alert pipeline's `decision` and `reason`, the worker's partition and offsets)."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


JsonLogFormatter.converter = time.gmtime
