"""The shop's own processes for tests that signal or kill them, each in a session of its own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from configs.settings import Settings


def environment(settings: Settings) -> dict[str, str]:
    """`settings` as the environment variables a shop process reads (JSON logs)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if name in ("secret_key", "previous_secret_keys"):
            value = getattr(settings, name).get_secret_value()
        env[name.upper()] = str(value)
    env["LOG_FORMAT"] = "json"
    env["LOG_LEVEL"] = "info"
    return env


class ShopProcess:
    """A command (`argv`) with `settings` in its environment, in its own process group and
    session (so a test can signal the whole group), its output appended to `log_path`."""

    def __init__(self, argv: Sequence[str], settings: Settings, log_path: Path) -> None:
        self.argv = list(argv)
        self.env = environment(settings)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @classmethod
    def aioshop(cls, settings: Settings, log_path: Path, *arguments: str) -> ShopProcess:
        """`aioshop <arguments>` (as `python -m web.cli`, the console script's code)."""
        return cls([sys.executable, "-m", "web.cli", *arguments], settings, log_path)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=log, start_new_session=True
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def send(self, sig: signal.Signals, *, whole_group: bool) -> None:
        """`sig` to the process alone, or to its whole process group (as systemd, a container
        runtime or a terminal's Ctrl-C do)."""
        if whole_group:
            os.killpg(self.pid, sig)
        else:
            os.kill(self.pid, sig)

    async def exited(self, timeout: float) -> tuple[int | None, float]:
        """(exit status, seconds it took) once the process exits; (None, timeout) if it lives on."""
        assert self.process is not None
        begun = time.monotonic()
        while self.process.poll() is None:
            if time.monotonic() - begun > timeout:
                return None, timeout
            await asyncio.sleep(0.05)
        return self.process.returncode, time.monotonic() - begun

    def kill(self) -> None:
        """SIGKILL the whole group (a worker's forked processes too): no shutdown at all."""
        os.killpg(self.pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL after 20 s; nothing if it is not running."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str) -> Iterator[dict[str, Any]]:
        """The JSON log events called `name` the process has written so far."""
        for line in self.log().splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                with_event = json.loads(line)
                if with_event.get("event") == name:
                    yield with_event


class Worker(ShopProcess):
    """`dramatiq actors.main:broker` (or another broker module), one worker process."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        threads: int = 4,
        broker: str = "actors.main:broker",
    ) -> None:
        argv = [sys.executable, "-m", "dramatiq", broker, "--processes", "1"]
        super().__init__([*argv, "--threads", str(threads)], settings, log_path)
