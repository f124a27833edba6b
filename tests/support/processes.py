"""The shop's own processes for tests that kill them: a Dramatiq worker as a child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
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


class Worker:
    """`dramatiq actors.main:broker` in its own process group, its output in `log_path`."""

    def __init__(self, settings: Settings, log_path: Path, *, threads: int = 4) -> None:
        self.env = environment(settings)
        self.log_path = log_path
        self.threads = threads
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        argv = [sys.executable, "-m", "dramatiq", "actors.main:broker", "--processes", "1"]
        argv += ["--threads", str(self.threads)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=log, start_new_session=True
            )

    def kill(self) -> None:
        """SIGKILL the whole worker (parent and forked worker process): no shutdown at all."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def events(self, name: str) -> Iterator[dict[str, Any]]:
        """The JSON log events called `name` the worker has written so far."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                with_event = json.loads(line)
                if with_event.get("event") == name:
                    yield with_event
