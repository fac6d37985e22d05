"""The scripted provider: scripts load strictly, play through litellm's real code path, and fail loudly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aw_tui.engine.llm import load_litellm
from aw_tui.engine.scripted import (
    DEFAULT_PRICES,
    ScriptedProvider,
    ScriptError,
    install_script,
    load_script,
    uninstall_script,
)

TOOLS = [
    {"type": "function", "function": {"name": "read", "description": "Read a file", "parameters": {"type": "object"}}},
    {
        "type": "function",
        "function": {"name": "bash", "description": "Run a command", "parameters": {"type": "object"}},
    },
]
USER = [{"role": "user", "content": "Fix the parser."}]


@pytest.fixture
def litellm():
    yield load_litellm()
    uninstall_script()


def write(tmp_path: Path, data, name: str = "script.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


async def call(litellm, role: str, messages=USER, **kwargs):
    kwargs.setdefault("_skip_mcp_handler", True)
    return await litellm.acompletion(model=f"scripted/{role}", messages=messages, num_retries=0, **kwargs)


# --- playing turns through litellm ---------------------------------------------------------------------------


async def test_a_text_turn_comes_back_through_litellm_acompletion_with_usage_and_cost(litellm):
    install_script(
        {
            "roles": {
                "analyst": [
                    {
                        "text": "Plan: read src/x.py first.",
                        "reasoning_text": "The parser is probably off by one.",
                        "usage": {"input": 1000, "output": 200, "cache_read": 800, "cache_write": 100, "reasoning": 50},
                    }
                ]
            }
        }
    )
    response = await call(litellm, "analyst")
    message = response.choices[0].message
    assert message.content == "Plan: read src/x.py first."
    assert message.reasoning_content == "The parser is probably off by one."
    assert response.choices[0].finish_reason == "stop"
    usage = response.usage
    # Reported the way litellm normalises real providers: the prompt includes cache reads and writes.
    assert usage.prompt_tokens == 1000 + 800 + 100
    assert usage.completion_tokens == 200
    assert usage.prompt_tokens_details.cached_tokens == 800
    assert usage.prompt_tokens_details.cache_write_tokens == 100
    assert usage.completion_tokens_details.reasoning_tokens == 50
    analyst = DEFAULT_PRICES["analyst"]
    expected = (
        1000 * analyst.input + 200 * analyst.output + 800 * analyst.cache_read + 100 * analyst.cache_write
    ) / 1e6
    assert response._hidden_params["response_cost"] == pytest.approx(expected)
    assert litellm.completion_cost(completion_response=response, model="scripted/analyst") == pytest.approx(expected)


async def test_a_tool_call_turn_offers_ids_names_and_json_arguments(litellm):
    provider = install_script(
        {
            "roles": {
                "worker": [
                    {
                        "tool_calls": [
                            {"id": "c1", "name": "read", "arguments": {"path": "src/x.py"}},
                            {"name": "bash", "arguments": '{"command": "pytest -q'},
                        ],
                        "usage": {"input": 50, "output": 10},
                    }
                ]
            }
        }
    )
    response = await call(litellm, "worker", tools=TOOLS)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [(c.id, c.function.name) for c in calls] == [("c1", "read"), ("call_worker_0_1", "bash")]
    assert json.loads(calls[0].function.arguments) == {"path": "src/x.py"}
    assert calls[1].function.arguments == '{"command": "pytest -q'  # a raw string goes out verbatim, even broken
    assert provider.calls[0].tools == ["read", "bash"]
    assert provider.calls[0].turn_index == 0


def test_the_sync_litellm_completion_plays_the_script_too(litellm):
    install_script({"roles": {"worker": [{"text": "ok", "usage": {"input": 3, "output": 1}}]}})
    response = litellm.completion(model="scripted/worker", messages=USER, num_retries=0)
    assert response.choices[0].message.content == "ok"
    assert response.usage.prompt_tokens == 3


async def test_each_call_takes_the_next_turn_of_its_role_and_remaining_counts_down(litellm):
    provider = install_script({"roles": {"analyst": [{"text": "a1"}, {"text": "a2"}], "worker": [{"text": "w1"}]}})
    assert provider.remaining() == {"analyst": 2, "worker": 1}
    assert (await call(litellm, "analyst")).choices[0].message.content == "a1"
    assert (await call(litellm, "worker")).choices[0].message.content == "w1"
    assert provider.remaining() == {"analyst": 1, "worker": 0}
    assert provider.played() == {"analyst": 1, "worker": 1}
    with pytest.raises(ScriptError, match=r"turns were never played \(analyst: 1\)"):
        provider.assert_finished()
    assert (await call(litellm, "analyst")).choices[0].message.content == "a2"
    provider.assert_finished()


@pytest.mark.parametrize(
    ("turn", "exception", "status"),
    [
        ({"error": "rate_limit", "retry_after": 2}, "RateLimitError", 429),
        ({"error": "server_error"}, "InternalServerError", 500),
        ({"error": "server_error", "status": 503}, "ServiceUnavailableError", 503),
        ({"error": "server_error", "status": 502}, "BadGatewayError", 502),
        ({"error": "timeout"}, "Timeout", 408),
        ({"error": "connection_error"}, "APIConnectionError", 500),
        ({"error": "bad_request", "message": "no such parameter"}, "BadRequestError", 400),
        ({"error": "auth_error"}, "AuthenticationError", 401),
        ({"error": "context_window"}, "ContextWindowExceededError", 400),
    ],
)
async def test_injected_errors_are_the_litellm_exceptions_a_real_provider_raises(litellm, turn, exception, status):
    install_script({"roles": {"worker": [turn]}})
    with pytest.raises(getattr(litellm, exception)) as caught:
        await call(litellm, "worker")
    assert type(caught.value) is getattr(litellm, exception)
    assert caught.value.status_code == status
    if "retry_after" in turn:
        assert caught.value.response.headers["retry-after"] == "2"
    if "message" in turn:
        assert "no such parameter" in str(caught.value)


# --- failing loudly ------------------------------------------------------------------------------------------


async def test_running_out_of_turns_names_the_script_role_and_turn_index(litellm, tmp_path):
    path = write(tmp_path, {"roles": {"worker": [{"text": "only one"}]}})
    install_script(path)
    await call(litellm, "worker")
    with pytest.raises(ScriptError) as caught:
        await call(litellm, "worker")
    message = str(caught.value)
    assert str(path) in message
    assert "role 'worker' ran out of turns" in message
    assert "turn index 1" in message
    # A litellm exception type, so litellm passes it through rather than disguising it as a connection error.
    assert isinstance(caught.value, litellm.BadRequestError)


async def test_a_role_the_script_does_not_have_is_refused(litellm):
    install_script({"roles": {"analyst": [], "worker": []}})
    with pytest.raises(
        ScriptError, match=r"no role 'reviewer' \(model scripted/reviewer\); its roles: analyst, worker"
    ):
        await call(litellm, "reviewer")


async def test_a_turn_calling_a_tool_the_call_did_not_offer_fails_with_its_turn_index(litellm):
    install_script(
        {
            "roles": {
                "worker": [
                    {"text": "warm-up"},
                    {"tool_calls": [{"id": "c9", "name": "write", "arguments": {"path": "x"}}]},
                    {"tool_calls": [{"name": "read"}]},
                ]
            }
        }
    )
    await call(litellm, "worker")
    with pytest.raises(
        ScriptError,
        match=r"role 'worker', turn index 1: calls tool 'write', which the call did not offer \(read, bash\)",
    ):
        await call(litellm, "worker", tools=TOOLS)
    with pytest.raises(
        ScriptError, match=r"turn index 2: calls tool 'read', which the call did not offer \(no tools\)"
    ):
        await call(litellm, "worker")


def _tool_round(call_id: str, name: str) -> list[dict]:
    return USER + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "file contents"},
    ]


async def test_expect_tool_result_checks_the_trailing_tool_messages_by_id_or_tool_name(litellm):
    provider = install_script(
        {
            "roles": {
                "worker": [
                    {"expect_tool_result": "c1", "text": "by id"},
                    {"expect_tool_result": "read", "text": "by name"},
                    {"expect_tool_result": "c1", "text": "never"},
                ]
            }
        }
    )
    assert (await call(litellm, "worker", _tool_round("c1", "read"), tools=TOOLS)).choices[0].message.content == "by id"
    assert (await call(litellm, "worker", _tool_round("c7", "read"), tools=TOOLS)).choices[
        0
    ].message.content == "by name"
    with pytest.raises(
        ScriptError, match=r"turn index 2: expects the result of 'c1', but the last tool results are for c2 \(bash\)"
    ):
        await call(litellm, "worker", _tool_round("c2", "bash"), tools=TOOLS)
    assert provider.remaining() == {"worker": 0}


async def test_expect_tool_result_fails_when_the_last_message_is_not_a_tool_result(litellm):
    install_script({"roles": {"worker": [{"expect_tool_result": "c1", "text": "x"}]}})
    with pytest.raises(ScriptError, match=r"turn index 0: expects the result of 'c1', but the last message is 'user'"):
        await call(litellm, "worker")


async def test_expect_contains_checks_the_last_message(litellm):
    install_script(
        {"roles": {"analyst": [{"expect_contains": "tests pass", "text": "ok"}, {"expect_contains": "DONE"}]}}
    )
    await call(litellm, "analyst", [{"role": "user", "content": "Worker report: all tests pass."}])
    with pytest.raises(
        ScriptError, match=r"turn index 1: expects the last message to contain 'DONE', but it is 'not yet'"
    ):
        await call(litellm, "analyst", [{"role": "user", "content": "not yet"}])


# --- loading scripts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"roles": {"worker": [{"text": "a"}, {"tool_call": []}]}}, r"roles\.worker\[1\]\.tool_call: unknown key"),
        (
            {"roles": {"worker": [{"tool_calls": [{"arguments": {}}]}]}},
            r"roles\.worker\[0\]\.tool_calls\[0\]\.name: Field required",
        ),
        (
            {"roles": {"worker": [{"usage": {"input": -1}}]}},
            r"roles\.worker\[0\]\.usage\.input: Input should be greater than or equal to 0",
        ),
        (
            {"roles": {"worker": [{"usage": {"output": 5, "reasoning": 9}}]}},
            r"roles\.worker\[0\]\.usage: reasoning \(9\) is part of output \(5\)",
        ),
        (
            {"roles": {"worker": [{"error": "rate_limit", "text": "hi"}]}},
            r"roles\.worker\[0\]: an error turn has no reply, but it sets text",
        ),
        (
            {"roles": {"worker": [{"error": "server_error", "retry_after": 3}]}},
            r"roles\.worker\[0\]: retry_after only goes with",
        ),
        ({"roles": {"worker": [{"error": "overloaded"}]}}, r"roles\.worker\[0\]\.error: Input should be 'rate_limit'"),
        ({"roles": {"worker": []}, "prices": {"worker": {"input": 1}}}, r"prices\.worker\.output: Field required"),
        ({"roles": {}}, r"roles: Dictionary should have at least 1 item"),
        ({"turns": []}, r"roles: Field required; turns: unknown key"),
        ([1, 2], r"the script must be an object with a \"roles\" key"),
    ],
)
def test_a_malformed_script_file_names_the_file_and_the_bad_key(tmp_path, data, where):
    path = write(tmp_path, data)
    with pytest.raises(ScriptError, match=where) as caught:
        load_script(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_file_that_is_not_json_names_the_file_line_and_column(tmp_path):
    path = write(tmp_path, '{"roles": {"worker": [\n  {"text": "a",}\n]}}')
    with pytest.raises(ScriptError, match=r"script\.json: not valid JSON \(line 2, column 16\)"):
        load_script(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ScriptError, match=r"nope\.json: cannot read the script"):
        load_script(tmp_path / "nope.json")


def test_toml_scripts_load_too(tmp_path):
    path = write(
        tmp_path,
        """
        [prices.explorer]
        input = 1.0
        output = 2.0

        [[roles.worker]]
        text = "reading"
        tool_calls = [{ id = "c1", name = "read", arguments = { path = "src/x.py" } }]
        usage = { input = 10, output = 2 }

        [[roles.worker]]
        error = "rate_limit"
        retry_after = 1.5
        """,
        "script.toml",
    )
    script = load_script(path)
    assert script.source == str(path)
    worker = script.roles["worker"]
    assert worker[0].tool_calls[0].arguments == {"path": "src/x.py"}
    assert worker[1].retry_after == 1.5
    assert script.prices["explorer"].output == 2.0


def test_a_malformed_toml_file_is_named(tmp_path):
    path = write(tmp_path, "[[roles.worker]]\ntext = \n", "bad.toml")
    with pytest.raises(ScriptError, match=r"bad\.toml: not valid TOML"):
        load_script(path)


def test_loading_a_script_does_not_need_litellm():
    # Pure validation: prices and queues without any provider behind them.
    provider = ScriptedProvider(load_script({"roles": {"worker": [{"text": "x"}]}, "prices": {"analyst": None}}))
    assert provider.remaining() == {"worker": 1}
    assert set(provider.prices()) == {"worker"}
    assert provider.model_cost_entries()["scripted/worker"]["input_cost_per_token"] == pytest.approx(0.25e-6)


# --- installing ----------------------------------------------------------------------------------------------


async def test_script_prices_override_the_defaults_and_null_removes_one(litellm):
    install_script(
        {
            "prices": {
                "worker": {"input": 10.0, "output": 20.0},
                "analyst": None,
                "explorer": {"input": 1, "output": 1},
            },
            "roles": {
                "worker": [{"text": "w", "usage": {"input": 1000, "output": 1000}}],
                "analyst": [{"text": "a", "usage": {"input": 1000, "output": 1000}}],
                "explorer": [{"text": "e", "usage": {"input": 1000, "output": 1000}}],
            },
        }
    )
    assert (await call(litellm, "worker"))._hidden_params["response_cost"] == pytest.approx(0.03)
    assert (await call(litellm, "explorer"))._hidden_params["response_cost"] == pytest.approx(0.002)
    assert (await call(litellm, "analyst"))._hidden_params.get("response_cost") is None  # unpriced


async def test_installing_again_replaces_the_script_and_forgets_its_prices(litellm):
    install_script({"prices": {"explorer": {"input": 1, "output": 1}}, "roles": {"explorer": [{"text": "1"}]}})
    assert "scripted/explorer" in litellm.model_cost
    second = install_script({"roles": {"explorer": [{"text": "2", "usage": {"input": 10, "output": 10}}]}})
    assert "scripted/explorer" not in litellm.model_cost
    response = await call(litellm, "explorer")
    assert response.choices[0].message.content == "2"
    assert response._hidden_params.get("response_cost") is None
    assert second.remaining() == {"explorer": 0}


async def test_installing_keeps_other_custom_providers_and_uninstall_removes_ours(litellm):
    other = {"provider": "someone-else", "custom_handler": litellm.CustomLLM()}
    litellm.custom_provider_map = [other]
    try:
        install_script({"roles": {"worker": [{"text": "x"}]}})
        assert [item["provider"] for item in litellm.custom_provider_map] == ["someone-else", "scripted"]
        uninstall_script()
        assert litellm.custom_provider_map == [other]
        assert "scripted/worker" not in litellm.model_cost
    finally:
        litellm.custom_provider_map = []
