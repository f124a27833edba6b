"""`aioshop seed --products` and `aioshop reindex`, run as real commands: a bar on a terminal
(stderr on a pty), plain lines with rate and ETA on a pipe."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.conftest import SERVICE_VARIABLES
from tests.support.cli import GOOD_ENV, run_cli

TIMEOUT_SECONDS = 120.0


def run_on_pty(*args: str, **env: str) -> tuple[int, str, str]:
    """Run `aioshop *args` with stderr on a pseudo-terminal of 120 columns; returns the exit
    status, stdout and what the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    clean = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    process = subprocess.Popen(
        [sys.executable, "-m", "web.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**clean, "TERM": "xterm-256color", **env},
    )
    os.close(slave)
    chunks, deadline = [], time.monotonic() + TIMEOUT_SECONDS
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([master], [], [], left)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        stdout, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return process.returncode, stdout.decode(), b"".join(chunks).decode(errors="replace")


@pytest.mark.timeout(300)
def test_seed_draws_a_bar_on_a_terminal_and_prints_lines_on_a_pipe(
    fresh_db, redis_url, tmp_path
) -> None:
    env = {**GOOD_ENV, "REDIS_URL": redis_url, "DATABASE_URL": fresh_db, "DATA_DIR": str(tmp_path)}
    status, stdout, terminal = run_on_pty("seed", "--products", "300", **env)
    assert status == 0, terminal
    assert "\x1b[" in terminal and "━" in terminal
    assert "300/300" in terminal and "/s" in terminal and "17/17" in terminal  # the indexes
    assert stdout.splitlines()[-1].startswith("total     300 products")

    piped = run_cli("seed", "--products", "200", **env)
    assert piped.returncode == 0, piped.stderr
    assert "\x1b" not in piped.stderr and "━" not in piped.stderr
    lines = piped.stderr.splitlines()
    finished = [line.split() for line in lines if " 100.0% " in line]
    # Into a catalog that has products now: batches commit on their own and are indexed beside.
    assert [words[:2] for words in finished] == [
        ["products", "200/200"],
        ["search", "200/200"],
        ["vacuum", "1/1"],
    ], lines
    assert all(words[3].endswith("/s") and words[4] == "took" for words in finished)


@pytest.mark.timeout(300)
def test_reindex_draws_a_bar_on_a_terminal_and_prints_lines_on_a_pipe(
    fresh_db, redis_url, tmp_path
) -> None:
    env = {**GOOD_ENV, "REDIS_URL": redis_url, "DATABASE_URL": fresh_db, "DATA_DIR": str(tmp_path)}
    seeded = run_cli("seed", "--products", "120", **env)
    assert seeded.returncode == 0, seeded.stderr
    status, stdout, terminal = run_on_pty("reindex", "--batch", "50", **env)
    assert status == 0, terminal
    name, published = stdout.splitlines()[0].split()[:2]  # the step lines stay on stdout
    assert name == "postgres" and 100 < int(published) <= 120  # the seed publishes most
    assert "\x1b[" in terminal and "━" in terminal and "/s" in terminal
    assert f"{published}/{published}" in terminal

    piped = run_cli("reindex", "--batch", "50", **env)
    assert piped.returncode == 0, piped.stderr
    assert "\x1b" not in piped.stderr
    lines = [line.split() for line in piped.stderr.splitlines()]
    assert lines[0][:2] == ["postgres", f"0/{published}"]  # as it starts
    assert lines[-1][:3] == ["postgres", f"{published}/{published}", "100.0%"]
    assert lines[-1][3].endswith("/s") and lines[-1][4] == "took"
