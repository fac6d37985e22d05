"""Package audit: find the packages of a workspace, audit each one with its own read-only agent, then rank every
finding across packages.

    aw-tui workflow run examples/package_audit.py --workspace ~/src/monorepo --model openai/gpt-5-mini

The shape:

    Discover    no agent    plain Python lists the packages: subdirectories with an __init__.py or a pyproject.toml
    Audit       1 a package agents in parallel, each with read-only tools (read, grep, find, ls) and a findings schema
    Summarize   1 agent     ranks all the findings, most urgent first

`--workspace` is where the agents' tools work (the default is the current directory); args {"workspace": "sub/dir"}
audits a folder inside it instead of its top level. Agents cannot read outside `--workspace`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

TITLE = "Package audit"  # the run's title (and its directory name); without it, the docstring's first line

# Declared up front, the phases show in the TUI's tree (as pending) before any agent starts.
PHASES = ["Discover", "Audit", "Summarize"]

MAX_FILES_PER_PACKAGE = 40  # listed in the prompt; an agent can still find more with its tools
SKIP_DIRS = {"__pycache__", "node_modules", "build", "dist", "venv", ".venv"}
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


# --- what the agents return ----------------------------------------------------------------------------------
# With `schema=` and `tools=` together the agent first uses its tools as it likes, then must end by calling the
# `respond` tool with arguments that match the schema; agent() returns the validated instance (or None when every
# try failed). Field descriptions reach the model: write them as instructions.


class Finding(BaseModel):
    file: str = Field(description="the file's path as given in the task")
    line: int | None = Field(None, description="the line the problem is on, if there is one")
    severity: Literal["high", "medium", "low"] = Field(
        description="high: security hole, data loss or a hang in production; medium: a real bug in a likely case; "
                    "low: robustness or hygiene"
    )
    issue: str = Field(description="what is wrong and what it leads to, in one or two sentences")
    fix: str = Field(description="the concrete change that fixes it")


class Audit(BaseModel):
    package: str
    findings: list[Finding] = Field(description="real problems only, each once; an empty list when there are none")


class Ranked(BaseModel):
    id: str = Field(description="the finding's id, e.g. F3")
    why: str = Field(description="why it ranks here, in one sentence")


class Ranking(BaseModel):
    overview: str = Field(description="two or three sentences on the state of the code base")
    ranking: list[Ranked] = Field(description="every finding, most urgent first")


# --- Discover: plain Python, before any agent ----------------------------------------------------------------


def is_package(directory: Path) -> bool:
    return (directory / "__init__.py").is_file() or (directory / "pyproject.toml").is_file()


def source_files(package: Path) -> list[Path]:
    """The package's Python files and its pyproject.toml, sorted, skipping hidden and build directories."""
    found = []
    for path in sorted(package.rglob("*")):
        parts = path.relative_to(package).parts
        if any(part.startswith(".") or part in SKIP_DIRS for part in parts):
            continue
        if path.is_file() and (path.suffix == ".py" or path.name == "pyproject.toml"):
            found.append(path)
    return found


def shown(path: Path, workspace: Path) -> str:
    """A path as the agents' tools take it: relative to the workspace."""
    try:
        return path.relative_to(workspace).as_posix() or "."
    except ValueError:
        return str(path)  # outside the workspace: the tools will refuse it, and the agent will say so


async def workflow(wf, args):
    args = args or {}
    # wf.workspace is --workspace (absolute); the folder to audit is resolved against it.
    workspace = Path(wf.workspace or Path.cwd()).resolve()
    root = (workspace / str(args.get("workspace") or ".")).resolve()

    wf.phase("Discover")
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory")
    packages = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".") and is_package(d)]
    if not packages:
        raise ValueError(f"no packages under {root}: no subdirectory has an __init__.py or a pyproject.toml")
    wf.log(f"discover: {len(packages)} package(s) under {shown(root, workspace)}: "
           + ", ".join(p.name for p in packages))

    # --- Audit: one read-only agent per package, all at once ---------------------------------------------------
    # parallel() takes thunks (callables returning awaitables) and waits for all of them: results in the same
    # order, None for an agent that failed. `p=p` binds each lambda to its own package.
    wf.phase("Audit")

    def audit(package: Path):
        files = source_files(package)
        listing = "\n".join(f"- {shown(f, workspace)}" for f in files[:MAX_FILES_PER_PACKAGE])
        more = f"\n(and {len(files) - MAX_FILES_PER_PACKAGE} more)" if len(files) > MAX_FILES_PER_PACKAGE else ""
        return wf.agent(
            f"Audit the Python package `{package.name}` at {shown(package, workspace)}.\n\n"
            f"Its files:\n{listing}{more}\n\n"
            "Read the code with your tools (paths are relative to the workspace). Report genuine problems only: "
            "security (secrets in code, injection), error handling that hides failures, unbounded loops or "
            "retries, resource leaks, and bugs. Cite the file and line of each. Do not report style.",
            schema=Audit,
            tools="read-only",
            label=f"audit:{package.name}",
        )

    audits = await wf.parallel([(lambda p=p: audit(p)) for p in packages])

    # Code, not an agent, collects the findings: it numbers them so the ranking agent can refer to them by id.
    findings = []
    for package, result in zip(packages, audits):
        if result is None:
            wf.log(f"audit:{package.name} gave no result; its package is left out of the ranking")
            continue
        for finding in result.findings:
            findings.append({"id": f"F{len(findings) + 1}", "package": package.name, **finding.model_dump()})
    counts = {level: sum(1 for f in findings if f["severity"] == level) for level in SEVERITY_ORDER}
    wf.log(f"audit: {len(findings)} finding(s): " + ", ".join(f"{n} {level}" for level, n in counts.items()))

    # --- Summarize: one agent ranks everything -----------------------------------------------------------------
    wf.phase("Summarize")
    if not findings:
        return {"overview": "No findings.", "ranked": []}
    table = "\n".join(f"{f['id']} [{f['severity']}] {f['package']}: {f['file']}:{f['line'] or '?'}: {f['issue']}"
                      for f in findings)
    ranking = await wf.agent(
        f"These are the findings of an audit of {len(packages)} packages:\n\n{table}\n\n"
        "Rank every finding, most urgent first: weigh how likely it is to bite in production and how bad it is "
        "when it does, not only the stated severity. Then give a short overview.",
        schema=Ranking,
        label="rank findings",
    )

    # Keep the agent's order, but trust code for the data: unknown ids are ignored, forgotten findings go last.
    by_id = {f["id"]: f for f in findings}
    ranked = []
    for item in ranking.ranking if ranking is not None else []:
        if item.id in by_id and all(r["id"] != item.id for r in ranked):
            ranked.append({**by_id[item.id], "why": item.why})
    ranked += sorted((f for f in findings if all(r["id"] != f["id"] for r in ranked)),
                     key=lambda f: SEVERITY_ORDER[f["severity"]])
    overview = ranking.overview if ranking is not None else "The ranking agent gave no result; ordered by severity."
    # The result is printed at the end and saved in artifacts/workflow_result.json.
    return {"overview": overview, "ranked": [{"rank": n, **f} for n, f in enumerate(ranked, 1)]}
