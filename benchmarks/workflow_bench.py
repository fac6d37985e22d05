"""Workflow figures: a fan-out of 500 scripted agents, and resuming a 500-call workflow from its journal.

    python benchmarks/workflow_bench.py [--agents 500] [--concurrency 64] [--repeat 3]

Targets (the workflows issue):
- 500 scripted agents in parallel (concurrency 64) in at most 2 s beyond litellm's import.
- A journal resume of a 500-call workflow in at most 0.5 s.

The workflow (written to a temp dir) is one phase with `wf.parallel` over --agents `wf.agent()` calls. The script
gives the shared "workflow" role one plain-text turn per agent, priced (a real model has a price; an unpriced one
sends litellm down a slower zero-cost diagnosis on every call). Medians throughout; measure() returns the rows.

1. Fan-out, in process. litellm imported and one call made first (its first call imports a great deal more).
   Then, --repeat times: `start_workflow_run` (a new run directory with its lease), the script installed, and
   `WorkflowRunner.run()` to FINISHED, then `writer.close()` (derived files): the whole run, events appended
   with fsync once per event-loop iteration, journal entries likewise. Beside it, the floor: the same number of
   bare `litellm.acompletion` calls on the scripted provider at the same concurrency, alternating with the runs.
2. Fan-out, end to end, in subprocesses: `python -m aw_tui workflow run fan.py --model scripted --script ...
   --concurrency 64 --quiet` against `python -c "import litellm"`, alternating, --repeat times each; the figure
   is median(run) - median(import): everything the command does beyond importing litellm (Python and aw-tui
   start-up, litellm's first-call imports, the 500 agents, the run directory's files).
   aw-tui's bytecode is written first (kit.compile_package), as an installed copy has it.
3. Resume, in process: after a run of --agents calls has finished, `reopen_workflow_run` (attach: lease, replay of
   events.jsonl), the script installed, `WorkflowRunner.run()` with every call answered from the journal, and
   `writer.close()`. --repeat times on the same run. The same end to end (`--resume RUN`) minus the import too.

On a 2-core machine shared with other work every figure moves; the import of litellm alone varies by seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aw_tui.engine.llm import load_litellm  # noqa: E402
from aw_tui.engine.scripted import install_script, uninstall_script  # noqa: E402
from aw_tui.engine.workflow import (  # noqa: E402
    WorkflowRunner, install_workflow_script, load_workflow_file, reopen_workflow_run, start_workflow_run,
    workflow_settings,
)  # fmt: skip
from kit import add_json_option, compile_package, report, wall_s  # noqa: E402 (benchmarks/ is on sys.path when run as a script)

FAN_OUT_TARGET_MS = 2000.0
RESUME_TARGET_MS = 500.0
WORKFLOW = '''"""Fan out: one agent per item."""


async def workflow(wf, args):
    wf.phase("Fan out")
    answers = await wf.parallel([(lambda i=i: wf.agent(f"Look at item {i}.")) for i in range(args["n"])])
    return sum(1 for answer in answers if answer)
'''
USAGE = {"input": 200, "output": 20}
PRICES = {"input": 0.25, "output": 2.0}


def _write_inputs(tmp: Path, agents: int) -> tuple[Path, Path]:
    workflow = tmp / "fan_out.py"
    workflow.write_text(WORKFLOW)
    script = tmp / "script.json"
    script.write_text(json.dumps({"prices": {"workflow": PRICES},
                                  "roles": {"workflow": [{"text": "done", "usage": USAGE}] * agents}}))  # fmt: skip
    return workflow, script


# --- in process ---------------------------------------------------------------------------------------------------


async def _bare_calls(agents: int, concurrency: int) -> float:
    """Seconds for `agents` bare litellm.acompletion calls on the scripted provider, `concurrency` at once."""
    litellm = load_litellm()
    install_script({"prices": {"workflow": PRICES}, "roles": {"workflow": [{"text": "done", "usage": USAGE}] * agents}})
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            await litellm.acompletion(model="scripted/workflow", messages=[{"role": "user", "content": f"item {i}"}],
                                      num_retries=0, _skip_mcp_handler=True)  # fmt: skip

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(agents)))
    return time.perf_counter() - started


def _one_run(workflow: Path, script: Path, runs: Path, agents: int, concurrency: int) -> tuple[float, Path, Any]:
    started = time.perf_counter()
    loaded = load_workflow_file(workflow)
    writer = start_workflow_run(loaded, {"n": agents}, runs_root=runs, model="scripted", script=script,
                                concurrency=concurrency, workspace=runs.parent)  # fmt: skip
    try:
        roles = install_workflow_script(writer, workflow_settings(writer), str(script))
        outcome = asyncio.run(WorkflowRunner(writer, loaded, {"n": agents}, scripted_roles=roles).run())
    finally:
        writer.close()
    elapsed = time.perf_counter() - started
    if outcome.state != "FINISHED" or outcome.result != agents:
        raise RuntimeError(f"the fan-out ended {outcome.state} with {outcome.result!r}: {outcome.reason}")
    return elapsed, writer.paths.root, outcome


def _one_resume(workflow: Path, run_dir: Path, agents: int) -> float:
    started = time.perf_counter()
    loaded = load_workflow_file(workflow)
    writer, settings, script = reopen_workflow_run(run_dir, loaded)
    try:
        roles = install_workflow_script(writer, settings, script)
        outcome = asyncio.run(WorkflowRunner(writer, loaded, settings.get("args"), scripted_roles=roles,
                                             settings=settings).run())  # fmt: skip
    finally:
        writer.close()
    elapsed = time.perf_counter() - started
    if outcome.state != "FINISHED" or outcome.stats.cached_calls != agents:
        raise RuntimeError(f"the resume ended {outcome.state} with {outcome.stats.cached_calls} journal hits")
    return elapsed


def _in_process(agents: int, concurrency: int, repeat: int, tmp: Path) -> dict[str, list[float]]:
    load_litellm()
    workflow, script = _write_inputs(tmp, agents)
    asyncio.run(_bare_calls(4, 4))  # litellm's first call imports more of itself: not what is measured
    figures: dict[str, list[float]] = {"bare": [], "run": [], "resume": []}
    run_dir = None
    try:
        for i in range(repeat):
            figures["bare"].append(asyncio.run(_bare_calls(agents, concurrency)))
            elapsed, run_dir, _ = _one_run(workflow, script, tmp / f"runs{i}", agents, concurrency)
            figures["run"].append(elapsed)
        assert run_dir is not None
        for _ in range(repeat):
            figures["resume"].append(_one_resume(workflow, run_dir, agents))
    finally:
        uninstall_script()
    return figures


# --- end to end ---------------------------------------------------------------------------------------------------


def _end_to_end(agents: int, concurrency: int, repeat: int, tmp: Path) -> dict[str, list[float]]:
    workflow, script = _write_inputs(tmp, agents)
    env = dict(os.environ)
    env.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)  # each command sets it (the import line) or aw-tui does
    for name in ("config", "tmp"):
        (tmp / name).mkdir(exist_ok=True)
    env.update(XDG_CONFIG_HOME=str(tmp / "config"), TMPDIR=str(tmp / "tmp"), PYTHONDONTWRITEBYTECODE="1")
    importing = [sys.executable, "-c", "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP']='True'; import litellm"]
    compile_package()
    wall_s(importing, cwd=tmp, env=env)  # a cold page cache is not what we measure
    figures: dict[str, list[float]] = {"import": [], "run": [], "resume": []}
    base = [sys.executable, "-m", "aw_tui", "workflow", "run", str(workflow), "--quiet"]
    for i in range(repeat):
        figures["import"].append(wall_s(importing, cwd=tmp, env=env))
        runs = tmp / f"e2e{i}"
        figures["run"].append(wall_s([*base, "--args", json.dumps({"n": agents}), "--model", "scripted",
                                       "--script", str(script), "--runs-root", str(runs),
                                       "--concurrency", str(concurrency)], cwd=tmp, env=env))  # fmt: skip
        (run_dir,) = [p for p in runs.iterdir() if p.name.startswith("aw_")]
        figures["resume"].append(wall_s([*base, "--resume", str(run_dir)], cwd=tmp, env=env))
    return figures


# --- the table ------------------------------------------------------------------------------------------------------


def _ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def measure(agents: int = 500, concurrency: int = 64, repeat: int = 3) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="aw-workflow-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "in").mkdir()
        (tmp / "e2e").mkdir()
        inside = _in_process(agents, concurrency, repeat, tmp / "in")
        outside = _end_to_end(agents, concurrency, repeat, tmp / "e2e")
    bare_ms, run_ms, resume_ms = _ms(inside["bare"]), _ms(inside["run"]), _ms(inside["resume"])
    import_ms = _ms(outside["import"])

    def row(figure: str, value: float, target: float | None = None) -> dict:
        return {"figure": figure, "value": value, "unit": "ms", "target": target,
                "met": None if target is None else value <= target}  # fmt: skip

    n = f"{agents} agents, concurrency {concurrency}"
    return [
        row(f"bare litellm.acompletion x {agents}, concurrency {concurrency} (floor)", bare_ms),
        row(f"fan-out in process: {n}, whole run (median of {repeat})", run_ms, FAN_OUT_TARGET_MS),
        row("  of which beyond the bare calls (aw-tui's own work)", run_ms - bare_ms),
        row(f"import litellm (subprocess, median of {repeat})", import_ms),
        row(f"fan-out end to end: aw-tui workflow run ({n})", _ms(outside["run"])),
        row("  end to end beyond litellm's import", _ms(outside["run"]) - import_ms, FAN_OUT_TARGET_MS),
        row(f"resume in process: {agents} calls from the journal (median of {repeat})", resume_ms, RESUME_TARGET_MS),
        row(f"resume end to end: aw-tui workflow run --resume ({agents} calls)", _ms(outside["resume"])),
        row("  end to end beyond litellm's import", _ms(outside["resume"]) - import_ms),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each figure (subprocesses included)")
    add_json_option(parser)
    args = parser.parse_args()
    return report(measure(args.agents, args.concurrency, args.repeat), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
