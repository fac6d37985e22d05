"""The LLM adapter: one async call, messages + tools + model + thinking level -> assistant message, usage, cost.

This is the only module of aw-tui that imports litellm, and it does so lazily (`load_litellm`), because the
import takes seconds and would otherwise slow every start-up. `complete()` imports it in a worker thread, so the
first call does not freeze a running Textual app.

Public API
----------
- `complete(messages, *, model, tools=None, thinking="off", api_base=None, policy=RetryPolicy(), on_attempt=None,
  sleep=asyncio.sleep, ...) -> Completion`: one chat completion (streamed when the policy says so), with the
  engine's own retries. Raises `LlmError(kind, message, attempts)` when it gives up; `message` is one line for the
  operator, with credentials redacted.
- `Completion`: `message` ({"role": "assistant", "content": str, "tool_calls": [{"id", "name", "arguments_json"}],
  plus "reasoning"/"thinking_blocks"/"provider_specific_fields" when the provider sent them), `usage`
  (aw_tui.model.ledger.Usage with cost and cost_known), `model`, `duration_ms`, `attempts`, `finish_reason`,
  `reasoning_effort`.
- `Attempt`: one try, reported through `on_attempt` as it ends (mirrors the `llm.attempt` event, LlmAttempt).
- `RetryPolicy`: attempts, Retry-After cap, backoff, jitter, per-call timeout, streaming.
- `redact(text, secrets)`: an error text without credentials (every error `complete()` reports goes through it).
- `map_thinking(model, level)`: aw-tui's thinking level -> litellm `reasoning_effort` (or None).
- `to_api_message(message)`: a `Completion.message` (or any chat message) -> the OpenAI shape litellm takes;
  `complete()` applies it to every message, so a loop can append `Completion.message` to its history as is.
- `context_window(model)`: the model's input window from litellm's map, or None.
- `load_litellm()`: the one place litellm is imported (the scripted provider gets it from here). Thread-safe.

Facts this relies on (litellm 1.106.2, see reference/engine-anchors.md §1):
- Usage: litellm normalises `prompt_tokens` to include cache reads and cache writes (Anthropic style), so the
  uncached input is `prompt_tokens - cached_tokens - cache_write_tokens`. `completion_tokens` includes reasoning
  tokens; `Usage.reasoning` is that subset.
- `num_retries=0` also sets the OpenAI SDK's `max_retries` to 0; without it the SDK retries twice, unseen.
- A `CustomLLM` provider ignores `timeout=`, so the per-call timeout is enforced here with asyncio too.
- Several failures arrive disguised as a 500 `InternalServerError` (a refused connection, missing OpenAI
  credentials); the exception chain (`__cause__`/`__context__`) tells them apart.
- `tools=` makes litellm import its MCP gateway unless `_skip_mcp_handler=True` is passed; we always pass it.
- A stream cut short without a finish reason is accepted by litellm as complete: it makes up finish "stop", tool
  arguments "{}" and a usage of its own. Only its wrapper's `received_finish_reason` tells (`_read_stream`).
  Mid-stream failures (dropped connection, a chunk that is not JSON, a read timeout) arrive as
  `MidStreamFallbackError` (a 500 by its status code); the exception chain says which.
- Every call also builds a logging payload and queues an async success handler for litellm's callbacks (about a
  sixth of a scripted call's CPU). aw-tui registers none, so while nobody else has, `complete()` turns that off
  (`_litellm_logging_off`). The response cost is not part of it: litellm puts it in `_hidden_params` first.
- litellm's first call imports more of itself (about 0.5 s): tiktoken's cl100k encoding (every provider's handler
  is given it; litellm ships the file, nothing is downloaded) and its proxy's file-id types. `complete()` has them
  done once, in a thread, before its first call (`_warm_up`), not inside the first attempt's time and timeout; a
  process that loads litellm but never calls a model (a resume answered from the journal) does not pay for them.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import json
import os
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Literal, get_args

from aw_tui.model.ledger import Usage

Outcome = Literal[
    "ok", "rate_limited", "server_error", "connection_error", "timeout", "bad_request", "auth_error",
    "context_window", "other",
]  # fmt: skip
OUTCOMES: tuple[str, ...] = get_args(Outcome)
RETRYABLE: frozenset[str] = frozenset({"rate_limited", "server_error", "connection_error", "timeout"})

ThinkingLevel = Literal["off", "minimal", "low", "medium", "high", "xhigh"]
THINKING_LEVELS: tuple[str, ...] = get_args(ThinkingLevel)
# Strength order of the efforts aw-tui asks for ("none" is an off switch, not a strength).
_EFFORT_LADDER: tuple[str, ...] = ("minimal", "low", "medium", "high", "xhigh")

_litellm: ModuleType | None = None
_warmed_up = False
_load_lock = threading.Lock()
# litellm's flag for its own nested calls (`_litellm_logging_off`); None when this litellm has none.
_internal_call_flag: ContextVar[bool] | None = None


def load_litellm() -> ModuleType:
    """Import litellm once: offline price map, no debug prints on stdout (they would tear a Textual screen).
    Many first calls may ask at once, from several threads."""
    global _litellm, _internal_call_flag
    if _litellm is not None:
        return _litellm
    with _load_lock:
        if _litellm is None:
            # Otherwise litellm downloads its price map from GitHub at import time.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm

            litellm.suppress_debug_info = True
            _internal_call_flag = _find_internal_call_flag()
            _litellm = litellm
    return _litellm


def _load_and_warm_up() -> ModuleType:
    """`load_litellm()`, then `_warm_up()` once per process (for `complete()`, which runs this in a thread)."""
    global _warmed_up
    litellm = load_litellm()
    if not _warmed_up:
        with _load_lock:
            if not _warmed_up:
                _warm_up(litellm)
                _warmed_up = True
    return litellm


# A model every litellm of the pinned range prices; the warm-up call never reaches it (mock_response).
_WARM_UP_MODEL = "gpt-4o-mini"


def _warm_up(litellm: ModuleType) -> None:
    """Make litellm's first-call imports now, so that no model call's attempt pays for them.

    Two steps, both offline: `litellm.encoding` loads tiktoken's cl100k encoding from the copy litellm ships
    (skipped when CUSTOM_TIKTOKEN_CACHE_DIR points tiktoken elsewhere, where it might download), and one
    `mock_response` completion runs litellm's request path (parameter mapping, the proxy's file-id types, provider
    configs) without a provider, and without logging (skipped if someone gave litellm a cache, which may be remote).
    Best effort: if either fails, the first call pays as before.
    """
    if not os.environ.get("CUSTOM_TIKTOKEN_CACHE_DIR"):
        try:
            litellm.encoding  # noqa: B018 - the attribute's first read is the import
        except Exception:  # noqa: BLE001
            pass
    if getattr(litellm, "cache", None) is not None:
        return
    try:
        with _litellm_logging_off(litellm, force=True):
            litellm.completion(
                model=_WARM_UP_MODEL,
                messages=[{"role": "user", "content": "warm up"}],
                mock_response="ok",
                num_retries=0,
            )
    except Exception:  # noqa: BLE001
        pass


def _find_internal_call_flag() -> ContextVar[bool] | None:
    """litellm's `is_internal_call` context variable, or None if this litellm has no such thing.

    PRIVATE litellm API (litellm/_internal_context.py, 1.83 to 1.106 at least). litellm sets it around the nested
    calls it makes itself; while it is True, the `@client` wrapper of `acompletion` neither queues the async
    success handler (the standard logging payload, the callbacks) nor runs the failure handlers, and skips the
    proxy's budget bookkeeping. It still computes the response cost into `_hidden_params` (that happens before
    the logging is dispatched) and still maps, annotates and raises exceptions. If litellm drops or renames it,
    this returns None and calls log as before (slower, same results);
    tests/engine/test_llm.py::test_litellm_logging_can_still_be_turned_off fails to say so.
    """
    try:
        from litellm._internal_context import is_internal_call
    except ImportError:
        return None
    return is_internal_call if isinstance(is_internal_call, ContextVar) else None


# Where litellm keeps callbacks; a non-empty one means someone wants litellm's logging.
_CALLBACK_LISTS = ("callbacks", "input_callback", "success_callback", "failure_callback", "service_callback",
                   "_async_input_callback", "_async_success_callback", "_async_failure_callback")  # fmt: skip


def _litellm_logs_for_someone(litellm: ModuleType, kwargs: Mapping[str, Any] | None = None) -> bool:
    """True if litellm's logging has a reader: a registered callback, a per-call one, or a litellm budget (its
    spend is tallied by the success handler)."""
    if getattr(litellm, "max_budget", None):
        return True
    if any(getattr(litellm, name, None) for name in _CALLBACK_LISTS):
        return True
    return any(key.endswith(("callback", "callbacks")) and value for key, value in (kwargs or {}).items())


@contextmanager
def _litellm_logging_off(
    litellm: ModuleType, kwargs: Mapping[str, Any] | None = None, *, force: bool = False
) -> Iterator[None]:
    """Within the block (this task or thread only), litellm calls skip their logging, unless it has a reader;
    `force` skips it even then (the warm-up call is nobody's business). Does nothing without litellm's flag."""
    flag = _internal_call_flag
    if flag is None or (not force and _litellm_logs_for_someone(litellm, kwargs)):
        yield
        return
    token = flag.set(True)
    try:
        yield
    finally:
        flag.reset(token)


async def _load_litellm_off_loop() -> ModuleType:
    if _litellm is not None and _warmed_up:
        return _litellm
    return await asyncio.to_thread(_load_and_warm_up)


# --- data ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How `complete()` makes its tries, and how hard. Only rate_limited, server_error, connection_error and timeout
    are retried; a quota that is used up (429 insufficient_quota) is not, since it lasts until billing changes."""

    max_attempts: int = 4
    # A 429's or a 5xx's Retry-After is honoured up to this many seconds (longer asks wait this long).
    max_retry_after_s: float = 60.0
    # Exponential backoff for errors without Retry-After: base * 2**(retry-1), capped, plus 0..jitter seconds.
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    jitter_s: float = 0.5
    # Per attempt, enforced both by litellm (HTTP) and by asyncio (providers that ignore timeout=).
    timeout_s: float = 600.0
    # Ask for the reply as a stream (ignored for the scripted provider, which answers whole). A stream that ends
    # without a finish reason is a failed attempt, never a short answer: litellm would accept it as complete.
    stream: bool = False

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if min(self.max_retry_after_s, self.base_delay_s, self.max_delay_s, self.jitter_s) < 0:
            raise ValueError("RetryPolicy delays must not be negative")
        if self.timeout_s <= 0:
            raise ValueError("RetryPolicy.timeout_s must be positive")

    def backoff_s(self, retry: int, rng: random.Random | None = None) -> float:
        """Delay before retry number `retry` (1 = the first retry) when the provider gave no Retry-After."""
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, retry - 1))
        if self.jitter_s > 0:
            delay += (rng or random).uniform(0, self.jitter_s)
        return delay


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one model call; the fields of the `llm.attempt` event (LlmAttempt) plus its usage."""

    number: int
    model: str
    outcome: Outcome
    duration_ms: float
    error: str | None = None
    # Seconds until the next try; None when there is none (success, a final failure, a non-retryable error).
    retry_in_s: float | None = None
    # Only a successful try is billed in practice; None when the provider reported nothing.
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """The assistant's reply. `duration_ms` is the whole call's wall time, retries and waits included."""

    message: dict[str, Any]
    usage: Usage
    model: str
    duration_ms: float
    attempts: list[Attempt] = field(default_factory=list)
    finish_reason: str | None = None
    reasoning_effort: str | None = None

    @property
    def content(self) -> str:
        return self.message.get("content") or ""

    @property
    def tool_calls(self) -> list[dict[str, str]]:
        return self.message.get("tool_calls") or []

    @property
    def is_empty(self) -> bool:
        """No text and no tool call: the model said nothing (the loop decides what to do about it)."""
        return not self.content.strip() and not self.tool_calls


class LlmError(Exception):
    """`complete()` gave up. `kind` is the last attempt's outcome; `message` is one line for the operator."""

    def __init__(self, kind: Outcome, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.attempts = list(attempts)

    @property
    def retryable(self) -> bool:
        """True if trying again later could help (the policy's attempts ran out on a transient error)."""
        return self.kind in RETRYABLE


# --- thinking ------------------------------------------------------------------------------------------------


def map_thinking(model: str, level: str) -> str | None:
    """aw-tui's thinking level -> litellm `reasoning_effort`, clamped to what the model accepts.

    off -> None (no reasoning_effort sent). A model litellm does not know to reason -> None. Otherwise the level
    is rounded up to the weakest effort the model accepts that is at least as strong, or down to its strongest
    (gpt-5 has no xhigh: xhigh -> high; o3 has no minimal: minimal -> low). Accepted efforts come from the price
    map: `reasoning_effort_levels` when declared, else the per-level flags (minimal and low unless flagged
    false, xhigh only if flagged true); a reasoning model without any flag gets low/medium/high.
    Imports litellm (synchronously) on first use.
    """
    if level not in THINKING_LEVELS:
        raise ValueError(f"unknown thinking level {level!r}; use one of: {', '.join(THINKING_LEVELS)}")
    if level == "off":
        return None
    litellm = load_litellm()
    try:
        if not litellm.supports_reasoning(model=model):
            return None
    except Exception:  # an unmapped model: litellm has no opinion, so send nothing
        return None
    accepted = _accepted_efforts(litellm, model)
    if not accepted:
        return None
    rank = _EFFORT_LADDER.index(level)
    for effort in accepted:
        if _EFFORT_LADDER.index(effort) >= rank:
            return effort
    return accepted[-1]


def _accepted_efforts(litellm: ModuleType, model: str) -> list[str]:
    try:
        info: Mapping[str, Any] = litellm.get_model_info(model=model)
    except Exception:
        info = {}
    declared = info.get("reasoning_effort_levels")
    if isinstance(declared, (list, tuple)):
        return [effort for effort in _EFFORT_LADDER if effort in declared]
    flags = {
        "minimal": info.get("supports_minimal_reasoning_effort"),
        "low": info.get("supports_low_reasoning_effort"),
        "xhigh": info.get("supports_xhigh_reasoning_effort"),
    }
    has_flags = (
        any(value is not None for value in flags.values()) or info.get("supports_none_reasoning_effort") is not None
    )
    accepted = {"medium", "high"}
    if has_flags:
        accepted |= {effort for effort in ("minimal", "low") if flags[effort] is not False}
        if flags["xhigh"] is True:
            accepted.add("xhigh")
    else:
        # Most reasoning entries carry no flag; the o-series among them refuse minimal.
        accepted.add("low")
    return [effort for effort in _EFFORT_LADDER if effort in accepted]


def context_window(model: str) -> int | None:
    """The model's input window in tokens from litellm's map, or None when the map does not know it."""
    litellm = load_litellm()
    try:
        info = litellm.get_model_info(model=model)
    except Exception:
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else None


# --- messages ------------------------------------------------------------------------------------------------


def to_api_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A chat message in the OpenAI shape litellm takes.

    An assistant message from `Completion.message` has tool calls as {"id", "name", "arguments_json"}; they
    become {"id", "type": "function", "function": {"name", "arguments"}}. Anthropic thinking blocks and provider
    fields (Gemini thought signatures) are kept, since they must be replayed in a tool loop; the readable
    "reasoning" text is dropped. Other messages are copied unchanged.
    """
    out = dict(message)
    if out.get("role") != "assistant":
        return out
    out.pop("reasoning", None)
    calls = out.get("tool_calls")
    if calls:
        out["tool_calls"] = [_api_tool_call(call) for call in calls]
        if not out.get("content"):
            out["content"] = None
    else:
        out.pop("tool_calls", None)
    for key in ("thinking_blocks", "provider_specific_fields"):
        if not out.get(key):
            out.pop(key, None)
    return out


def _api_tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    if "function" in call:
        return dict(call)
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": call.get("name"), "arguments": call.get("arguments_json") or "{}"},
    }


def _api_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """Accept OpenAI tool specs as they are, and bare {"name", "description", "parameters"} specs too."""
    if tool.get("type") == "function" and "function" in tool:
        return dict(tool)
    function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _assistant_message(response: Any) -> tuple[dict[str, Any], str | None]:
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise _NoChoices("the provider returned no choices")
    choice = choices[0]
    raw = getattr(choice, "message", None)
    content = getattr(raw, "content", None)
    if isinstance(content, list):  # some providers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    message: dict[str, Any] = {"role": "assistant", "content": content or "", "tool_calls": []}
    for index, call in enumerate(getattr(raw, "tool_calls", None) or []):
        function = getattr(call, "function", None)
        arguments = getattr(function, "arguments", None)
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        message["tool_calls"].append(
            {
                "id": getattr(call, "id", None) or f"call_{index}",
                "name": getattr(function, "name", None) or "",
                "arguments_json": arguments,
            }
        )
    reasoning = getattr(raw, "reasoning_content", None)
    if reasoning:
        message["reasoning"] = reasoning
    for key in ("thinking_blocks", "provider_specific_fields"):
        value = getattr(raw, key, None)
        if value:
            message[key] = _plain(value)
    return message, getattr(choice, "finish_reason", None)


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _NoChoices(Exception):
    pass


class _StreamCut(Exception):
    """A stream that ended cleanly but without a finish reason: the reply is incomplete."""

    def __init__(self, chunks: int) -> None:
        super().__init__(
            f"the stream ended after {chunks} chunk(s) without a finish reason (truncated); the partial reply was "
            "discarded"
        )
        self.chunks = chunks


class _StreamBroken(Exception):
    """A stream that failed part way; `cause` is litellm's error (also the `__cause__`)."""

    def __init__(self, chunks: int, cause: BaseException) -> None:
        super().__init__(f"the stream broke off after {chunks} chunk(s)")
        self.chunks = chunks
        self.cause = cause


async def _read_stream(litellm: ModuleType, stream: Any, messages: Sequence[Any], progress: list[int]) -> Any:
    """A streamed reply rebuilt into one response, as if it had not been streamed.

    Raises _StreamCut when the provider sent no finish reason and _StreamBroken when the stream failed part way.
    `progress[0]` counts the chunks as they arrive, so a timeout can say how far the stream got.
    """
    chunks: list[Any] = []
    try:
        async for chunk in stream:
            chunks.append(chunk)
            progress[0] = len(chunks)
    except Exception as exc:  # noqa: BLE001 - classified by the caller through _StreamBroken
        raise _StreamBroken(len(chunks), exc) from exc
    finally:
        # Also when cancelled (the attempt timed out): release the connection. litellm shields its own close.
        close = getattr(stream, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # noqa: BLE001
                pass
    if _finish_reason_received(stream, chunks) is None:
        raise _StreamCut(len(chunks))
    built = litellm.stream_chunk_builder(chunks, messages=list(messages))
    if built is None:
        raise _NoChoices("the stream carried no reply")
    return built


def _finish_reason_received(stream: Any, chunks: Sequence[Any]) -> str | None:
    """The finish reason the provider actually sent.

    PRIVATE litellm API (CustomStreamWrapper, 1.106): `received_finish_reason` (or `intermittent_finish_reason`)
    records what arrived, while the chunks it yields end with a "stop" it makes up, with a usage it estimated
    itself, when a stream was cut (reference/engine-anchors.md §1.3). Without those attributes the chunks are all
    there is; tests/chaos/test_llm_faults.py fails if a cut stream is then taken for a whole one.
    """
    if hasattr(stream, "received_finish_reason"):
        return getattr(stream, "received_finish_reason", None) or getattr(stream, "intermittent_finish_reason", None)
    for chunk in reversed(chunks):
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "finish_reason", None):
                return str(choice.finish_reason)
    return None


# --- usage and cost ------------------------------------------------------------------------------------------


def _usage(litellm: ModuleType, response: Any, model: str) -> Usage | None:
    raw = getattr(response, "usage", None)
    if raw is None:
        return None
    prompt = _count(_get(raw, "prompt_tokens"))
    completion = _count(_get(raw, "completion_tokens"))
    prompt_details = _get(raw, "prompt_tokens_details")
    completion_details = _get(raw, "completion_tokens_details")
    cache_read = _count(_get(prompt_details, "cached_tokens")) or _count(_get(raw, "cache_read_input_tokens"))
    cache_write = (
        _count(_get(prompt_details, "cache_write_tokens"))
        or _count(_get(prompt_details, "cache_creation_tokens"))
        or _count(_get(raw, "cache_creation_input_tokens"))
    )
    reasoning = _count(_get(completion_details, "reasoning_tokens"))
    cost, known = _cost(litellm, response, model)
    return Usage(
        input=max(0, prompt - cache_read - cache_write),
        output=completion,
        cache_read=cache_read,
        cache_write=cache_write,
        reasoning=reasoning,
        cost=cost,
        cost_known=known,
    )


def _cost(litellm: ModuleType, response: Any, model: str) -> tuple[float, bool]:
    """USD from litellm's price map (or the provider's own figure); (0.0, False) for a model it cannot price."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if isinstance(cost, (int, float)) and cost == cost and cost >= 0:
        return float(cost), True
    try:
        cost = litellm.completion_cost(completion_response=response, model=model)
    except Exception:
        return 0.0, False
    if isinstance(cost, (int, float)) and cost == cost and cost >= 0:
        return float(cost), True
    return 0.0, False


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


# --- errors --------------------------------------------------------------------------------------------------

_TRANSPORT_TIMEOUT_NAMES = {"TimeoutException", "ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout",
                            "APITimeoutError", "ServerTimeoutError", "Timeout"}  # fmt: skip
# ReadError, ClientPayloadError and TransferEncodingError: a response body that stopped part way (a dropped stream).
_CONNECTION_NAMES = {"APIConnectionError", "ConnectError", "ConnectionError", "ClientConnectorError",
                     "ServerDisconnectedError", "RemoteProtocolError", "ClientOSError", "ReadError",
                     "ClientPayloadError", "TransferEncodingError", "ContentLengthError"}  # fmt: skip
_CREDENTIAL_HINTS = ("missing credentials", "api_key client option must be set", "no api key", "api key not found")


def classify(exc: BaseException) -> Outcome:
    """Which attempt outcome an exception from litellm (or our own timeout) is."""
    litellm = _litellm
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, _NoChoices):
        return "other"
    if isinstance(exc, _StreamCut):
        return "connection_error"  # the reply stopped coming; a new attempt may get all of it
    if isinstance(exc, _StreamBroken):
        if _bad_json(exc.cause) is not None:
            return "server_error"  # the provider sent a chunk that is not JSON
        return classify(exc.cause)
    if litellm is not None:
        if isinstance(exc, litellm.ContextWindowExceededError):
            return "context_window"
        if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
            return "auth_error"
        if isinstance(exc, litellm.RateLimitError):
            return "rate_limited"
        if isinstance(exc, litellm.Timeout):
            return "timeout"
        # The provider judged the request itself (UnsupportedParamsError, content policy, unknown model, ...).
        if isinstance(exc, (litellm.BadRequestError, litellm.NotFoundError, litellm.UnprocessableEntityError)):
            return "bad_request"
    text = str(exc).lower()
    if any(hint in text for hint in _CREDENTIAL_HINTS):
        return "auth_error"  # litellm reports missing OpenAI credentials as a 500
    chain = list(_exception_chain(exc))
    names = {cls.__name__ for link in chain for cls in type(link).__mro__}
    if names & _TRANSPORT_TIMEOUT_NAMES:
        return "timeout"
    if names & _CONNECTION_NAMES or any(isinstance(link, ConnectionError) for link in chain):
        return "connection_error"
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        if status == 408:
            return "timeout"
        if status == 429:
            return "rate_limited"
        if status in (401, 403):
            return "auth_error"
        if status == 409 or status >= 500:
            return "server_error"
        if 400 <= status < 500:
            return "bad_request"
    if "context window" in text or "context_length_exceeded" in text:
        return "context_window"
    return "other"


def _exception_chain(exc: BaseException) -> Any:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header on a litellm/OpenAI exception, if any."""
    for headers in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "headers", None),
    ):
        if not headers:
            continue
        try:
            lowered = {str(k).lower(): str(v) for k, v in dict(headers).items()}
        except Exception:
            continue
        if "retry-after-ms" in lowered:
            try:
                return max(0.0, float(lowered["retry-after-ms"]) / 1000)
            except ValueError:
                pass
        value = lowered.get("retry-after")
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


_PREFIX = re.compile(r"^\s*(?:litellm\.)?[A-Za-z_.]*(?:Error|Exception|Timeout)\s*(?::|-)\s*")


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An exception as one short line: litellm's `litellm.XError: XError: OpenAIException - ` prefixes removed."""
    text = str(exc).strip()
    if not text and isinstance(exc, BaseException):
        text = type(exc).__name__
    first = text.splitlines()[0] if text else ""
    previous = None
    while previous != first:
        previous, first = first, _PREFIX.sub("", first, count=1)
    first = " ".join(first.split()) or (type(exc).__name__ if isinstance(exc, BaseException) else "error")
    return first if len(first) <= limit else first[: limit - 1] + "…"


_OUTCOME_WORDS = {
    "rate_limited": "rate limited",
    "server_error": "server error",
    "connection_error": "connection failed",
    "timeout": "timed out",
}

# Providers whose credentials normally come from elsewhere (profiles, ADC), or that need none by default.
_AMBIENT_CREDENTIALS = {"bedrock", "bedrock_mantle", "sagemaker", "sagemaker_chat", "vertex_ai", "vertex_ai_beta"}
_LOCAL_DEFAULT_BASE = {"ollama", "ollama_chat"}
_NO_KEY_PLACEHOLDER = "no-key-needed"


def _credential_check(litellm: ModuleType, model: str, provider: str, api_base: str | None) -> tuple[str | None, bool]:
    """(error message, use a placeholder key). Runs before any network call.

    With an explicit api_base (a local or self-hosted OpenAI-compatible server) a missing API key is not fatal:
    a placeholder is sent, and a server that wants a real key answers 401, which names the variable.
    """
    if provider in _AMBIENT_CREDENTIALS or _is_custom_provider(litellm, provider):
        return None, False
    try:
        missing = list(litellm.validate_environment(model=model, api_base=api_base).get("missing_keys") or [])
    except Exception:
        return None, False
    if api_base or provider in _LOCAL_DEFAULT_BASE:
        missing = [name for name in missing if not name.endswith(("_API_BASE", "_BASE_URL"))]
    if not missing:
        return None, False
    if api_base and all(name.endswith("_API_KEY") for name in missing):
        return None, True
    if len(missing) == 1:
        return f"{missing[0]} is not set: the model {model} needs it", False
    if provider == "gemini":  # either variable will do
        return f"{' or '.join(missing)} is not set: the model {model} needs one of them", False
    return f"{', '.join(missing)} are not set: the model {model} needs them", False


def _is_custom_provider(litellm: ModuleType, provider: str) -> bool:
    return any(item.get("provider") == provider for item in (litellm.custom_provider_map or []))


def _key_variable(provider: str) -> str:
    return f"{provider.upper()}_API_KEY" if provider else "the provider's API key"


def _failure_message(
    kind: Outcome, model: str, provider: str, error: str, attempts: int, *, quota_used_up: bool = False
) -> str:
    if quota_used_up:
        return (f"{model}: the provider's quota is used up (not retried: it lasts until the plan or billing "
                f"changes): {error}")
    if kind == "auth_error":
        return f"{model}: the provider refused the credentials (check {_key_variable(provider)}): {error}"
    if kind == "context_window":
        return f"{model}: the conversation does not fit the model's context window: {error}"
    if kind in RETRYABLE and attempts > 1:
        return f"{model}: {_OUTCOME_WORDS[kind]} after {attempts} attempts: {error}"
    if kind in RETRYABLE:
        return f"{model}: {_OUTCOME_WORDS[kind]}: {error}"
    return f"{model}: {error}"


def _bad_json(exc: BaseException) -> json.JSONDecodeError | None:
    return next((link for link in _exception_chain(exc) if isinstance(link, json.JSONDecodeError)), None)


# OpenAI's words for a billing quota that is spent; a per-minute quota ("rate limit reached") clears by itself.
_QUOTA_USED_UP = re.compile(r"insufficient_quota|exceeded your current quota", re.IGNORECASE)


def _quota_used_up(exc: BaseException) -> bool:
    return any(_QUOTA_USED_UP.search(str(link)) for link in _exception_chain(exc))


# Kinds whose exception carries the provider's real HTTP status (a connection error's or a timeout's is made up).
_HTTP_KINDS = frozenset({"rate_limited", "server_error", "auth_error", "bad_request", "context_window"})


def _attempt_error(
    litellm: ModuleType, exc: BaseException, kind: Outcome, timeout_s: float, streamed: int, *, over_http: bool
) -> str:
    """One line for the operator that names the fault: the HTTP status, "truncated", "stalled", "not valid JSON".
    `over_http` is False for a custom (scripted) provider, whose errors only borrow HTTP status codes."""
    if isinstance(exc, TimeoutError):
        if streamed:
            return f"the stream stalled after {streamed} chunk(s): no complete reply within {timeout_s:g} s"
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, _StreamCut):
        return str(exc)
    if isinstance(exc, _StreamBroken):
        where = f"after {exc.chunks} chunk(s)"
        if kind == "timeout":
            return f"the stream stalled {where}: no data within {timeout_s:g} s"
        bad = _bad_json(exc.cause)
        if bad is not None:
            return f"the stream broke off {where}: a chunk is not valid JSON ({bad})"
        if kind == "connection_error":
            return f"the connection dropped {where} of the stream: {one_line(exc.cause, 200)}"
        return f"the stream broke off {where}: {one_line(exc.cause, 200)}"
    text = one_line(exc)
    status = getattr(exc, "status_code", None)
    mid_stream = getattr(litellm, "MidStreamFallbackError", None)
    if (over_http and kind in _HTTP_KINDS and isinstance(status, int) and 400 <= status <= 599
            and str(status) not in text and not (mid_stream is not None and isinstance(exc, mid_stream))):  # fmt: skip
        text = f"{text} (HTTP {status})"
    return text


# --- secrets -------------------------------------------------------------------------------------------------

# Environment variables whose values are credentials: redacted from error texts here, and kept from the worker's
# shell (tools.ToolContext.bash_environment).
SECRET_NAME = re.compile(
    r"(?i)(api[_-]?key|secret|token|passw(or)?d|credential|private[_-]?key|access[_-]?key|session[_-]?key|auth)"
)
_MIN_SECRET_CHARS = 8  # shorter values ("1", "true") are not worth hiding and would mangle every message
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
REDACTED = "[redacted]"


def _secrets(api_key: str | None) -> list[str]:
    """The credentials an error text must not carry: the key given to this call and every secret-looking variable."""
    found = {
        value for name, value in os.environ.items() if SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_CHARS
    }
    if api_key and len(api_key) >= _MIN_SECRET_CHARS:
        found.add(api_key)
    return sorted(found, key=len, reverse=True)  # a key that contains another is replaced whole


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` without any of `secrets` or a bearer token: provider errors may quote the key they were sent, and
    every error goes into events.jsonl, the gates and the headless log."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return _BEARER.sub(rf"\1 {REDACTED}", text)


# --- the call ------------------------------------------------------------------------------------------------

OnAttempt = Callable[[Attempt], Awaitable[None] | None]


async def complete(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
    thinking: str = "off",
    api_base: str | None = None,
    api_key: str | None = None,
    policy: RetryPolicy = RetryPolicy(),
    on_attempt: OnAttempt | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    rng: random.Random | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> Completion:
    """One chat completion through litellm, retried by the engine; streamed when `policy.stream` asks for it.

    `messages` are chat messages (OpenAI shape, or `Completion.message` as returned). `tools` are OpenAI tool
    specs or bare {"name", "description", "parameters"}. `thinking` is an aw-tui level (`map_thinking`).
    `api_base` points an OpenAI-compatible model string at a local or self-hosted server. `on_attempt` is
    called (and awaited when it returns an awaitable) as each try ends, before any wait. `sleep` waits between
    tries (inject a fake in tests); `rng` draws the jitter. `extra_params` go to litellm as they are
    (temperature, max_tokens, ...).

    Retries: rate_limited and server_error wait Retry-After capped at `policy.max_retry_after_s` (backoff when
    absent); connection_error and timeout back off exponentially with jitter; anything else fails at once, and so
    does a 429 that says the quota is used up. A stream that ends without a finish reason or breaks off is a
    failed attempt (connection_error, or server_error for a chunk that is not JSON), never a partial answer.
    Raises LlmError after the last try, or before the first when a needed API key is missing. Error texts never
    carry the API key or a secret-looking environment variable's value (`redact`).
    """
    litellm = await _load_litellm_off_loop()
    started = time.perf_counter()
    attempts: list[Attempt] = []

    async def report(attempt: Attempt) -> None:
        attempts.append(attempt)
        if on_attempt is not None:
            result = on_attempt(attempt)
            if inspect.isawaitable(result):
                await result

    async def refuse(kind: Outcome, message: str) -> LlmError:
        message = redact(message, _secrets(api_key))  # on failures only: it scans the whole environment
        await report(Attempt(1, model, kind, 0.0, message))
        return LlmError(kind, message, attempts)

    try:
        _, provider, _, _ = litellm.get_llm_provider(model=model, api_base=api_base)
    except Exception as exc:
        raise await refuse(
            "bad_request",
            f"{model}: litellm does not know this model's provider ({one_line(exc, 120)}); "
            "write it as provider/model, e.g. openai/gpt-5-mini",
        ) from exc
    placeholder_key = False
    if api_key is None:
        problem, placeholder_key = _credential_check(litellm, model, provider, api_base)
        if problem:
            raise await refuse("auth_error", problem)

    effort = map_thinking(model, thinking)
    over_http = not _is_custom_provider(litellm, provider)
    streaming = policy.stream and over_http
    kwargs: dict[str, Any] = dict(extra_params or {})
    kwargs.update(
        model=model,
        messages=[to_api_message(m) for m in messages],
        num_retries=0,  # the engine retries; this also turns off the OpenAI SDK's hidden retries
        timeout=policy.timeout_s,
        stream=streaming,
        _skip_mcp_handler=True,  # tools= would otherwise import litellm's MCP gateway (needs the mcp package)
    )
    if streaming:
        kwargs["stream_options"] = {"include_usage": True}  # the provider's own count, not litellm's estimate
    if tools:
        kwargs["tools"] = [_api_tool(tool) for tool in tools]
    if api_base:
        kwargs["api_base"] = api_base
    if api_key is not None:
        kwargs["api_key"] = api_key
    elif placeholder_key:
        kwargs["api_key"] = _NO_KEY_PLACEHOLDER
    if effort is not None:
        kwargs["reasoning_effort"] = effort
        if _is_custom_provider(litellm, provider):
            # litellm knows no supported-params list for a CustomLLM and would refuse the parameter.
            kwargs["allowed_openai_params"] = ["reasoning_effort"]

    number = 0
    while True:
        number += 1
        attempt_started = time.perf_counter()
        billed: Usage | None = None
        streamed = [0]  # chunks received so far in this attempt
        try:
            async with asyncio.timeout(policy.timeout_s):
                with _litellm_logging_off(litellm, kwargs):
                    response = await litellm.acompletion(**kwargs)
                    if streaming:
                        response = await _read_stream(litellm, response, kwargs["messages"], streamed)
            billed = _usage(litellm, response, model)
            message, finish_reason = _assistant_message(response)
        except Exception as exc:  # noqa: BLE001 - every failure is classified and reported
            duration_ms = (time.perf_counter() - attempt_started) * 1000
            kind = classify(exc)
            error = redact(_attempt_error(litellm, exc, kind, policy.timeout_s, streamed[0], over_http=over_http),
                           _secrets(api_key))  # fmt: skip
            quota_used_up = kind == "rate_limited" and _quota_used_up(exc)
            delay: float | None = None
            if kind in RETRYABLE and number < policy.max_attempts and not quota_used_up:
                # A 503 may say when to come back just as a 429 does.
                hinted = retry_after_s(exc) if kind in ("rate_limited", "server_error") else None
                if hinted is not None:
                    delay = min(hinted, policy.max_retry_after_s)
                else:
                    delay = policy.backoff_s(number, rng)
            await report(Attempt(number, model, kind, duration_ms, error, delay, billed))
            if delay is None:
                failure = _failure_message(kind, model, provider, error, number, quota_used_up=quota_used_up)
                raise LlmError(kind, failure, attempts) from exc
            await sleep(delay)
            continue
        duration_ms = (time.perf_counter() - attempt_started) * 1000
        usage = billed or Usage(cost_known=False)  # no usage reported: nothing to price it by
        await report(Attempt(number, model, "ok", duration_ms, None, None, usage))
        return Completion(
            message=message,
            usage=usage,
            model=model,
            duration_ms=(time.perf_counter() - started) * 1000,
            attempts=list(attempts),
            finish_reason=finish_reason,
            reasoning_effort=effort,
        )
