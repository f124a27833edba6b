"""Running the `aioshop` command as a child process, with the environment a test gives it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import BROKER_BASE_URL, REDIS_BASE_URL, SERVICE_VARIABLES, TEST_SECRET


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Well-formed service URLs: these commands stop before they would use Redis or the broker.
GOOD_ENV = {
    "REDIS_URL": REDIS_BASE_URL,
    "BROKER_URL": BROKER_BASE_URL,
    "SECRET_KEY": TEST_SECRET,
}
