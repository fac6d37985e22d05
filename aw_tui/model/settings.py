"""Settings for aw-tui: the pydantic models and the pure helpers around them.

Files are read and written by `aw_tui.store.config`; this module only knows about dicts, strings and models,
so the CLI, the store and the UI share one definition of what a valid setting is and how it is shown.
"""

from __future__ import annotations

import copy
import difflib
import json
import tomllib
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

ThinkingLevel = Literal["off", "minimal", "low", "medium", "high", "xhigh"]
THINKING_LEVELS: tuple[str, ...] = typing.get_args(ThinkingLevel)

DEFAULT_ANALYST_MODEL = "openai/gpt-5"
DEFAULT_WORKER_MODEL = "openai/gpt-5-mini"


class _SettingsModel(BaseModel):
    # strict: TOML already carries types, so "128000" (a string) for an int is a mistake worth reporting,
    # not something to coerce silently. extra="forbid": a typo'd key must be an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class RoleSettings(_SettingsModel):
    """How one role (analyst or worker) talks to its model."""

    model: str = Field(min_length=1)
    thinking: ThinkingLevel = "high"
    context_limit: int = Field(default=128_000, gt=0)
    api_base: str | None = None


class BudgetSettings(_SettingsModel):
    """Spending caps for a run; None means no cap."""

    max_cost_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_tokens: int | None = Field(default=None, ge=0)


class LimitSettings(_SettingsModel):
    """How long the engine may go on without the operator."""

    max_worker_steps_before_operator: int | None = Field(default=None, ge=1)
    max_autonomous_hours: float = Field(default=24.0, gt=0, allow_inf_nan=False)


class ToolSettings(_SettingsModel):
    """The worker's tools: which it may use and which bash commands wait for the operator."""

    policy: Literal["all-tools", "read-only", "no-tools"] = "all-tools"
    bash_timeout_s: float = Field(default=120.0, gt=0, allow_inf_nan=False)
    # Regexes: a command matching one of these also needs approval; one matching an allowed pattern entirely is
    # exempt from the built-in dangerous-command rules (extra patterns win).
    dangerous_patterns: list[str] = Field(default_factory=list)
    allowed_patterns: list[str] = Field(default_factory=list)


class LlmSettings(_SettingsModel):
    """How hard the engine tries a model call before giving up (the engine owns retries, not litellm)."""

    max_attempts: int = Field(default=4, ge=1, le=20)
    max_retry_after_s: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    timeout_s: float = Field(default=600.0, gt=0, allow_inf_nan=False)
    # Ask for replies as streams: a stream cut short or broken off is then a failed attempt, retried like the rest.
    stream: bool = False


class DelegateSettings(_SettingsModel):
    """The `delegate` tool: what each effort means, how long a child may run, how deep delegation may nest.

    An effort's model left unset follows the configured roles: fast and balanced use the worker's model, smart
    the analyst's (with that role's api_base and context limit); `effort_choice` resolves it.
    """

    fast_model: str | None = Field(default=None, min_length=1)
    fast_thinking: ThinkingLevel = "low"
    balanced_model: str | None = Field(default=None, min_length=1)
    balanced_thinking: ThinkingLevel = "medium"
    smart_model: str | None = Field(default=None, min_length=1)
    smart_thinking: ThinkingLevel = "high"
    timeout_s: float = Field(default=900.0, gt=0, allow_inf_nan=False)
    # The worker is depth 0; its children are depth 1. A child at max_depth may not delegate further.
    max_depth: int = Field(default=2, ge=0)


class RunsSettings(_SettingsModel):
    """Where run directories are discovered and created (the first root is where new runs go)."""

    roots: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=lambda: ["./tmp"], min_length=1)


# The two roles share one model but not one set of defaults; these fill in whatever a partial layer leaves out.
_ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "analyst": {"model": DEFAULT_ANALYST_MODEL},
    "worker": {"model": DEFAULT_WORKER_MODEL, "thinking": "low"},
}


class Settings(_SettingsModel):
    """All of aw-tui's configuration. Any partial dict (one config layer) validates against it."""

    analyst: RoleSettings = Field(default_factory=lambda: RoleSettings(**_ROLE_DEFAULTS["analyst"]))
    worker: RoleSettings = Field(default_factory=lambda: RoleSettings(**_ROLE_DEFAULTS["worker"]))
    runs: RunsSettings = Field(default_factory=RunsSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    delegate: DelegateSettings = Field(default_factory=DelegateSettings)

    @model_validator(mode="before")
    @classmethod
    def _fill_role_defaults(cls, data: Any) -> Any:
        # So that `[worker] thinking = "high"` alone keeps the worker's default model instead of failing
        # with "analyst.model: field required".
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for role, defaults in _ROLE_DEFAULTS.items():
            if isinstance(filled.get(role), dict):
                filled[role] = {**defaults, **filled[role]}
        return filled


# ---------------------------------------------------------------------------------------------------------------
# Delegation effort

Effort = Literal["fast", "balanced", "smart"]
EFFORTS: tuple[str, ...] = typing.get_args(Effort)
# Which role's model an effort follows when its own model is not set.
_EFFORT_ROLE = {"fast": "worker", "balanced": "worker", "smart": "analyst"}


@dataclass(frozen=True)
class EffortChoice:
    """What a delegate effort resolves to: the model to call and how."""

    effort: str
    model: str
    thinking: str
    api_base: str | None = None
    context_limit: int | None = None


def effort_choice(settings: Settings, effort: str) -> EffortChoice:
    """The model, thinking level, api_base and context limit for a delegate `effort` (fast|balanced|smart).

    A model of the effort's own wins; otherwise it follows its role (fast and balanced: the worker, smart: the
    analyst). The role's api_base and context limit come along whenever the model is that role's model.
    Raises ValueError for an unknown effort.
    """
    if effort not in EFFORTS:
        raise ValueError(f"unknown effort {effort!r}; use one of: {', '.join(EFFORTS)}")
    delegate = settings.delegate
    model = getattr(delegate, f"{effort}_model") or getattr(settings, _EFFORT_ROLE[effort]).model
    thinking = getattr(delegate, f"{effort}_thinking")
    # The endpoint belongs to the model: prefer the effort's own role, then the other one.
    roles = [getattr(settings, _EFFORT_ROLE[effort]), settings.analyst, settings.worker]
    role = next((r for r in roles if r.model == model), None)
    return EffortChoice(
        effort=effort, model=model, thinking=thinking,
        api_base=role.api_base if role else None, context_limit=role.context_limit if role else None,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Layers


def merge_layers(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge config layers; a later layer wins key by key. Tables merge, lists and scalars replace.

    The inputs are not modified and the result shares no mutable value with them.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        _merge_into(merged, layer)
    return merged


def _merge_into(target: dict[str, Any], layer: dict[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


# ---------------------------------------------------------------------------------------------------------------
# Keys


def _sections() -> dict[str, type[BaseModel]]:
    return {name: field.annotation for name, field in Settings.model_fields.items()}  # type: ignore[misc]


def valid_keys() -> list[str]:
    """Every settable dotted key, in declaration order ("analyst.model", ..., "limits.max_autonomous_hours")."""
    return [
        f"{section}.{name}" for section, section_model in _sections().items() for name in section_model.model_fields
    ]


def section_names() -> list[str]:
    return list(Settings.model_fields)


class UnknownSettingKey(ValueError):
    """A dotted key that names no setting. The message lists the valid keys."""

    def __init__(self, key: str):
        self.key = key
        super().__init__(unknown_key_message(key))


def unknown_key_message(key: str) -> str:
    keys = valid_keys()
    if key in section_names():
        section_keys = [k for k in keys if k.startswith(f"{key}.")]
        return f"'{key}' is a table, not a single key; set one of {', '.join(section_keys)}"
    message = f"unknown key '{key}'; valid keys: {', '.join(keys)}"
    close = difflib.get_close_matches(key, keys + section_names(), n=1, cutoff=0.75)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    return message


def field_for_key(key: str) -> FieldInfo:
    """The pydantic field behind a dotted key; `.annotation` is its type. Raises UnknownSettingKey."""
    section, _, name = key.partition(".")
    section_model = _sections().get(section)
    if section_model is None or name not in section_model.model_fields:
        raise UnknownSettingKey(key)
    return section_model.model_fields[name]


def nest(key: str, value: Any) -> dict[str, Any]:
    """The one-key layer for a dotted key: nest("analyst.model", "x") == {"analyst": {"model": "x"}}."""
    section, _, name = key.partition(".")
    return {section: {name: value}}


def flatten(settings: Settings) -> list[tuple[str, object]]:
    """(dotted key, value) for every setting, in declaration order."""
    return [(key, get_value(settings, key)) for key in valid_keys()]


def get_value(settings: Settings, key: str) -> object:
    field_for_key(key)  # unknown keys raise the helpful error rather than AttributeError
    section, _, name = key.partition(".")
    return getattr(getattr(settings, section), name)


# ---------------------------------------------------------------------------------------------------------------
# Validation problems, worded for people


@dataclass(frozen=True)
class SettingsProblem:
    """One reason a layer is invalid: the dotted key (list items as "runs.roots[1]") and why."""

    key: str
    reason: str
    unknown_key: bool = False

    def __str__(self) -> str:
        # Unknown keys read better as a sentence than as "key: reason".
        return self.reason if self.unknown_key else f"{self.key}: {self.reason}"


def validate_layer(layer: dict[str, Any]) -> list[SettingsProblem]:
    """Problems with one partial config layer on its own; [] when it is valid."""
    try:
        Settings.model_validate(layer)
    except ValidationError as error:
        return problems_from_validation_error(error)
    return []


def problems_from_validation_error(error: ValidationError) -> list[SettingsProblem]:
    problems = []
    for detail in error.errors(include_url=False):
        key = _dotted_loc(detail["loc"])
        if detail["type"] == "extra_forbidden":
            problems.append(SettingsProblem(key, unknown_key_message(key), unknown_key=True))
        else:
            problems.append(SettingsProblem(key, _reason(detail)))
    return problems


def _dotted_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bound(limit: Any) -> str:
    # pydantic reports a float field's `ge=0` as 0.0; people wrote 0.
    return str(int(limit)) if isinstance(limit, float) and limit.is_integer() else str(limit)


def _reason(detail: Any) -> str:
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    got = f" (got {_got(detail['input'])})"
    if kind == "literal_error":
        # ctx["expected"] is "'off', 'minimal' or 'high'"; a plain comma list is easier to copy from.
        choices = [choice.strip().strip("'\"") for choice in ctx.get("expected", "").replace(" or ", ", ").split(",")]
        return f"must be one of {', '.join(choices)}{got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a table{got}"
    simple = {
        "string_type": "must be a string",
        "int_type": "must be an integer",
        "int_from_float": "must be an integer",
        "float_type": "must be a number",
        "bool_type": "must be true or false",
        "list_type": "must be a list",
        "finite_number": "must be a finite number",
        "missing": "is required",
    }
    if kind in simple:
        return simple[kind] + ("" if kind == "missing" else got)
    if kind == "greater_than":
        return f"must be greater than {_bound(ctx['gt'])}{got}"
    if kind == "greater_than_equal":
        return f"must be at least {_bound(ctx['ge'])}{got}"
    if kind in ("too_short", "string_too_short"):
        minimum = ctx.get("min_length", 1)
        if kind == "string_too_short":
            return "must not be empty" if minimum == 1 else f"must have at least {minimum} characters{got}"
        return f"must have at least {minimum} {'entry' if minimum == 1 else 'entries'}{got}"
    # Anything else: pydantic's own sentence, lower-cased to fit after "key: ".
    message = detail["msg"]
    return message[:1].lower() + message[1:] + got


# ---------------------------------------------------------------------------------------------------------------
# Values as text: parsed from the command line, shown by `aw-tui config`


class SettingValueError(ValueError):
    """A command-line value that cannot be read as the key's type."""


_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}
_NONE_WORDS = {"none", "null"}


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    """(inner type, is optional) for `X | None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def is_optional_key(key: str) -> bool:
    return _split_optional(field_for_key(key).annotation)[1]


def parse_value_text(key: str, raw: str) -> object:
    """Read a command-line string as the type of `key`. None means "clear this optional key".

    Only the shape is checked here (an int is an int); range and choice checks are left to validate_layer so
    the wording is the same as for a value read from a file.
    """
    return parse_text_as(field_for_key(key).annotation, raw)


def parse_text_as(annotation: Any, raw: str) -> object:
    """Read `raw` as `annotation` (str, int, float, bool, a Literal of strings, list[str], or `X | None`)."""
    annotation, optional = _split_optional(annotation)
    # Annotated[str, ...] (list items with constraints) parses like its base type.
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    text = raw.strip()
    if text.lower() in _NONE_WORDS:
        if optional:
            return None
        raise SettingValueError(f"cannot be cleared; it always has a value (got {raw!r})")
    if annotation is bool:
        if text.lower() in _TRUE_WORDS:
            return True
        if text.lower() in _FALSE_WORDS:
            return False
        raise SettingValueError(f"must be true or false (got {raw!r})")
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise SettingValueError(f"must be an integer (got {raw!r})") from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise SettingValueError(f"must be a number (got {raw!r})") from None
    if typing.get_origin(annotation) is list:
        return _parse_list_text(raw)
    # str and Literal choices: the text itself.
    return text


def _parse_list_text(raw: str) -> list[object]:
    text = raw.strip()
    if text.startswith("["):
        try:
            value = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError as error:
            raise SettingValueError(f"is not a valid TOML array: {error} (got {raw!r})") from None
        return value
    # "a, b" -> ["a", "b"]; blanks dropped so a trailing comma is harmless.
    return [item.strip() for item in text.split(",") if item.strip()]


def format_value_text(value: object) -> str:
    """A value as `aw-tui config` shows it; parse_value_text reads the same text back to the same value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        # A JSON string is also a valid TOML basic string, escapes included.
        return "[" + ", ".join(json.dumps(item, ensure_ascii=False) for item in value) + "]"
    return str(value)
