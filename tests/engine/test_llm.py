"""The LLM adapter: one async call through litellm, usage and cost, thinking levels, the engine's own retries.

Everything runs offline: the scripted provider plays through litellm's real code path, and the few checks on
real model strings stop before any network call.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aw_tui.engine import llm
from aw_tui.engine.llm import Attempt, LlmError, RetryPolicy, complete, map_thinking
from aw_tui.engine.scripted import DEFAULT_PRICES, ScriptError, install_script, uninstall_script
from aw_tui.model.ledger import Usage

REPO = Path(__file__).resolve().parents[2]
USER = [{"role": "user", "content": "Fix the failing duration parser test."}]
READ = {
    "name": "read",
    "description": "Read a file",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
}
NO_JITTER = RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=30.0, jitter_s=0.0, max_retry_after_s=10.0)


@pytest.fixture
def litellm():
    yield llm.load_litellm()
    uninstall_script()


class Recorder:
    """Collects attempts and sleeps in one timeline, so the order (report, then wait) is checked too."""

    def __init__(self) -> None:
        self.timeline: list[tuple[str, object]] = []

    @property
    def attempts(self) -> list[Attempt]:
        return [item for kind, item in self.timeline if kind == "attempt"]  # type: ignore[misc]

    @property
    def sleeps(self) -> list[float]:
        return [item for kind, item in self.timeline if kind == "sleep"]  # type: ignore[misc]

    async def on_attempt(self, attempt: Attempt) -> None:
        self.timeline.append(("attempt", attempt))

    async def sleep(self, seconds: float) -> None:
        self.timeline.append(("sleep", seconds))


# --- import cost and offline tools ---------------------------------------------------------------------------


def test_importing_the_adapter_leaves_litellm_unloaded_until_the_first_call_and_tools_need_no_mcp():
    code = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["mcp"] = None  # tools must work without litellm's MCP gateway (its import would fail now)
        from aw_tui.engine import llm, scripted
        script = scripted.load_script({"roles": {"worker": [
            {"tool_calls": [{"id": "c1", "name": "read", "arguments": {"path": "a"}}]}]}})
        assert "litellm" not in sys.modules, "importing the adapter or loading a script imported litellm"
        scripted.install_script(script)
        tool = {"name": "read", "parameters": {"type": "object"}}
        done = asyncio.run(llm.complete([{"role": "user", "content": "go"}], model="scripted/worker", tools=[tool]))
        assert "litellm" in sys.modules
        print(done.tool_calls[0]["name"])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["read"]


def test_litellms_first_call_imports_are_made_once_offline_before_the_first_attempt():
    code = textwrap.dedent(
        """
        import asyncio, sys, threading
        network = []
        sys.addaudithook(lambda event, args: network.append(event) if event in (
            "socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "http.client.connect", "urllib.Request",
        ) else None)
        from aw_tui.engine import llm, scripted
        loads = []
        threads = [threading.Thread(target=lambda: loads.append(llm.load_litellm())) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(loads) == 6 and len(set(map(id, loads))) == 1, loads
        # Loading alone does not warm up: a process that never calls a model does not pay for it.
        assert "litellm.litellm_core_utils.default_encoding" not in sys.modules
        warm_ups = []
        warm_up = llm._warm_up
        llm._warm_up = lambda litellm: (warm_ups.append(1), warm_up(litellm))
        late = []
        acompletion = llm._litellm.acompletion

        async def first_attempts(**kwargs):
            before = set(sys.modules)
            try:
                return await acompletion(**kwargs)
            finally:
                late.extend(m for m in set(sys.modules) - before if m.startswith(("tiktoken", "litellm.proxy")))

        llm._litellm.acompletion = first_attempts
        scripted.install_script({"roles": {"worker": [{"text": "hi"}] * 8}})
        user = [{"role": "user", "content": "go"}]

        async def calls():
            return await asyncio.gather(*(llm.complete(user, model="scripted/worker") for _ in range(8)))

        done = asyncio.run(calls())
        assert len(warm_ups) == 1, "warmed up more than once"
        assert not late, f"litellm's first call still imported {sorted(set(late))}"
        assert not network, network
        assert threading.active_count() == 1, threading.enumerate()  # the warm-up left no logging thread behind
        print(" ".join(c.content for c in done))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["hi"] * 8
    assert out.stderr == ""  # nothing from the warm-up call on a screen


# --- litellm's logging: off while nobody reads it ------------------------------------------------------------


@pytest.fixture
def success_handlers(litellm, monkeypatch):
    """Counts litellm's async success handler runs (the logging `complete()` turns off)."""
    from litellm.litellm_core_utils.litellm_logging import Logging

    ran: list[str] = []
    original = Logging.async_success_handler

    async def counted(self, *args, **kwargs):
        ran.append(self.model)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Logging, "async_success_handler", counted)
    return ran


async def _until(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_litellm_logging_can_still_be_turned_off(litellm, success_handlers, monkeypatch):
    # The private hook llm.py relies on (see llm._find_internal_call_flag). If this fails, litellm moved it:
    # calls still work and cost the same, only slower; find the new switch or drop the hook.
    assert llm._internal_call_flag is not None, "litellm._internal_context.is_internal_call is gone"
    install_script({"roles": {"worker": [{"text": "a", "usage": {"input": 1000, "output": 100}}] * 2}})
    done = await complete(USER, model="scripted/worker")
    await _until(lambda: success_handlers, seconds=0.5)  # give a queued handler the chance to run
    assert success_handlers == []
    price = DEFAULT_PRICES["worker"]
    assert done.usage.cost == pytest.approx((1000 * price.input + 100 * price.output) / 1e6)
    assert done.usage.cost_known
    # Without the hook the handler runs: this test sees what it claims to see.
    monkeypatch.setattr(llm, "_internal_call_flag", None)
    again = await complete(USER, model="scripted/worker")
    await _until(lambda: success_handlers)
    assert success_handlers == ["worker"]
    assert again.usage == done.usage


async def test_a_callback_someone_registers_still_sees_every_call(litellm, success_handlers, monkeypatch):
    from litellm.integrations.custom_logger import CustomLogger

    seen: list[tuple[str, object]] = []

    class Recording(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            seen.append(("success", kwargs.get("response_cost")))

        async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
            seen.append(("failure", kwargs.get("exception").__class__.__name__))

    for name in llm._CALLBACK_LISTS:  # litellm files `callbacks` into its other lists: restore them all
        monkeypatch.setattr(litellm, name, [], raising=False)
    litellm.callbacks = [Recording()]
    turns = [{"error": "auth_error"}, {"text": "ok", "usage": {"input": 10, "output": 5}}]
    install_script({"roles": {"worker": turns}})
    with pytest.raises(LlmError):
        await complete(USER, model="scripted/worker")
    done = await complete(USER, model="scripted/worker")
    await _until(lambda: len(seen) >= 2)
    assert sorted(seen) == [("failure", "AuthenticationError"), ("success", pytest.approx(done.usage.cost))]
    assert success_handlers  # logged the ordinary way


# --- replies, usage and cost ---------------------------------------------------------------------------------


async def test_a_text_reply_with_usage_cache_and_reasoning_tokens_and_its_cost(litellm):
    install_script(
        {
            "roles": {
                "analyst": [
                    {
                        "text": "Plan: reproduce, then fix parse_duration.",
                        "reasoning_text": "Probably the minutes branch.",
                        "usage": {"input": 1000, "output": 200, "cache_read": 800, "cache_write": 100, "reasoning": 50},
                    }
                ]
            }
        }
    )
    done = await complete(USER, model="scripted/analyst")
    assert done.message == {
        "role": "assistant",
        "content": "Plan: reproduce, then fix parse_duration.",
        "tool_calls": [],
        "reasoning": "Probably the minutes branch.",
    }
    price = DEFAULT_PRICES["analyst"]
    cost = (1000 * price.input + 200 * price.output + 800 * price.cache_read + 100 * price.cache_write) / 1e6
    assert done.usage == Usage(
        input=1000, output=200, cache_read=800, cache_write=100, reasoning=50, cost=pytest.approx(cost)
    )
    assert done.usage.cost > 0 and done.usage.cost_known
    assert done.model == "scripted/analyst"
    assert done.finish_reason == "stop"
    assert done.duration_ms >= 0
    assert [(a.number, a.outcome, a.retry_in_s) for a in done.attempts] == [(1, "ok", None)]
    assert done.attempts[0].usage == done.usage


async def test_a_tool_call_reply_and_the_follow_up_with_its_result(litellm):
    provider = install_script(
        {
            "roles": {
                "worker": [
                    {
                        "tool_calls": [{"id": "c1", "name": "read", "arguments": {"path": "src/x.py"}}],
                        "usage": {"input": 40, "output": 8},
                    },
                    {"expect_tool_result": "c1", "text": "The bug is on line 3.", "usage": {"input": 90, "output": 12}},
                ]
            }
        }
    )
    first = await complete(USER, model="scripted/worker", tools=[READ])
    assert first.finish_reason == "tool_calls"
    assert first.content == ""
    assert first.tool_calls == [{"id": "c1", "name": "read", "arguments_json": '{"path": "src/x.py"}'}]
    # The loop appends Completion.message as it is; the adapter turns it back into the OpenAI shape.
    history = USER + [first.message, {"role": "tool", "tool_call_id": "c1", "content": "1\n2\n3 bug"}]
    second = await complete(history, model="scripted/worker", tools=[READ])
    assert second.content == "The bug is on line 3."
    sent = provider.calls[1].messages[1]
    assert sent["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "read", "arguments": '{"path": "src/x.py"}'}}
    ]
    assert sent.get("content") is None
    assert provider.calls[0].tools == ["read"]


async def test_an_empty_reply_is_returned_as_such(litellm):
    install_script({"roles": {"worker": [{"usage": {"input": 30, "output": 0}}]}})
    done = await complete(USER, model="scripted/worker")
    assert done.is_empty
    assert done.message["content"] == "" and done.tool_calls == []
    assert done.usage.input == 30 and done.usage.cost_known


async def test_a_model_without_a_price_costs_zero_and_says_the_cost_is_unknown(litellm):
    install_script({"roles": {"explorer": [{"text": "found it", "usage": {"input": 500, "output": 100}}]}})
    done = await complete(USER, model="scripted/explorer")
    assert done.usage == Usage(input=500, output=100, cost=0.0, cost_known=False)


async def test_the_thinking_level_reaches_the_provider_as_reasoning_effort(litellm):
    provider = install_script(
        {
            "prices": {"worker": {"input": 1, "output": 1, "supports_reasoning": False}},
            "roles": {"analyst": [{"text": "a"}, {"text": "b"}], "worker": [{"text": "c"}]},
        }
    )
    assert (await complete(USER, model="scripted/analyst", thinking="xhigh")).reasoning_effort == "high"
    assert (await complete(USER, model="scripted/analyst", thinking="off")).reasoning_effort is None
    assert (await complete(USER, model="scripted/worker", thinking="high")).reasoning_effort is None
    assert [call.reasoning_effort for call in provider.calls] == ["high", None, None]


def test_context_window_comes_from_the_price_map(litellm):
    install_script({"roles": {"analyst": []}})
    assert llm.context_window("scripted/analyst") == DEFAULT_PRICES["analyst"].context_window
    assert llm.context_window("scripted/nobody") is None


# --- thinking levels -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "level", "effort"),
    [
        ("gpt-5", "off", None),
        ("gpt-4o-mini", "high", None),  # no reasoning at all
        ("openai/my-local-model", "high", None),  # unknown to litellm
        ("gpt-5", "minimal", "minimal"),
        ("gpt-5", "medium", "medium"),
        ("gpt-5", "xhigh", "high"),  # gpt-5 has no xhigh
        ("openai/gpt-5", "xhigh", "high"),
        ("o3", "minimal", "low"),  # no per-level flags: low, medium, high
        ("o3", "xhigh", "high"),
        ("gpt-5.2", "minimal", "low"),  # minimal flagged false
        ("gpt-5.2", "xhigh", "xhigh"),  # xhigh flagged true
        ("gpt-5.5-pro", "low", "medium"),  # minimal and low flagged false
        ("anthropic/claude-sonnet-4-5", "high", "high"),
    ],
)
def test_map_thinking_clamps_to_what_the_model_supports(model, level, effort):
    assert map_thinking(model, level) == effort


def test_map_thinking_refuses_an_unknown_level():
    with pytest.raises(ValueError, match="unknown thinking level 'max'"):
        map_thinking("gpt-5", "max")


# --- retries -------------------------------------------------------------------------------------------------


async def test_a_429_waits_retry_after_up_to_the_cap_and_every_attempt_is_reported(litellm):
    provider = install_script(
        {
            "roles": {
                "worker": [
                    {"error": "rate_limit", "retry_after": 2},
                    {"error": "rate_limit", "retry_after": 120},
                    {"text": "ok", "usage": {"input": 10, "output": 2}},
                ]
            }
        }
    )
    rec = Recorder()
    done = await complete(USER, model="scripted/worker", policy=NO_JITTER, on_attempt=rec.on_attempt, sleep=rec.sleep)
    assert done.content == "ok"
    assert [(a.number, a.outcome, a.retry_in_s) for a in rec.attempts] == [
        (1, "rate_limited", 2.0),
        (2, "rate_limited", 10.0),  # asked for 120 s, capped at max_retry_after_s
        (3, "ok", None),
    ]
    assert [kind for kind, _ in rec.timeline] == ["attempt", "sleep", "attempt", "sleep", "attempt"]
    assert rec.sleeps == [2.0, 10.0]
    assert rec.attempts[0].usage is None and rec.attempts[2].usage == done.usage
    assert "rate_limit" in rec.attempts[0].error
    assert done.attempts == rec.attempts
    # One turn per attempt: litellm made no hidden retries of its own.
    assert provider.remaining() == {"worker": 0} and len(provider.calls) == 3


async def test_a_429_without_retry_after_backs_off(litellm):
    install_script({"roles": {"worker": [{"error": "rate_limit"}, {"text": "ok"}]}})
    rec = Recorder()
    await complete(USER, model="scripted/worker", policy=NO_JITTER, on_attempt=rec.on_attempt, sleep=rec.sleep)
    assert rec.sleeps == [1.0]


async def test_server_errors_back_off_exponentially_then_give_up_after_max_attempts(litellm):
    provider = install_script(
        {
            "roles": {
                "worker": [{"error": "server_error"}, {"error": "server_error", "status": 503}]
                + [{"error": "server_error"}] * 2
                + [{"text": "never"}]
            }
        }
    )
    rec = Recorder()
    with pytest.raises(LlmError) as caught:
        await complete(USER, model="scripted/worker", policy=NO_JITTER, on_attempt=rec.on_attempt, sleep=rec.sleep)
    error = caught.value
    assert error.kind == "server_error" and error.retryable
    assert str(error).startswith("scripted/worker: server error after 4 attempts: injected server_error")
    assert "\n" not in str(error)
    assert rec.sleeps == [1.0, 2.0, 4.0]
    assert [(a.outcome, a.retry_in_s) for a in error.attempts] == [
        ("server_error", 1.0),
        ("server_error", 2.0),
        ("server_error", 4.0),
        ("server_error", None),
    ]
    assert error.attempts == rec.attempts
    assert provider.remaining() == {"worker": 1}


async def test_backoff_is_capped_and_jittered(litellm):
    install_script({"roles": {"worker": [{"error": "connection_error"}] * 3 + [{"text": "ok"}]}})
    rec = Recorder()
    policy = RetryPolicy(base_delay_s=10.0, max_delay_s=15.0, jitter_s=0.5)
    await complete(
        USER, model="scripted/worker", policy=policy, on_attempt=rec.on_attempt, sleep=rec.sleep, rng=random.Random(7)
    )
    assert [a.outcome for a in rec.attempts] == ["connection_error"] * 3 + ["ok"]
    for sleep, floor in zip(rec.sleeps, [10.0, 15.0, 15.0], strict=True):
        assert floor <= sleep <= floor + 0.5
    assert [a.retry_in_s for a in rec.attempts[:3]] == rec.sleeps


async def test_an_injected_timeout_is_retried(litellm):
    install_script({"roles": {"worker": [{"error": "timeout"}, {"text": "ok"}]}})
    rec = Recorder()
    done = await complete(USER, model="scripted/worker", policy=NO_JITTER, on_attempt=rec.on_attempt, sleep=rec.sleep)
    assert [a.outcome for a in done.attempts] == ["timeout", "ok"]
    assert rec.sleeps == [1.0]


async def test_a_call_that_outlasts_the_timeout_is_abandoned_and_retried(litellm):
    # CustomLLM providers ignore litellm's timeout=, so the adapter enforces it itself.
    install_script({"roles": {"worker": [{"delay_s": 30, "text": "too late"}, {"text": "on time"}]}})
    rec = Recorder()
    policy = RetryPolicy(timeout_s=0.05, jitter_s=0.0)
    done = await complete(USER, model="scripted/worker", policy=policy, on_attempt=rec.on_attempt, sleep=rec.sleep)
    assert done.content == "on time"
    first = done.attempts[0]
    assert (first.outcome, first.error, first.retry_in_s) == ("timeout", "no answer within 0.05 s", 1.0)
    assert first.duration_ms < 5000


async def test_timeouts_give_up_after_max_attempts(litellm):
    install_script({"roles": {"worker": [{"error": "timeout"}, {"error": "timeout"}]}})
    with pytest.raises(LlmError, match=r"^scripted/worker: timed out after 2 attempts") as caught:
        await complete(
            USER, model="scripted/worker", policy=RetryPolicy(max_attempts=2, jitter_s=0), sleep=Recorder().sleep
        )
    assert caught.value.kind == "timeout"


@pytest.mark.parametrize(
    ("turn", "kind", "words"),
    [
        (
            {"error": "bad_request", "message": "unknown parameter foo"},
            "bad_request",
            "scripted/worker: unknown parameter foo",
        ),
        (
            {"error": "auth_error", "message": "invalid x-api-key"},
            "auth_error",
            "refused the credentials (check SCRIPTED_API_KEY)",
        ),
        ({"error": "context_window"}, "context_window", "does not fit the model's context window"),
    ],
)
async def test_errors_that_retrying_cannot_fix_fail_at_once(litellm, turn, kind, words):
    provider = install_script({"roles": {"worker": [turn, {"text": "never"}]}})
    rec = Recorder()
    with pytest.raises(LlmError) as caught:
        await complete(USER, model="scripted/worker", policy=NO_JITTER, on_attempt=rec.on_attempt, sleep=rec.sleep)
    assert caught.value.kind == kind and not caught.value.retryable
    assert words in str(caught.value)
    assert [(a.outcome, a.retry_in_s) for a in rec.attempts] == [(kind, None)]
    assert rec.sleeps == []
    assert provider.remaining() == {"worker": 1}


async def test_a_call_that_does_not_fit_the_script_fails_loudly_and_is_not_retried(litellm):
    install_script({"roles": {"worker": [{"text": "one"}]}})
    await complete(USER, model="scripted/worker")
    rec = Recorder()
    with pytest.raises(LlmError) as caught:
        await complete(USER, model="scripted/worker", on_attempt=rec.on_attempt, sleep=rec.sleep)
    assert "role 'worker' ran out of turns: this call needs turn index 1" in str(caught.value)
    assert isinstance(caught.value.__cause__, ScriptError)
    assert len(rec.attempts) == 1 and rec.sleeps == []


async def test_on_attempt_may_be_a_plain_function(litellm):
    install_script({"roles": {"worker": [{"error": "server_error"}, {"text": "ok"}]}})
    seen: list[str] = []
    await complete(
        USER,
        model="scripted/worker",
        policy=NO_JITTER,
        on_attempt=lambda a: seen.append(a.outcome),
        sleep=Recorder().sleep,
    )
    assert seen == ["server_error", "ok"]


# --- credentials and model strings ---------------------------------------------------------------------------


def _no_network(monkeypatch, litellm) -> None:
    async def refuse(**kwargs):
        raise AssertionError("a network call was attempted")

    monkeypatch.setattr(litellm, "acompletion", refuse)


async def test_a_missing_api_key_is_named_before_any_network_call(litellm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _no_network(monkeypatch, litellm)
    rec = Recorder()
    with pytest.raises(LlmError) as caught:
        await complete(USER, model="openai/gpt-4o-mini", on_attempt=rec.on_attempt, sleep=rec.sleep)
    assert str(caught.value) == "OPENAI_API_KEY is not set: the model openai/gpt-4o-mini needs it"
    assert caught.value.kind == "auth_error"
    assert [(a.outcome, a.error) for a in rec.attempts] == [("auth_error", str(caught.value))]


async def test_either_gemini_key_is_named(litellm, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    _no_network(monkeypatch, litellm)
    with pytest.raises(
        LlmError, match=r"^GOOGLE_API_KEY or GEMINI_API_KEY is not set: the model gemini/gemini-2\.5-pro needs one"
    ):
        await complete(USER, model="gemini/gemini-2.5-pro")


async def test_an_unknown_provider_is_explained(litellm):
    with pytest.raises(
        LlmError, match=r"^no-such-model: litellm does not know this model's provider .*write it as provider/model"
    ) as caught:
        await complete(USER, model="no-such-model")
    assert caught.value.kind == "bad_request"


async def test_a_local_openai_compatible_endpoint_needs_no_key(litellm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    sent: dict = {}

    async def fake_acompletion(**kwargs):
        sent.update(kwargs)
        return litellm.ModelResponse(
            model="qwen3-coder",
            choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
            usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        )

    monkeypatch.setattr(litellm, "acompletion", fake_acompletion)
    done = await complete(
        USER, model="openai/qwen3-coder", api_base="http://127.0.0.1:8080/v1", tools=[READ], thinking="high"
    )
    assert done.content == "hi"
    assert done.usage == Usage(input=12, output=3, cost=0.0, cost_known=False)
    assert sent["api_base"] == "http://127.0.0.1:8080/v1"
    assert sent["api_key"] == "no-key-needed"
    assert sent["num_retries"] == 0 and sent["_skip_mcp_handler"] is True and sent["stream"] is False
    assert sent["timeout"] == RetryPolicy().timeout_s
    assert "reasoning_effort" not in sent  # litellm does not know the model reasons
    assert sent["tools"] == [{"type": "function", "function": READ}]


# --- the pieces ----------------------------------------------------------------------------------------------


def test_classify_sees_through_litellm_500s(litellm):
    import httpx
    import openai

    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    refused = litellm.InternalServerError(message="Connection error.", llm_provider="openai", model="m")
    try:
        try:
            raise openai.APIConnectionError(request=request)
        except openai.APIConnectionError:
            raise refused  # noqa: B904 - litellm chains it like this (implicitly)
    except litellm.InternalServerError as exc:
        assert llm.classify(exc) == "connection_error"
    no_key = litellm.InternalServerError(
        message="OpenAIException - Missing credentials. Please pass an `api_key`", llm_provider="openai", model="m"
    )
    assert llm.classify(no_key) == "auth_error"
    assert llm.classify(litellm.InternalServerError(message="boom", llm_provider="x", model="m")) == "server_error"
    assert llm.classify(litellm.Timeout(message="slow", model="m", llm_provider="x")) == "timeout"
    assert llm.classify(TimeoutError()) == "timeout"
    assert llm.classify(litellm.NotFoundError(message="no model", model="m", llm_provider="x")) == "bad_request"
    # litellm builds this one with status 500; retrying cannot help.
    assert llm.classify(litellm.UnsupportedParamsError(status_code=500, message="no reasoning_effort")) == "bad_request"
    assert llm.classify(ValueError("what")) == "other"


def test_retry_after_reads_seconds_milliseconds_and_dates(litellm):
    import httpx

    def limited(headers: dict) -> Exception:
        response = httpx.Response(429, headers=headers, request=httpx.Request("POST", "http://x"))
        return litellm.RateLimitError(message="slow", llm_provider="x", model="m", response=response)

    assert llm.retry_after_s(limited({"retry-after": "3"})) == 3.0
    assert llm.retry_after_s(limited({"retry-after-ms": "1500"})) == 1.5
    assert llm.retry_after_s(limited({})) is None
    assert 0 <= llm.retry_after_s(limited({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) < 1  # in the past


def test_one_line_strips_litellm_prefixes():
    assert (
        llm.one_line("litellm.InternalServerError: InternalServerError: OpenAIException - Connection error.\nModel: x")
        == "Connection error."
    )
    assert llm.one_line(ValueError("")) == "ValueError"
    assert llm.one_line("x" * 400).endswith("…")


def test_to_api_message_round_trips_tool_calls_and_keeps_thinking_blocks():
    message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c1", "name": "read", "arguments_json": '{"path": "a"}'}],
        "reasoning": "hmm",
        "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "s"}],
    }
    assert llm.to_api_message(message) == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read", "arguments": '{"path": "a"}'}}],
        "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "s"}],
    }
    assert llm.to_api_message({"role": "assistant", "content": "done", "tool_calls": []}) == {
        "role": "assistant",
        "content": "done",
    }
    tool = {"role": "tool", "tool_call_id": "c1", "content": "x"}
    assert llm.to_api_message(tool) == tool


def test_retry_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(timeout_s=0)
    assert RetryPolicy(jitter_s=0).backoff_s(1) == 1.0
    assert RetryPolicy(jitter_s=0).backoff_s(4) == 8.0


def test_attempt_outcomes_match_the_llm_attempt_event():
    from aw_tui.model.events import LlmAttempt

    assert set(llm.OUTCOMES) == set(LlmAttempt.model_fields["outcome"].annotation.__args__)
    assert json.dumps(sorted(llm.RETRYABLE)) == '["connection_error", "rate_limited", "server_error", "timeout"]'
