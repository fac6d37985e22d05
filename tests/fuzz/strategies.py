"""Hypothesis strategies for the fuzz tests: the content of a run directory's files, hostile on purpose.

Two kinds of content:
  records  JSON objects shaped like the real vocabularies (the event classes of aw_tui/model/events.py, the
           commands of aw_tui/model/commands.py, the seed's ledger.json), with field values that are sometimes
           right, sometimes out of range, of the wrong type or missing, in any order, referring to ids that
           collide on purpose (a gate resolved before it opens, an agent that is its own parent, a step reported
           twice, events after the run ended).
  bytes    those records encoded as JSON lines in several ways (NaN/Infinity tokens, \\u escapes, CRLF,
           pretty-printed over several lines) mixed with raw junk: torn last lines, invalid UTF-8, NUL bytes,
           blank lines, lines over the size limit, arrays and scalars instead of objects, deep nesting.

Field values are drawn from each event class's own field annotations, so a field added to an event is fuzzed
without touching this file.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from hypothesis import strategies as st

from aw_tui.model import commands as cm
from aw_tui.model import events as ev
from aw_tui.model.state import MalformedLine

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)

EVENT_CLASSES: dict[str, type] = {cls.model_fields["type"].default: cls for cls in ev.KNOWN_EVENT_CLASSES}
STAMPED_FIELDS = ("seq", "ts", "type")
# A few ids shared by every kind of reference, so events keep meeting each other's ids: an agent named like a
# phase, a gate resolved before it is opened, an agent that names itself as its parent.
IDS = ("a1", "g1", "p1")
ID_FIELDS = frozenset({"id", "agent", "parent", "phase", "call_id", "command_id", "instruction_id", "gate_id"})
FUTURE_EVENT_TYPES = ("future.thing", "run.created.v2", "agent.spawned", "RUN.CREATED", "log ")

# Strings that have broken terminal UIs before: markup, control characters, bidi overrides, lone surrogates
# (legal in JSON as \\ud800), very long words, format directives.
NASTY_TEXT = (
    "", " ", "[bold]bold[/bold]", "[/]", "[red", "[link=file:///etc/passwd]x[/link]", "\x00", "a\nb\nc", "\r\n",
    "\t\x1b[31mred\x1b[0m", "é漢字🙂", "\u202eevil", "\ud800", "%s {0} {}", "x" * 3000, "-" * 200, "../../etc/passwd",
    "steps/0001_analyst_plan.md", "/", "NaN",
)
# Around the bounds the event model sets, beyond a float (10**400), and other classic overflows.
HUGE_INTS = (-1, -(2**63), 2**31, 2**53 + 1, 2**63, ev.MAX_COUNT, ev.MAX_COUNT + 1, 10**30, 10**300, 10**400)
ODD_FLOATS = (math.nan, math.inf, -math.inf, -0.0, -1.5, 5e-324, 1e308, ev.MAX_MS, ev.MAX_MS * 2, ev.MAX_COST, 0.1)
# Step report paths: the run's own files, ways out of the run, names no file system takes.
PATHS = ("steps/0001_analyst_plan.md", "steps/missing.md", "steps", "../outside.md", "/etc/hostname", "a\x00b",
         "steps/" + "n" * 300 + ".md", "", ".", "steps/0001_analyst_plan.md/x")
ODD_TIMESTAMPS = (
    "2026-04-01T12:00:00Z", "2026-04-01T12:00:00", "2026-04-01T12:00:00+05:30", "2026-04-01T12:00:00.123456-11:00",
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59-12:00",
    "1970-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "yesterday", "", 0, -1, 1e10, 253402300800, True, None, [],
)  # fmt: skip


# --- values -----------------------------------------------------------------------------------------------------
# Strategies are built once, here: Hypothesis validates each strategy object the first time it draws from it,
# and building them per draw cost most of the run time.

@st.composite
def _usually(draw: st.DrawFn, common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any],
             rolls: st.SearchStrategy[int], odds: int) -> Any:  # fmt: skip
    return draw(common if draw(rolls) < odds else rare)  # roll 0, which Hypothesis favours, is the common case


def usually(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], odds: int = 4) -> st.SearchStrategy[Any]:
    """`common`, except one time in `odds + 1` `rare`. (st.one_of would count a repeated strategy only once.)"""
    return _usually(common, rare, st.integers(0, odds), odds)


TEXTS = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=12))
INTS = usually(st.one_of(st.integers(0, 40), st.integers(0, 10**7)), st.sampled_from(HUGE_INTS), odds=6)
FLOATS = usually(st.floats(0, 1e6), st.sampled_from(ODD_FLOATS), odds=6)
TIMESTAMPS = usually(st.integers(0, 10**6).map(lambda s: (T0 + timedelta(seconds=s)).isoformat()),
                     st.sampled_from(ODD_TIMESTAMPS), odds=8)  # fmt: skip
JSON_SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXTS)


def _json_values(max_leaves: int) -> st.SearchStrategy[Any]:
    return st.recursive(
        JSON_SCALARS,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXTS, inner, max_size=3)),
        max_leaves=max_leaves,
    )


JSON_VALUES = _json_values(6)  # any JSON value (NaN and Infinity included), small
SMALL_JSON = _json_values(2)
LOOSE_NUMBERS = st.one_of(INTS, FLOATS, TEXTS, SMALL_JSON)  # where a number belongs: any number, or anything

_ROLE_SETTINGS = st.fixed_dictionaries({}, optional={
    "model": st.one_of(st.sampled_from(["scripted/worker", "openai/gpt-5-mini", "a/b/c", "/", ""]), TEXTS),
    "thinking": TEXTS, "context_limit": LOOSE_NUMBERS,
})  # fmt: skip
# RunCreated.settings: the shape aw_tui/model/settings.py writes, with any values, or any object at all.
RUN_SETTINGS = st.one_of(
    st.fixed_dictionaries({}, optional={
        "analyst": st.one_of(_ROLE_SETTINGS, SMALL_JSON), "worker": st.one_of(_ROLE_SETTINGS, SMALL_JSON),
        "budget": st.one_of(st.fixed_dictionaries({}, optional={"max_cost_usd": LOOSE_NUMBERS,
                                                                "max_tokens": LOOSE_NUMBERS}), SMALL_JSON),
        "limits": st.one_of(st.fixed_dictionaries({}, optional={"max_autonomous_hours": LOOSE_NUMBERS}), SMALL_JSON),
        "tool_policy": SMALL_JSON,
    }),
    st.dictionaries(TEXTS, SMALL_JSON, max_size=3),
)  # fmt: skip
ID_VALUES = usually(st.sampled_from(IDS), TEXTS, odds=6)
_BY_NAME = {
    **dict.fromkeys(ID_FIELDS, ID_VALUES),
    "settings": RUN_SETTINGS,
    "path": st.one_of(st.sampled_from(PATHS), TEXTS),
    "artifact": st.one_of(st.sampled_from(PATHS), TEXTS),
}


def _for_annotation(name: str, annotation: Any) -> st.SearchStrategy[Any]:
    """A value of the field's declared type, drawn from the nasty ends of that type."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    origin = typing.get_origin(annotation)
    if origin is Annotated:  # a constrained type (events.Count): fuzz the type, constraints are what we test
        return _for_annotation(name, typing.get_args(annotation)[0])
    if origin is Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_for_annotation(name, arm) for arm in typing.get_args(annotation)))
    if origin is list:
        (item,) = typing.get_args(annotation)
        return st.lists(_for_annotation(name, item), max_size=4)
    if origin is dict:
        return st.dictionaries(TEXTS, _for_annotation(name, typing.get_args(annotation)[1]), max_size=4)
    simple = {type(None): st.none(), bool: st.booleans(), int: INTS, float: st.one_of(FLOATS, INTS), str: TEXTS,
              datetime: TIMESTAMPS}  # fmt: skip
    return simple.get(annotation, JSON_VALUES)


@dataclass(frozen=True)
class FieldPlan:
    name: str
    required: bool
    typed: st.SearchStrategy[Any]  # a value of the declared type
    loose: st.SearchStrategy[Any]  # mostly that, now and then a value of any type at all


def _plan(name: str, annotation: Any, required: bool) -> FieldPlan:
    typed = _for_annotation(name, annotation)
    return FieldPlan(name, required, typed, usually(typed, SMALL_JSON, odds=3))


def _plans(model: Any) -> list[FieldPlan]:
    return [_plan(n, f.annotation, f.is_required()) for n, f in model.model_fields.items() if n not in STAMPED_FIELDS]


EVENT_PLANS = {event_type: _plans(cls) for event_type, cls in EVENT_CLASSES.items()}
COMMAND_PLANS = [_plan(n, f.annotation, f.is_required()) for n, f in cm.Command.model_fields.items()]

# --- records ----------------------------------------------------------------------------------------------------

_DICE = {n: st.integers(0, n - 1) for n in (2, 3, 4, 6, 8, 10, 16)}


def one_in(draw: st.DrawFn, n: int) -> bool:
    """True about one time in n. Hypothesis favours 0 (the simplest choice), so 0 is the common outcome."""
    return draw(_DICE[n]) == n - 1


EVENT_TYPES = usually(st.sampled_from(sorted(EVENT_CLASSES)), st.sampled_from(FUTURE_EVENT_TYPES), odds=12)
NEWER_WRITER_KEYS = st.dictionaries(st.sampled_from(["schema", "version", "extra", "v2_field"]), SMALL_JSON, max_size=2)
SEQ_STEPS = usually(st.just(1), st.integers(-5, 6), odds=10)  # mostly the next seq; repeats, gaps, steps back
STAMPED_NAMES = st.sampled_from(STAMPED_FIELDS)
# Short stories about one gate, agent or phase: told in order, or in the orders a damaged log tells them.
STORIES = st.sampled_from([
    ("gate.opened", "gate.resolved"),
    ("agent.started", "tool.started", "tool.finished", "agent.usage", "agent.finished", "step.report"),
    ("agent.started", "llm.attempt", "agent.usage", "agent.finished"),
    ("phase.declared", "phase.started", "phase.finished"),
    ("run.state", "agent.started", "gate.opened"),  # the run ended, and the log goes on
    ("gate.resolved", "gate.opened", "gate.resolved", "gate.resolved"),  # answered before it opened, then twice
    ("agent.usage", "tool.finished", "agent.finished", "agent.started", "agent.finished"),  # spent before it began
])
ENDED_STATES = st.sampled_from(sorted(ev.TERMINAL_STATES))
ODD_SEQS = st.sampled_from((0, -1, 2**63, 10**30, "7", 7.0, 7.5, True, None))


@st.composite
def event_records(draw: st.DrawFn, seq: Any = 1, event_type: str | None = None) -> dict[str, Any]:
    """One events.jsonl object: a known event type (or an unknown one) with fuzzed fields."""
    if event_type is None:
        event_type = draw(EVENT_TYPES)
    record: dict[str, Any] = {"seq": seq, "ts": draw(TIMESTAMPS), "type": event_type}
    plans = EVENT_PLANS.get(event_type)
    # Most records are well formed apart from their values' extremes; in the others, any field may be missing or
    # of any type.
    damaged = one_in(draw, 4)
    for plan in plans or ():
        if damaged:
            if not one_in(draw, 6):
                record[plan.name] = draw(plan.loose)
        elif plan.required or one_in(draw, 2):
            record[plan.name] = draw(plan.typed)
    if plans is None or one_in(draw, 8):
        record.update(draw(NEWER_WRITER_KEYS))  # what a newer writer might add: unknown keys, a schema version
    if damaged and one_in(draw, 10):
        del record[draw(STAMPED_NAMES)]
    elif damaged and one_in(draw, 10):
        record["type"] = draw(SMALL_JSON)
    return record


@st.composite
def event_record_streams(draw: st.DrawFn, max_size: int = 20) -> list[dict[str, Any]]:
    """A whole events.jsonl as objects: usually opened by run.created, then anything in any order."""
    records: list[dict[str, Any]] = []
    last_seq = 0
    if not one_in(draw, 4):
        records.append(draw(event_records(1, "run.created")))
        last_seq = 1
    for _ in range(draw(st.integers(0, max_size))):
        seq = draw(ODD_SEQS) if one_in(draw, 16) else last_seq + draw(SEQ_STEPS)
        if records and one_in(draw, 6):
            # An event met again under a new seq: a gate resolved twice, a step reported twice, a second start.
            records.append({**records[-1 - draw(st.integers(0, len(records) - 1))], "seq": seq})  # recent ones
        elif type(seq) is int and one_in(draw, 3):
            # A story told in order, about one gate, agent or phase (which the rest of the stream then disturbs).
            story, subject = draw(STORIES), draw(ID_VALUES)
            for offset, event_type in enumerate(story):
                record = draw(event_records(seq + offset, event_type))
                record.update({key: subject for key in ("id", "agent") if key in record})
                if event_type == "run.state":
                    record["state"] = draw(ENDED_STATES)
                records.append(record)
            seq += len(story) - 1
        else:
            records.append(draw(event_records(seq)))
        if type(seq) is int:
            last_seq = seq
    return records


@st.composite
def decoded_event_streams(draw: st.DrawFn, max_size: int = 30) -> list[Any]:
    """What the reducer is fed: every record parse_event accepts, as an Event; the rest as MalformedLine."""
    out: list[Any] = []
    for line_no, record in enumerate(draw(event_record_streams(max_size)), 1):
        try:
            out.append(ev.parse_event(record))
        except ev.EventError as error:
            out.append(MalformedLine(line_no, 0, str(error)))
    return out


ODD_COMMAND_NAMES = st.sampled_from(["pause ", "APPROVE", "delete", "", "approve_all"])


@st.composite
def command_records(draw: st.DrawFn) -> dict[str, Any]:
    """One control.jsonl object: a real command name (or not) with fuzzed fields."""
    record: dict[str, Any] = {}
    for plan in COMMAND_PLANS:
        if not one_in(draw, 10 if plan.required else 2):
            record[plan.name] = draw(plan.loose)
    if one_in(draw, 6):
        record["cmd"] = draw(ODD_COMMAND_NAMES)
    if one_in(draw, 10):
        record["text"] = "y" * (cm.MAX_TEXT_CHARS + 1)
    return record


# The seed's ledger.json step fields (reference/seeds.md), with the types it writes.
LEDGER_STEP_FIELDS: dict[str, Any] = {
    "step": int, "role": Literal["ANALYST", "WORKER", "analyst", "Other", ""], "phase": str, "model": str,
    "thinking_level": str, "in": int, "out": int, "cache_read": int, "cache_write": int, "reasoning": int,
    "cost": float, "cost_known": bool, "wall_ms": float, "llm_ms": float, "tool_ms": float, "external_ms": float,
    "tool_ms_by_name": dict[str, float], "tool_counts": dict[str, int], "tool_errors": int, "state_after": str,
    "started_at": datetime, "finished_at": datetime, "artifact": str, "context_tokens": int,
    "context_window": int, "cumulative_model_in": int,
}  # fmt: skip
LEDGER_COMPACTION_FIELDS: dict[str, Any] = {
    "started_at": datetime, "finished_at": datetime, "model": str, "phase": str, "role": str, "wall_ms": float,
    "tokens_before": int, "status": Literal["completed", "failed"], "error": str,
}  # fmt: skip


def _fuzzed_objects(shape: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of `shape`, each key missing now and then, each value loose."""
    return st.fixed_dictionaries({}, optional={name: _plan(name, kind, False).loose for name, kind in shape.items()})


LEDGER_STEPS = _fuzzed_objects(LEDGER_STEP_FIELDS)
LEDGER_COMPACTIONS = _fuzzed_objects(LEDGER_COMPACTION_FIELDS)
LEDGER_CONFIGS = st.fixed_dictionaries({}, optional={
    "taskTitle": TEXTS, "taskDescription": TEXTS, "cwd": TEXTS, "startedAt": TIMESTAMPS,
    "analystModel": st.one_of(TEXTS, SMALL_JSON), "workerThinkingLevel": SMALL_JSON,
    "analystContextLimitTokens": LOOSE_NUMBERS, "toolPolicy": SMALL_JSON, "maxAutonomousHours": LOOSE_NUMBERS,
})  # fmt: skip
LEDGER_DOCUMENTS = st.fixed_dictionaries({}, optional={
    "task_id": TEXTS,
    "task_title": st.one_of(TEXTS, SMALL_JSON),
    "started_at": TIMESTAMPS,
    "config": usually(LEDGER_CONFIGS, SMALL_JSON, odds=3),
    "totals": st.one_of(st.dictionaries(TEXTS, st.one_of(LEDGER_STEPS, SMALL_JSON), max_size=3), SMALL_JSON),
    "steps": usually(st.lists(usually(LEDGER_STEPS, SMALL_JSON, odds=5), max_size=5), SMALL_JSON, odds=4),
    "compactions": usually(st.lists(usually(LEDGER_COMPACTIONS, SMALL_JSON), max_size=3), SMALL_JSON, odds=3),
    "legacy_events": st.one_of(st.lists(SMALL_JSON, max_size=3), SMALL_JSON),
})  # fmt: skip
# The content of a seed's ledger.json, as a JSON value: mostly its shape with fuzzed parts; now and then the
# seed's oldest format (an array of events) or no ledger at all.
LEDGER_JSON = usually(LEDGER_DOCUMENTS, st.one_of(st.lists(SMALL_JSON, max_size=4), JSON_VALUES), odds=8)


def ledger_documents() -> st.SearchStrategy[Any]:
    return LEDGER_JSON


# --- bytes ------------------------------------------------------------------------------------------------------

# Raw lines that are not JSON objects, or not JSON, or not text.
JUNK_LINES = (
    b'{"seq": 1, "type": "log", "message": "\\ud800"}', b"[" * 50_000, b'{"seq": ' + b"9" * 5000 + b"}",
    b"\xff\xfe\xfd", b'{"seq": Infinity, "type": "log", "message": "m"}', b"", b"   ", b"\r", b"[1, 2, 3]", b"null",
    b'"a string"', b"{", b'{"seq": 1, "type": "log", "message": "torn', b'{"type": "log", "message": "\xc3("}',
    b"\x00\x00\x00", b'{"seq": 1,\x00 "type": "log"}', b'{"a": "\x00"}', b"\xef\xbb\xbf{}", b"{}", b'{"": {}}',
    b"NaN", b'{"seq": NaN}', b"{'single': 'quotes'}", b'{"dup": 1, "dup": 2}', b"\t", b"\x0b\x0c", b"[]", b"true",
    b"42", b"1" * 5000, b'{"a":' * 50_000, b"x" * 3000, b'{"message": "' + b"y" * 3000 + b'"}',
)  # fmt: skip


def encoded_line(draw: st.DrawFn, record: Any) -> bytes:
    """One JSON value as bytes, the way some writer might have put it (without the line break)."""
    style = draw(_DICE[10])
    if style == 9:
        text = json.dumps(record, ensure_ascii=True)  # \\u escapes, lone surrogates survive
    elif style == 8:
        text = json.dumps(record, indent=1)  # pretty-printed: one object over several lines
    else:
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    # A lone surrogate cannot be UTF-8 encoded: the writer that produced it wrote something else instead.
    return text.encode("utf-8", errors="surrogatepass")


JUNK = usually(st.sampled_from(JUNK_LINES), st.binary(max_size=20), odds=3)
LINE_ENDINGS = st.sampled_from([b"\n", b"\n", b"\r\n"])


def jsonl_bytes(draw: st.DrawFn, records: list[Any]) -> bytes:
    """A JSONL file holding `records` in order, with junk lines between them, CRLF or LF line ends, and perhaps
    a torn last line."""
    lines: list[bytes] = []
    for record in records:
        while one_in(draw, 4):
            lines.append(draw(JUNK))
        lines.append(encoded_line(draw, record))
    if one_in(draw, 2):
        lines.append(draw(JUNK))
    ending = draw(LINE_ENDINGS)
    content = b"".join(line + ending for line in lines)
    if content and one_in(draw, 4):
        # A writer that died mid-line: cut anywhere in the last line (or keep it whole without its newline).
        last_start = content.rfind(b"\n", 0, len(content) - 1) + 1
        content = content[: draw(st.integers(last_start, len(content) - 1))]
    return content


@st.composite
def events_file_bytes(draw: st.DrawFn, max_size: int = 20) -> bytes:
    if one_in(draw, 8):
        return draw(st.binary(max_size=300))  # no structure at all
    return jsonl_bytes(draw, draw(event_record_streams(max_size)))


@st.composite
def control_file_bytes(draw: st.DrawFn, max_size: int = 12) -> bytes:
    if one_in(draw, 8):
        return draw(st.binary(max_size=200))
    return jsonl_bytes(draw, draw(st.lists(command_records(), max_size=max_size)))


@st.composite
def ledger_file_bytes(draw: st.DrawFn) -> bytes:
    """ledger.json: a fuzzed document encoded somehow, or bytes that are no JSON document at all."""
    kind = draw(_DICE[10])
    if kind == 9:
        return draw(JUNK)
    encoded = encoded_line(draw, draw(LEDGER_JSON))
    if kind == 8:
        encoded = encoded[: draw(st.integers(0, len(encoded)))]  # a copy cut short
    return encoded
