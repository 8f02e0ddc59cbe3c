"""Assembling agent runs from spans that arrive in any order, late, twice, or never.

How spans really arrive: the Collector's kafkaexporter writes whole export requests; spans of one
trace come in several requests, out of order; the root span (the agent run) usually comes last,
because it ends last, and children that were exported by another process can come after it;
Collector retries deliver a request again; a crashed agent never sends its root.

The rules, per trace (the adapter routes all of a trace to one `Assembler`):

- a span is kept once (by span id); a span of a trace closed a moment ago is late and dropped
  (counted), so a retry never makes a second run;
- once a trace holds an agent span (`invoke_agent` / AGENT) and has received nothing for
  `grace_s`, each agent span not yet emitted becomes one execution event, with the spans whose
  nearest agent ancestor it is (a nested agent is its own run). The trace closes when its root
  (a span without parent) is there; until then it stays open for other agent spans;
- a trace still without an agent span `trace_timeout_s` after its first span closes: with
  `on_timeout = "emit"` and the agent known from its other spans, as an execution with status
  `timeout`; otherwise it is counted and dropped;
- at most `max_open_traces` are open; the oldest is closed early as if it timed out (an eviction);
- evaluations (`gen_ai.evaluation.result`) wait for their trace's run, and join the run that
  holds their span (or response id), else the trace's first run.

Event ids derive from trace and span ids, so a trace assembled again (a restart re-reads every
open trace from its first record) gives the same events, which the workers deduplicate.
Pure: time is the `now` the caller passes (seconds, any origin).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field, fields

from monitor.contract.events import EvaluationEvent, ExecutionEvent
from monitor.otel.config import OtelSettings
from monitor.otel.mapping import (
    EvaluationFacts,
    MappingError,
    Role,
    SpanFacts,
    evaluation_event,
    execution_event,
    timeout_event,
)

Event = ExecutionEvent | EvaluationEvent


@dataclass(frozen=True, slots=True)
class Rejected:
    """Something that could not become an event: the reason, the input offset it came from, and
    the bytes for the dead-letter record."""

    reason: str
    offset: int
    trace_id: str
    payload: bytes


@dataclass
class Emitted:
    events: list[Event] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def extend(self, other: Emitted) -> None:
        self.events.extend(other.events)
        self.rejected.extend(other.rejected)


@dataclass
class AssemblyCounters:
    spans: int = 0
    duplicate_spans: int = 0
    late_spans: int = 0
    executions: int = 0
    evaluations: int = 0
    timed_out: int = 0  # emitted with status timeout
    dropped_timeouts: int = 0  # GenAI spans without an agent run, dropped (on_timeout = drop, or no agent known)
    ignored_traces: int = 0  # traces with no GenAI span at all
    evicted: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class _OpenTrace:
    trace_id: str
    first_arrival: float
    last_arrival: float
    first_offset: int
    spans: dict[str, SpanFacts] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    evaluations: list[tuple[EvaluationFacts, int]] = field(default_factory=list)
    pending_agents: set[str] = field(default_factory=set)
    runs: dict[str, str] = field(default_factory=dict)  # span id / response id -> agent id of its run
    first_agent: tuple[int, str, str] | None = None  # (start, span id, agent id) of the earliest run emitted
    has_root: bool = False


@dataclass(slots=True)
class _ClosedTrace:
    runs: dict[str, str]
    default_agent: str | None


class Assembler:
    """Open traces of one input partition, and the recently closed ones."""

    def __init__(self, settings: OtelSettings) -> None:
        self.grace_s = settings.grace_s
        self.trace_timeout_s = settings.trace_timeout_s
        self.on_timeout = settings.on_timeout
        self.max_open_traces = settings.max_open_traces
        self.closed_remembered = settings.closed_traces_remembered
        self.counters = AssemblyCounters()
        self._open: dict[str, _OpenTrace] = {}  # in order of first arrival: the first holds the lowest offset
        self._ready: set[str] = set()  # open traces holding an agent span not yet emitted
        self._closed: OrderedDict[str, _ClosedTrace] = OrderedDict()

    @property
    def open_traces(self) -> int:
        return len(self._open)

    def lowest_held_offset(self) -> int | None:
        """The first input offset an open trace still needs: a restart re-reads from here."""
        for trace in self._open.values():
            return trace.first_offset
        return None

    # ---- input ----------------------------------------------------------------------------

    def add_span(self, trace_id: str, facts: SpanFacts, offset: int, now: float) -> Emitted:
        self.counters.spans += 1
        if trace_id in self._closed:
            self.counters.late_spans += 1
            return Emitted()
        out = Emitted()
        trace = self._open.get(trace_id) or self._start(trace_id, offset, now, out)
        if facts.span_id in trace.spans:
            self.counters.duplicate_spans += 1
            return out
        trace.spans[facts.span_id] = facts
        trace.offsets[facts.span_id] = offset
        trace.last_arrival = now
        if not facts.parent_id:
            trace.has_root = True
        if facts.role is Role.AGENT:
            trace.pending_agents.add(facts.span_id)
            self._ready.add(trace_id)
        return out

    def add_evaluation(self, facts: EvaluationFacts, offset: int, now: float) -> Emitted:
        closed = self._closed.get(facts.trace_id)
        if closed is not None:
            out = Emitted()
            agent = self._agent_of(facts, closed.runs, closed.default_agent)
            if agent is None:
                self._reject(out, f"evaluation {facts.event_id}: its trace closed without an agent run",
                             offset, facts.trace_id, facts)
            else:
                self._evaluation(out, facts, agent, offset)
            return out
        out = Emitted()
        trace = self._open.get(facts.trace_id) or self._start(facts.trace_id, offset, now, out)
        if all(e.event_id != facts.event_id for e, _ in trace.evaluations):
            trace.evaluations.append((facts, offset))
        if trace.first_agent is not None:  # a run of this open trace was emitted already: join it now
            self._evaluations(trace, out)
        return out

    def _start(self, trace_id: str, offset: int, now: float, out: Emitted) -> _OpenTrace:
        while len(self._open) >= self.max_open_traces:
            oldest = next(iter(self._open.values()))
            self.counters.evicted += 1
            out.extend(self._expire(oldest))
        trace = self._open[trace_id] = _OpenTrace(trace_id, now, now, offset)
        return trace

    # ---- time -----------------------------------------------------------------------------

    def tick(self, now: float) -> Emitted:
        """Emit the runs of traces quiet for `grace_s`; close traces older than `trace_timeout_s`."""
        out = Emitted()
        for trace_id in sorted(self._ready):
            trace = self._open[trace_id]
            if now - trace.last_arrival >= self.grace_s:
                out.extend(self._emit_runs(trace))
                if trace.has_root:
                    self._close(trace)
        while self._open:
            oldest = next(iter(self._open.values()))
            if now - oldest.first_arrival < self.trace_timeout_s:
                break
            out.extend(self._expire(oldest))
        return out

    def flush(self) -> Emitted:
        """Close every open trace now (end of a bounded input, e.g. a benchmark or a test)."""
        out = Emitted()
        while self._open:
            out.extend(self._expire(next(iter(self._open.values()))))
        return out

    # ---- closing --------------------------------------------------------------------------

    def _emit_runs(self, trace: _OpenTrace) -> Emitted:
        out = Emitted()
        self._ready.discard(trace.trace_id)
        if trace.pending_agents:
            self._emit_pending(trace, out)
        if trace.first_agent is not None:
            self._evaluations(trace, out)
        return out

    def _emit_pending(self, trace: _OpenTrace, out: Emitted) -> None:
        owner = self._owners(trace)
        by_agent: dict[str, list[SpanFacts]] = {a: [] for a in trace.pending_agents}
        for span_id, agent_span_id in owner.items():
            members = by_agent.get(agent_span_id)
            if members is not None and span_id != agent_span_id:
                members.append(trace.spans[span_id])
        for agent_span_id in sorted(trace.pending_agents, key=lambda s: (trace.spans[s].start_ns, s)):
            agent_span = trace.spans[agent_span_id]
            members = by_agent[agent_span_id]
            try:
                event = execution_event(trace.trace_id, agent_span, members)
            except MappingError as exc:
                self._reject(out, exc.reason, trace.offsets[agent_span_id], trace.trace_id,
                             {"trace_id": trace.trace_id, "span_id": agent_span_id})
                continue
            out.events.append(event)
            self.counters.executions += 1
            agent_id = event.agent_id
            for member in (agent_span, *members):
                trace.runs[member.span_id] = agent_id
                if member.response_id:
                    trace.runs[member.response_id] = agent_id
            key = (agent_span.start_ns, agent_span_id, agent_id)
            if trace.first_agent is None or key < trace.first_agent:
                trace.first_agent = key
        trace.pending_agents.clear()

    def _owners(self, trace: _OpenTrace) -> dict[str, str]:
        """Each span's nearest agent ancestor (an agent span owns itself). A span whose parent chain
        breaks (a parent never seen) goes to the trace's only agent span, if it has just one."""
        spans = trace.spans
        owner: dict[str, str] = {}
        broken: list[str] = []
        agents = [s for s, f in spans.items() if f.role is Role.AGENT]
        for span_id in spans:
            chain: list[str] = []
            current: str | None = span_id
            found: str | None = None
            while current is not None:
                if current in owner:
                    found = owner[current]
                    break
                facts = spans.get(current)
                if facts is None:
                    broken.append(span_id)
                    break
                if facts.role is Role.AGENT:
                    found = current
                    break
                chain.append(current)
                current = facts.parent_id or None
                if len(chain) > len(spans):  # a cycle of parent ids: refuse to follow it
                    break
            if found is not None:
                for c in chain:
                    owner[c] = found
                owner[span_id] = found
        if len(agents) == 1:
            for span_id in broken:
                owner.setdefault(span_id, agents[0])
        return owner

    def _evaluations(self, trace: _OpenTrace, out: Emitted) -> None:
        default = trace.first_agent[2] if trace.first_agent else None
        for facts, offset in trace.evaluations:
            agent = self._agent_of(facts, trace.runs, default)
            if agent is None:
                self._reject(out, f"evaluation {facts.event_id}: trace {trace.trace_id} has no agent run",
                             offset, trace.trace_id, facts)
            else:
                self._evaluation(out, facts, agent, offset)
        trace.evaluations.clear()

    def _evaluation(self, out: Emitted, facts: EvaluationFacts, agent: str, offset: int) -> None:
        try:
            out.events.append(evaluation_event(facts, agent))
            self.counters.evaluations += 1
        except MappingError as exc:
            self._reject(out, exc.reason, offset, facts.trace_id, facts)

    @staticmethod
    def _agent_of(facts: EvaluationFacts, runs: dict[str, str], default: str | None) -> str | None:
        return runs.get(facts.span_id) or (runs.get(facts.response_id) if facts.response_id else None) or default

    def _expire(self, trace: _OpenTrace) -> Emitted:
        """Close a trace that ran out of time (or room): its runs if it has agent spans, else a
        timeout execution or nothing (by `on_timeout`)."""
        out = self._emit_runs(trace)
        if trace.first_agent is None and trace.spans:
            genai = [s for s in trace.spans.values() if s.role is not Role.OTHER or s.agent_hint]
            hints = sorted((s.start_ns, s.span_id, s.agent_hint) for s in genai if s.agent_hint)
            if not genai:
                self.counters.ignored_traces += 1
            elif self.on_timeout == "emit" and hints:
                agent_id = hints[0][2]
                try:
                    out.events.append(timeout_event(trace.trace_id, agent_id, list(trace.spans.values())))
                    self.counters.timed_out += 1
                    trace.first_agent = (hints[0][0], hints[0][1], agent_id)
                except MappingError as exc:
                    self._reject(out, exc.reason, trace.first_offset, trace.trace_id, {"trace_id": trace.trace_id})
                self._evaluations(trace, out)
            else:
                self.counters.dropped_timeouts += 1
        if trace.evaluations:
            for facts, offset in trace.evaluations:
                self._reject(out, f"evaluation {facts.event_id}: no agent run of trace {trace.trace_id} arrived "
                             f"within {self.trace_timeout_s:g} s", offset, trace.trace_id, facts)
            trace.evaluations.clear()
        self._close(trace)
        return out

    def _close(self, trace: _OpenTrace) -> None:
        self._open.pop(trace.trace_id, None)
        self._ready.discard(trace.trace_id)
        if self.closed_remembered:
            self._closed[trace.trace_id] = _ClosedTrace(trace.runs, trace.first_agent[2] if trace.first_agent else None)
            while len(self._closed) > self.closed_remembered:
                self._closed.popitem(last=False)

    def _reject(self, out: Emitted, reason: str, offset: int, trace_id: str, what: object) -> None:
        self.counters.rejected += 1
        payload = json.dumps(what if isinstance(what, dict) else _facts_dict(what), sort_keys=True).encode()
        out.rejected.append(Rejected(reason, offset, trace_id, payload))


def _facts_dict(facts: object) -> dict[str, object]:
    return {name: getattr(facts, name) for name in getattr(facts, "__slots__", ())}
