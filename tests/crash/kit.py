"""Helpers of the crash tests: real `aw-tui` processes (forked by the zygote), the offline demo, run directories."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aw_tui

ZYGOTE = Path(__file__).with_name("zygote.py")
REPO_ROOT = Path(aw_tui.__file__).resolve().parents[1]
DEMO_ARGS = ["--headless", "--auto-approve", "all"]
# A hang guard, not a speed check: the demo takes about a second; an engine stuck waiting for an answer never ends.
CHILD_TIMEOUT_S = 60.0


@dataclass
class Finished:
    status: int  # the exit code, or -signal (-9: SIGKILL)
    output: str  # stdout
    errors: str  # stderr

    @classmethod
    def read(cls, status: int, log: Path) -> Finished:
        def text(path: Path) -> str:
            return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

        return cls(status, text(log), text(log.with_name(log.name + ".err")))

    def __str__(self) -> str:
        return f"exit status {self.status}\n--- stdout\n{self.output}--- stderr\n{self.errors}"


def child_env(home: Path) -> dict[str, str]:
    """Per-process settings: its own config dir, and TMPDIR for the demo's workspace copy."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return {"XDG_CONFIG_HOME": str(home / "config"), "TMPDIR": str(home / "tmp"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


class Zygote:
    """A `python tests/crash/zygote.py` process that forks one `aw-tui` process per request (see zygote.py).

    Threads may use one zygote at once: requests are sent one at a time, and a reader thread files each child's
    end under its pid for whoever waits for it.
    """

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(ZYGOTE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
            cwd=REPO_ROOT, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        )  # fmt: skip
        self._sending = threading.Lock()
        self._replies = threading.Condition()
        self._ready = False
        self._gone = False
        self._forked: list[int] = []  # pids in the order of the requests
        self._ended: dict[int, int] = {}
        self._logs = itertools.count(1)
        threading.Thread(target=self._read_replies, name="zygote-replies", daemon=True).start()

    def wait_ready(self) -> None:
        """Wait until it has loaded everything (the first request does this itself)."""
        self._await(lambda: self._ready, timeout_s=120, what="the zygote to start")

    def start(
        self, argv: list[str], home: Path, *, kill: dict[str, Any] | None = None, fsize_limit: int | None = None
    ) -> tuple[int, Path]:
        """Fork `aw-tui ARGV`; returns its pid and the file its output goes to."""
        self.wait_ready()
        log = home / f"aw-tui-{next(self._logs):02d}-{argv[0]}.log"
        request = {"argv": argv, "env": child_env(home), "cwd": str(home), "log": str(log), "kill": kill,
                   "fsize_limit": fsize_limit, "timeout_s": CHILD_TIMEOUT_S}  # fmt: skip
        assert self._process.stdin is not None
        with self._sending:  # the pid replies come in the order of the requests
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._await(lambda: bool(self._forked), timeout_s=30, what="a fork")
            with self._replies:
                return self._forked.pop(0), log

    def wait(self, pid: int, log: Path, *, timeout_s: float = CHILD_TIMEOUT_S + 30) -> Finished:
        self._await(lambda: pid in self._ended, timeout_s=timeout_s, what=f"process {pid} to end")
        with self._replies:
            return Finished.read(self._ended.pop(pid), log)

    def run(
        self, argv: list[str], home: Path, *, kill: dict[str, Any] | None = None, fsize_limit: int | None = None
    ) -> Finished:
        pid, log = self.start(argv, home, kill=kill, fsize_limit=fsize_limit)
        return self.wait(pid, log)

    def run_until(self, argv: list[str], home: Path, kill_when: Callable[[], bool]) -> Finished:
        """Run `aw-tui ARGV` and SIGKILL it from here as soon as kill_when() holds (polled every 2 ms)."""
        pid, log = self.start(argv, home)
        while True:
            with self._replies:
                if self._replies.wait_for(lambda: pid in self._ended or self._gone, timeout=0.002):
                    break
            if kill_when():
                os.kill(pid, signal.SIGKILL)
                break
        return self.wait(pid, log)

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()  # the zygote ends once its children have
        try:
            self._process.wait(timeout=CHILD_TIMEOUT_S + 10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _read_replies(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            message = json.loads(line)
            with self._replies:
                if "status" in message:
                    self._ended[message["pid"]] = message["status"]
                elif "pid" in message:
                    self._forked.append(message["pid"])
                elif message.get("ready"):
                    self._ready = True
                self._replies.notify_all()
        with self._replies:
            self._gone = True
            self._replies.notify_all()

    def _await(self, condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
        with self._replies:
            if not self._replies.wait_for(lambda: condition() or self._gone, timeout=timeout_s):
                raise RuntimeError(f"gave up waiting for {what} after {timeout_s:g} s")
            if not condition():
                raise RuntimeError(f"the zygote stopped (exit status {self._process.poll()}) while waiting for {what}")


def start_real_demo(home: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`python -m aw_tui demo --headless --auto-approve all`, a real interpreter from the start; output to a file."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "aw-tui-demo.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "aw_tui", "demo", *DEMO_ARGS, "--runs-root", str(home / "runs")], cwd=home,
            env={**os.environ, **child_env(home)}, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return process, log


def only_run(runs_root: Path) -> Path:
    runs = [p for p in runs_root.iterdir() if p.name.startswith("aw_")] if runs_root.is_dir() else []
    assert len(runs) == 1, f"expected one run under {runs_root}, found {[p.name for p in runs]}"
    return runs[0]


def complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def event_lines(run_dir: Path) -> list[dict[str, Any]]:
    """events.jsonl line by line; fails on anything that is not a whole JSON object line."""
    data = (run_dir / "events.jsonl").read_bytes()
    assert data.endswith(b"\n"), f"events.jsonl of {run_dir.name} ends in a partial line: {data[-80:]!r}"
    lines = []
    for number, raw in enumerate(data.split(b"\n")[:-1], 1):
        value = json.loads(raw)  # raises on a torn or garbled line
        assert isinstance(value, dict), f"line {number} is not a JSON object"
        lines.append(value)
    return lines


def assert_seqs_whole(lines: list[dict[str, Any]]) -> None:
    """seq runs 1, 2, 3 ... without a gap or a repeat: no event lost, none written twice."""
    seqs = [line["seq"] for line in lines]
    assert seqs == list(range(1, len(seqs) + 1)), f"seqs are not 1..{len(seqs)}: {seqs}"


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {text!r}"
    return lines[0]
