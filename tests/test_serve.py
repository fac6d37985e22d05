"""`aw-tui --serve`: the same app in a browser through textual-serve, bound to 127.0.0.1 only.

The test plays the browser: it opens the page, connects the websocket the page would, and reads the app's
output until the runs list has drawn."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import aiohttp

from aw_tui.cli import bundled_samples_root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses in LISTEN state on `port`, from /proc/net/tcp{,6} (hex, as the kernel writes them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port_hex = local.rsplit(":", 1)
                if state == "0A" and int(port_hex, 16) == port:
                    found.add(address)
    return found


async def read_screen(port: int, needle: bytes, timeout_s: float) -> bytes:
    received = b""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        async with session.get(f"http://127.0.0.1:{port}/") as page:
            assert page.status == 200
            html = await page.text()
            assert f"ws://127.0.0.1:{port}/ws" in html
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws?width=120&height=40") as websocket:
            deadline = time.monotonic() + timeout_s
            while needle not in received and time.monotonic() < deadline:
                try:
                    message = await websocket.receive(timeout=max(0.1, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                if message.type == aiohttp.WSMsgType.BINARY:
                    received += message.data
                elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
    return received


def test_serve_draws_the_runs_list_in_a_browser_session_on_loopback_only(tmp_path):
    port = free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:  # a file, not a pipe: nobody reads a pipe while the server runs
        server = subprocess.Popen(
            [sys.executable, "-m", "aw_tui", "tui", "--serve", "--port", str(port), "--root",
             str(bundled_samples_root())],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not listening_addresses(port) and time.monotonic() < deadline:
            assert server.poll() is None, log_path.read_text(errors="replace")
            time.sleep(0.1)
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else
        # A sample run's name, drawn by the runs list in the served app.
        screen = asyncio.run(read_screen(port, b"speed_up_gpu_sort", timeout_s=60))
        assert b"speed_up_gpu_sort" in screen, log_path.read_text(errors="replace")[-2000:]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def test_serve_refuses_a_port_out_of_range(capsys):
    from tests.cli_kit import assert_one_error_line, run_main

    code, _, err = run_main(capsys, "--serve", "--port", "70000")
    assert code == 1
    assert "not a port number" in assert_one_error_line(err)
