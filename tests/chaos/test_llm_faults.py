"""Faults injected by a real mock LLM server (llmock) into real analyst/worker runs.

Each run is started from a user config that points both roles at llmock's OpenAI-compatible endpoint; the fault
hits the worker's first model call. Whatever the fault, the run must end in a defined state (finished after a
retry, or aborted from a failure gate whose message names the fault), every HTTP attempt must be an `llm.attempt`
event, and the ledger must hold exactly the usage of the responses the server delivered whole: a failed attempt
adds nothing, a successful one adds what the server said it used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from llmock.journal import RequestRecord
from llmock.pytest_plugin import LLMock
from llmock.scenarios import Fail, Match, StreamFault, ToolFault

from aw_tui.model import events as ev
from aw_tui.store.run import open_run
from tests.chaos.kit import (
    MAX_ATTEMPTS,
    MAX_RETRY_AFTER_S,
    TIMEOUT_S,
    WORKER_MODEL,
    ChaosRun,
    ServedRequest,
    run_from_user_config,
    script_a_whole_run,
    write_user_config,
)

pytestmark = pytest.mark.chaos

WORKER = Match(model=WORKER_MODEL)
WORKER_STREAM = Match(model=WORKER_MODEL, stream=True)
QUOTA_MESSAGE = "You exceeded your current quota, please check your plan and billing details."


@dataclass(frozen=True)
class Fault:
    id: str
    inject: Callable[[LLMock], Any]
    first_call: tuple[str, ...]  # the llm.attempt outcomes of the worker's first model call, in order
    words: str  # what each failed attempt's error says
    final: str = "FINISHED"
    gate_says: str = ""  # for a run that gives up: how the failure gate sums it up
    stream: bool = False
    # A stream fault lands on a request that is answered, so the reply it hit is used up: script another copy.
    consumes_reply: bool = False
    timeout_s: float = TIMEOUT_S


FAULTS = [
    Fault("429-retry-after", lambda m: m.add(Fail(429, retry_after=0.2, times=2, match=WORKER)),
          ("rate_limited", "rate_limited", "ok"), "(HTTP 429)"),
    Fault("500", lambda m: m.add(Fail(500, retry_after=0.1, match=WORKER)), ("server_error", "ok"), "(HTTP 500)"),
    Fault("503-outage", lambda m: m.add(Fail(503, retry_after=0.1, times=None, match=WORKER)),
          ("server_error",) * MAX_ATTEMPTS, "(HTTP 503)", final="ABORTED",
          gate_says=f"server error after {MAX_ATTEMPTS} attempts"),
    Fault("401-refused", lambda m: m.add(Fail(401, times=None, match=WORKER)),
          ("auth_error",), "(HTTP 401)", final="ABORTED", gate_says="refused the credentials (check OPENAI_API_KEY)"),
    Fault("quota-used-up",
          lambda m: m.add(Fail(429, times=None, code="insufficient_quota", message=QUOTA_MESSAGE, match=WORKER)),
          ("rate_limited",), "exceeded your current quota", final="ABORTED", gate_says="quota is used up (not retried"),
    Fault("dropped-mid-stream", lambda m: m.add(StreamFault("disconnect", after_chunks=2, match=WORKER_STREAM)),
          ("connection_error", "ok"), "the connection dropped after", stream=True, consumes_reply=True),
    Fault("truncated-stream", lambda m: m.add(StreamFault("truncate", after_chunks=2, match=WORKER_STREAM)),
          ("connection_error", "ok"), "without a finish reason (truncated)", stream=True, consumes_reply=True),
    Fault("corrupt-chunk", lambda m: m.add(StreamFault("malformed", after_chunks=2, match=WORKER_STREAM)),
          ("server_error", "ok"), "a chunk is not valid JSON", stream=True, consumes_reply=True),
    Fault("stall-past-timeout",
          lambda m: m.add(StreamFault("stall", after_chunks=2, stall_seconds=30.0, match=WORKER_STREAM)),
          ("timeout", "ok"), "the stream stalled after", stream=True, consumes_reply=True, timeout_s=2.0),
]  # fmt: skip


def served_whole(record: RequestRecord) -> bool:
    """The server answered and delivered the answer as it meant to (no error, no cut, no corruption)."""
    return record.status < 400 and record.completed and record.fault is None


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
async def test_a_fault_ends_in_a_defined_state_with_every_attempt_recorded_and_billed_once(
    fault: Fault, mock: LLMock, served: list[ServedRequest], tmp_path
):
    write_user_config(mock.base_url("openai"), stream=fault.stream, timeout_s=fault.timeout_s)
    fault.inject(mock)
    script_a_whole_run(mock, tool_call_copies=2 if fault.consumes_reply else 1)

    run = await run_from_user_config(tmp_path)

    # A defined end: finished after retries, or aborted from a gate that says what went wrong.
    assert run.final == fault.final
    worker = run.attempts_of(WORKER_MODEL)
    # A finished run's worker makes one more call: the report after its tool result.
    later_calls = ("ok",) if fault.final == "FINISHED" else ()
    assert tuple(a.outcome for a in worker) == fault.first_call + later_calls
    for attempt in worker:
        if attempt.outcome != "ok":
            assert fault.words in (attempt.error or ""), attempt.error
    if fault.final == "FINISHED":
        assert run.failure_gates == []
        # The worker's tool ran once, with the arguments of the whole reply: a cut tool call was never executed.
        reads = run.of_type(ev.ToolStarted)
        assert [(t.tool, t.summary) for t in reads] == [("read", "read notes.txt")]
        assert [t.error for t in run.of_type(ev.ToolFinished)] == [None]
    else:
        [gate] = run.failure_gates
        assert fault.words in gate.body and fault.gate_says in gate.body and "openai/chaos-worker" in gate.body
        assert run.state.agents[gate.requested_by].status == "failed"
        # The engine stopped trying: nothing reached the server after the last failed attempt.
        assert len([r for r in mock.requests if r.model == WORKER_MODEL]) == len(fault.first_call)

    records = mock.requests
    assert_every_attempt_is_an_event(run, records)
    assert_billed_once(run, records, served)
    # llmock's own judgement: Retry-After waited for, nothing non-retryable retried, no cut stream accepted.
    mock.assert_resilient()


def assert_every_attempt_is_an_event(run: ChaosRun, records: list[RequestRecord]) -> None:
    attempts = run.attempts
    assert len(attempts) == len(records), (len(attempts), [r.fault or r.status for r in records])
    assert [a.outcome == "ok" for a in attempts] == [served_whole(r) for r in records]
    # Each wait between attempts is the one the attempt announced: the server's Retry-After when it sent one
    # (up to the configured cap), else backoff.
    assert run.sleep.asked == [a.retry_in_s for a in attempts if a.retry_in_s is not None]
    for attempt, record in zip(attempts, records, strict=True):
        if attempt.retry_in_s is not None and record.retry_after is not None:
            assert attempt.retry_in_s == pytest.approx(min(record.retry_after, MAX_RETRY_AFTER_S))


def assert_billed_once(run: ChaosRun, records: list[RequestRecord], served: list[ServedRequest]) -> None:
    assert len(served) == len(records)
    delivered = [wire.usages for record, wire in zip(records, served, strict=True) if served_whole(record)]
    assert all(len(usages) == 1 for usages in delivered), delivered
    expected = [(u[0]["prompt_tokens"], u[0]["completion_tokens"]) for u in delivered]
    billed = [(u.input + u.cache_read + u.cache_write, u.output) for u in run.of_type(ev.AgentUsage)]
    assert billed == expected

    total_in, total_out = sum(i for i, _ in expected), sum(o for _, o in expected)
    assert total_in > 0 and total_out > 0
    # The ledger rebuilt from events.jsonl alone, and the derived ledger.json, agree with what was delivered.
    replayed = open_run(run.writer.paths.root, use_checkpoint=False).state.ledger.total
    assert (replayed.input + replayed.cache_read + replayed.cache_write, replayed.output) == (total_in, total_out)
    on_disk = json.loads(run.writer.paths.ledger_json.read_text())["total"]
    assert (on_disk["in"] + on_disk["cache_read"] + on_disk["cache_write"], on_disk["out"]) == (total_in, total_out)


async def test_malformed_tool_arguments_go_back_to_the_model_and_the_run_goes_on(
    mock: LLMock, served: list[ServedRequest], tmp_path
):
    write_user_config(mock.base_url("openai"), stream=False)
    # The worker's first reply calls `read` with its JSON arguments cut in half.
    mock.add(ToolFault("malformed_arguments", match=Match(model=WORKER_MODEL, tools=True)))
    script_a_whole_run(mock)

    run = await run_from_user_config(tmp_path)

    assert run.final == "FINISHED"
    assert [a.outcome for a in run.attempts] == ["ok"] * 4  # a model's mistake is not a failed call
    [finished] = run.of_type(ev.ToolFinished)
    assert finished.tool == "read" and "the arguments are not valid JSON" in (finished.error or "")
    # The model was told, in the tool result of its next request.
    worker_requests = [r for r in mock.requests if r.model == WORKER_MODEL]
    tool_messages = [m for m in worker_requests[1].body["messages"] if m.get("role") == "tool"]
    assert len(tool_messages) == 1 and "not valid JSON" in tool_messages[0]["content"]
    records = mock.requests
    assert_every_attempt_is_an_event(run, records)
    assert_billed_once(run, records, served)
    mock.assert_resilient()
