"""The scripted provider: an offline model that plays a script, through litellm's real code path.

`install_script(...)` registers a `litellm.CustomLLM` under the provider name "scripted", so the model string
`scripted/<role>` goes through `litellm.acompletion` (and so through `aw_tui.engine.llm.complete`) like any other
model: parameter checks, response building, cost from the price map. Each call takes the next turn of that role's
queue and answers with it, or raises the error the turn injects. A call that does not fit the script fails
loudly with a `ScriptError` naming the script, the role and the turn index; the script running out does too.

Script format (JSON, or TOML for a `.toml` file); unknown keys are errors:

    {
      "version": 1,                                    # optional, only 1 exists
      "prices": {                                      # optional; USD per million tokens, per role
        "analyst": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75,
                    "context_window": 200000,          # optional: max input tokens (default 200000)
                    "supports_reasoning": true},       # optional (default true): thinking levels reach it
        "explorer": null                               # null: no price at all (cost 0, cost_known false)
      },
      "roles": {                                       # one ordered queue of turns per role
        "analyst": [
          {"text": "Plan: ...", "reasoning_text": "optional visible reasoning",
           "usage": {"input": 1200, "output": 300, "cache_read": 0, "cache_write": 0, "reasoning": 120}}
        ],
        "worker": [
          {"tool_calls": [{"id": "c1", "name": "read", "arguments": {"path": "src/x.py"}}],
           "usage": {"input": 900, "output": 40}},
          {"error": "rate_limit", "retry_after": 2},
          {"expect_tool_result": "c1", "text": "Done.", "usage": {"input": 1500, "output": 80}}
        ]
      }
    }

A turn:
- `text` (reply text), `reasoning_text` (sent as `reasoning_content`), `tool_calls` (each `name`, `arguments` as
  an object or a raw string passed verbatim, e.g. broken JSON; `id` defaults to `call_<role>_<turn>_<n>`),
  `finish_reason` (default "tool_calls" when there are tool calls, else "stop"). A turn with neither text nor
  tool calls is an empty reply.
- `usage`: `input` (uncached prompt tokens), `output` (completion tokens, reasoning included), `cache_read`,
  `cache_write`, `reasoning` (the part of `output` spent reasoning, so at most `output`). All default to 0.
  The provider reports prompt_tokens = input + cache_read + cache_write, as litellm normalises real providers.
- `error`: instead of answering, raise what a provider would: "rate_limit" (429; `retry_after` seconds becomes
  a Retry-After header), "server_error" (`status` 500, 502 or 503), "timeout", "connection_error",
  "bad_request", "auth_error", "context_window"; `message` overrides the error text. An error turn has no reply.
- `delay_s`: wait this long before answering (or failing), to exercise real timeouts.
- Checks on the call, failing loudly when not met: `expect_tool_result` ("<call id or tool name>": the trailing
  tool messages of the conversation must include that call's result) and `expect_contains` (a substring of the
  last message's text). Every tool a turn calls must be among the `tools` the call offered.

Every call consumes one turn of its role, errors included, even when the caller stops waiting (a timeout).

Prices: scripted/analyst defaults to a strong model's prices (3 / 15 / 0.30 / 3.75 USD per Mtok) and
scripted/worker to a cheap one's (0.25 / 2.00 / 0.025 / 0); the script's `prices` override or (with null) remove
them; other roles are unpriced unless priced. Prices are registered with `litellm.register_model`.

API: `load_script(path_or_obj) -> Script` (validation only, no litellm), `install_script(path_or_obj_or_Script)
-> ScriptedProvider` (the handle: `remaining()`, `calls`, `assert_finished()`), `uninstall_script()`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from aw_tui.engine.llm import load_litellm

PROVIDER = "scripted"
INLINE_NAME = "<inline script>"

ErrorKind = Literal[
    "rate_limit", "server_error", "timeout", "connection_error", "bad_request", "auth_error", "context_window",
]  # fmt: skip


class ScriptError(Exception):
    """A script that cannot be loaded, or a call that does not fit the script."""


# --- the format ----------------------------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScriptUsage(_Spec):
    input: int = Field(0, ge=0)
    output: int = Field(0, ge=0)
    cache_read: int = Field(0, ge=0)
    cache_write: int = Field(0, ge=0)
    reasoning: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _reasoning_is_part_of_output(self) -> ScriptUsage:
        if self.reasoning > self.output:
            raise ValueError(f"reasoning ({self.reasoning}) is part of output ({self.output}), so cannot exceed it")
        return self


class ScriptToolCall(_Spec):
    id: str | None = Field(None, min_length=1)
    name: str = Field(min_length=1)
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ScriptTurn(_Spec):
    text: str | None = None
    reasoning_text: str | None = None
    tool_calls: list[ScriptToolCall] = Field(default_factory=list)
    usage: ScriptUsage = ScriptUsage()
    finish_reason: str | None = None
    error: ErrorKind | None = None
    retry_after: float | None = Field(None, ge=0)
    status: Literal[500, 502, 503] | None = None
    message: str | None = None
    delay_s: float = Field(0.0, ge=0)
    expect_tool_result: str | None = Field(None, min_length=1)
    expect_contains: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ScriptTurn:
        if self.error is not None:
            reply = [k for k in ("text", "reasoning_text", "finish_reason") if getattr(self, k) is not None]
            if self.tool_calls:
                reply.append("tool_calls")
            if reply:
                raise ValueError(f"an error turn has no reply, but it sets {', '.join(reply)}")
        if self.retry_after is not None and self.error != "rate_limit":
            raise ValueError('retry_after only goes with "error": "rate_limit"')
        if self.status is not None and self.error != "server_error":
            raise ValueError('status only goes with "error": "server_error"')
        if self.message is not None and self.error is None:
            raise ValueError('message is the text of an injected error; use "text" for a reply')
        ids = [call.id for call in self.tool_calls if call.id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("tool call ids repeat within the turn")
        return self


class ScriptPrice(_Spec):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float = Field(0.0, ge=0)
    cache_write: float = Field(0.0, ge=0)
    context_window: int = Field(200_000, gt=0)
    supports_reasoning: bool = True


class Script(_Spec):
    version: Literal[1] = 1
    prices: dict[str, ScriptPrice | None] = Field(default_factory=dict)
    roles: dict[str, list[ScriptTurn]] = Field(min_length=1)

    _source: str = PrivateAttr(default=INLINE_NAME)

    @property
    def source(self) -> str:
        """Where the script came from (its path), for error messages."""
        return self._source

    @model_validator(mode="after")
    def _role_names(self) -> Script:
        for role in self.roles:
            if not role or role != role.strip():
                raise ValueError(f"role name {role!r} must be non-empty without surrounding spaces")
        return self


DEFAULT_PRICES: dict[str, ScriptPrice] = {
    # Priced like a strong model and a cheap fast one, so a demo run shows both ends of the gauge.
    "analyst": ScriptPrice(input=3.0, output=15.0, cache_read=0.30, cache_write=3.75, context_window=200_000),
    "worker": ScriptPrice(input=0.25, output=2.0, cache_read=0.025, cache_write=0.0, context_window=400_000),
}


def load_script(source: str | os.PathLike[str] | Mapping[str, Any], *, name: str | None = None) -> Script:
    """Read and validate a script from a file (JSON, or TOML by suffix) or a dict. Raises ScriptError naming
    the file and the offending key. Does not import litellm."""
    if not isinstance(source, (str, os.PathLike)):
        data: Any = source  # an inline object (validation says so when it is not a dict)
        label = name or INLINE_NAME
    else:
        path = Path(source)
        label = name or str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScriptError(f"{label}: cannot read the script: {exc.strerror or exc}") from exc
        if path.suffix.lower() == ".toml":
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ScriptError(f"{label}: not valid TOML: {exc}") from exc
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ScriptError(
                    f"{label}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
                ) from exc
    try:
        script = Script.model_validate(data)
    except ValidationError as exc:
        raise ScriptError(f"{label}: {_describe(exc)}") from exc
    script._source = label
    return script


def _describe(exc: ValidationError) -> str:
    problems = []
    errors = exc.errors(include_url=False)
    for error in errors[:3]:
        where = _location(error.get("loc", ()))
        message = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            message = "unknown key"
        elif error.get("type") == "model_type" and not where:
            message = 'the script must be an object with a "roles" key'
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append(f"{where}: {message}" if where else message)
    if len(errors) > 3:
        problems.append(f"and {len(errors) - 3} more")
    return "; ".join(problems)


def _location(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "none")):
            continue  # pydantic's union member tags, not keys of the script
        else:
            out += f".{part}" if out else str(part)
    return out


# --- the provider --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ScriptedCall:
    """One call the provider received (for tests to inspect)."""

    role: str
    turn_index: int | None
    messages: list[dict[str, Any]]
    tools: list[str]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def reasoning_effort(self) -> str | None:
        return self.params.get("reasoning_effort")


class ScriptedProvider:
    """The installed script's queues. `remaining()` counts unplayed turns; `calls` records every call."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.name = script.source
        self.calls: list[ScriptedCall] = []
        self._cursor = {role: 0 for role in script.roles}

    def remaining(self) -> dict[str, int]:
        return {role: len(turns) - self._cursor[role] for role, turns in self.script.roles.items()}

    def played(self) -> dict[str, int]:
        return dict(self._cursor)

    def skip(self, played: Mapping[str, int]) -> None:
        """Start each role's queue after the turns an earlier process already played (a resumed run)."""
        for role, count in played.items():
            if role not in self._cursor:
                continue
            if count > len(self.script.roles[role]):
                raise ScriptError(
                    f"script {self.name}: the run already made {count} call(s) as {role!r}, "
                    f"but the script has only {len(self.script.roles[role])} turn(s) for it"
                )
            self._cursor[role] = max(self._cursor[role], count)

    def assert_finished(self) -> None:
        left = {role: n for role, n in self.remaining().items() if n}
        if left:
            detail = ", ".join(f"{role}: {n}" for role, n in left.items())
            raise ScriptError(f"script {self.name}: turns were never played ({detail})")

    def prices(self) -> dict[str, ScriptPrice]:
        merged: dict[str, ScriptPrice | None] = {**DEFAULT_PRICES, **self.script.prices}
        return {role: price for role, price in merged.items() if price is not None}

    def model_cost_entries(self) -> dict[str, dict[str, Any]]:
        """`litellm.register_model` entries for every priced role: scripted/<role> -> prices per token."""
        return {
            f"{PROVIDER}/{role}": {
                "litellm_provider": PROVIDER,
                "mode": "chat",
                "input_cost_per_token": price.input / 1e6,
                "output_cost_per_token": price.output / 1e6,
                "cache_read_input_token_cost": price.cache_read / 1e6,
                "cache_creation_input_token_cost": price.cache_write / 1e6,
                "max_input_tokens": price.context_window,
                "max_tokens": price.context_window,
                "supports_function_calling": True,
                "supports_reasoning": price.supports_reasoning,
            }
            for role, price in self.prices().items()
        }

    def take_turn(
        self, role: str, messages: Sequence[Any], params: Mapping[str, Any] | None = None
    ) -> tuple[int, ScriptTurn]:
        """Consume the role's next turn after checking that the call fits it; ScriptError when it does not."""
        params = dict(params or {})
        offered = _offered_tools(params.get("tools"))
        other_params = {k: v for k, v in params.items() if k != "tools"}
        call = ScriptedCall(role, None, [_plain_message(m) for m in messages], offered, other_params)
        self.calls.append(call)
        turns = self.script.roles.get(role)
        if turns is None:
            roles = ", ".join(self.script.roles) or "none"
            raise ScriptError(f"script {self.name}: no role {role!r} (model {PROVIDER}/{role}); its roles: {roles}")
        index = self._cursor[role]
        if index >= len(turns):
            raise ScriptError(
                f"script {self.name}: role {role!r} ran out of turns: this call needs turn index {index}, "
                f"the script has {len(turns)} turn(s) for it"
            )
        self._cursor[role] = index + 1
        call.turn_index = index
        where = f"script {self.name}: role {role!r}, turn index {index}"
        turn = turns[index]
        if turn.expect_tool_result is not None:
            _check_tool_result(where, turn.expect_tool_result, call.messages)
        if turn.expect_contains is not None:
            last = _text(call.messages[-1]) if call.messages else ""
            if turn.expect_contains not in last:
                raise ScriptError(
                    f"{where}: expects the last message to contain {turn.expect_contains!r}, but it is {_clip(last)!r}"
                )
        for tool_call in turn.tool_calls:
            if tool_call.name not in offered:
                listed = ", ".join(offered) if offered else "no tools"
                raise ScriptError(f"{where}: calls tool {tool_call.name!r}, which the call did not offer ({listed})")
        return index, turn


def _offered_tools(tools: Any) -> list[str]:
    names = []
    for tool in tools or []:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = (
            function.get("name")
            if isinstance(function, Mapping)
            else (tool.get("name") if isinstance(tool, Mapping) else None)
        )
        if name:
            names.append(str(name))
    return names


def _plain_message(message: Any) -> dict[str, Any]:
    if isinstance(message, Mapping):
        return dict(message)
    if hasattr(message, "model_dump"):
        return message.model_dump()
    return dict(vars(message))


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return content if isinstance(content, str) else ""


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_tool_result(where: str, expected: str, messages: list[dict[str, Any]]) -> None:
    trailing = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing.append(message)
    if not trailing:
        role = messages[-1].get("role") if messages else "nothing"
        raise ScriptError(
            f"{where}: expects the result of {expected!r}, but the last message is {role!r}, not a tool result"
        )
    names_by_id = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            names_by_id[call.get("id")] = function.get("name") or call.get("name")
    seen = []
    for message in reversed(trailing):
        call_id = message.get("tool_call_id")
        name = message.get("name") or names_by_id.get(call_id)
        if expected in (call_id, name):
            return
        seen.append(f"{call_id} ({name})" if name else str(call_id))
    raise ScriptError(
        f"{where}: expects the result of {expected!r}, but the last tool results are for {', '.join(seen)}"
    )


# --- litellm glue --------------------------------------------------------------------------------------------

_handler_class: type | None = None
_mismatch_class: type | None = None
_registered: set[str] = set()


def _classes(litellm: ModuleType) -> tuple[type, type]:
    """The CustomLLM subclass and the loud-error class, built on first install (they need litellm)."""
    global _handler_class, _mismatch_class
    if _handler_class is not None and _mismatch_class is not None:
        return _handler_class, _mismatch_class

    class ScriptMismatchError(ScriptError, litellm.BadRequestError):
        """A call that does not fit the script. A litellm exception type, so litellm re-raises it unchanged
        (anything else it wraps as an APIConnectionError, which an engine would retry)."""

        def __init__(self, message: str, model: str) -> None:
            litellm.BadRequestError.__init__(self, message=message, model=model, llm_provider=PROVIDER)

    class ScriptedHandler(litellm.CustomLLM):
        def __init__(self, provider: ScriptedProvider) -> None:
            super().__init__()
            self.provider = provider

        def _turn(self, model: str, messages: Any, kwargs: dict[str, Any]) -> tuple[str, int, ScriptTurn]:
            role = model.split("/", 1)[1] if model.startswith(PROVIDER + "/") else model
            try:
                index, turn = self.provider.take_turn(role, messages, kwargs.get("optional_params") or {})
            except ScriptError as exc:
                raise ScriptMismatchError(str(exc), f"{PROVIDER}/{role}") from None
            return role, index, turn

        def completion(self, model: str, messages: list, **kwargs: Any) -> Any:
            role, index, turn = self._turn(model, messages, kwargs)
            if turn.delay_s:
                time.sleep(turn.delay_s)
            return _answer(litellm, self.provider, role, index, turn)

        async def acompletion(self, model: str, messages: list, **kwargs: Any) -> Any:
            role, index, turn = self._turn(model, messages, kwargs)
            if turn.delay_s:
                await asyncio.sleep(turn.delay_s)
            return _answer(litellm, self.provider, role, index, turn)

        def streaming(self, model: str, messages: list, **kwargs: Any) -> Any:
            raise ScriptMismatchError(f"script {self.provider.name}: the scripted provider does not stream", model)

        async def astreaming(self, model: str, messages: list, **kwargs: Any) -> Any:
            raise ScriptMismatchError(f"script {self.provider.name}: the scripted provider does not stream", model)

    _handler_class, _mismatch_class = ScriptedHandler, ScriptMismatchError
    return _handler_class, _mismatch_class


def _answer(litellm: ModuleType, provider: ScriptedProvider, role: str, index: int, turn: ScriptTurn) -> Any:
    model = f"{PROVIDER}/{role}"
    if turn.error is not None:
        raise _injected_error(litellm, turn, model, f"script {provider.name}: role {role!r}, turn index {index}")
    message: dict[str, Any] = {"role": "assistant", "content": turn.text}
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{role}_{index}_{n}",
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments),
                },
            }
            for n, call in enumerate(turn.tool_calls)
        ]
    if turn.reasoning_text is not None:
        message["reasoning_content"] = turn.reasoning_text
    u = turn.usage
    prompt = u.input + u.cache_read + u.cache_write
    usage = litellm.Usage(
        prompt_tokens=prompt,
        completion_tokens=u.output,
        total_tokens=prompt + u.output,
        prompt_tokens_details={"cached_tokens": u.cache_read, "cache_write_tokens": u.cache_write},
        completion_tokens_details={"reasoning_tokens": u.reasoning},
    )
    finish = turn.finish_reason or ("tool_calls" if turn.tool_calls else "stop")
    return litellm.ModelResponse(
        model=model,
        choices=[{"index": 0, "finish_reason": finish, "message": message}],
        usage=usage,
    )


def _injected_error(litellm: ModuleType, turn: ScriptTurn, model: str, where: str) -> Exception:
    import httpx  # a litellm dependency; only needed once litellm is loaded

    kind = turn.error
    text = turn.message or f"injected {kind} ({where})"
    request = httpx.Request("POST", "https://scripted.invalid/v1/chat/completions")
    if kind == "rate_limit":
        headers = {} if turn.retry_after is None else {"retry-after": f"{turn.retry_after:g}"}
        response = httpx.Response(429, headers=headers, request=request)
        return litellm.RateLimitError(message=text, llm_provider=PROVIDER, model=model, response=response)
    if kind == "server_error":
        status = turn.status or 500
        cls = {502: litellm.BadGatewayError, 503: litellm.ServiceUnavailableError}.get(
            status, litellm.InternalServerError
        )
        return cls(message=text, llm_provider=PROVIDER, model=model, response=httpx.Response(status, request=request))
    if kind == "timeout":
        return litellm.Timeout(message=text, model=model, llm_provider=PROVIDER)
    if kind == "connection_error":
        return litellm.APIConnectionError(message=text, llm_provider=PROVIDER, model=model, request=request)
    if kind == "auth_error":
        response = httpx.Response(401, request=request)
        return litellm.AuthenticationError(message=text, llm_provider=PROVIDER, model=model, response=response)
    if kind == "context_window":
        response = httpx.Response(400, request=request)
        return litellm.ContextWindowExceededError(message=text, model=model, llm_provider=PROVIDER, response=response)
    response = httpx.Response(400, request=request)
    return litellm.BadRequestError(message=text, model=model, llm_provider=PROVIDER, response=response)


def install_script(source: str | Path | Mapping[str, Any] | Script, *, name: str | None = None) -> ScriptedProvider:
    """Load a script (a path, a dict or a Script) and make `scripted/<role>` models play it from now on.

    Replaces any script installed before (other custom providers stay), registers the script's prices with
    litellm and drops prices an earlier script registered that this one does not have. Returns the handle.
    """
    script = source if isinstance(source, Script) else load_script(source, name=name)
    if isinstance(source, Script) and name:
        script._source = name
    provider = ScriptedProvider(script)
    litellm = load_litellm()
    handler_class, _ = _classes(litellm)
    _set_handler(litellm, handler_class(provider))
    entries = provider.model_cost_entries()
    _forget_prices(litellm, _registered - set(entries))
    if entries:
        litellm.register_model(entries, persist_across_reloads=False)
    _registered.clear()
    _registered.update(entries)
    return provider


def uninstall_script() -> None:
    """Remove the scripted provider and the prices it registered."""
    litellm = load_litellm()
    _set_handler(litellm, None)
    _forget_prices(litellm, set(_registered))
    _registered.clear()


def _set_handler(litellm: ModuleType, handler: Any) -> None:
    others = [item for item in (litellm.custom_provider_map or []) if item.get("provider") != PROVIDER]
    if handler is not None:
        others.append({"provider": PROVIDER, "custom_handler": handler})
    litellm.custom_provider_map = others


def _forget_prices(litellm: ModuleType, keys: set[str]) -> None:
    if not keys:
        return
    for key in keys:
        litellm.model_cost.pop(key, None)
    # register_model's own cache reset; the price lookups are memoised on the map's contents.
    invalidate = getattr(getattr(litellm, "utils", None), "_invalidate_model_cost_lowercase_map", None)
    if callable(invalidate):
        invalidate()
