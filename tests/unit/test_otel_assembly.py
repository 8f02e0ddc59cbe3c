"""Assembling agent runs from spans as they really arrive: shuffled, split, repeated, late, or
never; evaluations joined to their run; bounded memory; the offset a restart re-reads from."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from monitor.contract.events import ExecutionEvent, encode_event
from monitor.otel.adapter import TracePartition, assemble, split_record
from monitor.otel.config import OtelSettings
from tests.support.otel_traces import Run, Tool, Traced, encode, log_requests, trace_requests

SETTINGS = OtelSettings(grace_s=5, trace_timeout_s=60)


def _one_run(run: Run | None = None) -> tuple[str, list[bytes], list[bytes]]:
    """A traced run: its trace id, one OTLP request per span (root last, as exporters send it), and
    its evaluation log records."""
    traced = Traced()
    trace_id = traced.run(run or Run(tools=[Tool("crm.lookup"), Tool("crm.update", "AuthError")],
                                     evaluation=("relevance", 0.9)))
    spans, logs = traced.finished()
    pieces = [encode(trace_requests([s], 1, random.Random(0))[0], "otlp_proto") for s in spans]
    return trace_id, pieces, [encode(r, "otlp_proto") for r in log_requests(logs)]


def _feed(part: TracePartition, records: list[tuple[str, bytes]], now: float = 0.0, start: int = 0) -> list[bytes]:
    out = []
    for i, (signal, value) in enumerate(records):
        got = part.process(value, None, signal, start + i, None, now)  # type: ignore[arg-type]
        assert not got.dead_letters, got.dead_letters
        out += [encode_event(e) for e in got.events]
    return out


def test_a_run_becomes_one_execution_with_its_calls() -> None:
    trace_id, spans, logs = _one_run()
    part = TracePartition(SETTINGS, "t", 0)
    assert _feed(part, [("traces", s) for s in spans]) == []
    events = part.tick(5.0).events
    assert len(events) == 1
    ev = events[0]
    assert isinstance(ev, ExecutionEvent)
    assert (ev.agent_id, ev.execution_id, ev.task_id, ev.agent_version, ev.status) == (
        "lead-qualifier", trace_id, trace_id, "v3", "completed")
    assert ev.steps == 2 and ev.duration_ms == 2 * 400 + 2 * 50 + 2
    assert ev.llm_calls is not None and [c.input_tokens for c in ev.llm_calls] == [1000, 1001]
    assert {(c.model, c.resolved_model, c.provider, c.cached_input_tokens) for c in ev.llm_calls} == {
        ("gpt-4o", "gpt-4o-2024-08-06", "openai", 100)}
    assert ev.tool_calls is not None
    assert [(t.tool, t.status, t.error_type) for t in ev.tool_calls] == [
        ("crm.lookup", "ok", None), ("crm.update", "error", "AuthError")]
    assert ev.event_id.startswith(f"otel-{trace_id}-")
    evaluation = _feed(part, [("logs", r) for r in logs], now=6.0)
    assert len(evaluation) == 1 and b'"evaluator":"relevance"' in evaluation[0]
    assert b'"agent_id":"lead-qualifier"' in evaluation[0] and trace_id.encode() in evaluation[0]


def test_nothing_is_emitted_before_the_trace_is_quiet_for_the_grace_period() -> None:
    _, spans, _ = _one_run()
    part = TracePartition(SETTINGS, "t", 0)
    _feed(part, [("traces", s) for s in spans[:-1]], now=0.0)
    _feed(part, [("traces", spans[-1])], now=3.0)  # the root, 3 s later
    assert part.tick(7.9).events == []
    assert len(part.tick(8.0).events) == 1


def test_children_arriving_after_the_root_within_the_grace_period_are_counted() -> None:
    _, spans, _ = _one_run()
    root_first = [spans[-1], *spans[:-1]]
    part = TracePartition(SETTINGS, "t", 0)
    for i, s in enumerate(root_first):
        _feed(part, [("traces", s)], now=float(i), start=i)
    (ev,) = part.tick(100.0).events
    assert isinstance(ev, ExecutionEvent) and ev.tool_calls is not None and len(ev.tool_calls) == 2


def test_a_retried_request_after_the_run_closed_is_dropped_as_late() -> None:
    _, spans, _ = _one_run()
    part = TracePartition(SETTINGS, "t", 0)
    _feed(part, [("traces", s) for s in spans])
    assert len(part.tick(5.0).events) == 1
    _feed(part, [("traces", s) for s in spans], now=10.0)
    assert part.tick(20.0).events == [] and part.assembler.counters.late_spans == len(spans)


def _rootless(openinference: bool, agent_hint: str | None) -> tuple[str, list[bytes]]:
    """A run whose agent span never arrives (the agent crashed): its children only, each naming the
    agent when `agent_hint` is given (as some frameworks do)."""
    traced = Traced()
    trace_id = traced.run(Run(openinference=openinference))
    spans, _ = traced.finished()
    out = []
    for s in spans:
        if s.parent is None:
            continue
        request = trace_requests([s], 1, random.Random(0))[0]
        if agent_hint is not None:
            kv = request.resource_spans[0].scope_spans[0].spans[0].attributes.add()
            kv.key, kv.value.string_value = "agent.name", agent_hint
        out.append(request.SerializeToString())
    return trace_id, out


def test_a_trace_without_its_agent_span_times_out_as_a_timeout_execution() -> None:
    trace_id, records = _rootless(True, "researcher")
    part = TracePartition(SETTINGS, "t", 0)
    _feed(part, [("traces", r) for r in records])
    assert part.tick(59.0).events == []
    (ev,) = part.tick(60.0).events
    assert isinstance(ev, ExecutionEvent)
    assert (ev.status, ev.agent_id, ev.event_id) == ("timeout", "researcher", f"otel-{trace_id}-timeout")
    assert ev.llm_calls is not None and len(ev.llm_calls) == 2
    assert part.assembler.counters.timed_out == 1 and part.assembler.open_traces == 0


def test_a_timed_out_trace_is_dropped_by_setting_or_when_no_span_names_the_agent() -> None:
    for on_timeout, hint in (("drop", "researcher"), ("emit", None)):
        _, records = _rootless(False, hint)
        part = TracePartition(OtelSettings(grace_s=5, trace_timeout_s=60, on_timeout=on_timeout), "t", 0)
        _feed(part, [("traces", r) for r in records])
        assert part.tick(60.0).events == []
        assert part.assembler.counters.dropped_timeouts == 1 and part.assembler.open_traces == 0


def test_open_traces_are_bounded_and_evictions_counted() -> None:
    traced = Traced()
    for i in range(5):
        traced.run(Run(start_ns=1_780_000_000_000_000_000 + i * 10**12))
    spans, _ = traced.finished()
    part = TracePartition(OtelSettings(grace_s=5, trace_timeout_s=60, max_open_traces=2), "t", 0)
    non_root = [s for s in spans if s.parent is not None]
    for i, s in enumerate(non_root):
        part.process(encode(trace_requests([s], 1, random.Random(0))[0], "otlp_proto"), None, "traces", i, None, 0)
    assert part.assembler.open_traces == 2
    assert part.assembler.counters.evicted == 3


def test_commit_stops_at_the_first_offset_an_open_trace_needs() -> None:
    _, spans, _ = _one_run()
    part = TracePartition(SETTINGS, "t", 0)
    assert part.committable(10) == 10
    _feed(part, [("traces", s) for s in spans], start=10)
    assert part.committable(10 + len(spans)) == 10
    part.tick(5.0)
    assert part.committable(10 + len(spans)) == 10 + len(spans)


def test_a_nested_agent_is_its_own_run_and_owns_its_calls() -> None:
    traced = Traced()
    tracer = traced.tracer
    t = 1_780_000_000_000_000_000
    outer = tracer.start_span("invoke_agent planner", start_time=t, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"})
    ctx = trace_api.set_span_in_context(outer)
    inner = tracer.start_span("invoke_agent researcher", context=ctx, start_time=t + 1, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"})
    tool = tracer.start_span("execute_tool web", context=trace_api.set_span_in_context(inner), start_time=t + 2,
                             attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web"})
    tool.end(end_time=t + 3)
    inner.end(end_time=t + 4)
    chat = tracer.start_span("chat", context=ctx, start_time=t + 5, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})
    chat.end(end_time=t + 6)
    outer.end(end_time=t + 7)
    spans, _ = traced.finished()
    out = assemble([("traces", encode(trace_requests(spans, 1, random.Random(0))[0], "otlp_json"))],
                   SETTINGS, encoding="otlp_json")
    by_agent = {e.agent_id: e for e in out.events if isinstance(e, ExecutionEvent)}
    assert set(by_agent) == {"planner", "researcher"}
    assert by_agent["planner"].tool_calls is None and by_agent["planner"].steps == 1
    assert by_agent["researcher"].tool_calls is not None and by_agent["researcher"].steps == 0


def test_unmappable_spans_go_to_the_dead_letters_with_the_reason_and_the_rest_goes_on() -> None:
    traced = Traced()
    traced.run(Run())
    spans, _ = traced.finished()
    request = trace_requests(spans, 1, random.Random(0))[0]
    chat = next(s for s in request.resource_spans[0].scope_spans[0].spans if s.name.startswith("chat"))
    for kv in chat.attributes:
        if kv.key == "gen_ai.usage.input_tokens":
            kv.value.string_value = "lots"
    part = TracePartition(SETTINGS, "agentmon-otel-traces", 2)
    got = part.process(request.SerializeToString(), b"k", "traces", 41, 123, 0.0)
    (letter,) = got.dead_letters
    assert "gen_ai.usage.input_tokens must be a whole number" in letter.error
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("agentmon-otel-traces", 2, 41)
    (ev,) = part.tick(5.0).events
    assert isinstance(ev, ExecutionEvent) and ev.steps == 1  # the refused chat span is left out


# ---- the law: any interleaving and duplication of a trace's records gives one identical event ----

_TRACE_ID, _SPANS, _LOGS = _one_run()
_RECORDS = [("traces", s) for s in _SPANS] + [("logs", r) for r in _LOGS]


def _events_of(order: list[int]) -> list[bytes]:
    part = TracePartition(SETTINGS, "t", 0)
    out = _feed(part, [_RECORDS[i] for i in order])
    out += [encode_event(e) for e in part.tick(5.0).events]
    return sorted(out)


_REFERENCE = _events_of(list(range(len(_RECORDS))))


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(len(_RECORDS))), st.lists(st.integers(0, len(_RECORDS) - 1), max_size=8),
       st.randoms(use_true_random=False))
def test_any_order_and_duplication_of_a_traces_records_gives_the_same_events(
        order: list[int], repeats: list[int], rnd: random.Random) -> None:
    arrival = list(order)
    for i in repeats:  # Collector retries: a record again, anywhere in the stream
        arrival.insert(rnd.randrange(len(arrival) + 1), i)
    assert _events_of(arrival) == _REFERENCE


def test_the_reference_holds_one_execution_and_one_evaluation() -> None:
    kinds = sorted(b'"kind":"execution"' in e for e in _REFERENCE)
    assert kinds == [False, True]


def _several_runs() -> tuple[list[object], list[object]]:
    traced = Traced(seed=23)
    traced.run(Run(evaluation=("relevance", 0.4)))
    traced.run(Run(agent="invoice-bot", start_ns=1_780_000_050_000_000_000, fail="ValueError",
                   tools=[Tool("erp.post", "AuthError")]))
    traced.run(Run(agent="researcher", openinference=True, start_ns=1_780_000_090_000_000_000, escalate=True))
    spans, logs = traced.finished()
    return list(spans), list(logs)


_MANY_SPANS, _MANY_LOGS = _several_runs()


def _through_both_stages(groups: list[list[int]], encoding: str) -> list[bytes]:
    """Each group of span indexes as one exporter record (several traces in one record, one trace
    over several records), split by trace and assembled, as `agentmon otel run` does."""
    part = TracePartition(SETTINGS, "t", 0)
    offset = 0
    out: list[bytes] = []
    records = [("traces", encode(encode_spans([_MANY_SPANS[i] for i in g]), encoding)) for g in groups if g]
    records += [("logs", encode(r, encoding)) for r in log_requests(_MANY_LOGS)]  # type: ignore[arg-type]
    for signal, value in records:
        for trace, piece in split_record(value, signal, encoding):  # type: ignore[arg-type]
            got = part.process(piece, trace.encode(), signal, offset, None, 0.0)  # type: ignore[arg-type]
            assert not got.dead_letters
            out += [encode_event(e) for e in got.events]
            offset += 1
    out += [encode_event(e) for e in part.tick(5.0).events]
    return sorted(out)


_MANY_REFERENCE = _through_both_stages([list(range(len(_MANY_SPANS)))], "otlp_proto")


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(len(_MANY_SPANS))), st.lists(st.integers(1, 6), min_size=1, max_size=12),
       st.lists(st.integers(0, len(_MANY_SPANS) - 1), max_size=6), st.sampled_from(["otlp_proto", "otlp_json"]))
def test_any_cut_of_several_traces_into_records_in_either_encoding_gives_the_same_events(
        order: list[int], sizes: list[int], repeats: list[int], encoding: str) -> None:
    groups: list[list[int]] = []
    rest = list(order)
    for size in sizes * len(order):
        if not rest:
            break
        groups.append(rest[:size])
        rest = rest[size:]
    groups += [[i] for i in repeats]  # a retried request: spans again, in a record of their own
    assert _through_both_stages(groups, encoding) == _MANY_REFERENCE
    assert len(_MANY_REFERENCE) == 4  # three runs and one evaluation


def test_an_evaluation_joins_the_run_that_holds_its_span_or_its_response_id() -> None:
    traced = Traced()
    tracer = traced.tracer
    t = 1_780_000_000_000_000_000
    outer = tracer.start_span("invoke_agent planner", start_time=t, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"})
    inner = tracer.start_span("invoke_agent writer", context=trace_api.set_span_in_context(outer), start_time=t + 1,
                              attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "writer"})
    chat = tracer.start_span("chat", context=trace_api.set_span_in_context(inner), start_time=t + 2, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.response.id": "resp-42"})
    chat.end(end_time=t + 3)
    inner.end(end_time=t + 4)
    outer.end(end_time=t + 5)
    # judged by span (the writer's chat), by response id only (no span in context), and by neither
    traced.logger.emit(event_name="gen_ai.evaluation.result", timestamp=t + 10,
                       context=trace_api.set_span_in_context(chat),
                       attributes={"gen_ai.evaluation.name": "by-span", "gen_ai.evaluation.score.value": 0.5})
    outer_ctx = outer.get_span_context()
    no_span = trace_api.NonRecordingSpan(trace_api.SpanContext(outer_ctx.trace_id, 0xABC, is_remote=True))
    for name, extra in (("by-response", {"gen_ai.response.id": "resp-42"}), ("by-nothing", {})):
        traced.logger.emit(event_name="gen_ai.evaluation.result", timestamp=t + 11,
                           context=trace_api.set_span_in_context(no_span),
                           attributes={"gen_ai.evaluation.name": name, "gen_ai.evaluation.score.value": 0.5, **extra})
    spans, logs = traced.finished()
    out = assemble([("traces", encode(r, "otlp_proto")) for r in trace_requests(spans, 2, random.Random(4))]
                   + [("logs", encode(r, "otlp_proto")) for r in log_requests(logs)], SETTINGS, encoding="otlp_proto")
    joined = {e.evaluator: e.agent_id for e in out.events if e.kind == "evaluation"}  # type: ignore[union-attr]
    assert joined == {"by-span": "writer", "by-response": "writer", "by-nothing": "planner"}  # the first run
