"""Common behaviour of all detectors: params, state, change point, serialisation."""

from __future__ import annotations

import copy
import inspect
from typing import Any, TypeVar

D = TypeVar("D", bound="DriftDetector")


class DriftDetector:
    """Base class. Subclasses set their hyperparameters in ``__init__`` (validated, ``ValueError``
    on bad values) and keep state in underscore attributes listed in ``_state_fields``.

    After each ``update``: ``drift_detected`` tells whether the latest evidence shows the drift,
    ``p_value`` / ``statistic`` / ``effect`` describe it, ``change_point`` holds the ``t`` of the
    update at which the current run of detections began (``None`` while no drift is detected).
    """

    _state_fields: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.drift_detected = False
        self.change_point: float | None = None
        self.n_detections = 0
        self.p_value: float | None = None
        self.statistic: float | None = None
        self.effect: float | None = None

    def _record(self, detected: bool, t: float | None) -> None:
        if detected and not self.drift_detected:
            self.change_point = t
            self.n_detections += 1
        elif not detected:
            self.change_point = None
        self.drift_detected = detected

    def reaches(self, fraction: float) -> bool | None:
        """Whether the latest ``effect`` reaches ``fraction`` of the effect this detector needs
        before it tests at all (its effect gate), in the direction of the drift; None when the
        latest update had no effect or the detector has no such hysteresis. A firing alert whose
        effect fell under its gate but not under half of it is not over yet. (`ProportionRise` has
        none: a share in the short windows that judge a resolution, ~25 executions, moves by more
        than half its gate under no change at all, and resolutions would wait for luck.)"""
        return None

    def at_gate(self) -> bool | None:
        """Whether the latest estimate reaches the effect gate (the change is still there)."""
        return self.reaches(1.0)

    def normal_llr(self, min_n: float) -> float | None:
        """After an ``update`` on a span of data: the log-likelihood ratio of the span under the
        baseline against the detector's effect gate (positive: closer to usual), or None when
        the span holds fewer than ``min_n`` observations or the detector has no such test. It is
        a sum over observations, so its largest value over the spans ending now is a CUSUM of
        "back to normal" (`monitor.core.rules.base.back_to_normal`)."""
        return None

    def back_to_normal(self, log_lr: float, min_n: float) -> bool | None:
        """After an ``update``: True when the span holds ``min_n`` observations and its likelihood
        under the baseline is at least ``exp(log_lr)`` times its likelihood at the effect gate
        (evidence of a return to normal, not the absence of evidence of a drift); False when the
        estimate itself reaches the gate (the change is still there); None (undecided) otherwise,
        e.g. on a thin span. Detectors without such a test return None."""
        if self.effect is None:
            return None
        if self.at_gate():
            return False
        llr = self.normal_llr(min_n)
        return True if llr is not None and llr >= log_lr else None

    # -- parameters and cloning -------------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def clone(self: D) -> D:
        """A fresh detector with the same hyperparameters and no state."""
        return type(self)(**copy.deepcopy(self._get_params()))

    # -- serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "params": self._get_params(),
            "state": {
                "drift_detected": self.drift_detected,
                "change_point": self.change_point,
                "n_detections": self.n_detections,
                "p_value": self.p_value,
                "statistic": self.statistic,
                "effect": self.effect,
                **{name: getattr(self, name) for name in self._state_fields},
            },
        }

    @classmethod
    def from_dict(cls: type[D], data: dict[str, Any]) -> D:
        if data.get("type") != cls.__name__:
            raise ValueError(f"state of a {data.get('type')!r} cannot restore a {cls.__name__}")
        det = cls(**data["params"])
        for name, value in data["state"].items():
            setattr(det, name, value)
        return det

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({params})"
