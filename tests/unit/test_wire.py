"""monitor/contract/wire.py: `read_event` (msgspec) accepts exactly what `decode_event` (pydantic, the
contract's source of truth) accepts, with equal values for every field and the same error reason,
and the engine cannot tell the two apart."""

from __future__ import annotations

import copy
import json
import pickle
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from monitor.contract.alert import Alert
from monitor.contract.events import EventError, decode_event, encode_event, validate_event
from monitor.contract.rollup import Rollup
from monitor.contract.wire import read_event
from monitor.core.config import DetectionConfig, RuleThresholds
from monitor.core.engine import Engine
from monitor.local.simulate import Incident, default_agents, generate
from tests.unit.test_engine_support import T0

PROPERTY = settings(max_examples=400, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---- comparing a decoded event with pydantic's -----------------------------------------------


def assert_same_value(expected: Any, got: Any, path: str) -> None:
    if isinstance(expected, BaseModel):
        assert isinstance(got, BaseModel | msgspec.Struct), path
        for name in type(expected).model_fields:
            assert_same_value(getattr(expected, name), getattr(got, name), f"{path}.{name}")
        return
    assert type(got) is type(expected), f"{path}: {type(got).__name__} != {type(expected).__name__}"
    if isinstance(expected, list):
        assert len(got) == len(expected), path
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_same_value(e, g, f"{path}[{i}]")
    elif isinstance(expected, dict):
        assert list(got) == list(expected), path
        for key in expected:
            assert_same_value(expected[key], got[key], f"{path}[{key!r}]")
    elif isinstance(expected, float):
        assert repr(got) == repr(expected), f"{path}: {got!r} != {expected!r}"  # -0.0 too
    elif isinstance(expected, datetime):
        assert got == expected, f"{path}: {got!r} != {expected!r}"  # the same instant
        assert got.utcoffset() == expected.utcoffset(), path  # and the same offset
        assert got.replace(tzinfo=None) == expected.replace(tzinfo=None), path
    else:
        assert got == expected, f"{path}: {got!r} != {expected!r}"


def assert_same_outcome(raw: bytes | str) -> Any:
    """read_event refuses exactly when decode_event does (same reason), else equal values."""
    try:
        expected = decode_event(raw)
    except EventError as exc:
        with pytest.raises(EventError) as refused:
            read_event(raw)
        assert refused.value.reason == exc.reason
        assert refused.value.fields == exc.fields
        return None
    got = read_event(raw)
    assert got.kind == expected.kind
    assert_same_value(expected, got, "<event>")
    return got


# ---- writing JSON by hand: raw tokens, repeated keys, whitespace, escapes -------------------


@dataclass(frozen=True)
class Raw:
    """A JSON token written as is (`NaN`, `1e400`, `"\\ud800"`, 4301 digits, ...)."""

    text: str


class Obj(list[list[Any]]):
    """A JSON object as [key, value] pairs: order kept, keys may repeat."""

    def get(self, key: str) -> Any:
        return next((v for k, v in self if k == key), None)


def to_json(value: Any, ascii_only: bool, comma: str, colon: str) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        return "{" + comma.join(to_json(k, ascii_only, comma, colon) + colon + to_json(v, ascii_only, comma, colon)
                                for k, v in value) + "}"
    if isinstance(value, dict):
        return to_json(Obj([k, v] for k, v in value.items()), ascii_only, comma, colon)
    if isinstance(value, list):
        return "[" + comma.join(to_json(v, ascii_only, comma, colon) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def encoded(draw: st.DrawFn, doc: Any) -> bytes | str:
    ascii_only = draw(st.booleans())
    comma, colon = draw(st.sampled_from([(",", ":"), (", ", ": "), (",\n\t", " :\r\n")]))
    text = to_json(doc, ascii_only, comma, colon)
    return text if draw(st.integers(0, 4)) == 0 else text.encode()


# ---- valid events ---------------------------------------------------------------------------

RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d([.,]\d+)?(Z|[+-]\d\d:?\d\d)", re.ASCII)

CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
NON_ASCII = st.sampled_from(["é", "ß", "日本", "😀", "e\u0301", "\u0000", "\u2028", '"', "\\", "/", " "])


def text_of(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Short text, sometimes exactly at the bounds (lengths are code points, not bytes)."""
    return st.one_of(
        st.text(CHARS, min_size=min_size, max_size=min(max_size, 12)),
        st.builds(lambda c, n: (c * n)[:n], NON_ASCII, st.just(max_size)),
        st.builds(lambda c: c * max(min_size, 1), NON_ASCII),
    ).filter(lambda s: min_size <= len(s) <= max_size)


IDS = text_of(1, 128)
LABELS = text_of(1, 256)
TEXTS = text_of(0, 4096)
DECIMAL = st.from_regex(r"(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,2})?", fullmatch=True)
NON_NEGATIVE = st.one_of(
    st.floats(min_value=0, allow_infinity=False, allow_nan=False),
    st.integers(0, 2**80),
    DECIMAL.map(Raw),
    st.sampled_from([Raw("-0.0"), Raw("-0"), Raw("0e0"), Raw("1.7976931348623157e308"), Raw("5e-324"),
                     Raw("2e-400"), Raw("123456789012345678901234567890")]),
)
FINITE = st.one_of(NON_NEGATIVE, st.floats(allow_infinity=False, allow_nan=False), st.integers(-(2**70), 0),
                   DECIMAL.map(lambda d: Raw("-" + d)))
SCORES = st.one_of(st.floats(0, 1), st.sampled_from([0, 1, Raw("1.0000000000000001"), Raw("-0.0"), Raw("0.99e0")]))
COUNTS = st.one_of(st.integers(0, 10_000), st.integers(0, 2**100), st.just(Raw("-0")))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(CHARS, max_size=6) | st.sampled_from([Raw("1e400"), Raw("-0.0"), Raw("1" * 300)]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(CHARS, max_size=4), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def timestamps(draw: st.DrawFn, lowest: date = date(1, 1, 1), highest: date = date(9999, 12, 31)) -> str:
    """Spellings pydantic accepts: separators, offsets, fractions of any length, no seconds. Mostly
    RFC 3339 proper (the fast path); lowercase, `_` and no seconds go to the fallback. Any year
    datetime reads by default; the contract takes 1970-2999 (`VALID_TIMES`)."""
    day: date = draw(st.dates(min_value=lowest, max_value=highest) | st.just(date(2026, 11, 2)))
    text = f"{day.year:04d}-{day.month:02d}-{day.day:02d}{draw(st.sampled_from('TTTT t_'))}" \
           f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
    if draw(st.sampled_from([True, True, True, True, False])):
        text += f":{draw(st.integers(0, 59)):02d}"
        if draw(st.booleans()):
            text += draw(st.sampled_from("..,")) + draw(st.text("0123456789", min_size=1, max_size=12))
    hh, mm = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    return text + draw(st.sampled_from(["Z", f"+{hh:02d}:{mm:02d}", "Z", f"-{hh:02d}:{mm:02d}", f"+{hh:02d}{mm:02d}",
                                        f"-{hh:02d}{mm:02d}", "+00:00", "-00:00", "z"]))


VALID_TIMES = timestamps(date(1970, 1, 1), date(2999, 12, 31))  # the contract's years


def optional(draw: st.DrawFn, full: bool, fields: Obj, name: str, strategy: st.SearchStrategy[Any]) -> None:
    if full or draw(st.booleans()):
        fields.append([name, None if draw(st.integers(0, 9)) == 0 else draw(strategy)])


def add_extras(draw: st.DrawFn, fields: Obj) -> None:
    known = {k for k, _ in fields} | {"kind"}
    for key, value in draw(st.dictionaries(st.text(CHARS, max_size=8), JSON_VALUES, max_size=3)).items():
        if key not in known:
            fields.append([key, value])


@st.composite
def llm_calls(draw: st.DrawFn, full: bool) -> Obj:
    call = Obj([["provider", draw(LABELS)], ["model", draw(LABELS)], ["input_tokens", draw(COUNTS)],
                ["output_tokens", draw(COUNTS)]])
    optional(draw, full, call, "resolved_model", LABELS)
    optional(draw, full, call, "cached_input_tokens", COUNTS)
    optional(draw, full, call, "latency_ms", NON_NEGATIVE)
    optional(draw, full, call, "cost_usd", NON_NEGATIVE)
    if draw(st.integers(0, 3)) == 0:
        add_extras(draw, call)
    return Obj(draw(st.permutations(call)))


@st.composite
def tool_calls(draw: st.DrawFn, full: bool) -> Obj:
    call = Obj([["tool", draw(LABELS)], ["status", draw(st.sampled_from(["ok", "error", "timeout", "rate_limited"]))]])
    optional(draw, full, call, "http_status", st.integers(100, 599))
    optional(draw, full, call, "latency_ms", NON_NEGATIVE)
    optional(draw, full, call, "error_type", LABELS)
    if draw(st.integers(0, 3)) == 0:
        add_extras(draw, call)
    return Obj(draw(st.permutations(call)))


@st.composite
def valid_events(draw: st.DrawFn) -> Obj:
    kind = draw(st.sampled_from(["execution", "evaluation", "outcome"]))
    full = draw(st.booleans())  # every optional field present
    ev = Obj([["schema_version", 1], ["kind", kind], ["event_id", draw(IDS)], ["occurred_at", draw(VALID_TIMES)],
              ["agent_id", draw(IDS)]])
    if kind == "execution":
        ev += [["execution_id", draw(IDS)], ["task_id", draw(IDS)],
               ["status", draw(st.sampled_from(["completed", "escalated", "failed", "timeout"]))]]
        optional(draw, full, ev, "task_type", LABELS)
        optional(draw, full, ev, "agent_version", LABELS)
        optional(draw, full, ev, "escalation_reason", TEXTS)
        optional(draw, full, ev, "duration_ms", NON_NEGATIVE)
        optional(draw, full, ev, "steps", COUNTS)
        optional(draw, full, ev, "llm_calls", st.lists(llm_calls(full), max_size=3))
        optional(draw, full, ev, "tool_calls", st.lists(tool_calls(full), max_size=3))
        optional(draw, full, ev, "quality_score", SCORES)
        optional(draw, full, ev, "cost_usd", NON_NEGATIVE)
        optional(draw, full, ev, "context_tokens", COUNTS)
        optional(draw, full, ev, "context_limit", COUNTS)
        optional(draw, full, ev, "attributes", st.dictionaries(LABELS, TEXTS, max_size=4))
    elif kind == "evaluation":
        ev += [["execution_id", draw(IDS)], ["evaluator", draw(LABELS)], ["score", draw(SCORES)]]
        optional(draw, full, ev, "passed", st.booleans())
    else:
        ev += [["metric", draw(LABELS)], ["value", draw(FINITE)]]
        optional(draw, full, ev, "execution_id", IDS)
    if draw(st.integers(0, 2)) == 0:
        add_extras(draw, ev)
    if draw(st.booleans()):
        ev = Obj(draw(st.permutations(ev)))
    return ev


@PROPERTY
@given(data=st.data())
def test_a_valid_event_reads_to_the_same_values(data: st.DataObject) -> None:
    doc = data.draw(valid_events())
    raw = data.draw(encoded(doc))
    decode_event(raw)  # the generator makes valid events only
    got = assert_same_outcome(raw)
    if RFC3339.fullmatch(doc.get("occurred_at")):
        assert isinstance(got, msgspec.Struct)  # only other spellings need the fallback


# ---- broken and borderline encodings --------------------------------------------------------

BAD_TIMES = [
    "2024-01-02T03:04:05", "2024-01-02", "1700000000", "1700000000.5", " 1700000000 ", "-1700000000",
    "2024-01-02T03:04:05.1234567Z", "2024-01-02T03:04:05.9999999+01:00", "2024-01-02T03:04:05.9999995Z",
    "2024-01-02T03:04:05+00:60", "2024-01-02T03:04:05+0060", "2024-01-02T03:04:05xZ", "2024-01-02T03:04:05.Z",
    "2024-01-02T03:04:05:Z", "2024-01-02T03:04:05.1234567x+01:00", "2024-01-02X03:04:05Z", "2024-01-02T03Z",
    "2024-01-02T03:04:05+01", "2024-01-02T03:04:05+01:00:00", "2024-01-02T03:04:05+24:00", "2024-12-31T23:59:60Z",
    "2024-01-02T24:00:00Z", "0000-01-01T00:00:00Z", "2023-02-29T00:00:00Z", "20240102T030405Z",
    "2024-W01-1T03:04:05Z", "2024-01-02T03:04:05 Z", "2024-01-02T03:04:05Z\n", " 2024-01-02T03:04:05Z",
    "2024-01-02T03:04:05.١Z", "２０２４-01-02T03:04:05Z", "2024-01-02T03:04:05UTC", "2024-01-02t03:04:05z",
]
TRICKY: list[Any] = [Raw(t) for t in [
    "true", "false", "null", "1.0", "5.0", "1e0", "-0", "-0.0", "1e400", "-1e400", "NaN", "Infinity", "-Infinity",
    "01", "1.", ".5", "+1", "-1", "0.5", "1e-400", "1.7976931348623159e308", "1.00000000000000012",
    '"1"', '"5"', '"true"', '"\\ud800"', '"\\udc00"', '"\\u0000"', '"a\\"b"', '"\\u0065"', "[]", "{}", "[1]",
    '{"a": 1}', "1" * 4301, "-" + "1" * 4301, "1" * 4300, "[" * 200 + "]" * 200, "[" * 197 + "]" * 197,
    '{"a":' * 199 + "1" + "}" * 199, "123456789012345678901234567890", "18446744073709551616",
]] + [
    0, 1, -1, 99, 100, 599, 600, 2**63, 2**64, 10**30, 1.5, 1.0000000000000002, "", " ", "x", " x ",
    "é" * 128, "é" * 129, "😀" * 129, "x" * 256, "x" * 257, "x" * 4096, "x" * 4097, "execution", "evaluation",
    "outcome", "Execution", "completed", "ok", "rate_limited", None, [None], ["x"] * 1001,
    {str(i): "v" for i in range(64)}, {str(i): "v" for i in range(65)}, {"": "v"}, {"k": 1},
] + BAD_TIMES
KNOWN_KEYS = ["schema_version", "kind", "event_id", "occurred_at", "agent_id", "execution_id", "task_id", "status",
              "steps", "cost_usd", "quality_score", "llm_calls", "tool_calls", "attributes", "metric", "value",
              "score", "passed", "evaluator", "provider", "model", "input_tokens", "http_status", "tool"]
SOME_VALUE = st.one_of(st.sampled_from(TRICKY), timestamps(), JSON_VALUES, st.text(CHARS, max_size=3))


def objects_in(doc: Obj) -> list[Obj]:
    found = [doc]
    for _, value in doc:
        if isinstance(value, Obj):
            found += objects_in(value)
        elif isinstance(value, list):
            found += [v for v in value if isinstance(v, Obj)]
    return found


@st.composite
def broken_events(draw: st.DrawFn) -> bytes | str:
    doc = draw(valid_events())
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(objects_in(doc)))
        op = draw(st.sampled_from(["replace", "replace", "delete", "repeat", "add"]))
        if op == "add" or not target:
            target.insert(draw(st.integers(0, len(target))), [draw(st.sampled_from(KNOWN_KEYS)), draw(SOME_VALUE)])
            continue
        i = draw(st.integers(0, len(target) - 1))
        if op == "replace":
            target[i] = [target[i][0], draw(SOME_VALUE)]
        elif op == "delete":
            del target[i]
        else:  # the same key again, before or after, with another value or the same
            value = draw(st.sampled_from([target[i][1], draw(SOME_VALUE)]))
            target.insert(draw(st.sampled_from([i, i + 1, len(target)])), [target[i][0], value])
    raw = to_json(doc, draw(st.booleans()), ",", ":").encode()
    edit = draw(st.integers(0, 9))
    at = draw(st.integers(0, len(raw)))
    if edit == 0:  # stray bytes, e.g. invalid UTF-8 inside a string
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x00", b"\\",
                                               b'"', b",", b"}", b"\t", b"\xef\xbb\xbf", b"\xa0"])) + raw[at:]
    elif edit == 1:
        raw = raw[:at] + raw[at + draw(st.integers(1, 3)):]
    elif edit == 2:
        raw = draw(st.sampled_from([b"\xef\xbb\xbf", b" \n", b"\x0c", b"[", b""])) + raw + \
              draw(st.sampled_from([b"", b" \r\n", b"x", b"{}", b"\x00", b"\x0b", b"]"]))
    elif edit == 3:
        raw = raw[:at]
    if draw(st.integers(0, 4)) == 0:
        return raw.decode("utf-8", "surrogateescape")  # lone surrogates where the bytes were invalid
    return raw


@PROPERTY
@given(raw=broken_events())
def test_a_broken_or_borderline_event_gets_the_same_verdict(raw: bytes | str) -> None:
    assert_same_outcome(raw)


@st.composite
def edited_timestamps(draw: st.DrawFn) -> str:
    """Valid spellings with a few characters changed, inserted or dropped, and known bad ones."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(BAD_TIMES))
    text = draw(timestamps())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from("0123456789012345678956789:-+.,TtZz _x\u0661\u00e9"))
        edit = draw(st.integers(0, 2))
        text = text[:at] + (char if edit < 2 else "") + text[at + (edit > 0):]
    return text


@PROPERTY
@given(data=st.data())
def test_any_timestamp_spelling_gets_the_same_verdict(data: st.DataObject) -> None:
    doc = data.draw(valid_events())
    doc[[k for k, _ in doc].index("occurred_at")][1] = data.draw(edited_timestamps())
    assert_same_outcome(data.draw(encoded(doc)))


NUMBER_TEXT = st.one_of(
    st.from_regex(r"-?(0|[1-9][0-9]{0,30}|0[0-9]{1,2})(\.[0-9]{0,30})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "true", "false", "null", '"5"', '"1e400"', "1e308", "2e308",
                     "1.7976931348623158e308", "1.7976931348623159e308", "-0", "-0.0", "1" * 309, "1" * 4301]),
)
NUMERIC = {"steps", "context_tokens", "context_limit", "duration_ms", "cost_usd", "quality_score", "input_tokens",
           "output_tokens", "cached_input_tokens", "latency_ms", "http_status", "score", "value", "schema_version"}


@PROPERTY
@given(data=st.data())
def test_any_number_in_a_numeric_field_gets_the_same_verdict(data: st.DataObject) -> None:
    doc = data.draw(valid_events())
    fields = [pair for obj in objects_in(doc) for pair in obj if pair[0] in NUMERIC]
    for pair in data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=2)):
        pair[1] = Raw(data.draw(NUMBER_TEXT))
    assert_same_outcome(data.draw(encoded(doc)))


@st.composite
def risky_extras(draw: st.DrawFn) -> tuple[str | Raw, str]:
    """What msgspec skips unchecked in an unknown field: deep nesting, long integers, bad UTF-8."""
    risk = draw(st.sampled_from(["deep", "digits", "utf-8", "tokens"]))
    if risk == "deep":
        depth = draw(st.integers(190, 205))
        inner = draw(st.sampled_from(["1", "[]", "{}", '"s"', "null", "[1,[2]]"]))
        opens = draw(st.lists(st.sampled_from(["[", '{"k":']), min_size=depth, max_size=depth))
        return "x", "".join(opens) + inner + "".join("]" if o == "[" else "}" for o in reversed(opens))
    if risk == "digits":
        digits = "1" * draw(st.integers(4290, 4310))
        return "x", draw(st.sampled_from(["", "-"])) + digits + draw(st.sampled_from(["", ".5", "e5", "E-3"]))
    if risk == "utf-8":
        key = draw(st.sampled_from([Raw('"x"'), Raw('"k\udcff"')]))  # see the encoding below
        return key, draw(st.sampled_from(['"a\udcffb"', '"\udcc3"', '"\udced\udca0\udc80"', "1"]))
    return "x", draw(st.sampled_from(["NaN", "-Infinity", "1e99999", '"\\ud800"', '"\\ud83d\\ude00"', "[1,]"]))


@PROPERTY
@given(data=st.data())
def test_any_unknown_field_gets_the_same_verdict(data: st.DataObject) -> None:
    doc = data.draw(valid_events())
    key, value = data.draw(risky_extras())
    target = data.draw(st.sampled_from(objects_in(doc)))
    target.insert(data.draw(st.integers(0, len(target))), [key, Raw(value)])
    text = to_json(doc, data.draw(st.booleans()), ",", ":")
    raw = text.encode("utf-8", "surrogateescape")  # "\udcff" -> the byte 0xff, invalid UTF-8
    assert_same_outcome(raw if raw.decode("utf-8", "replace") != text else data.draw(st.sampled_from([raw, text])))


# ---- each known difference between the two parsers, pinned -----------------------------------

EVENT = {"schema_version": 1, "kind": "outcome", "event_id": "e", "occurred_at": "2026-11-02T00:00:00Z",
         "agent_id": "a", "metric": "m", "value": 1}
EXECUTION = {**EVENT, "kind": "execution", "execution_id": "x", "task_id": "t", "status": "completed"}
del EXECUTION["metric"], EXECUTION["value"]


def line(doc: dict[str, Any] = EVENT, **changes: Any) -> bytes:
    return to_json({**doc, **changes}, False, ",", ":").encode()


def with_extra(token: bytes) -> bytes:
    return line()[:-1] + b',"x":' + token + b"}"


FAST, FALLBACK, REFUSED = "fast", "fallback", "refused"
CASES: list[tuple[str, Any, str]] = [
    ("plain", line(), FAST),
    ("as str", line().decode(), FAST),
    ("extras, nested and in calls", line(EXECUTION, zz={"a": [1, None]}, llm_calls=[
        {"provider": "p", "model": "m", "input_tokens": 1, "output_tokens": 2, "zz": [True]}]), FAST),
    # msgspec alone is more lenient: closed in wire.py
    ("7 fraction digits: msgspec rounds, pydantic truncates", line(occurred_at="2026-11-02T00:00:00.9999995Z"), FAST),
    ("naive timestamp", line(occurred_at="2026-11-02T00:00:00"), REFUSED),
    ("offset minutes 60 (fromisoformat takes it)", line(occurred_at="2026-11-02T00:00:00+00:60"), REFUSED),
    ("junk before the offset (fromisoformat takes it)", line(occurred_at="2026-11-02T00:00:00xZ"), REFUSED),
    ("1e400 is inf", line(value=Raw("1e400")), REFUSED),
    ("invalid UTF-8 in an extra", with_extra(b'"\xff"'), REFUSED),
    ("invalid UTF-8 in an extra's key", line()[:-1] + b',"\xc0\xaf":1}', REFUSED),
    ("nesting of 201 levels (extra)", with_extra(b"[" * 200 + b"1" + b"]" * 200), REFUSED),
    ("nesting of 200 levels (extra)", with_extra(b"[" * 199 + b"1" + b"]" * 199), FAST),
    ("over 200 brackets, shallow (extra)", with_extra(b"[" + b",".join([b"[]"] * 200) + b"]"), FALLBACK),
    ("integer of 4301 digits in an extra", with_extra(b"1" * 4301), REFUSED),
    ("integer of 4300 digits in an extra", with_extra(b"1" * 4300), FAST),
    # pydantic is more lenient: the fallback returns its model
    ("schema_version true", line(schema_version=True), FALLBACK),
    ("schema_version 1.0", line(schema_version=Raw("1.0")), FALLBACK),
    ("float as a string", line(value="5"), FALLBACK),
    ("float as true", line(value=True), FALLBACK),
    ("NaN token in an extra", with_extra(b"NaN"), FALLBACK),
    ("lowercase t and z", line(occurred_at="2026-11-02t00:00:00z"), FALLBACK),
    ("no seconds", line(occurred_at="2026-11-02T00:00Z"), FALLBACK),
    ("underscore separator", line(occurred_at="2026-11-02_00:00:00Z"), FALLBACK),
    ("bad first copy of a repeated key", b'{"value":"x",' + line()[1:], FALLBACK),
    ("kind repeated with another value: last wins", b'{"kind":"execution",' + line()[1:], FALLBACK),
    # equal in both
    ("repeated key: last wins", line()[:-1] + b',"event_id":"second"}', FAST),
    ("space separator, offset without colon, -00:00", line(occurred_at="2026-11-02 00:00:00.5-0000"), FAST),
    ("int as 5.0", line(EXECUTION, steps=5.0), REFUSED),
    ("int as true", line(EXECUTION, steps=True), REFUSED),
    ("int beyond 64 bits", line(EXECUTION, steps=2**100), FAST),
    ("float given as an int beyond 64 bits", line(value=10**30), FAST),
    ("-0.0", line(value=Raw("-0.0")), FAST),
    ("NaN token", line(value=Raw("NaN")), REFUSED),
    ("129 code points of 2 bytes", line(event_id="é" * 129), REFUSED),
    ("128 code points of 4 bytes", line(event_id="😀" * 128), FAST),
    ("whitespace kept", line(event_id="  "), FAST),
    ("empty id", line(event_id=""), REFUSED),
    ("null for a required field", line(metric=None), REFUSED),
    ("kind missing", to_json({k: v for k, v in EVENT.items() if k != "kind"}, False, ",", ":").encode(), REFUSED),
    ("kind unknown", line(kind="Outcome"), REFUSED),
    ("lone surrogate escape", line(metric=Raw('"\\ud800"')), REFUSED),
    ("top level array", b"[" + line() + b"]", REFUSED),
    ("trailing garbage", line() + b"x", REFUSED),
    ("BOM", b"\xef\xbb\xbf" + line(), REFUSED),
    ("65 attributes, one key twice: 64 after", line(EXECUTION)[:-1] + b',"attributes":{'
     + b",".join(b'"%d":"v"' % i for i in range(64)) + b',"0":"w"}}', FAST),
    ("1001 tool calls", line(EXECUTION, tool_calls=[{"tool": "t", "status": "ok"}] * 1001), REFUSED),
    ("a memoryview (msgspec reads any buffer)", memoryview(line()), REFUSED),
    ("a bytearray", bytearray(line()), FAST),
]


@pytest.mark.parametrize(("case", "raw", "path"), CASES, ids=[c[0] for c in CASES])
def test_known_differences_are_closed(case: str, raw: bytes | str, path: str) -> None:
    got = assert_same_outcome(raw)
    if path == REFUSED:
        assert got is None
    else:
        assert isinstance(got, msgspec.Struct if path == FAST else BaseModel)


def test_size_limit_comes_first_with_the_same_message() -> None:
    raw = line(metric="é" * 200)
    assert read_event(raw, max_bytes=len(raw)).metric == "é" * 200
    with pytest.raises(EventError) as expected:
        decode_event(raw, max_bytes=len(raw) - 1)
    with pytest.raises(EventError) as refused:
        read_event(raw, max_bytes=len(raw) - 1)
    assert refused.value.reason == expected.value.reason
    assert refused.value.reason.endswith(f"over the limit of {len(raw) - 1} bytes")
    text = raw.decode()  # a str counts characters, as in decode_event
    assert read_event(text, max_bytes=len(text)).metric == "é" * 200


@pytest.mark.parametrize("extra", [b"", b',"zz":1'])
def test_decoded_events_copy_and_pickle(extra: bytes) -> None:
    raw = line(EXECUTION, occurred_at="2026-11-02T01:00:00.5+01:00", llm_calls=[
        {"provider": "p", "model": "m", "input_tokens": 1, "output_tokens": 2}])[:-1] + extra + b"}"
    event = read_event(raw)
    assert isinstance(event, msgspec.Struct) and event.kind == "execution"
    for again in (pickle.loads(pickle.dumps(event)), copy.deepcopy(event),
                  msgspec.structs.replace(event, event_id="e")):
        assert again == event
        assert_same_value(decode_event(raw), again, "<event>")


# ---- the engine cannot tell the difference --------------------------------------------------


def run_engine(lines: list[bytes], decode: Any) -> tuple[Any, ...]:
    engine = Engine(DetectionConfig(reference_days=1, rules=RuleThresholds(min_baseline_hours=12)))
    alerts: list[Alert] = []
    rollups: list[Rollup] = []
    for raw in lines:
        try:
            event = decode(raw)
        except EventError:
            alerts += engine.observe_invalid()
            continue
        alerts += engine.observe(event)
        rollups += engine.take_rollups()
    alerts += engine.flush()
    rollups += engine.take_rollups()
    return ([a.model_dump(mode="json") for a in alerts], [r.model_dump(mode="json") for r in rollups],
            engine.counters, engine.snapshot())


def test_engine_gives_the_same_alerts_and_rollups_either_way() -> None:
    onset = T0 + timedelta(hours=26)
    agents = default_agents(3, rate_per_hour=40, seed=2)
    incidents = [Incident("escalation_rate_rise", agents[0].agent_id, onset),
                 Incident("tool_error_rate", agents[1].agent_id, onset),
                 Incident("invalid_events", None, onset + timedelta(hours=2), magnitude=0.2, duration_h=2)]
    offsets = [timezone(timedelta(hours=h, minutes=m)) for h, m in ((0, 0), (5, 30), (-8, 0), (1, 0))]
    lines: list[bytes] = []
    valid: list[bytes] = []
    for i, data in enumerate(generate(agents, T0, 1.5, incidents=incidents, seed=7)):
        try:
            event = validate_event(data)
        except EventError:
            lines.append(json.dumps(data).encode())
            continue
        local = event.occurred_at.astimezone(offsets[i % len(offsets)])  # the same instant
        lines.append(encode_event(event.model_copy(update={"occurred_at": local})))
        valid.append(lines[-1])
    slow = run_engine(lines, decode_event)
    fast = run_engine(lines, read_event)
    assert fast == slow  # alerts, rollups (with the review samples' timestamps), counters, state
    alerts, rollups, counters, _ = slow
    assert counters["invalid"] > 0 and any(r["review"] for r in rollups)
    assert {"escalation_rate_rise", "tool_error_rate"} <= {a["rule"] for a in alerts}
    assert all(isinstance(read_event(raw), msgspec.Struct) for raw in valid)  # the fast path did the work
