"""The progress meter: rich's bar on a terminal (a real pty), plain timed lines elsewhere."""

from __future__ import annotations

import io
import os
import pty
import select
import time

from web.cli.progress import Meter


def drain(fd: int) -> bytes:
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_on_a_terminal_rich_draws_a_bar_with_rate_and_time_left(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    master, slave = pty.openpty()
    try:
        stream = open(slave, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        with stream, Meter(stream) as meter:
            for done in range(0, 1001, 100):
                meter("products", done, 1000)
                time.sleep(0.05)
        output = drain(master).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert "\x1b[" in output  # drawn in place, not printed line after line
    assert "━" in output  # rich's bar
    assert "1000/1000" in output
    assert "/s" in output  # the rate column
    assert "ETA " in output  # time left while it ran
    assert "took 0." in output  # then how long it took


def test_off_a_terminal_each_step_prints_plain_lines_with_rate_and_eta() -> None:
    stream = io.StringIO()
    with Meter(stream, every=0) as meter:
        for done in range(0, 501, 100):
            meter("products", done, 500)
            time.sleep(0.02)
        meter("vacuum", 0, 1)
        meter("vacuum", 1, 1)
    lines = stream.getvalue().splitlines()
    assert "\x1b" not in stream.getvalue() and "━" not in stream.getvalue()
    assert [line.split()[0] for line in lines] == ["products"] * 6 + ["vacuum"] * 2
    assert lines[0].split()[1:3] == ["0/500", "0.0%"]
    assert lines[3].split()[1:3] == ["300/500", "60.0%"]
    assert lines[3].split()[3].endswith("/s") and lines[3].split()[3] != "-/s"
    assert lines[3].split()[4] == "ETA"
    assert lines[5].split()[1:3] == ["500/500", "100.0%"]
    assert lines[5].split()[4] == "took"


def test_off_a_terminal_lines_come_only_every_few_seconds_and_at_the_end() -> None:
    stream = io.StringIO()
    with Meter(stream, every=3600) as meter:
        for done in range(1, 10_001):
            meter("products", done, 10_000)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines  # the first report, then the finished step
    assert lines[0].split()[1] == "1/10,000"
    assert lines[1].split()[1] == "10,000/10,000"


def test_a_dumb_terminal_gets_the_plain_lines(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    master, slave = pty.openpty()
    try:
        stream = open(slave, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        with stream, Meter(stream, every=0) as meter:
            meter("postgres", 5, 5)
        output = drain(master).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert "\x1b[" not in output
    assert output.split()[:3] == ["postgres", "5/5", "100.0%"]


def test_one_batch_reported_already_gives_a_rate_and_time_left() -> None:
    """A large seed reports a batch every tens of seconds: the first one is enough."""
    stream = io.StringIO()
    with Meter(stream, every=0) as meter:
        meter("products", 0, 100_000)
        time.sleep(0.2)
        meter("products", 50_000, 100_000)
    words = stream.getvalue().splitlines()[1].split()
    assert words[1] == "50,000/100,000"
    per_second = float(words[3].removesuffix("/s").replace(",", ""))
    assert 50_000 / 0.6 < per_second <= 50_000 / 0.2  # the average since the step began
    assert words[4] == "ETA"
    assert 0 < float(words[5]) <= 1  # as long again as the first half took
