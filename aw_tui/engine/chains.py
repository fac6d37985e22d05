"""Chains of named agents: a pipeline that hands each agent's output to the next, and a loop of one agent that
improves on its own earlier outputs until a judge says YES or the iterations run out.

Both are plain async functions a workflow awaits, with a SubagentRuntime saying where they run. Each one shows
in the tree as a phase with its agents inside; every agent is a fresh child (aw_tui.engine.delegate) running its
definition's prompt, tools, model and thinking level, billed under the definition's name.

Pipeline: a step's task may hold `{task}` (the pipeline's task) and `{previous}` (the previous step's output,
put through the step's connector template, else its agent's, where `{output}` stands for it, and cut
at 16,000 characters with a visible marker). A step without a task gets the pipeline's task, and from the second
step on the previous output under a heading. The pipeline stops at the first step that fails.

Loop: iteration 1 gets the task; each later one also gets the earlier outputs (newest kept first, oldest
dropped beyond 48,000 characters) and, when a judge ran, the judge's feedback on the last output. The judge
answers YES or NO on its first non-empty line; YES ends the loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aw_tui.engine.agent import AgentSpec
from aw_tui.engine.agentdefs import AgentDefinition, UnknownAgent
from aw_tui.engine.delegate import ChildRun, SubagentRuntime
from aw_tui.model import events as ev
from aw_tui.model.formatting import counted
from aw_tui.model.ledger import ZERO_USAGE, Usage

PREVIOUS_LIMIT = 16_000
LOOP_CONTEXT_LIMIT = 48_000
EMPTY_PREVIOUS = "(the previous step produced no output)"
NO_PREVIOUS = "(this is the first step; there is no previous output)"
DEFAULT_NEXT_STEP = "{task}\n\n## Output of the previous step\n\n{previous}"


def cut_marker(total: int, limit: int) -> str:
    return f"\n\n[... cut here: the previous output has {total:,} characters; only the first {limit:,} are shown]"


# --- text helpers (pure) -------------------------------------------------------------------------------------


def format_connector(output: str, template: str | None) -> str:
    """`output` put through a connector template: every `{output}` replaced by it; no template, the output."""
    return template.replace("{output}", output) if template else output


def substitute_previous(task: str, previous: str, limit: int = PREVIOUS_LIMIT) -> str:
    """Every `{previous}` in `task` replaced by `previous`, cut at `limit` characters with a marker saying so."""
    if "{previous}" not in task:
        return task
    if len(previous) > limit:
        previous = previous[:limit] + cut_marker(len(previous), limit)
    return task.replace("{previous}", previous)


_VERDICT_NOISE = re.compile(r"[*_`#]")
_YES = re.compile(r"\bYES\b")


def _first_line(reply: str) -> tuple[str, str]:
    """(first non-blank line, what follows it)."""
    lines = reply.splitlines()
    for index, line in enumerate(lines):
        if line.strip():
            return line, "\n".join(lines[index + 1 :])
    return "", ""


def parse_judge_verdict(reply: str) -> bool:
    """True when the judge's first non-blank line, without markdown emphasis, holds the word YES."""
    first, _ = _first_line(reply)
    return bool(_YES.search(_VERDICT_NOISE.sub("", first).upper()))


def judge_feedback(reply: str) -> str:
    """The judge's reply without its verdict word: what the next iteration should act on."""
    first, rest = _first_line(reply)
    cleaned = _VERDICT_NOISE.sub("", first).strip()
    remainder = re.sub(r"^(YES|NO)\b[\s.,:;!-]*", "", cleaned, flags=re.IGNORECASE).strip()
    return "\n".join(part for part in (remainder, rest.strip()) if part)


def prior_iterations(outputs: Sequence[str], limit: int = LOOP_CONTEXT_LIMIT) -> str:
    """The earlier outputs as `--- Iteration k output ---` blocks, oldest first, keeping the newest that fit in
    `limit` characters (the newest alone, cut, when even it does not fit). "" when there are none."""
    blocks = [f"--- Iteration {k} output ---\n{text}" for k, text in enumerate(outputs, start=1)]
    kept: list[str] = []
    size = 0
    for block in reversed(blocks):
        extra = len(block) + (2 if kept else 0)
        if size + extra > limit:
            break
        kept.insert(0, block)
        size += extra
    if not kept and blocks:
        newest = blocks[-1]
        kept = [newest[:limit] + f"\n[... cut: this output has {len(newest):,} characters]"]
    dropped = len(blocks) - len(kept)
    note = (f"({counted(dropped, 'earlier iteration')} left out to stay within {limit:,} "
            "characters)\n\n" if dropped else "")  # fmt: skip
    return note + "\n\n".join(kept)


# --- results -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineStep:
    agent: str
    task: str | None = None  # may use {task} and {previous}; None: the default for its position
    connector: str | None = None  # "{output}" template; overrides the agent's own


@dataclass(frozen=True)
class StepResult:
    agent: str
    prompt: str
    run: ChildRun

    @property
    def output(self) -> str:
        return self.run.text

    @property
    def ok(self) -> bool:
        return self.run.ok


@dataclass(frozen=True)
class PipelineResult:
    ok: bool
    final_output: str
    steps: list[StepResult]
    phase: str
    stopped_at: int | None = None  # index of the step that failed
    error: str | None = None
    usage: Usage = ZERO_USAGE
    model_calls: int = 0
    duration_ms: float = 0.0


@dataclass(frozen=True)
class Judge:
    agent: str = "reviewer"
    criteria: str | None = None  # None: the loop's task is the criterion


@dataclass(frozen=True)
class LoopIteration:
    number: int  # 1-based
    prompt: str
    run: ChildRun
    judge_run: ChildRun | None = None
    verdict: bool | None = None  # None: no judge ran
    feedback: str | None = None

    @property
    def output(self) -> str:
        return self.run.text


@dataclass(frozen=True)
class LoopResult:
    ok: bool
    final_output: str
    iterations: list[LoopIteration]
    stopped_because: str  # judge_satisfied | max_iterations | error
    phase: str
    error: str | None = None
    usage: Usage = ZERO_USAGE
    model_calls: int = 0
    duration_ms: float = 0.0


@dataclass
class _Tally:
    usage: Usage = ZERO_USAGE
    model_calls: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, run: ChildRun) -> None:
        self.usage = self.usage + run.usage
        self.model_calls += run.model_calls

    @property
    def duration_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


# --- running -------------------------------------------------------------------------------------------------


def normalize_steps(steps: Sequence[PipelineStep | Mapping[str, str] | str]) -> list[PipelineStep]:
    """Pipeline steps given as PipelineStep, {"agent", "task"?, "connector"?} dicts or bare agent names, as
    PipelineSteps."""
    out = []
    for step in steps:
        if isinstance(step, PipelineStep):
            out.append(step)
        elif isinstance(step, str):
            out.append(PipelineStep(agent=step))
        else:
            out.append(PipelineStep(agent=step["agent"], task=step.get("task"), connector=step.get("connector")))
    return out


def _check_agents(runtime: SubagentRuntime, names: Sequence[str], what: str) -> None:
    unknown = runtime.catalog.first_unknown(names)
    if unknown is not None:
        raise UnknownAgent(unknown, runtime.catalog.names(), what)


async def _run_named(
    runtime: SubagentRuntime, definition: AgentDefinition, prompt: str, *, agent_id: str, phase: str, label: str,
    timeout_s: float | None,
) -> ChildRun:  # fmt: skip
    model, thinking, api_base, limit = runtime.choose_model(definition)
    spec = AgentSpec(id=agent_id, role=definition.name, model=model, thinking=thinking, api_base=api_base,
                     context_limit=limit, phase=phase, parent=None, label=label)  # fmt: skip
    return await runtime.run_child(spec, definition.prompt.strip(), prompt, definition=definition,
                                   timeout_s=timeout_s)  # fmt: skip


class _Phase:
    """A phase in the tree for one chain: started on entry, finished with its outcome (failed when cancelled)."""

    def __init__(self, runtime: SubagentRuntime, kind: str, title: str) -> None:
        self.runtime = runtime
        self.id = runtime.new_id(f"{kind}-")
        self.title = title
        self.status = "failed"

    def __enter__(self) -> _Phase:
        self.runtime.hooks.emit(ev.PhaseStarted(id=self.id, title=self.title, parent=self.runtime.phase))
        return self

    def __exit__(self, *_exc: object) -> None:
        self.runtime.hooks.emit(ev.PhaseFinished(id=self.id, title=self.title, status=self.status))  # type: ignore[arg-type]


async def run_pipeline(
    steps: Sequence[PipelineStep | Mapping[str, str] | str], task: str, *, runtime: SubagentRuntime,
    title: str | None = None, timeout_s: float | None = None,
) -> PipelineResult:  # fmt: skip
    """Run the named agents one after another, each seeing the previous one's output through `{previous}`.

    `steps` are PipelineStep, {"agent", "task"?, "connector"?} dicts or bare agent names. Unknown agents raise
    UnknownAgent before anything runs. A failing step stops the pipeline (ok False, stopped_at its index).
    """
    plan = normalize_steps(steps)
    if not plan:
        raise ValueError("a pipeline needs at least one step")
    _check_agents(runtime, [step.agent for step in plan], "pipeline")
    tally = _Tally()
    results: list[StepResult] = []
    previous = ""
    with _Phase(runtime, "pipeline", title or "pipeline: " + " → ".join(s.agent for s in plan)) as phase:
        for index, step in enumerate(plan):
            definition = runtime.catalog.require(step.agent)
            template = step.task if step.task is not None else ("{task}" if index == 0 else DEFAULT_NEXT_STEP)
            # How this step receives the previous output: its own connector, else its agent's.
            handed_on = format_connector(previous, step.connector or definition.connector)
            if not previous.strip():
                handed_on = EMPTY_PREVIOUS if index else NO_PREVIOUS
            prompt = substitute_previous(template.replace("{task}", task), handed_on)
            run = await _run_named(
                runtime, definition, prompt, agent_id=f"{phase.id}.{index + 1}-{definition.name}", phase=phase.id,
                label=f"{definition.name} (step {index + 1} of {len(plan)})", timeout_s=timeout_s,
            )  # fmt: skip
            tally.add(run)
            results.append(StepResult(step.agent, prompt, run))
            if not run.ok:
                message = (f"Pipeline failed at step {index + 1} of {len(plan)} (agent: {step.agent}).\n"
                           f"Error: {run.error}")  # fmt: skip
                return PipelineResult(ok=False, final_output=message, steps=results, phase=phase.id,
                                      stopped_at=index, error=run.error, usage=tally.usage,
                                      model_calls=tally.model_calls, duration_ms=tally.duration_ms)  # fmt: skip
            previous = run.text
        phase.status = "done"
    return PipelineResult(ok=True, final_output=results[-1].output, steps=results, phase=phase.id,
                          usage=tally.usage, model_calls=tally.model_calls, duration_ms=tally.duration_ms)  # fmt: skip


JUDGE_PROMPT = """\
Judge whether the output below meets the criteria.

Answer on the first line with YES if it does, or NO if it does not. After a NO, say specifically what is \
missing or wrong and what to change: your feedback goes to the agent's next attempt.

## Criteria

{criteria}

## Output to judge

{output}
"""


def loop_prompt(task: str, outputs: Sequence[str], feedback: str | None, limit: int = LOOP_CONTEXT_LIMIT) -> str:
    """The prompt of the next iteration: the task, the earlier outputs, and the judge's last feedback."""
    if not outputs:
        return task
    parts = [task, "## Prior iterations\n\n" + prior_iterations(outputs, limit)]
    if feedback:
        parts.append(f"## Judge's feedback on iteration {len(outputs)}\n\n"
                     + substitute_previous("{previous}", feedback, PREVIOUS_LIMIT))  # fmt: skip
    parts.append(f"Now write iteration {len(outputs) + 1}: improve on the latest output"
                 + (" and act on the feedback." if feedback else "."))  # fmt: skip
    return "\n\n".join(parts)


async def run_loop(
    agent: str, task: str, max_iterations: int = 3, judge: str | Judge | None = None, *, runtime: SubagentRuntime,
    title: str | None = None, timeout_s: float | None = None,
) -> LoopResult:  # fmt: skip
    """Run `agent` on `task` up to `max_iterations` times, each time with its earlier outputs as context.

    With a `judge` (an agent name, or Judge(agent, criteria)), the judge reads each output: YES on its first
    non-empty line ends the loop (stopped_because "judge_satisfied"); otherwise its feedback goes into the next
    iteration's prompt. A failed iteration or judge ends the loop (ok False, stopped_because "error").
    """
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
    spec = Judge(agent=judge) if isinstance(judge, str) else judge
    _check_agents(runtime, [agent] + ([spec.agent] if spec else []), "loop")
    definition = runtime.catalog.require(agent)
    judge_definition = runtime.catalog.require(spec.agent) if spec else None
    tally = _Tally()
    iterations: list[LoopIteration] = []
    feedback: str | None = None
    judged = f", judged by {spec.agent}" if spec else ""
    with _Phase(runtime, "loop", title or f"loop: {agent} × up to {max_iterations}{judged}") as phase:
        for number in range(1, max_iterations + 1):
            prompt = loop_prompt(task, [it.output for it in iterations], feedback)
            run = await _run_named(
                runtime, definition, prompt, agent_id=f"{phase.id}.{number}-{agent}", phase=phase.id,
                label=f"{agent} (iteration {number} of {max_iterations})", timeout_s=timeout_s,
            )  # fmt: skip
            tally.add(run)
            if not run.ok:
                iterations.append(LoopIteration(number, prompt, run))
                return _loop_failed(iterations, phase, tally, f"Loop failed at iteration {number} (agent: {agent}).",
                                    run.error)  # fmt: skip
            if spec is None or judge_definition is None:
                iterations.append(LoopIteration(number, prompt, run))
                continue
            criteria = spec.criteria or task
            output = run.text if len(run.text) <= LOOP_CONTEXT_LIMIT else substitute_previous(
                "{previous}", run.text, LOOP_CONTEXT_LIMIT)  # fmt: skip
            verdict_run = await _run_named(
                runtime, judge_definition, JUDGE_PROMPT.format(criteria=criteria, output=output or "(empty)"),
                agent_id=f"{phase.id}.{number}-judge", phase=phase.id,
                label=f"judge {spec.agent} (iteration {number})", timeout_s=timeout_s,
            )  # fmt: skip
            tally.add(verdict_run)
            if not verdict_run.ok:
                iterations.append(LoopIteration(number, prompt, run, judge_run=verdict_run))
                return _loop_failed(iterations, phase, tally, f"Loop failed judging iteration {number} "
                                    f"(judge: {spec.agent}).", verdict_run.error)  # fmt: skip
            satisfied = parse_judge_verdict(verdict_run.text)
            feedback = judge_feedback(verdict_run.text)
            iterations.append(LoopIteration(number, prompt, run, verdict_run, satisfied, feedback))
            if satisfied:
                phase.status = "done"
                return LoopResult(ok=True, final_output=run.text, iterations=iterations,
                                  stopped_because="judge_satisfied", phase=phase.id, usage=tally.usage,
                                  model_calls=tally.model_calls, duration_ms=tally.duration_ms)  # fmt: skip
        phase.status = "done"
    return LoopResult(ok=True, final_output=iterations[-1].output, iterations=iterations,
                      stopped_because="max_iterations", phase=phase.id, usage=tally.usage,
                      model_calls=tally.model_calls, duration_ms=tally.duration_ms)  # fmt: skip


def _loop_failed(iterations: list[LoopIteration], phase: _Phase, tally: _Tally, headline: str,
                 error: str | None) -> LoopResult:  # fmt: skip
    return LoopResult(ok=False, final_output=f"{headline}\nError: {error}", iterations=iterations,
                      stopped_because="error", phase=phase.id, error=error, usage=tally.usage,
                      model_calls=tally.model_calls, duration_ms=tally.duration_ms)  # fmt: skip
