"""Names and paths of a run directory (DESIGN.md, "The run directory").

    <runs root>/aw_<YYYYMMDD_HHMMSS>_<slug>/
        events.jsonl  run.json  state.md  ledger.json  control.jsonl  lease.json  .lease.lock
        steps/0001_analyst_plan.md ...
        artifacts/
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aw_tui.store.atomic import fsync_directory

SLUG_MAX_CHARS = 80
EMPTY_SLUG = "task"
RUN_DIR_PREFIX = "aw_"
# Most filesystems cap a name at 255 bytes. Keep room for a "_<n>" clash suffix.
_RUN_DIR_NAME_MAX_BYTES = 255 - 8
_MAX_CLASH_ATTEMPTS = 10_000


def _is_letter_or_number(char: str) -> bool:
    # Same classes as the seed's /[^\p{Letter}\p{Number}]+/u: categories L* and N*.
    # Combining marks (M*) are separators there, so they are here; str.isalnum() would differ.
    return unicodedata.category(char)[0] in "LN"


def slugify(text: str) -> str:
    """The seed's slug: strip, NFKC, lowercase, non-letter/digit runs -> "_", strip "_", cut to 80.

    The cut counts code points (the seed's JS slice counts UTF-16 units; they differ only for
    characters outside the BMP, where a code-point cut never leaves half a character).
    """
    normalised = unicodedata.normalize("NFKC", text.strip()).lower()
    pieces: list[str] = []
    in_separator_run = False
    for char in normalised:
        if _is_letter_or_number(char):
            pieces.append(char)
            in_separator_run = False
        elif not in_separator_run:
            pieces.append("_")
            in_separator_run = True
    slug = "".join(pieces).strip("_")[:SLUG_MAX_CHARS]
    return slug or EMPTY_SLUG


def run_dir_name(task_title: str, now: datetime) -> str:
    """`aw_<YYYYMMDD_HHMMSS>_<slug>`; `now` is used as given (the seed uses local time).

    A slug of 80 CJK characters would make a 259-byte name that mkdir refuses, so the slug is
    shortened further only when the UTF-8 name would not fit a filename.
    """
    name = f"{RUN_DIR_PREFIX}{now:%Y%m%d_%H%M%S}_{slugify(task_title)}"
    if len(name.encode("utf-8")) <= _RUN_DIR_NAME_MAX_BYTES:
        return name
    while len(name.encode("utf-8")) > _RUN_DIR_NAME_MAX_BYTES:
        name = name[:-1]
    return name.rstrip("_")


def create_run_dir(root: Path, task_title: str, now: datetime) -> Path:
    """Create a fresh run directory under `root` (made if missing) with steps/ and artifacts/.

    os.mkdir is atomic and fails on an existing name, so an existing directory is never reused,
    even when two processes race for the same name: the loser moves on to `<name>_2`, `<name>_3`...
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base_name = run_dir_name(task_title, now)
    for attempt in range(1, _MAX_CLASH_ATTEMPTS + 1):
        candidate = root / (base_name if attempt == 1 else f"{base_name}_{attempt}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        paths = RunPaths.for_run_dir(candidate)
        os.mkdir(paths.steps_dir)
        os.mkdir(paths.artifacts_dir)
        fsync_directory(candidate)
        fsync_directory(root)
        return candidate
    raise FileExistsError(
        f"no free run directory name under {root}: {base_name} and {_MAX_CLASH_ATTEMPTS - 1} "
        "numbered variants all exist"
    )


def step_file_name(step: int, suffix: str) -> str:
    """`step_file_name(1, "analyst_plan")` -> "0001_analyst_plan.md" (step numbering is global)."""
    if step < 1:
        raise ValueError(f"step numbers start at 1, got {step}")
    # Slugging the suffix keeps it a plain file name ("analyst_plan" is unchanged).
    return f"{step:04d}_{slugify(suffix)}.md"


@dataclass(frozen=True)
class RunPaths:
    """Every path inside one run directory. Pure path arithmetic: nothing is touched on disk."""

    root: Path
    events: Path
    run_json: Path
    state_md: Path
    ledger_json: Path
    steps_dir: Path
    control: Path
    artifacts_dir: Path
    recovered_dir: Path
    lease_json: Path
    lease_lock: Path

    @classmethod
    def for_run_dir(cls, run_dir: Path | str) -> RunPaths:
        root = Path(run_dir)
        artifacts_dir = root / "artifacts"
        return cls(
            root=root,
            events=root / "events.jsonl",
            run_json=root / "run.json",
            state_md=root / "state.md",
            ledger_json=root / "ledger.json",
            steps_dir=root / "steps",
            control=root / "control.jsonl",
            artifacts_dir=artifacts_dir,
            # Where the jsonl crash repair keeps the bytes of a torn last line.
            recovered_dir=artifacts_dir / "recovered",
            lease_json=root / "lease.json",
            lease_lock=root / ".lease.lock",
        )

    @property
    def run_name(self) -> str:
        return self.root.name

    def step_file(self, step: int, suffix: str) -> Path:
        return self.steps_dir / step_file_name(step, suffix)
