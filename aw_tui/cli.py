"""The `aw-tui` command line.

Usage errors exit 2 and failures exit 1, each with one line on stderr and no traceback. Commands import what
they need when they run, so `aw-tui --help` and the read-only commands stay quick and never load litellm.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from aw_tui import __version__
from aw_tui.packaged import package_dir

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SERVE_HOST = "127.0.0.1"
DEFAULT_SERVE_PORT = 8000


class CliFailure(Exception):
    """A failure to report as `aw-tui: <message>` with exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the user asked for something specific and needs the reason.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def bundled_samples_root() -> Path:
    """The sample runs shipped inside the package (a run of aw-tui and one of the original extension)."""
    return package_dir("aw_tui.data") / "samples"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aw-tui",
        description="Supervise long analyst/worker LLM coding-agent runs. Without a command: list the runs.",
    )
    parser.add_argument("--version", action="version", version=f"aw-tui {__version__}")
    serve = argparse.ArgumentParser(add_help=False)
    serve.add_argument("--serve", action="store_true",
                       help="serve the TUI in a browser (textual-serve) on 127.0.0.1 instead of this terminal")  # fmt: skip
    serve.add_argument("--port", type=int, default=DEFAULT_SERVE_PORT, metavar="N",
                       help=f"the port for --serve (default {DEFAULT_SERVE_PORT})")  # fmt: skip
    for action in serve._actions:  # `aw-tui --serve` works without naming the `tui` command
        parser._add_action(action)
    roots = argparse.ArgumentParser(add_help=False)
    roots.add_argument(
        "--root",
        dest="roots",
        action="append",
        type=Path,
        metavar="DIR",
        help="a runs root to use instead of the configured ones (repeatable)",
    )
    roots.add_argument("--samples", action="store_true", help="use the sample runs bundled with aw-tui")

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("tui", parents=[roots, serve], help="open the TUI on the runs list (what `aw-tui` does on a terminal)")
    p = sub.add_parser("open", parents=[roots], help="open a run in the TUI (also: aw-tui RUN)")
    p.add_argument("run", metavar="RUN")
    p = sub.add_parser("runs", parents=[roots], help="list runs, newest first")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p = sub.add_parser("status", parents=[roots], help="show a run's state summary")
    p.add_argument("run", metavar="RUN", help="a run directory, or a unique prefix of a run's name")
    p = sub.add_parser("ledger", parents=[roots], help="show a run's token, cost and time ledger")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--json", action="store_true", help="print totals and steps as JSON")
    p.add_argument("--steps", action="store_true", help="also list every step")
    p = sub.add_parser("rebuild", parents=[roots], help="rewrite run.json, state.md and ledger.json from events")
    p.add_argument("run", metavar="RUN")

    thinking = ("off", "minimal", "low", "medium", "high", "xhigh")
    engine = argparse.ArgumentParser(add_help=False)
    engine.add_argument("--headless", action="store_true",
                        help="print one line per event instead of opening the TUI")  # fmt: skip
    engine.add_argument("--auto-approve", dest="auto_approve", action="append", default=[], metavar="KIND",
                        choices=("operator_input", "confirm_done", "dangerous_command", "budget", "step_limit", "all"),
                        help="approve gates of this kind without asking (repeatable; 'all' for every kind)")  # fmt: skip
    engine.add_argument("--quiet", action="store_true", help="headless: leave out usage, tool and ack lines")

    p = sub.add_parser("run", parents=[engine], help="start a run: the analyst plans, the worker executes")
    p.add_argument("task", metavar="TASK", help="what the run should achieve")
    p.add_argument("--analyst", metavar="MODEL", help="the analyst's litellm model (default from config)")
    p.add_argument("--worker", metavar="MODEL", help="the worker's litellm model (default from config)")
    p.add_argument("--analyst-thinking", choices=thinking, metavar="LEVEL", help="off|minimal|low|medium|high|xhigh")
    p.add_argument("--worker-thinking", choices=thinking, metavar="LEVEL", help="off|minimal|low|medium|high|xhigh")
    p.add_argument("--workspace", type=Path, default=None, metavar="DIR", help="the project to work in (default: .)")
    p.add_argument("--runs-root", type=Path, default=None, metavar="DIR", help="where the run directory goes")
    p.add_argument("--title", default=None, help="a short title (default: the task)")
    p.add_argument("--script", type=Path, default=None, metavar="FILE",
                   help="the script that scripted/<role> models play (offline runs and tests)")  # fmt: skip
    p = sub.add_parser("demo", parents=[engine], help="fix a real failing test in a bundled project, offline")
    p.add_argument("--runs-root", type=Path, default=None, metavar="DIR", help="where the run directory goes")
    p = sub.add_parser("resume", parents=[roots, engine], help="continue a paused or orphaned run")
    p.add_argument("run", metavar="RUN")
    for name, text in (("pause", "pause a run: the tool call in flight finishes, nothing new starts"),
                       ("abort", "abort a run: stop its model call and tools now; state ABORTED"),
                       ("finish", "end a run as finished (the operator's decision)")):  # fmt: skip
        p = sub.add_parser(name, parents=[roots], help=text)
        p.add_argument("run", metavar="RUN")
    for name, text in (("approve", "approve a gate"), ("reject", "reject a gate, optionally with a reason"),
                       ("answer", "answer an operator_input gate")):  # fmt: skip
        p = sub.add_parser(name, parents=[roots], help=text)
        p.add_argument("run", metavar="RUN")
        p.add_argument("gate", metavar="GATE", help="the gate id, e.g. g-0001 (see `aw-tui status RUN`)")
        p.add_argument("text", metavar="TEXT", nargs="?" if name != "answer" else None, default=None,
                       help="the answer" if name == "answer" else "optional text (reason or new budget cap)")  # fmt: skip
    p = sub.add_parser("note", parents=[roots], help="leave a note for the analyst's next prompt")
    p.add_argument("run", metavar="RUN")
    p.add_argument("text", metavar="TEXT")
    p = sub.add_parser("archive", parents=[roots], help="copy a run to the archive folder")
    p.add_argument("run", metavar="RUN")
    p.add_argument("destination", metavar="DEST", nargs="?", default=None, help="default: <runs root>/archive/...")

    _add_workflow_parser(sub)
    _add_agents_parser(sub)
    config = sub.add_parser("config", help="show the config files and the effective settings")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", parser_class=_Parser)
    p = config_sub.add_parser("set", help="write one setting to the project's (or with --global the user's) file")
    p.add_argument("key", metavar="KEY", help="a dotted key, e.g. analyst.model")
    p.add_argument("value", metavar="VALUE", help="the value; 'none' clears an optional setting")
    p.add_argument("--global", dest="global_", action="store_true", help="write the user's config file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and _looks_like_a_run(argv[0]):
        argv = ["open", *argv]  # `aw-tui RUN` opens that run
    args = parser.parse_args(argv)
    if args.command is None and args.serve:
        args.command, args.roots, args.samples = "tui", None, False
    if args.command is None and _interactive():
        args.roots, args.samples = None, False
        handler = cmd_tui
    else:
        handler = _COMMANDS.get(args.command or "runs")
    assert handler is not None
    if args.command is None:
        args.roots, args.samples, args.json = None, False, False
    try:
        code = handler(args)
        sys.stdout.flush()  # a closed pipe shows up here, where it is handled, not at interpreter exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`aw-tui runs --json | head -1`): stop quietly, as rich does for its tables.
        _discard_stdout()
        return EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 - every failure becomes one line, never a traceback
        message = _failure_message(error)
        print(f"aw-tui: {message}", file=sys.stderr)
        return EXIT_FAILURE


def entry() -> None:
    """The `aw-tui` command and `python -m aw_tui`: main(), then an exit without the teardown litellm would cost."""
    code = main()
    if "litellm" in sys.modules and threading.active_count() == 1:
        _exit_now(code)
    raise SystemExit(code)


def _exit_now(code: int) -> NoReturn:
    """Leave once the work is on disk, skipping the interpreter's teardown of every module.

    After litellm was used (a headless run, a workflow), freeing its hundreds of modules and their objects takes
    the interpreter about a second after the command is done. The exit handlers still run (logging's flush among
    them) and the standard streams are flushed: what is skipped is only the freeing of memory the OS takes back.
    """
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's; elsewhere exit the usual way
    if run_exit_handlers is None:
        raise SystemExit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not hit the broken pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (captured in tests): nothing to protect
        pass


def _failure_message(error: Exception) -> str:
    from aw_tui.store.config import ConfigError
    from aw_tui.store.lease import LeaseHeldError
    from aw_tui.store.run import RunError

    known: tuple[type[Exception], ...] = (CliFailure, RunError, LeaseHeldError)
    launch = sys.modules.get("aw_tui.engine.launch")  # only loaded by the commands that start engines
    if launch is not None:
        known += (launch.LaunchError,)
    if isinstance(error, known):
        return str(error)
    if isinstance(error, ConfigError):
        return "; ".join(str(error).splitlines())
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}"
    return f"unexpected error: {type(error).__name__}: {error}"


# --- helpers ------------------------------------------------------------------------------------------------


def _roots(args: argparse.Namespace) -> list[Path]:
    if getattr(args, "samples", False):
        return [bundled_samples_root()]
    if getattr(args, "roots", None):
        return list(args.roots)
    from aw_tui.store.config import load_config

    return load_config().runs_roots()


def _resolve(args: argparse.Namespace) -> Path:
    from aw_tui.store.discovery import resolve_run

    return resolve_run(args.run, _roots(args))


def _console() -> Any:
    from rich.console import Console

    # Piped output gets a wide page so run names are never cut; a terminal uses its own width.
    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _now() -> datetime:
    from aw_tui.store.eventlog import utc_now

    return utc_now()


# --- commands -----------------------------------------------------------------------------------------------


def cmd_runs(args: argparse.Namespace) -> int:
    from aw_tui.model.formatting import format_age, format_cost
    from aw_tui.store.discovery import discover_runs

    roots = _roots(args)
    now = _now()
    listings = discover_runs(roots, now=now)
    if args.json:
        print(json.dumps([_listing_json(item) for item in listings], indent=2))
        return EXIT_OK
    console = _console()
    if not listings:
        console.print(
            f"No runs under {', '.join(str(r) for r in roots)}. "
            "Try [bold]aw-tui runs --samples[/] for the bundled samples, or --root DIR for another root.",
            highlight=False,
        )
        return EXIT_OK
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column, justify in [
        ("Run", "left"), ("State", "left"), ("Age", "right"), ("Analyst", "right"), ("Worker", "right"),
        ("Gates", "right"), ("Lease", "left"),
    ]:  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for item in listings:
        summary = item.summary
        if summary is None:
            table.add_row(item.name, "[red]unreadable[/]", "", "", "", "", escape(item.error or ""))
            continue
        state = summary.state + (" [bold yellow]PAUSED[/]" if summary.paused else "")
        age = format_age((now - summary.last_event_at).total_seconds()) if summary.last_event_at else "–"
        analyst, worker = summary.cost_of("analyst"), summary.cost_of("worker")
        gates = f"[bold magenta]{summary.open_gates}[/]" if summary.open_gates else "–"
        table.add_row(
            item.name, state, age, format_cost(analyst.cost, analyst.cost_known),
            format_cost(worker.cost, worker.cost_known), gates, _liveness_markup(item.liveness),
        )  # fmt: skip
    console.print(table)
    return EXIT_OK


def _liveness_markup(liveness: str) -> str:
    colour = {"live": "green", "orphaned": "yellow", "read-only": "cyan", "unreadable": "red"}.get(liveness)
    return f"[{colour}]{liveness}[/]" if colour else liveness


def _listing_json(item: Any) -> dict[str, Any]:
    return {
        "name": item.name,
        "path": str(item.path),
        "liveness": item.liveness,
        "error": item.error,
        "summary": item.summary.to_json() if item.summary else None,
    }


def cmd_status(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from aw_tui.model.formatting import format_age, format_cost, format_tokens, iso
    from aw_tui.store.discovery import list_run
    from aw_tui.store.run import open_run

    path = _resolve(args)
    opened = open_run(path)
    state = opened.state
    now = _now()
    liveness = list_run(path, now=now).liveness
    console = _console()
    paused = "  [bold black on yellow] PAUSED [/]" if state.paused else ""
    console.print(f"[bold]{escape(state.title or state.task or path.name)}[/]")
    rows: list[tuple[str, str]] = [
        ("Run", escape(path.name)),
        ("Directory", escape(str(path))),
        ("State", f"{state.state}{paused}" + (f"  — {escape(state.state_reason)}" if state.state_reason else "")),
        ("Lease", _liveness_markup(liveness)),
        ("Started", iso(state.created_at)),
        ("Last event", f"{iso(state.last_event_at)} ({format_age((now - state.last_event_at).total_seconds())} ago)"
         if state.last_event_at else "–"),
        ("Workspace", escape(state.workspace or "–")),
    ]  # fmt: skip
    for role in ("analyst", "worker"):
        settings = state.settings.get(role) if isinstance(state.settings.get(role), dict) else {}
        if settings:
            model, thinking = settings.get("model", "?"), settings.get("thinking", "?")
            rows.append((role.capitalize(), escape(f"{model} (thinking {thinking})")))
    for role, usage in state.ledger.by_role().items():
        rows.append(
            (f"{role.capitalize()} usage", f"{format_tokens(usage.input)} in · {format_tokens(usage.output)} out · "
             f"{format_cost(usage.cost, usage.cost_known)}")
        )  # fmt: skip
    total = state.ledger.total
    rows.append(("Total cost", format_cost(total.cost, total.cost_known)))
    rows.append(("Steps", f"{len(state.steps)}" + (f" (last: {state.steps[-1].path})" if state.steps else "")))
    running = state.running_agents
    if running:
        rows.append(("Running", escape(", ".join(f"{a.label or a.id} ({a.role})" for a in running))))
    if state.memo.next_action:
        rows.append(("Next action", escape(state.memo.next_action)))
    for key, value in rows:
        console.print(f"  [dim]{key:<14}[/] {value}")  # values are escaped where they hold user text
    gates = state.open_gates
    console.print(f"\n[bold]Open gates[/] ({len(gates)})" if gates else "\nNo open gates.")
    for gate in gates:
        waiting = format_age((now - gate.opened_at).total_seconds())
        console.print(f"  [magenta]{escape(gate.id)}[/]  {gate.kind}  waiting {waiting}  {escape(gate.title)}")
    problems = state.problems
    if state.malformed_lines or problems:
        console.print(f"\n[bold yellow]Problems[/] ({state.malformed_lines} malformed lines, {len(problems)} notes)")
        for problem in problems[:10]:
            console.print(f"  • {problem}", markup=False)
    if opened.legacy:
        console.print("\n[cyan]Written by the original extension: read-only.[/]")
    return EXIT_OK


def cmd_ledger(args: argparse.Namespace) -> int:
    from aw_tui.model.formatting import format_cost, format_duration, format_tokens
    from aw_tui.model.ledger import TOKEN_TABLE_HEADER, timing_summary, token_table_rows
    from aw_tui.store.run import open_run

    path = _resolve(args)
    opened = open_run(path)
    state = opened.state
    ledger = state.ledger
    # A run nobody is writing stopped at its last event; only a live run's clock is still running.
    live = not opened.legacy and opened.lease_status() == "live"
    ended = _now() if live else state.last_event_at
    timing = timing_summary(ledger, state.created_at, ended)
    if args.json:
        header = {"task_id": state.run_id, "task_title": state.title, "artifact_dir": str(path),
                  "started_at": state.created_at.isoformat() if state.created_at else None, "config": state.settings}  # fmt: skip
        data = ledger.to_json(header)
        out = {
            "run": path.name,
            "totals": {
                "by_model": data["totals"],
                "by_role": data["totals_by_role"],
                "by_role_model": data["totals_by_role_model"],
                "total": data["total"],
            },
            "timing": {label: value for label, value, _ in timing.rows()},
            "steps": data["steps"],
            "compactions": data["compactions"],
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return EXIT_OK
    from rich.table import Table

    console = _console()
    console.print(f"[bold]Ledger of {path.name}[/]\n")
    tokens = Table(box=None, pad_edge=False, header_style="bold")
    for index, column in enumerate(TOKEN_TABLE_HEADER):
        tokens.add_column(column, justify="left" if index < 2 else "right")
    rows = token_table_rows(ledger)
    for row in rows[:-1]:
        tokens.add_row(*row)
    tokens.add_row(*rows[-1], style="bold")
    console.print(tokens)
    console.print()
    times = Table(box=None, pad_edge=False, header_style="bold")
    for column, justify in [("Phase / activity", "left"), ("Time", "right"), ("Share", "right")]:
        times.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in timing.rows():
        times.add_row(*row)
    console.print(times)
    calls = timing.tool_calls_line()
    if calls:
        console.print(f"\nTool calls  {calls}")
    if args.steps and ledger.steps:
        steps = Table(box=None, pad_edge=False, header_style="bold", title=None)
        for column in ("Step", "Role", "Phase", "Model", "In", "Out", "Cost", "Wall", "Tools", "State after"):
            steps.add_column(column, justify="right" if column in ("Step", "In", "Out", "Cost", "Wall", "Tools") else "left")
        for step in ledger.steps:
            steps.add_row(
                f"{step.step:04d}", step.role.capitalize(), step.phase, step.model, format_tokens(step.usage.input),
                format_tokens(step.usage.output), format_cost(step.usage.cost, step.usage.cost_known),
                format_duration(step.wall_ms), str(sum(step.tool_counts.values())), step.state_after or "–",
            )  # fmt: skip
        console.print()
        console.print(steps)
    return EXIT_OK


def cmd_rebuild(args: argparse.Namespace) -> int:
    from aw_tui.store.run import rebuild

    if args.samples:
        raise CliFailure("the bundled sample runs are read-only; copy one into a runs root to rebuild it")
    path = _resolve(args)
    state = rebuild(path)
    extra = f"; {state.malformed_lines} malformed lines skipped" if state.malformed_lines else ""
    print(f"rebuilt run.json, state.md and ledger.json of {path.name} from {state.events_applied} events{extra}")
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    from aw_tui.store.config import describe, load_config, set_config_value

    if args.config_command == "set":
        written = set_config_value(args.key, args.value, global_=args.global_)
        print(f"{args.key} = {args.value} written to {written}")
        return EXIT_OK
    loaded = load_config()
    console = _console()
    exists = lambda flag: "" if flag else "  [dim](not present)[/]"  # noqa: E731
    console.print(f"User config     {loaded.user_path}{exists(loaded.user_exists)}")
    console.print(f"Project config  {loaded.project_path}{exists(loaded.project_exists)}\n")
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("Key", "Value", "From"):
        table.add_column(column)
    for key, value, source in describe(loaded):
        table.add_row(key, value, source if source != "default" else "[dim]default[/]")
    console.print(table)
    return EXIT_OK


# --- running the engine ---------------------------------------------------------------------------------------


def _engine_console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _auto_approve(args: argparse.Namespace) -> list[str]:
    from aw_tui.headless import GATE_KINDS

    kinds = list(args.auto_approve or [])
    return list(GATE_KINDS) if "all" in kinds else kinds


def _looks_like_a_run(word: str) -> bool:
    """A run directory or a run-name prefix, not a mistyped command (which argparse should name as such)."""
    if word.startswith("-") or word in _COMMANDS:
        return False
    from aw_tui.store.layout import RUN_DIR_PREFIX

    return word.startswith(RUN_DIR_PREFIX) or os.sep in word or Path(word).is_dir()


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def cmd_tui(args: argparse.Namespace, *, open_path: Path | None = None, start_engine: Any = None) -> int:
    from aw_tui.ui.app import AwTuiApp

    app = AwTuiApp(_roots(args), open_path=open_path, start_engine=start_engine)
    return app.run() or EXIT_OK


def cmd_tui_command(args: argparse.Namespace) -> int:
    if args.serve:
        return cmd_serve(args)
    return cmd_tui(args)


def cmd_serve(args: argparse.Namespace) -> int:
    """The same app in a browser: textual-serve starts `aw-tui tui` (with these roots) for each page opened."""
    import shlex

    if not 0 < args.port < 65536:
        raise CliFailure(f"--port {args.port} is not a port number (1-65535)")
    try:
        from textual_serve.server import Server
    except ImportError:
        raise CliFailure("--serve needs the textual-serve package: pip install textual-serve") from None
    command = [sys.executable, "-m", "aw_tui", "tui"]
    for root in args.roots or []:
        command += ["--root", str(Path(root).resolve())]
    if args.samples:
        command.append("--samples")
    # Bound to loopback only: the page can approve gates and run commands in the user's projects.
    print(f"serving aw-tui on http://{SERVE_HOST}:{args.port} (Ctrl-C stops)", flush=True)
    Server(shlex.join(command), host=SERVE_HOST, port=args.port, title="aw-tui").serve()
    return EXIT_OK


def cmd_open(args: argparse.Namespace) -> int:
    path = _resolve(args)
    if not _interactive():
        raise CliFailure("the TUI needs a terminal; use `aw-tui status RUN` for a text summary")
    return cmd_tui(args, open_path=path)


def _run_in_terminal(writer: Any, args: argparse.Namespace) -> int:
    from aw_tui.headless import run_headless

    if not args.headless and _interactive():
        args.roots, args.samples = [writer.paths.root.parent], False
        return cmd_tui(args, start_engine=lambda: writer)
    return run_headless(
        writer, _engine_console(), auto_approve=_auto_approve(args), interactive=sys.stdin.isatty(),
        verbose=not args.quiet,
    )  # fmt: skip


def _new_run_root(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    from aw_tui.store.config import load_config

    return load_config().runs_roots()[0]


def cmd_run(args: argparse.Namespace) -> int:
    from aw_tui.engine.launch import LaunchError, start_run
    from aw_tui.store.config import load_config

    loaded = load_config()
    settings = loaded.settings
    updates = {"analyst": {}, "worker": {}}
    for role in ("analyst", "worker"):
        model = getattr(args, role)
        level = getattr(args, f"{role}_thinking")
        if model:
            updates[role]["model"] = model
        if level:
            updates[role]["thinking"] = level
    settings = settings.model_copy(update={
        role: getattr(settings, role).model_copy(update=values) for role, values in updates.items() if values
    })  # fmt: skip
    try:
        writer = start_run(
            args.task, settings, workspace=args.workspace or Path.cwd(), runs_root=_new_run_root(args.runs_root),
            title=args.title, script=args.script,
        )  # fmt: skip
    except LaunchError as error:
        raise CliFailure(str(error)) from None
    return _run_in_terminal(writer, args)


def cmd_demo(args: argparse.Namespace) -> int:
    from aw_tui.engine.launch import DEMO_TASK, DEMO_TITLE, prepare_demo, start_run
    from aw_tui.model.settings import RoleSettings, Settings

    workspace, script = prepare_demo()
    settings = Settings(
        analyst=RoleSettings(model="scripted/analyst", thinking="high"),
        worker=RoleSettings(model="scripted/worker", thinking="low"),
    )
    writer = start_run(DEMO_TASK, settings, workspace=workspace, runs_root=_new_run_root(args.runs_root),
                       title=DEMO_TITLE, script=script)  # fmt: skip
    print(f"demo workspace: {workspace} (a copy of the bundled project; the worker's tools really run there)")
    return _run_in_terminal(writer, args)


def cmd_resume(args: argparse.Namespace) -> int:
    from aw_tui.engine.launch import attach_run
    from aw_tui.model.commands import new_command
    from aw_tui.store.control import send_command
    from aw_tui.store.run import open_run

    path = _resolve(args)
    opened = open_run(path)
    state = opened.state
    if state.read_only:
        raise CliFailure(f"{path.name} was written by the original extension and is read-only")
    if state.kind == "workflow":
        raise CliFailure(f"{path.name} is a workflow run: run it again with `aw-tui workflow run FILE.py --resume "
                         f"{path.name}`")  # fmt: skip
    if state.is_terminal:
        raise CliFailure(f"{path.name} has ended ({state.state}); there is nothing to resume")
    if opened.lease_status() == "live":
        if not state.paused:
            raise CliFailure(f"{path.name} is running in another process and is not paused")
        return _send_and_wait(opened, new_command("resume", source="cli"))
    if state.paused:
        # The engine about to start reads this first, so the run continues instead of sitting paused.
        send_command(opened.paths, new_command("resume", source="cli"))
    writer = attach_run(path)
    return _run_in_terminal(writer, args)


def _send_and_wait(opened: Any, command: Any, timeout_s: float = 5.0) -> int:
    """Send one command; wait for the engine's acknowledgement when one runs the run, and report it."""
    import time

    from aw_tui.store.control import submit_command

    name = opened.paths.root.name
    live = opened.lease_status() == "live"
    problem = submit_command(opened.paths, opened.state, command, engine_live=live)
    if problem:
        raise CliFailure(f"{name}: {problem}")
    what = command.cmd + (f" {command.gate_id}" if command.gate_id else "")
    if not live:
        print(f"{what}: queued; no engine is running {name}. `aw-tui resume {name}` acts on it.")
        return EXIT_OK
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        opened.refresh()
        outcome = opened.state.commands.get(command.id)
        if outcome is not None:
            status, reason = outcome
            if status == "rejected":
                raise CliFailure(f"{name}: the engine rejected {what}: {reason}")
            print(f"{what}: done ({name} is now {opened.state.state}{', paused' if opened.state.paused else ''})")
            return EXIT_OK
        time.sleep(0.05)
    print(f"{what}: sent; the engine has not acknowledged it within {timeout_s:g} s (see `aw-tui status {name}`)")
    return EXIT_OK


def cmd_control(args: argparse.Namespace) -> int:
    from aw_tui.model.commands import CommandError, new_command
    from aw_tui.store.run import open_run

    opened = open_run(_resolve(args))
    gate = getattr(args, "gate", None)
    text = getattr(args, "text", None) or getattr(args, "destination", None)
    try:
        command = new_command(args.command, gate_id=gate, text=text, source="cli")
    except CommandError as error:
        raise CliFailure(str(error)) from None
    if args.command == "archive" and opened.lease_status() != "live":
        return _archive_here(opened, text)
    return _send_and_wait(opened, command)


def _archive_here(opened: Any, destination: str | None) -> int:
    """No engine holds the run: copy it from this process (archiving only reads the run)."""
    from aw_tui.engine.orchestrator import archive_run

    try:
        target = archive_run(opened.paths.root, destination, _now())
    except ValueError as error:
        raise CliFailure(str(error)) from None
    print(f"archived {opened.paths.root.name} to {target}")
    return EXIT_OK


# --- workflows ----------------------------------------------------------------------------------------------------


def _add_workflow_parser(sub: Any) -> None:
    workflow = sub.add_parser("workflow", help="run a workflow file: many agents driven by Python code")
    actions = workflow.add_subparsers(dest="workflow_command", metavar="ACTION", parser_class=_Parser)
    p = actions.add_parser("run",
                           help="run FILE.py's `async def workflow(wf, args)` in a new run (or again in --resume RUN)")  # fmt: skip
    p.add_argument("file", type=Path, metavar="FILE.py", help="the workflow file")
    p.add_argument("--root", dest="roots", action="append", type=Path, metavar="DIR",
                   help="a runs root where --resume looks for RUN (repeatable; default: the configured roots)")  # fmt: skip
    p.add_argument("--args", dest="workflow_args", default=None, metavar="JSON", help="the workflow's args, as JSON")
    p.add_argument("--model", default=None, metavar="MODEL",
                   help="the agents' litellm model (default: the configured worker model); "
                        "`scripted` plays --script, each agent as the script's role named like its label")  # fmt: skip
    p.add_argument("--thinking", default=None, choices=("off", "minimal", "low", "medium", "high", "xhigh"),
                   metavar="LEVEL", help="off|minimal|low|medium|high|xhigh (default off)")  # fmt: skip
    p.add_argument("--runs-root", type=Path, default=None, metavar="DIR", help="where the run directory goes")
    p.add_argument("--resume", default=None, metavar="RUN",
                   help="run it again in RUN: calls that completed there come from its journal")  # fmt: skip
    p.add_argument("--script", type=Path, default=None, metavar="FILE",
                   help="the script scripted models play (offline runs and tests)")  # fmt: skip
    p.add_argument("--workspace", type=Path, default=None, metavar="DIR",
                   help="where agents with tools work (default: .)")  # fmt: skip
    p.add_argument("--budget", type=int, default=None, metavar="TOKENS", help="output tokens the agents may spend")
    p.add_argument("--concurrency", type=int, default=None, metavar="N", help="model calls at once (default 16)")
    p.add_argument("--max-agents", type=int, default=None, metavar="N",
                   help="live agent calls a run may start (default 1000, a runaway backstop)")  # fmt: skip
    p.add_argument("--verbose", action="store_true", help="print every agent's start, end, usage and tools")
    p.add_argument("--quiet", action="store_true", help="print only the outcome")


def cmd_workflow(args: argparse.Namespace) -> int:
    if args.workflow_command != "run":
        raise CliFailure("say what to do with the workflow: aw-tui workflow run FILE.py (see aw-tui workflow --help)")
    from aw_tui.engine import workflow as wfl

    for name in ("concurrency", "max_agents", "budget"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "concurrency" else 0):
            raise CliFailure(f"--{name.replace('_', '-')} {value} is out of range")
    try:
        wargs = wfl.parse_args_json(args.workflow_args)
        loaded = wfl.load_workflow_file(args.file)
        if args.resume:
            path = _workflow_run_dir(args)
            writer, settings, script = wfl.reopen_workflow_run(
                path, loaded, args=wargs, script=args.script, model=args.model, thinking=args.thinking,
                budget=args.budget, concurrency=args.concurrency, max_agents=args.max_agents,
            )  # fmt: skip
        else:
            model = args.model
            if not model:
                from aw_tui.store.config import load_config

                model = load_config().settings.worker.model
            writer = wfl.start_workflow_run(
                loaded, wargs, runs_root=_new_run_root(args.runs_root), model=model,
                thinking=args.thinking or "off", workspace=args.workspace, script=args.script, budget=args.budget,
                concurrency=args.concurrency or wfl.DEFAULT_CONCURRENCY,
                max_agents=wfl.DEFAULT_MAX_AGENTS if args.max_agents is None else args.max_agents,
            )  # fmt: skip
            settings, script = wfl.workflow_settings(writer), wfl.recorded_script(writer)
    except wfl.WorkflowError as error:
        raise CliFailure(str(error)) from None
    try:
        roles = wfl.install_workflow_script(writer, settings, script)
    except wfl.WorkflowError as error:
        writer.close()
        raise CliFailure(str(error)) from None
    return _drive_workflow(writer, loaded, settings, roles, args)


def _workflow_run_dir(args: argparse.Namespace) -> Path:
    candidate = Path(args.resume).expanduser()
    if candidate.is_dir():
        return candidate
    from aw_tui.store.discovery import resolve_run

    roots = [args.runs_root] if args.runs_root is not None else _roots(args)
    return resolve_run(args.resume, roots)


_WORKFLOW_LINES = frozenset({"phase.started", "phase.finished", "log", "run.state", "workflow.stats", "run.paused",
                             "run.resumed", "command.acknowledged", "command.rejected", "operator.note"})  # fmt: skip


def _drive_workflow(writer: Any, loaded: Any, settings: dict[str, Any], roles: Any, args: argparse.Namespace) -> int:
    import asyncio

    from aw_tui.engine.workflow import TRACEBACK_FILE, WorkflowRunner
    from aw_tui.headless import HeadlessPrinter
    from aw_tui.model.describe import describe_event
    from aw_tui.model.formatting import format_cost

    console = _engine_console()
    printer = HeadlessPrinter(console, verbose=True)

    def listen(events: Sequence[Any]) -> None:
        if args.quiet:
            return
        if not args.verbose:
            events = [e for e in events if e.type in _WORKFLOW_LINES or describe_event(e)[0] in ("warn", "bad")]
        printer(events)

    from aw_tui.engine.llm import RetryPolicy
    from aw_tui.store.config import load_config

    retries = load_config().settings.llm  # the same model-call retries and timeout as `aw-tui run`
    policy = RetryPolicy(max_attempts=retries.max_attempts, max_retry_after_s=retries.max_retry_after_s,
                         timeout_s=retries.timeout_s, stream=retries.stream)  # fmt: skip
    runner = WorkflowRunner(writer, loaded, settings.get("args"), listeners=[listen], scripted_roles=roles,
                            settings=settings, policy=policy)  # fmt: skip
    name = writer.paths.root.name
    if not args.quiet:
        console.print(f"[bold]{name}[/]  [dim]{writer.paths.root}[/]", highlight=False)
    try:
        outcome = asyncio.run(runner.run())
    except KeyboardInterrupt:
        console.print(f"\n[yellow]stopped; the run is left as it is. Run it again with: aw-tui workflow run "
                      f"{loaded.path} --resume {writer.paths.root}[/]", highlight=False)  # fmt: skip
        return 130
    finally:
        writer.close()
    stats = outcome.stats
    cached = f" ({stats.cached_calls} from the journal)" if stats.cached_calls else ""
    extra = "".join(f", {n} {what}" for n, what in ((stats.refused_calls, "refused"),
                                                     (stats.failed_calls, "without a result")) if n)  # fmt: skip
    print(f"{outcome.state}: {stats.agent_calls} agent call(s){cached}{extra}, {stats.output_tokens:,} output "
          f"tokens, {stats.total_tokens:,} tokens in all, "
          f"{format_cost(stats.cost, stats.cost_known)}")  # fmt: skip
    if outcome.result_path is not None:
        text = outcome.result_path.read_text(encoding="utf-8")
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, str):
            text = value  # a text result (a report) reads better as the text than as a JSON string
        shown = text if len(text) <= 4000 else text[:4000] + "\n…"
        print(f"result ({outcome.result_path}):\n{shown}", end="" if shown.endswith("\n") else "\n")
    if outcome.state == "FINISHED":
        return EXIT_OK
    where = f"; traceback in {writer.paths.artifacts_dir / TRACEBACK_FILE}" if outcome.traceback_path else ""
    print(f"aw-tui: workflow {outcome.state}: {outcome.reason}{where}", file=sys.stderr)
    return EXIT_FAILURE


# --- agent definitions ----------------------------------------------------------------------------------------------

_SOURCE_NAMES = {"builtin": "built-in", "user": "user", "project": "project"}


def _add_agents_parser(sub: Any) -> None:
    help_workspace = "the project whose .aw-tui/agents/ is read (default: .)"
    agents = sub.add_parser("agents", help="list the agent definitions (project, user, built-in) and malformed files")
    agents.add_argument("--workspace", type=Path, default=None, metavar="DIR", help=help_workspace)
    agents.add_argument("--json", action="store_true", help="print them as JSON")
    actions = agents.add_subparsers(dest="agents_command", metavar="ACTION", parser_class=_Parser)
    p = actions.add_parser("show", help="print one agent definition with its whole prompt")
    p.add_argument("name", metavar="NAME", help="the agent's name (see aw-tui agents)")
    # SUPPRESS: given before `show`, the option keeps its value instead of this parser's default.
    p.add_argument("--workspace", type=Path, default=argparse.SUPPRESS, metavar="DIR", help=help_workspace)
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print it as JSON")


def _agent_json(definition: Any, *, overrides: list[str], prompt: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": definition.name, "source": _SOURCE_NAMES[definition.source],
        "path": str(definition.path) if definition.path else None, "model": definition.model,
        "thinking": definition.thinking, "tools": list(definition.tools) if definition.tools is not None else None,
        "connector": definition.connector, "description": definition.description, "overrides": overrides,
    }  # fmt: skip
    if prompt:
        data["prompt"] = definition.prompt
    return data


def cmd_agents(args: argparse.Namespace) -> int:
    from aw_tui.engine.agentdefs import (
        BUILTIN_AGENTS, UnknownAgent, load_agent_definitions, load_agent_dir, project_agents_dir, user_agents_dir,
    )  # fmt: skip

    workspace = Path(args.workspace or Path.cwd()).expanduser()
    if not workspace.is_dir():
        raise CliFailure(f"the workspace {workspace} does not exist or is not a directory")
    project_dir, user_dir = project_agents_dir(workspace), user_agents_dir()
    catalog = load_agent_definitions(workspace)
    # Which lower layers each name replaces (a project's `scout` over the built-in one, say).
    layers = {"built-in": {d.name for d in BUILTIN_AGENTS},
              "user": {d.name for d in load_agent_dir(user_dir, "user")[0]}}  # fmt: skip
    order = ["built-in", "user", "project"]

    def overrides(definition: Any) -> list[str]:
        below = order[: order.index(_SOURCE_NAMES[definition.source])]
        return [layer for layer in below if definition.name in layers.get(layer, set())]

    if args.agents_command == "show":
        definition = catalog.get(args.name)
        if definition is None:
            raise CliFailure(str(UnknownAgent(args.name, catalog.names())))
        if args.json:
            print(json.dumps(_agent_json(definition, overrides=overrides(definition), prompt=True), indent=2))
            return EXIT_OK
        _show_agent(definition, overrides(definition), workspace)
        return EXIT_OK
    definitions = [catalog.agents[name] for name in catalog.names()]
    if args.json:
        print(json.dumps({
            "workspace": str(workspace.resolve()), "project_dir": str(project_dir), "user_dir": str(user_dir),
            "agents": [_agent_json(d, overrides=overrides(d), prompt=False) for d in definitions],
            "problems": [{"path": str(p.path), "problem": p.reason} for p in catalog.problems],
        }, indent=2))  # fmt: skip
        return EXIT_OK
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    console.print(f"Project agents  {escape(str(project_dir))}\nUser agents     {escape(str(user_dir))}\n")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("Name", "Source", "Model", "Thinking", "Tools", "Description"):
        table.add_column(column)
    for d in definitions:
        source = _SOURCE_NAMES[d.source]
        over = overrides(d)
        if over:
            source += f" [dim](over {', '.join(over)})[/]"
        table.add_row(escape(d.name), source, escape(d.model or "inherit"), d.thinking or "–",
                      escape(_tools_text(d.tools)), escape(d.description))  # fmt: skip
    console.print(table)
    if catalog.problems:
        console.print(f"\n[bold red]Skipped {len(catalog.problems)} malformed file(s):[/]")
        for problem in catalog.problems:
            console.print(f"  {escape(str(problem.path))}: {escape(problem.reason)}")
    return EXIT_OK


def _tools_text(tools: Any) -> str:
    if tools is None:
        return "all the caller has"
    return ", ".join(tools) if tools else "none"


def _show_agent(definition: Any, overrides: list[str], workspace: Path) -> None:
    model = definition.model or "inherit (the model of whoever runs it)"
    if definition.effort:
        from aw_tui.model.settings import effort_choice
        from aw_tui.store.config import ConfigError, load_config

        try:
            choice = effort_choice(load_config(workspace).settings, definition.effort)
            model += f" (the {definition.effort} effort: {choice.model}, thinking {choice.thinking})"
        except ConfigError:
            pass  # the listing does not depend on a usable config
    source = _SOURCE_NAMES[definition.source] + (f", over {', '.join(overrides)}" if overrides else "")
    lines = [
        f"name: {definition.name}", f"description: {definition.description}",
        f"source: {source}" + (f" ({definition.path})" if definition.path else ""), f"model: {model}",
        f"thinking: {definition.thinking or 'follows the model choice'}", f"tools: {_tools_text(definition.tools)}",
    ]  # fmt: skip
    if definition.connector:
        lines.append(f"connector: {json.dumps(definition.connector)}")
    print("\n".join(lines) + "\n\n" + definition.prompt.rstrip())


_COMMANDS = {
    "tui": cmd_tui_command,
    "open": cmd_open,
    "run": cmd_run,
    "demo": cmd_demo,
    "resume": cmd_resume,
    "pause": cmd_control,
    "abort": cmd_control,
    "finish": cmd_control,
    "approve": cmd_control,
    "reject": cmd_control,
    "answer": cmd_control,
    "note": cmd_control,
    "archive": cmd_control,
    "runs": cmd_runs,
    "status": cmd_status,
    "ledger": cmd_ledger,
    "rebuild": cmd_rebuild,
    "config": cmd_config,
    "workflow": cmd_workflow,
    "agents": cmd_agents,
}
