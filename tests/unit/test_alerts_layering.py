"""House rules 1 and 2 for `alerts/`, checked: it never imports faust (nor the engine or other
monitor modules), and its pure decision modules never read the clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ALERTS = Path(__file__).resolve().parents[2] / "alerts"
ALLOWED_MONITOR = {"monitor.alert", "monitor.catalogue", "monitor.settings", "monitor.alerting_config"}
PURE = ["dedup.py", "group.py", "mute.py", "route.py", "silences.py", "escape.py", "runbooks.py"]
CLOCK_CALLS = ("datetime.now", "datetime.utcnow", "time.time", "time.monotonic", "date.today")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(ALERTS.rglob("*.py")), ids=lambda p: str(p.relative_to(ALERTS)))
def test_alerts_imports_point_down_only(path: Path) -> None:
    for module in imported_modules(path):
        assert not module.startswith(("faust", "detectors")), f"{path.name} imports {module}"
        if module.startswith("monitor"):
            assert module in ALLOWED_MONITOR, f"{path.name} imports {module}"


@pytest.mark.parametrize("name", PURE)
def test_pure_stages_take_time_as_a_parameter(name: str) -> None:
    source = (ALERTS / name).read_text(encoding="utf-8")
    for call in CLOCK_CALLS:
        assert f"{call}(" not in source, f"{name} reads the clock via {call}()"
    assert not {"aiokafka", "slack_sdk", "sqlite3", "urllib"} & {
        m.split(".")[0] for m in imported_modules(ALERTS / name)
    }
