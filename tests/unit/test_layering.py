"""The house's import rules, checked for every module (docs/architecture.md): each package is one
concern, imports point down only, and no two packages import each other (directly or around a
cycle). Function-local and type-only imports count too: a cycle hidden in a function is a cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for top in ("monitor", "alerts", "detectors") for p in (ROOT / top).rglob("*.py"))
PACKAGES = ("contract", "core", "stream", "kafka", "report", "cli", "local", "otel")
# Settings sections live with their package but are leaves that the root settings aggregates.
SECTIONS = {"alerts.config", "monitor.report.config", "monitor.otel.config", "monitor.settings"}
CLOCK_CALLS = ("datetime.now", "datetime.utcnow", "time.time", "time.monotonic", "date.today")


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def node_of(module: str) -> str | None:
    """The package a module belongs to, for the rules below (None: not ours)."""
    if module in SECTIONS:
        return "settings"
    parts = module.split(".")
    if parts[0] in ("alerts", "detectors"):
        return parts[0]
    if parts[0] != "monitor":
        return None
    if len(parts) > 1 and parts[1] in PACKAGES:
        return f"monitor.{parts[1]}"
    return module  # a root module: monitor, monitor.sdk


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def ours(names: set[str]) -> set[str]:
    known = {module_of(p) for p in SOURCES}
    return {n for n in names if n in known}


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in SOURCES:
        src = node_of(module_of(path))
        for target in ours(imports_of(path)):
            dst = node_of(target)
            if dst is not None and src is not None and dst != src:
                edges[src].add(dst)
    return edges


DOWN: dict[str, set[str]] = {
    "detectors": set(),
    "monitor.contract": set(),
    "monitor.core": {"monitor.contract", "detectors"},
    "settings": {"monitor.contract", "monitor.core"},
    "monitor.kafka": {"monitor.contract", "monitor.core", "settings"},
    "monitor.logs": set(),  # the JSON log formatter, a leaf every layer may use
    "alerts": {"monitor.contract", "monitor.kafka", "monitor.logs", "settings"},
    "monitor.report": {"monitor.contract", "monitor.core", "monitor.kafka", "settings"},
    "monitor.stream": {"monitor.contract", "monitor.core", "monitor.kafka", "monitor.logs", "monitor.report",
                       "settings"},
    "monitor.sdk": {"monitor.contract", "monitor.kafka", "settings"},
    "monitor.local": {"monitor.contract", "monitor.core", "monitor.kafka", "monitor.stream", "alerts", "settings"},
    "monitor.otel": {"monitor.contract", "monitor.core", "monitor.kafka", "settings"},
    "monitor.cli": {"monitor.contract", "monitor.core", "monitor.kafka", "monitor.stream", "monitor.report",
                    "monitor.local", "monitor.otel", "alerts", "settings"},
    "monitor": set(),
}


def test_every_module_belongs_to_a_known_package() -> None:
    assert {node_of(module_of(p)) for p in SOURCES} <= set(DOWN)


@pytest.mark.parametrize("node", sorted(DOWN))
def test_a_package_imports_only_the_layers_below_it(node: str) -> None:
    assert graph().get(node, set()) <= DOWN[node], f"{node} imports {graph()[node] - DOWN[node]}"


def test_no_cycle_between_packages() -> None:
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            assert state.get(nxt) != 1, "cycle: " + " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])


def third_party(path: Path) -> set[str]:
    return {n.split(".")[0] for n in imports_of(path)}


@pytest.mark.parametrize("path", [p for p in SOURCES if node_of(module_of(p)) in ("monitor.core", "detectors",
                                                                                   "monitor.contract")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pure_core_uses_no_kafka_asyncio_or_wall_clock(path: Path) -> None:
    assert not {"faust", "aiokafka", "asyncio", "time", "slack_sdk", "sqlite3"} & third_party(path)
    source = path.read_text(encoding="utf-8")
    for call in CLOCK_CALLS:
        assert f"{call}(" not in source, f"{path.name} reads the clock via {call}()"


#: the OpenTelemetry adapter's pure stages (decode, mapping, assembly); only its shell run.py does I/O
OTEL_PURE = [p for p in SOURCES if node_of(module_of(p)) == "monitor.otel" and p.name != "run.py"]


@pytest.mark.parametrize("path", OTEL_PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_otel_adapter_is_pure_but_its_shell(path: Path) -> None:
    assert not {"faust", "aiokafka", "asyncio", "time"} & third_party(path)
    assert not {node_of(m) for m in ours(imports_of(path))} & {"monitor.kafka", "monitor.stream"}, path
    source = path.read_text(encoding="utf-8")
    for call in CLOCK_CALLS:
        assert f"{call}(" not in source, f"{path.name} reads the clock via {call}()"


def test_the_otel_adapter_has_pure_stages() -> None:
    assert {p.name for p in OTEL_PURE} >= {"decode.py", "mapping.py", "assembly.py", "adapter.py"}


@pytest.mark.parametrize("path", [p for p in SOURCES if node_of(module_of(p)) == "alerts"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_alert_pipeline_never_imports_faust(path: Path) -> None:
    assert "faust" not in third_party(path)


def test_detectors_import_nothing_of_ours_but_themselves() -> None:
    for path in (ROOT / "detectors").rglob("*.py"):
        assert {node_of(m) for m in ours(imports_of(path))} <= {"detectors"}, path
