"""Reading Prometheus expositions in tests: scrape, sum a metric's samples, lint with promtool."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

# promtool's one complaint about Dramatiq's own metric name, which the metrics contract keeps
# (alerts and dashboards are written against it): Dramatiq measures in milliseconds.
DRAMATIQ_UNIT_LINT = (
    'dramatiq_message_duration_milliseconds use base unit "seconds" instead of "milliseconds"'
)


def samples(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called `name` whose labels include `labels`."""
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                found.append((dict(sample.labels), float(sample.value)))
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when none)."""
    return sum(v for _, v in samples(text, name, **labels))


def names(text: str) -> set[str]:
    """The sample names in the exposition."""
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def label_names(text: str) -> set[str]:
    """Every label name of every sample in the exposition."""
    return {
        label
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        for label in sample.labels
    }


async def scrape(url: str, timeout: float = 5.0) -> str:
    """GET `url` (200 expected) and return its text."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.get(url) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


async def scrape_when(url: str, ready: Callable[[str], bool], timeout: float = 30.0) -> str:
    """Scrape `url` until `ready(text)` is true; fails with the last text after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = ""
    while True:
        try:
            last = await scrape(url)
            if ready(last):
                return last
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{url} never showed what was expected; last scrape:\n{last[-4000:]}")
        await asyncio.sleep(0.25)


def promtool_problems(text: str) -> list[str]:
    """What `promtool check metrics` says of the exposition (nothing: it is clean). Fails the
    test when promtool is missing or cannot parse the text at all."""
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.fail("promtool is not installed (Debian: apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    output = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
    # 0: clean; 3: lint problems only (listed); anything else: not a valid exposition.
    assert result.returncode in (0, 3), f"promtool exit {result.returncode}: {output}"
    return [line for line in output if line]
