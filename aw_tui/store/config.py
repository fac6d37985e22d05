"""The two config files: the user's and the project's. Reading, layering, validating and writing them.

    user     $XDG_CONFIG_HOME/aw-tui/config.toml   (XDG_CONFIG_HOME defaults to ~/.config)
    project  <project root>/.aw-tui/config.toml    (project root: nearest ancestor of cwd holding .aw-tui/)

Defaults < user < project, key by key. Each file is validated on its own before the merge, so an error is
always reported against the file that holds the bad value.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import ValidationError

from aw_tui.model.settings import (
    Settings,
    SettingsProblem,
    SettingValueError,
    UnknownSettingKey,
    field_for_key,
    flatten,
    format_value_text,
    merge_layers,
    parse_value_text,
    problems_from_validation_error,
    validate_layer,
)
from aw_tui.store.atomic import atomic_write_bytes

APP_DIR_NAME = "aw-tui"
PROJECT_DIR_NAME = ".aw-tui"
CONFIG_FILE_NAME = "config.toml"

ConfigSource = Literal["default", "user", "project"]


class ConfigError(Exception):
    """A config file that cannot be used. The message names the file, the dotted key and the reason."""

    def __init__(self, path: Path, problems: Iterable[SettingsProblem | str]):
        self.path = path
        self.problems = list(problems)
        # One line a problem, each starting with the file, so every line can be acted on by itself.
        super().__init__("\n".join(f"{path}: {problem}" for problem in self.problems))


# ---------------------------------------------------------------------------------------------------------------
# Where the files are


def user_config_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    base = Path(config_home) if config_home and os.path.isabs(config_home) else Path.home() / ".config"
    return base / APP_DIR_NAME / CONFIG_FILE_NAME


def find_project_root(start: Path | None = None) -> Path | None:
    """The nearest directory, from `start` up to the filesystem root, that holds a `.aw-tui/` directory."""
    directory = _absolute(start)
    for candidate in (directory, *directory.parents):
        try:
            if (candidate / PROJECT_DIR_NAME).is_dir():
                return candidate
        except OSError:  # an unreadable ancestor simply holds no project
            continue
    return None


def project_config_path(start: Path | None = None) -> Path:
    """The project file; `<start>/.aw-tui/config.toml` (not yet existing) when no project root is found."""
    root = find_project_root(start) or _absolute(start)
    return root / PROJECT_DIR_NAME / CONFIG_FILE_NAME


def _absolute(directory: Path | None) -> Path:
    return Path(directory).resolve() if directory is not None else Path.cwd().resolve()


# ---------------------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class LoadedConfig:
    settings: Settings
    user_path: Path
    project_path: Path
    user_exists: bool
    project_exists: bool
    project_root: Path
    cwd: Path
    # The raw tables read from each file (empty when the file is missing), kept to tell where a value came from.
    user_layer: dict[str, Any] = field(default_factory=dict)
    project_layer: dict[str, Any] = field(default_factory=dict)

    def source_of(self, key: str) -> ConfigSource:
        """Which layer decided `key`: the project file, the user file, or the built-in default."""
        field_for_key(key)  # unknown keys raise the error that lists the valid ones
        if _layer_has(self.project_layer, key):
            return "project"
        if _layer_has(self.user_layer, key):
            return "user"
        return "default"

    def runs_roots(self) -> list[Path]:
        """runs.roots as absolute paths: relative to the project root if the project file set them, else to cwd."""
        base = self.project_root if self.source_of("runs.roots") == "project" else self.cwd
        return [(base / Path(root).expanduser()).resolve() for root in self.settings.runs.roots]


def load_config(cwd: Path | None = None) -> LoadedConfig:
    """Read, validate and merge the user and project files. Raises ConfigError."""
    start = _absolute(cwd)
    user_path = user_config_path()
    project_root = find_project_root(start) or start
    project_path = project_root / PROJECT_DIR_NAME / CONFIG_FILE_NAME

    user_layer, user_exists = read_layer(user_path)
    project_layer, project_exists = read_layer(project_path)
    for path, layer in ((user_path, user_layer), (project_path, project_layer)):
        problems = validate_layer(layer)
        if problems:
            raise ConfigError(path, problems)

    settings = _validate_merged(user_path, user_layer, project_path, project_layer)
    return LoadedConfig(
        settings=settings,
        user_path=user_path,
        project_path=project_path,
        user_exists=user_exists,
        project_exists=project_exists,
        project_root=project_root,
        cwd=start,
        user_layer=user_layer,
        project_layer=project_layer,
    )


def _validate_merged(
    user_path: Path, user_layer: dict[str, Any], project_path: Path, project_layer: dict[str, Any]
) -> Settings:
    try:
        return Settings.model_validate(merge_layers(user_layer, project_layer))
    except ValidationError as error:
        # Each layer passed alone, so only a cross-field rule could fail here; blame the file that set the key.
        problems = problems_from_validation_error(error)
        first_key = problems[0].key.split("[")[0]
        path = project_path if _layer_has(project_layer, first_key) else user_path
        raise ConfigError(path, problems) from None


def read_layer(path: Path) -> tuple[dict[str, Any], bool]:
    """(the file's table, whether it exists). A missing file is an empty layer; anything unreadable raises."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, False
    except IsADirectoryError:
        raise ConfigError(path, ["is a directory, not a TOML file"]) from None
    except PermissionError:
        raise ConfigError(path, ["cannot be read: permission denied"]) from None
    except OSError as error:
        raise ConfigError(path, [f"cannot be read: {error.strerror or error}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(path, [f"is not valid UTF-8 (byte {error.start})"]) from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, [_toml_syntax_message(error)]) from None
    return table, True


def _toml_syntax_message(error: tomllib.TOMLDecodeError) -> str:
    # Python 3.11's TOMLDecodeError has no lineno attribute; the position is only in the text.
    message = str(error)
    match = re.search(r"\(at line (\d+), column (\d+)\)$", message)
    if match:
        reason = message[: match.start()].rstrip()
        return f"line {match.group(1)}, column {match.group(2)}: invalid TOML: {reason}"
    return f"invalid TOML: {message}"


def _layer_has(layer: dict[str, Any], key: str) -> bool:
    section, _, name = key.partition(".")
    table = layer.get(section)
    return isinstance(table, dict) and name in table


# ---------------------------------------------------------------------------------------------------------------
# Showing


def describe(loaded: LoadedConfig) -> list[tuple[str, str, ConfigSource]]:
    """(dotted key, value as text, where it came from) for every setting, in declaration order."""
    return [(key, format_value_text(value), loaded.source_of(key)) for key, value in flatten(loaded.settings)]


# ---------------------------------------------------------------------------------------------------------------
# Writing


def set_config_value(key: str, raw_value: str, *, global_: bool = False, cwd: Path | None = None) -> Path:
    """Write one key into the project file (the user file with global_), keeping the other keys there.

    `raw_value` is read as the key's type; "none"/"null" removes an optional key. The resulting file is
    validated before anything is written, and written atomically. Returns the path written.
    Raises ConfigError. Note: comments and layout in the file are not kept (tomllib/tomli_w round trip).
    """
    path = user_config_path() if global_ else project_config_path(cwd)
    try:
        field_for_key(key)
        value = parse_value_text(key, raw_value)
    except UnknownSettingKey as error:
        raise ConfigError(path, [SettingsProblem(key, str(error), unknown_key=True)]) from None
    except SettingValueError as error:
        raise ConfigError(path, [SettingsProblem(key, str(error))]) from None

    layer, _ = read_layer(path)
    updated = _with_value(layer, key, value)
    problems = validate_layer(updated)
    if problems:
        raise ConfigError(path, problems)
    write_atomically(path, tomli_w.dumps(updated).encode("utf-8"))
    return path


def _with_value(layer: dict[str, Any], key: str, value: object) -> dict[str, Any]:
    updated = merge_layers(layer)  # a deep copy: the caller's layer stays as read
    section, _, name = key.partition(".")
    table = updated.get(section)
    if not isinstance(table, dict):
        # A broken section (e.g. `analyst = 3`) is replaced by a table holding the new key.
        table = {}
        updated[section] = table
    if value is None:
        table.pop(name, None)
        if not table:
            del updated[section]  # no empty [section] left behind
    else:
        table[name] = value
    return updated


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a reader sees either the old file or the new one, never half of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except PermissionError:
        raise ConfigError(path, ["cannot be written: permission denied"]) from None
    except OSError as error:
        raise ConfigError(path, [f"cannot be written: {error.strerror or error}"]) from None
