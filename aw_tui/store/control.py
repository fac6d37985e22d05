"""control.jsonl: the operator's side of a run. Any process appends commands; the engine tails and acts on them.

Appends are whole lines under flock (store.jsonl), so the TUI, the CLI and a headless prompt can write at once.
The engine reads by byte offset; a line that is not a valid command comes back as a `BadCommand` so the engine
can reject it with an event instead of dropping it silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aw_tui.model.commands import Command, CommandError, command_to_json, judge_command, parse_command
from aw_tui.model.state import RunState
from aw_tui.store.jsonl import JsonlRecord, JsonlTail, TailReset, append_lines
from aw_tui.store.layout import RunPaths


@dataclass(frozen=True, slots=True)
class BadCommand:
    line_number: int
    reason: str
    command_id: str | None = None  # when the line had a usable id, the rejection can name it
    cmd: str | None = None


def send_command(paths: RunPaths, command: Command) -> Command:
    """Append one command to the run's control.jsonl."""
    append_lines(paths.control, [command_to_json(command)], recovered_dir=paths.recovered_dir)
    return command


def submit_command(paths: RunPaths, state: RunState, command: Command, *, engine_live: bool) -> str | None:
    """Send `command` unless it can only be refused; returns the refusal, or None when it was sent.

    With no engine on the run, a command the rules refuse is refused here, at once. A live engine judges every
    command itself, so a refusal (a second resolution of a gate, say) is recorded in the run's events.
    """
    problem = judge_command(state, command)
    if problem and not engine_live:
        return problem
    send_command(paths, command)
    return None


class ControlReader:
    """Tails control.jsonl. A replaced or cut file is read again from the start (ids already handled are the
    caller's to skip)."""

    def __init__(self, paths: RunPaths) -> None:
        self._tail = JsonlTail(paths.control)

    def read_new(self) -> list[Command | BadCommand]:
        try:
            items = self._tail.read_new()
        except TailReset:
            self._tail.reset()
            items = self._tail.read_new()
        commands: list[Command | BadCommand] = []
        for item in items:
            if not isinstance(item, JsonlRecord):
                commands.append(BadCommand(item.line_number, f"line {item.line_number}: {item.reason}"))
                continue
            try:
                commands.append(parse_command(item.value))
            except CommandError as error:
                commands.append(
                    BadCommand(item.line_number, f"line {item.line_number}: {error}", error.command_id, error.cmd)
                )
        return commands


def read_commands(path: Path | str) -> list[Command | BadCommand]:
    """Every command in a control.jsonl (for tools and tests)."""
    return ControlReader(RunPaths.for_run_dir(Path(path))).read_new()
