"""What each `aioshop` command does and which environment variables it reads.

One table, COMMANDS, drives `aioshop --help`, `aioshop <command> --help` and the settings each
command builds (load_settings): a command needs only the required settings it reads, so
`aioshop migrate` asks for DATABASE_URL alone. The names come from Settings' fields, and
tests/unit/web/cli/test_usage.py checks the table against the code that reads them.
"""

from __future__ import annotations

import copy
import functools
import textwrap
from dataclasses import dataclass
from typing import Annotated, Any, Optional

from pydantic import create_model

from configs.settings import Settings

# Read by load_settings for every command: where `aioshop up` keeps its data, and the logging.
ALWAYS = ("data_dir", "log_format", "log_level", "host_name")


@dataclass(frozen=True)
class Usage:
    """One command: a line for the list, the settings it reads (None: every one), the
    variables outside Settings it reads, and examples for its own --help."""

    summary: str
    reads: tuple[str, ...] | None
    extra: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    embedded: bool = False  # starts its own services: nothing is required


COMMANDS: dict[str, Usage] = {
    "up": Usage(
        "the whole shop on embedded defaults (or the services in the env)",
        None,
        embedded=True,
        examples=("aioshop up", "aioshop up --port 8000 --data-dir /srv/shop"),
    ),
    "web": Usage(
        "the HTTP server: N processes on one port (WEB_PROCESSES; SIGHUP reloads them)",
        None,
        examples=(
            "aioshop web --host 0.0.0.0 --port 8080",
            "aioshop web --processes 4  # default: WEB_PROCESSES, else one per CPU",
            "kill -HUP <pid of aioshop web>  # new processes serve, then the old ones stop",
        ),
    ),
    "worker": Usage(
        "the Dramatiq workers (all actors; one process per CPU, WORKER_THREADS threads each)",
        None,
        examples=(
            "aioshop worker",
            "aioshop worker --processes 1 --queues search email",
            "aioshop worker --queues payments,email_urgent  # only the time-critical queues",
        ),
    ),
    "relay": Usage(
        "drain the outbox into the broker",
        None,
        examples=("aioshop relay",),
    ),
    "migrate": Usage(
        "apply pending database migrations",
        ("database_url",),
        examples=("aioshop migrate",),
    ),
    "seed": Usage(
        "add the demo products (idempotent), or --products N generated",
        ("database_url", "redis_url", "catalog_cache_seconds", "elasticsearch_url", "media_dir"),
        examples=("aioshop seed", "aioshop seed --products 100000 --seed 7"),
    ),
    "reindex": Usage(
        "rebuild every search document (and swap the Elasticsearch index)",
        ("database_url", "elasticsearch_url"),
        examples=("aioshop reindex", "aioshop reindex --batch 500"),
    ),
    "createadmin": Usage(
        "create a staff, ops or admin account (or promote one)",
        ("database_url",),
        extra=("AIOSHOP_ADMIN_PASSWORD",),
        examples=(
            "aioshop createadmin",
            "AIOSHOP_ADMIN_PASSWORD=... aioshop createadmin --email boss@example.com --role ops",
        ),
    ),
    "health": Usage(
        "exit 0 while this host's worker or relay beats in Redis (a container health check)",
        ("redis_url",),
        examples=("aioshop health worker", "aioshop health relay --host shop-2"),
    ),
}


def env_name(field: str) -> str:
    """The environment variable of a Settings field (pydantic-settings: no prefix)."""
    return field.upper()


def fields_read(command: str) -> tuple[str, ...]:
    """The Settings fields `command` reads, in Settings' order."""
    reads = COMMANDS[command].reads
    wanted = set(Settings.model_fields) if reads is None else {*ALWAYS, *reads}
    return tuple(name for name in Settings.model_fields if name in wanted)


def required(command: str) -> tuple[str, ...]:
    """The fields `command` cannot start without (none for `up`: it has embedded defaults)."""
    if COMMANDS[command].embedded:
        return ()
    return tuple(f for f in fields_read(command) if Settings.model_fields[f].is_required())


def environment(command: str) -> list[str]:
    """Lines for --help: the variables `command` needs, and those it reads if set."""
    usage = COMMANDS[command]
    needs = [env_name(f) for f in required(command)]
    if usage.reads is None:
        optional = [f"every {'other ' if needs else ''}setting (README: Settings)"]
    else:
        optional = [env_name(f) for f in fields_read(command) if f not in required(command)]
    optional += usage.extra
    return [
        "needs: " + (", ".join(needs) if needs else "nothing (embedded services for each unset)"),
        "reads: " + ", ".join(optional),
    ]


def overview() -> str:
    """The epilog of `aioshop --help`: each command's variables."""
    lines = [
        "environment (the variables each command needs and reads; while `aioshop up` runs",
        "in DATA_DIR, every other command uses its services when DATABASE_URL is unset):",
    ]
    for command in COMMANDS:
        for i, line in enumerate(environment(command)):
            lines += textwrap.wrap(
                line,
                width=96,
                initial_indent=f"  {command if i == 0 else '':<12} ",
                subsequent_indent=" " * 21,
            )
    return "\n".join(lines)


def command_epilog(command: str) -> str:
    """The epilog of `aioshop <command> --help`: its variables and examples."""
    lines = ["environment:"]
    for line in environment(command):
        lines += textwrap.wrap(line, width=96, initial_indent="  ", subsequent_indent="         ")
    lines += ["", "examples:", *(f"  {example}" for example in COMMANDS[command].examples)]
    return "\n".join(lines)


@functools.cache
def settings_class(command: str) -> type[Settings]:
    """Settings for `command`: the required fields it does not read become Optional (default
    None), so it does not ask for them; a value set for one is still checked as ever, and
    reading one that is unset fails loudly on None."""
    unread: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        if field.is_required() and name not in required(command):
            # Its constraints (SECRET_KEY's length) move inside the Optional, on the value.
            inner = (
                Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
            )
            optional = copy.copy(field)
            optional.default, optional.metadata = None, []
            unread[name] = (Optional[inner], optional)  # noqa: UP045 - a runtime type
    if not unread:
        return Settings
    return create_model(f"{command.capitalize()}Settings", __base__=Settings, **unread)
