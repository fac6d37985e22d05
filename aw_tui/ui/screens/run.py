"""One run: the phase/agent tree, the gauges, the selected step's report, the gate queue and the status line.

The screen follows the run directory (the app's watcher says when it changed), folds new events into its
RunState off the event loop, and turns keys into operator commands written to control.jsonl, the same channel
`aw-tui approve ...` uses, whether the engine runs in this process or another.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, OptionList, Tree

from aw_tui.model.commands import ANSWERABLE_GATE_KINDS, new_command
from aw_tui.store.control import submit_command
from aw_tui.model.formatting import format_duration
from aw_tui.store.run import OpenedRun, RunError, open_run
from aw_tui.ui.actions import bindings
from aw_tui.ui.heap import freeze_loaded, thaw_loaded
from aw_tui.ui.messages import RunsChanged
from aw_tui.ui.screens.dialogs import ConfirmDialog, TextPrompt
from aw_tui.ui.screens.ledger import LedgerScreen
from aw_tui.ui.stylesheets import stylesheet
from aw_tui.ui.widgets.agent_tree import AgentTree
from aw_tui.ui.widgets.gate_queue import GateQueue
from aw_tui.ui.widgets.gauges import Gauges
from aw_tui.ui.widgets.report_view import ReportView
from aw_tui.ui.widgets.status_line import StatusLine

REPORT_FOLLOW_DELAY_S = 0.06  # a key repeats every 30-40 ms: a held key outpaces this, a resting cursor does not


class RunScreen(Screen[None]):
    CSS_PATH = [stylesheet("run.tcss")]
    SCREEN_PANES = ("gate", "run", "tree", "report")
    BINDINGS = bindings(*SCREEN_PANES)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._real_path = self.path.resolve()
        self.opened: OpenedRun | None = None
        self.lease = "none"
        self._pending: dict[str, str] = {}  # command id -> what it was, until the engine answers
        self._behind = False
        self._catching_up = False
        self._report_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="run-main"):
            with Vertical(id="run-left"):
                yield AgentTree(id="agent-tree")
                yield Gauges(id="gauges")
            with Vertical(id="run-right"):
                yield ReportView(id="report")
                yield GateQueue(id="gates")
        yield StatusLine(id="status-line")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one(AgentTree).border_title = "Agents"
        self.query_one(Gauges).border_title = "Usage"
        try:
            self.opened = await asyncio.to_thread(open_run, self.path)
        except RunError as error:
            self.notify(str(error), severity="error")
            self.app.pop_screen()
            return
        self.title = self.opened.state.title or self.path.name
        self.sub_title = self.path.name
        self.refresh_bindings()  # check_action depends on whether the run is read-only, known from here on
        await self._refresh_view()
        # Once the tree is drawn (its lines are laid out in that pass), keep the run out of full collections.
        self.call_after_refresh(self._freeze_while_open)
        self.set_interval(1.0, self._tick)
        self.query_one(AgentTree).focus()

    def _freeze_while_open(self) -> None:
        if self.is_attached:  # not closed before its first frame: on_unmount has thawed already
            freeze_loaded()

    def on_unmount(self) -> None:
        thaw_loaded()

    # --- following the run -----------------------------------------------------------------------------------

    def on_runs_changed(self, message: RunsChanged) -> None:
        if self.opened is not None and any(Path(p).resolve() == self._real_path for p in message.runs):
            self._behind = True
            if not self._catching_up:
                self.catch_up()

    @work(group="catch-up")
    async def catch_up(self) -> None:
        # One catch-up at a time (the reader is not shared between threads); changes during it loop once more.
        self._catching_up = True
        try:
            while self._behind and self.opened is not None:
                self._behind = False
                if await asyncio.to_thread(self.opened.refresh):
                    await self._refresh_view()
        finally:
            self._catching_up = False

    async def _tick(self) -> None:
        # Ages and the lease move with the clock even when no event arrives.
        if self.opened is None:
            return
        self.lease = await asyncio.to_thread(self.opened.lease_status, self.app.now())  # type: ignore[attr-defined]
        self._show_status()
        self.query_one(AgentTree).update_state(self.opened.state, self.app.now())  # type: ignore[attr-defined]

    async def _refresh_view(self) -> None:
        assert self.opened is not None
        state = self.opened.state
        now = self.app.now()  # type: ignore[attr-defined]
        self.lease = await asyncio.to_thread(self.opened.lease_status, now)
        self.query_one(AgentTree).update_state(state, now)
        self.query_one(Gauges).update_state(state)
        self.query_one(GateQueue).update_gates(state.open_gates, now)
        self._show_status()
        self._report_outcomes()
        await self._show_report()
        self.app.update_attention(self.path, state)  # type: ignore[attr-defined]

    # Keys that change the run: gone for runs of the original extension, which aw-tui only reads. (On a run that
    # has ended they stay, and the refusal says why.)
    RUN_CHANGING_ACTIONS = frozenset({"approve", "reject", "answer", "pause", "abort", "finish", "note"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.RUN_CHANGING_ACTIONS and self.opened is not None and self.opened.state.read_only:
            return False
        return True

    def _show_status(self) -> None:
        if self.opened is not None:
            self.query_one(StatusLine).show(self.path.name, self.opened.state, self.lease, self.app.now())  # type: ignore[attr-defined]

    def _report_outcomes(self) -> None:
        assert self.opened is not None
        for command_id, what in list(self._pending.items()):
            outcome = self.opened.state.commands.get(command_id)
            if outcome is None:
                continue
            del self._pending[command_id]
            status, reason = outcome
            if status == "rejected":
                self.notify(f"{what}: {reason}", severity="error", title="Refused")
            else:
                self.notify(f"{what}: done", timeout=3)

    async def _show_report(self) -> None:
        assert self.opened is not None
        state = self.opened.state
        agent_id = self.query_one(AgentTree).selected_agent
        agent = state.agents.get(agent_id) if agent_id else None
        # Runs of the original extension record no agent per step: their agents carry the step number instead.
        step = next((s for s in state.steps if s.agent == agent_id or (s.agent is None and agent is not None
                                                                      and s.step == agent.step)), None)  # fmt: skip
        if step is not None:
            await self.query_one(ReportView).show(self.opened.paths, step.path, f"Step {step.step}: {step.role} {step.phase}")
            return
        if agent is not None and agent.report and agent.status != "running":
            self.query_one(ReportView).show_text(f"agent:{agent.id}", agent.report, f"{agent.label or agent.id}: report")
            return
        placeholder = None
        if agent is not None:
            # A turn has a report once it ends; until then say what it is doing instead of asking for a click.
            elapsed = format_duration(agent.elapsed_ms(self.app.now()))  # type: ignore[attr-defined]
            if agent.status == "running":
                placeholder = (f"{agent.label or agent.id} is running ({agent.tool_count} tool calls, {elapsed}); "
                               "its report appears here when the turn ends.")  # fmt: skip
            else:
                placeholder = f"{agent.label or agent.id} ended {agent.status} after {elapsed} and wrote no step report."
                if agent.error:
                    placeholder += f"\n\n{agent.error}"
        await self.query_one(ReportView).show(self.opened.paths, None, agent.label or agent.id if agent else "Report",
                                              placeholder)  # fmt: skip

    @on(Tree.NodeHighlighted)
    def _node_highlighted(self) -> None:
        # A held cursor key passes many agents a second: the report (for a step, a file read and a markdown render,
        # and a layout pass either way) follows the cursor once it rests, not at every line it passes.
        if self._report_timer is not None:
            self._report_timer.stop()
        self._report_timer = self.set_timer(REPORT_FOLLOW_DELAY_S, self._show_report_at_cursor)

    async def _show_report_at_cursor(self) -> None:
        self._report_timer = None
        if self.opened is not None:
            await self._show_report()

    # --- commands ----------------------------------------------------------------------------------------------

    def _send(self, cmd: str, *, gate_id: str | None = None, text: str | None = None, what: str = "") -> None:
        if self.opened is None:
            return
        command = new_command(cmd, gate_id=gate_id, text=text, source="operator (tui)")
        live = self.lease == "live"
        problem = submit_command(self.opened.paths, self.opened.state, command, engine_live=live)
        if problem:
            self.notify(problem, severity="error", title="Not sent")
            return
        self._pending[command.id] = what or cmd
        if not live:
            self.notify(f"{what or cmd}: queued; no engine runs this run (aw-tui resume continues it)", timeout=5)

    def _gate(self):
        return self.query_one(GateQueue).selected

    def action_approve(self) -> None:
        gate = self._gate()
        if gate is None:
            self.notify("no open gate to approve", severity="warning")
            return
        self._send("approve", gate_id=gate.id, what=f"approve {gate.id}")

    def action_reject(self) -> None:
        gate = self._gate()
        if gate is None:
            self.notify("no open gate to reject", severity="warning")
            return

        def send(reason: str | None) -> None:
            if reason is not None:
                self._send("reject", gate_id=gate.id, text=reason or None, what=f"reject {gate.id}")

        self.app.push_screen(TextPrompt(f"Reject {gate.id} ({gate.kind}): why?", placeholder="the reason (optional)",
                                        required=False), send)  # fmt: skip

    def action_answer(self) -> None:
        gate = self._gate()
        if gate is None or gate.kind not in ANSWERABLE_GATE_KINDS:
            if gate is not None:
                self.notify(f"{gate.id} is a {gate.kind} gate: approve (a) or reject (r)", severity="warning")
            return

        def send(answer: str | None) -> None:
            if answer:
                self._send("answer", gate_id=gate.id, text=answer, what=f"answer {gate.id}")

        self.app.push_screen(TextPrompt(f"Answer {gate.id}: {gate.title}", placeholder="your answer"), send)

    @on(OptionList.OptionSelected, "#gate-list")
    def _gate_chosen(self) -> None:
        # Enter on the focused gate list reaches the list first: it answers the gate, as enter does elsewhere.
        self.action_answer()

    def action_gate_down(self) -> None:
        self.query_one(GateQueue).move(1)

    def action_gate_up(self) -> None:
        self.query_one(GateQueue).move(-1)

    def action_next_gate(self) -> None:
        queue = self.query_one(GateQueue)
        if not queue.gates:
            self.notify("no gate is waiting", timeout=2)
            return
        queue.move(1 if queue.selected is not queue.gates[-1] else -len(queue.gates))
        queue.query_one("OptionList").focus()

    def action_pause(self) -> None:
        if self.opened is None:
            return
        if self.opened.state.paused:
            self._send("resume", what="resume")
        else:
            self._send("pause", what="pause")

    def action_abort(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self._send("abort", what="abort")

        self.app.push_screen(ConfirmDialog(f"Abort {self.path.name}? Its model call and tools stop now.",
                                           yes="Abort"), confirmed)  # fmt: skip

    def action_finish(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self._send("finish", what="finish")

        self.app.push_screen(ConfirmDialog(f"End {self.path.name} as finished?", yes="Finish"), confirmed)

    def action_note(self) -> None:
        def send(note: str | None) -> None:
            if note:
                self._send("note", text=note, what="note")

        self.app.push_screen(TextPrompt("A note for the analyst's next prompt", placeholder="your note"), send)

    def action_ledger(self) -> None:
        self.app.push_screen(LedgerScreen(self.path))

    def action_search(self) -> None:
        self.query_one(ReportView).open_search()

    def action_follow(self) -> None:
        tree = self.query_one(AgentTree)
        tree.follow = True
        if self.opened is not None:
            tree.update_state(self.opened.state, self.app.now())  # type: ignore[attr-defined]

    async def action_transcript(self) -> None:
        view = self.query_one(ReportView)
        view.show_transcript = not view.show_transcript
        if self.opened is not None:
            await self._show_report()

    def action_back(self) -> None:
        self.app.pop_screen()
