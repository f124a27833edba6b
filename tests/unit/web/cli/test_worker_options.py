"""`aioshop worker`: its concurrency from the options, the settings or the machine, and its
queues checked against the shop's."""

from __future__ import annotations

import argparse
import os

import pytest

from domain.events import PAYMENTS_QUEUE, URGENT_EMAIL_QUEUE
from tests.support.settings import offline_settings
from web.cli.main import DEFAULT_WORKER_THREADS, positive_int, worker_concurrency, worker_queues


def test_concurrency_defaults_to_one_process_per_cpu() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert worker_concurrency(offline_settings(), None, None) == (cpus, DEFAULT_WORKER_THREADS)


def test_settings_size_the_worker_and_options_win_over_them() -> None:
    settings = offline_settings(worker_processes=3, worker_threads=5)
    assert worker_concurrency(settings, None, None) == (3, 5)
    assert worker_concurrency(settings, 1, 2) == (1, 2)


def test_queues_are_given_with_commas_or_spaces_once_each() -> None:
    given = [f"{PAYMENTS_QUEUE},{URGENT_EMAIL_QUEUE}", "email", PAYMENTS_QUEUE]
    assert worker_queues(given) == [PAYMENTS_QUEUE, URGENT_EMAIL_QUEUE, "email"]


def test_an_unknown_queue_is_refused_with_the_list_of_queues(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        worker_queues(["payments,emails"])
    error = capsys.readouterr().err
    assert "no such queue: emails" in error and URGENT_EMAIL_QUEUE in error


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5"])
def test_processes_and_threads_are_whole_numbers_of_at_least_one(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int(text)
