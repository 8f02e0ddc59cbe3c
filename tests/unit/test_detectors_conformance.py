"""One conformance suite over every detector (River-style): parameters, clone, pickle, state
round trip, bad arguments, doctests."""

from __future__ import annotations

import doctest
import importlib
import inspect
import json
import pickle
from typing import Any

import pytest

import detectors
from detectors import (
    DriftDetector,
    MeanShift,
    PoissonSilence,
    ProportionRise,
    QuantileExceedance,
)

ALL = [MeanShift, PoissonSilence, ProportionRise, QuantileExceedance]

# one update per detector that detects a drift
DRIFT = {
    MeanShift: lambda d: d.update(50, 0.9, 0.01, 1000, 0.5, 0.01, t=1),
    PoissonSilence: lambda d: d.update(0, 50.0, t=1),
    ProportionRise: lambda d: d.update(30, 50, 100, 1000, t=1),
    QuantileExceedance: lambda d: d.update(30, 50, 30.0, 10.0, t=1),
}

BAD_ARGS: dict[type[DriftDetector], dict[str, Any]] = {
    MeanShift: {"alpha": 0},
    PoissonSilence: {"alpha": 1.5},
    ProportionRise: {"min_ratio": 0.5},
    QuantileExceedance: {"q": 1.0},
}


@pytest.mark.parametrize("cls", ALL)
def test_params_are_public_attributes_and_defaults_immutable(cls: type[DriftDetector]) -> None:
    det = cls()
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self":
            continue
        assert getattr(det, name) == param.default
        assert not isinstance(param.default, list | dict | set)


@pytest.mark.parametrize("cls", ALL)
def test_bad_arguments_raise_value_error(cls: type[DriftDetector]) -> None:
    with pytest.raises(ValueError):
        cls(**BAD_ARGS[cls])


@pytest.mark.parametrize("cls", ALL)
def test_clone_has_same_params_and_no_state(cls: type[DriftDetector]) -> None:
    det = cls()
    DRIFT[cls](det)
    assert det.drift_detected
    fresh = det.clone()
    assert fresh._get_params() == det._get_params()
    assert not fresh.drift_detected and fresh.change_point is None


@pytest.mark.parametrize("cls", ALL)
def test_pickle_and_dict_round_trip_keep_state(cls: type[DriftDetector]) -> None:
    det = cls()
    DRIFT[cls](det)
    for copy in (pickle.loads(pickle.dumps(det)), cls.from_dict(json.loads(json.dumps(det.to_dict())))):
        assert copy.drift_detected == det.drift_detected
        assert copy.change_point == det.change_point
        assert copy.to_dict() == det.to_dict()


@pytest.mark.parametrize("cls", ALL)
def test_detection_records_the_change_point(cls: type[DriftDetector]) -> None:
    det = cls()
    DRIFT[cls](det)
    assert det.drift_detected
    assert det.change_point is not None
    assert det.n_detections == 1


def test_from_dict_refuses_another_detectors_state() -> None:
    with pytest.raises(ValueError):
        MeanShift.from_dict(ProportionRise().to_dict())


@pytest.mark.parametrize("module", ["base", "cusum", "mean_shift", "proportion", "quantile", "silence"])
def test_docstring_examples_run(module: str) -> None:
    mod = importlib.import_module(f"detectors.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_detectors_import_nothing_of_agentmon() -> None:
    import pathlib

    root = pathlib.Path(detectors.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "import monitor" not in text and "from monitor" not in text, path
        assert "from alerts" not in text and "import alerts" not in text, path
        assert "time.time" not in text and "open(" not in text, path
