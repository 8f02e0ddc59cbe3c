"""A worker asked to stop (SIGTERM, SIGINT) ends within `worker.stop_timeout_s`, Kafka or not.

faust's clean stop writes the final checkpoints, commits the offsets they cover and flushes its
producer. With the broker away, each of those waits for it: a stop took over 90 s and then
needed SIGKILL. A supervisor gives a grace period (Kubernetes 30 s, systemd 90 s). The deadline
starts at the signal, on a thread of its own (the event loop may be the thing that is stuck);
when it passes, the worker says so in one line and exits with code 1. Nothing is lost: offsets
are committed only for records a written checkpoint covers, so a restart resumes from the last
checkpoint that reached Kafka and applies the records after it once.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import faust

log = logging.getLogger("agentmon.worker")
EXIT_STOP_DEADLINE = 1


class DeadlineWorker(faust.Worker):
    """faust's Worker with a stop deadline armed by the first stop signal."""

    def __init__(self, *args: Any, stop_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_timeout_s = stop_timeout_s
        self._deadline: threading.Timer | None = None

    def _arm(self, signal_name: str) -> None:
        if self._deadline is None:
            self._deadline = threading.Timer(self.stop_timeout_s, self._passed, args=(signal_name,))
            self._deadline.daemon = True
            self._deadline.start()

    def _passed(self, signal_name: str) -> None:
        log.error("worker did not stop within %.0f s of %s (worker.stop_timeout_s): Kafka did not answer, so the "
                  "final checkpoints may not have been written; a restart resumes from the last checkpoint that was "
                  "(records after it are applied again, none twice)", self.stop_timeout_s, signal_name)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_STOP_DEADLINE)

    def _on_sigterm(self) -> None:
        self._arm("SIGTERM")
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._arm("SIGINT")
        super()._on_sigint()


__all__ = ["EXIT_STOP_DEADLINE", "DeadlineWorker"]
