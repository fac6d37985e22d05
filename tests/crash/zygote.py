"""A process that loads aw-tui (and litellm) once, then forks one real `aw-tui` process per request.

Importing litellm takes seconds; twenty crash cases that each start two engines would spend most of their time
there. A forked child is a real process (its own pid, killed with SIGKILL, no cleanup) running the same
`aw_tui.cli.main(argv)` that `python -m aw_tui` runs; only the interpreter start-up is shared.

Protocol (one JSON object a line; requests on stdin, replies on stdout; children run side by side):

    request  {"argv": [...], "env": {...}, "cwd": DIR, "log": FILE, "timeout_s": S, "kill": KILL | null,
              "fsize_limit": BYTES | null}
             (the child's stdout goes to FILE, its stderr to FILE.err; with fsize_limit, RLIMIT_FSIZE)
    reply    {"pid": N}                   as soon as the child is forked (in the order of the requests)
    reply    {"pid": N, "status": CODE}   when it ended: its exit code, or -signal (-9 for SIGKILL)

KILL makes the child kill itself with SIGKILL when events.jsonl reaches a number of complete lines, so a case
crashes at exactly the point it names:

    {"at_line": N, "torn": false}              right after the append that makes the file reach N lines
    {"at_line": N, "torn": true, "cut": F}     during that append: the lines before line N of the batch land
                                               whole, then the first F (0 < F < 1) of line N's bytes, then SIGKILL

A child still running after timeout_s is killed by the zygote (status -9), so a hung engine fails its case
instead of the whole test run.

Run it as a script: `python tests/crash/zygote.py`.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import sys
import time

# Everything a headless run imports, loaded before any fork.
import litellm  # noqa: F401
import rich.console  # noqa: F401
import watchfiles  # noqa: F401

import aw_tui.cli
import aw_tui.engine.launch  # noqa: F401
import aw_tui.engine.orchestrator  # noqa: F401
import aw_tui.engine.scripted  # noqa: F401
import aw_tui.headless  # noqa: F401
from aw_tui.engine import llm
from aw_tui.store import jsonl

# litellm's first model call imports more of itself (tiktoken, its request path); do that once, here, too.
# Only if this litellm adapter still offers it: it is a speed-up, nothing depends on it.
getattr(llm, "_load_and_warm_up", llm.load_litellm)()

EVENTS_FILE = "events.jsonl"


def _complete_lines(path: os.PathLike[str] | str) -> int:
    try:
        with open(path, "rb") as file:
            return file.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill_switch(at_line: int, torn: bool, cut: float) -> None:
    """Make the first events.jsonl append that reaches `at_line` lines the last thing this process does."""
    original_append = jsonl.JsonlAppender.append

    def append(self: jsonl.JsonlAppender, items):  # type: ignore[no-untyped-def]
        if self.path.name != EVENTS_FILE:
            return original_append(self, items)
        items = list(items)
        before = _complete_lines(self.path)
        if before + len(items) < at_line:
            return original_append(self, items)
        if not torn:
            original_append(self, items)
            _die()
        lines = [jsonl.encode_line(item) for item in items]
        index = at_line - before - 1  # line N's place in this batch
        torn_line = lines[index]
        keep = max(1, min(len(torn_line) - 1, int(len(torn_line) * cut)))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"".join(lines[:index]) + torn_line[:keep])
        os.fsync(fd)
        _die()

    jsonl.JsonlAppender.append = append  # type: ignore[method-assign]


def run_child(request: dict) -> None:
    """In the forked child: become the `aw-tui` process the request describes. Never returns."""
    code = 70
    try:
        os.environ.update(request.get("env") or {})
        import tempfile

        tempfile.tempdir = None  # TMPDIR may have changed: `aw-tui demo` puts its workspace there
        os.chdir(request["cwd"])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for fd, name in ((1, request["log"]), (2, request["log"] + ".err")):
            log = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, fd)
            os.close(log)
        if request.get("fsize_limit"):
            # A file may not grow past this many bytes: a write beyond it fails with EFBIG ("File too large"), the
            # kernel's own short write and error, once SIGXFSZ (which would kill the process) is ignored.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            limit = int(request["fsize_limit"])
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        kill = request.get("kill")
        if kill:
            install_kill_switch(int(kill["at_line"]), bool(kill.get("torn")), float(kill.get("cut", 0.5)))
        code = aw_tui.cli.main(request["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException as error:  # noqa: BLE001 - the log shows it; the status says the child failed
        print(f"zygote child: {type(error).__name__}: {error}", file=sys.stderr)
        code = 70
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def reply(message: dict) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def main() -> None:
    """Serve requests as they come; children run side by side, each reported when it ends."""
    reply({"ready": True})
    deadlines: dict[int, float] = {}  # running children and when the zygote gives up on them
    received = b""
    reading = True
    while reading or deadlines:
        ready, _, _ = select.select([0] if reading else [], [], [], 0.005 if deadlines else None)
        if ready:
            chunk = os.read(0, 65536)
            reading = bool(chunk)
            received += chunk
            while b"\n" in received:
                line, received = received.split(b"\n", 1)
                if line.strip():
                    request = json.loads(line)
                    pid = os.fork()
                    if pid == 0:
                        run_child(request)
                    deadlines[pid] = time.monotonic() + float(request.get("timeout_s", 60))
                    reply({"pid": pid})
        while deadlines:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            deadlines.pop(pid, None)
            reply({"pid": pid, "status": os.waitstatus_to_exitcode(status)})
        for pid, deadline in deadlines.items():
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)  # reported as -9 once reaped


if __name__ == "__main__":
    main()
