"""Running the engine without the TUI: one printed line per event, gates answered by commands.

A gate waits for a command in control.jsonl (from `aw-tui approve ...`, the TUI in another terminal, or this
terminal's own prompt when stdin is a terminal), unless the operator chose `--auto-approve KIND` at launch, in
which case this front end sends the approval itself, recorded as such. Ctrl-C leaves the run as it is (its
turn in flight recorded as interrupted) for `aw-tui resume`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from typing import Any, get_args

from aw_tui.model import events as ev
from aw_tui.model.commands import ANSWERABLE_GATE_KINDS, Command, judge_command, new_command
from aw_tui.model.describe import describe_event
from aw_tui.store.control import read_commands, send_command
from aw_tui.store.run import RunWriter

EXIT_FINISHED, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
GATE_KINDS: tuple[str, ...] = get_args(ev.GateKind)
_STYLES = {"info": "", "good": "green", "warn": "yellow", "bad": "bold red", "quiet": "dim"}


class HeadlessPrinter:
    def __init__(self, console: Any, *, verbose: bool = True) -> None:
        self.console = console
        self.verbose = verbose

    def __call__(self, events: Sequence[ev.Event]) -> None:
        for event in events:
            level, text = describe_event(event)
            if level == "quiet" and not self.verbose:
                continue
            stamp = event.ts.astimezone().strftime("%H:%M:%S")
            style = _STYLES.get(level, "")
            line = f"{stamp} {text}"
            self.console.print(line, style=style or None, markup=False, highlight=False, soft_wrap=True)


class GatePrompt:
    """Asks about open gates on this terminal: y approves, n [reason] rejects, any other text answers."""

    def __init__(self, writer: RunWriter, console: Any) -> None:
        self.writer = writer
        self.console = console
        self.asking: str | None = None
        self._loop = asyncio.get_running_loop()
        self._reading = False

    def events(self, events: Sequence[ev.Event]) -> None:
        if any(isinstance(e, (ev.GateOpened, ev.GateResolved)) for e in events):
            self._loop.call_soon(self._ask_next)

    def _ask_next(self) -> None:
        gates = self.writer.state.open_gates
        if not gates:
            self._stop_reading()
            self.asking = None
            return
        gate = gates[0]
        if gate.id == self.asking:
            return
        self.asking = gate.id
        self.console.print(f"\n[bold yellow]{gate.id}[/] {gate.kind}: {gate.title}", highlight=False)
        if gate.body:
            self.console.print(gate.body, markup=False, highlight=False)
        takes_answer = gate.kind in ANSWERABLE_GATE_KINDS
        hint = "y = approve, n \\[reason] = reject" + (", or type an answer" if takes_answer else "")
        self.console.print(f"[dim]{hint}; or use `aw-tui approve|reject|answer` from another terminal[/]")
        self.console.print("> ", end="")
        self._start_reading()

    def _start_reading(self) -> None:
        if not self._reading:
            self._loop.add_reader(sys.stdin.fileno(), self._line_ready)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sys.stdin.fileno())
            self._reading = False

    def ask_open_gates(self) -> None:
        """Ask about the gates already open (a resumed run), as soon as the loop runs."""
        self._loop.call_soon(self._ask_next)

    def close(self) -> None:
        self._stop_reading()

    def _line_ready(self) -> None:
        line = sys.stdin.readline()
        if line == "":  # end of input: stop asking, commands can still come from elsewhere
            self._stop_reading()
            return
        text = line.strip()
        gate_id = self.asking
        if not gate_id or not text:
            self.console.print("> ", end="")
            return
        gate = self.writer.state.gates.get(gate_id)
        lowered = text.lower()
        if lowered in ("y", "yes", "a", "approve"):
            command = new_command("approve", gate_id=gate_id, source="operator (headless prompt)")
        elif lowered in ("n", "no", "r", "reject") or lowered.startswith(("n ", "r ", "no ", "reject ")):
            reason = text.split(" ", 1)[1].strip() if " " in text else None
            command = new_command("reject", gate_id=gate_id, text=reason, source="operator (headless prompt)")
        else:
            command = new_command("answer", gate_id=gate_id, text=text, source="operator (headless prompt)")
        problem = judge_command(self.writer.state, command)
        if problem or gate is None:
            self.console.print(f"[red]{problem or 'no such gate'}[/]")
            self.console.print("> ", end="")
            return
        send_command(self.writer.paths, command)
        self.asking = None


async def drive(
    writer: RunWriter,
    console: Any,
    *,
    auto_approve: Sequence[str] = (),
    interactive: bool = False,
    verbose: bool = True,
) -> int:
    """Run (or continue) the run held by `writer` to its end, printing events. Returns the exit status."""
    from aw_tui.engine.launch import prepare_engine
    from aw_tui.engine.orchestrator import FAILURE_OPTION, Orchestrator

    prepare_engine(writer)
    orchestrator = Orchestrator(writer)
    printer = HeadlessPrinter(console, verbose=verbose)
    orchestrator.add_listener(printer)
    chosen = set(auto_approve)

    def auto_approves(kind: str, options: Sequence[str]) -> bool:
        return kind in chosen and FAILURE_OPTION not in options

    def approve(gate_id: str, kind: str) -> None:
        # A failed write (a full disk) names control.jsonl.
        send_command(writer.paths, new_command("approve", gate_id=gate_id, source=f"operator (--auto-approve {kind})"))

    def auto(events: Sequence[ev.Event]) -> None:
        for event in events:
            if isinstance(event, ev.GateOpened) and auto_approves(event.kind, event.options):
                approve(event.id, event.kind)

    if chosen:
        orchestrator.add_listener(auto)

    def hint_for(gate_id: str, kind: str) -> None:
        verb = "answer" if kind == "operator_input" else "approve"
        console.print(f"waiting for the operator: aw-tui {verb}|reject {writer.paths.root.name} {gate_id}"
                      + (" TEXT" if verb == "answer" else ""), style="yellow", markup=False, highlight=False)

    def hint(events: Sequence[ev.Event]) -> None:
        for event in events:
            if isinstance(event, ev.GateOpened) and not auto_approves(event.kind, event.options):
                hint_for(event.id, event.kind)

    prompt: GatePrompt | None = None
    if interactive:
        prompt = GatePrompt(writer, console)
        orchestrator.add_listener(prompt.events)
    else:
        orchestrator.add_listener(hint)
    console.print(f"[bold]{writer.paths.root.name}[/]  [dim]{writer.paths.root}[/]", highlight=False)
    # Gates a stopped engine left open (a resumed run) get what a new gate gets: the listeners above only hear of
    # gates opened from now on, and the engine would wait for an answer nobody was asked for.
    answered = _gates_with_pending_decisions(writer)
    for gate in writer.state.open_gates:
        if auto_approves(gate.kind, gate.options):
            if gate.id not in answered:  # the earlier process sent it; a second approval would only be rejected
                approve(gate.id, gate.kind)
        elif prompt is None and gate.id not in answered:
            hint_for(gate.id, gate.kind)
    if prompt is not None and writer.state.open_gates:
        prompt.ask_open_gates()
    try:
        final = await orchestrator.run()
    finally:
        if prompt is not None:
            prompt.close()
    console.print(summary_line(writer), highlight=False, markup=False)
    return EXIT_FINISHED if final == "FINISHED" else EXIT_FAILED if final in ("ABORTED", "FAILED") else EXIT_INTERRUPTED


def _gates_with_pending_decisions(writer: RunWriter) -> set[str]:
    """Gates that a command in control.jsonl, not yet handled by any engine, approves, rejects or answers."""
    handled = writer.state.commands
    return {
        item.gate_id for item in read_commands(writer.paths.root)
        if isinstance(item, Command) and item.cmd in ("approve", "reject", "answer") and item.gate_id
        and item.id not in handled
    }  # fmt: skip


def summary_line(writer: RunWriter) -> str:
    """The run's outcome in one line: state, steps, tokens and cost by role, where the reports are."""
    from aw_tui.model.formatting import format_cost, format_tokens
    from aw_tui.model.ledger import role_label

    state = writer.state
    ledger = state.ledger
    total = ledger.total
    by_role = ", ".join(
        f"{role_label(role)} {format_cost(usage.cost, usage.cost_known)}" for role, usage in ledger.by_role().items()
    )
    return (
        f"{state.state}: {len(state.steps)} step(s), {format_tokens(total.input + total.cache_read)} tokens in, "
        f"{format_tokens(total.output)} out, {format_cost(total.cost, total.cost_known)} ({by_role or 'nothing spent'}); "
        f"reports in {writer.paths.steps_dir}"
    )


def run_headless(writer: RunWriter, console: Any, **options: Any) -> int:
    """`drive` on a fresh event loop; Ctrl-C leaves the run resumable and exits 130. Releases the lease.

    A failed write (a full disk) ends it with that OSError, which names the file; the run is left resumable."""
    failed = True
    try:
        code = asyncio.run(drive(writer, console, **options))
        failed = False
        return code
    except KeyboardInterrupt:
        failed = False
        console.print(
            f"\n[yellow]stopped; the run is left as it is. Continue it with: aw-tui resume {writer.paths.root}[/]",
            highlight=False,
        )
        return EXIT_INTERRUPTED
    finally:
        try:
            writer.close()  # releases the lease even when rewriting the derived files fails
        except OSError:
            if not failed:
                raise
            # Already failing: the first error says what went wrong; this one (the same full disk) would hide it.
