"""The `aioshop` command's start-up errors are one line naming the variable or the service."""

from __future__ import annotations

import asyncio
import importlib.metadata

from storage.database import connect
from tests.support.cli import GOOD_ENV, run_cli
from web.cli.usage import COMMANDS, env_name, fields_read, required


def test_malformed_database_url_stops_web_with_one_line() -> None:
    result = run_cli("web", "--port", "0", DATABASE_URL="not a url", **GOOD_ENV)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aioshop: bad settings: DATABASE_URL:")
    assert "Traceback" not in result.stderr


def test_smtp_url_without_a_host_stops_web_at_start_with_one_line() -> None:
    env = {**GOOD_ENV, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x", "SMTP_URL": "smtp://"}
    result = run_cli("web", "--port", "0", **env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0] == "aioshop: bad settings: SMTP_URL: has no host"


def test_missing_variables_are_all_named_in_one_line(tmp_path) -> None:
    result = run_cli("web", DATA_DIR=str(tmp_path))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    for name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "SECRET_KEY"):
        assert f"{name}: is not set" in lines[0]


def test_a_command_asks_only_for_the_variables_it_needs(tmp_path, fresh_db) -> None:
    missing = run_cli("migrate", DATA_DIR=str(tmp_path))
    assert missing.returncode == 2
    assert missing.stderr == "aioshop: bad settings: DATABASE_URL: is not set\n"
    migrated = run_cli("migrate", DATABASE_URL=fresh_db, DATA_DIR=str(tmp_path))
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("applied 0 migration(s)")


def test_the_data_of_a_stopped_up_is_named_instead_of_the_variables(tmp_path) -> None:
    (tmp_path / "postgres").mkdir()  # what `aioshop up` leaves in DATA_DIR
    for command in ("migrate", "createadmin", "seed", "reindex", "web", "relay", "worker"):
        result = run_cli(command, DATA_DIR=str(tmp_path))
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr == (
            f"aioshop: {tmp_path / 'postgres'} holds the data of `aioshop up`, which is not"
            " running: start `aioshop up` first, or set DATABASE_URL\n"
        ), command


def test_help_lists_every_command_with_its_variables() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("environment")[0]
    epilog = result.stdout.split("environment (", 1)[1]
    rows = epilog.splitlines()[2:]
    for command, row in COMMANDS.items():
        assert f"    {command} " in listed or f"    {command}\n" in listed, command
        assert " ".join(row.summary.split()) in " ".join(listed.split()), command
        (start,) = [i for i, line in enumerate(rows) if line.startswith(f"  {command} ")]
        block = " ".join(" ".join(rows[start : start + 4]).split())
        needs = block.split("needs: ")[1].split(" reads: ")[0]
        for field in required(command):
            assert env_name(field) in needs, (command, field)
        if row.reads is not None:
            reads = block.split(" reads: ")[1]
            for field in set(fields_read(command)) - set(required(command)):
                assert env_name(field) in reads, (command, field)
    assert "--version" in result.stdout


def test_each_command_help_has_its_variables_and_examples() -> None:
    for command, row in COMMANDS.items():
        result = run_cli(command, "--help")
        assert result.returncode == 0, result.stderr
        text = result.stdout
        assert "environment:" in text and "examples:" in text, command
        for field in required(command):
            assert env_name(field) in text.split("environment:")[1], (command, field)
        for example in row.examples:
            assert f"  {example}" in text, (command, example)


def test_version_is_the_package_metadata() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"aioshop {importlib.metadata.version('aioshop')}\n"


def test_unreachable_database_stops_migrate_with_one_line() -> None:
    result = run_cli(
        "migrate", DATABASE_URL="postgresql://postgres@127.0.0.1:1/postgres", **GOOD_ENV
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("aioshop: cannot reach a service at start-up")


def test_unreachable_database_stops_web_with_one_line() -> None:
    result = run_cli(
        "web", "--port", "0", DATABASE_URL="postgresql://postgres@127.0.0.1:1/postgres", **GOOD_ENV
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("aioshop: cannot reach a service")
    assert "Traceback" not in result.stderr


def test_short_secret_key_is_refused_without_echoing_it() -> None:
    env = {**GOOD_ENV, "SECRET_KEY": "tooshortsecret"}
    result = run_cli("migrate", DATABASE_URL="postgresql://postgres@127.0.0.1/x", **env)
    assert result.returncode == 2
    assert "SECRET_KEY:" in result.stderr
    assert "tooshortsecret" not in result.stderr


def test_createadmin_creates_then_promotes_and_refuses_weak_passwords(fresh_db) -> None:
    env = {**GOOD_ENV, "DATABASE_URL": fresh_db}
    args = ("createadmin", "--email", "boss@example.com", "--name", "Boss", "--role", "admin")
    weak = run_cli(*args, AIOSHOP_ADMIN_PASSWORD="password1234", **env)
    assert weak.returncode == 2 and "too common" in weak.stderr
    created = run_cli(*args, AIOSHOP_ADMIN_PASSWORD="a long admin secret", **env)
    assert created.returncode == 0, created.stderr
    assert "created admin boss@example.com" in created.stdout
    again = run_cli(*args[:-1], "staff", AIOSHOP_ADMIN_PASSWORD="ignored secret", **env)
    assert again.returncode == 0 and "is now staff (password unchanged)" in again.stdout
    row = asyncio.run(_user_row(fresh_db, "boss@example.com"))
    assert row == ("staff", True)


async def _user_row(dsn: str, email: str) -> tuple[str, bool]:
    conn = await connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT role, email_verified_at IS NOT NULL AS verified FROM users WHERE email = $1",
            email,
        )
    finally:
        await conn.close()
    return row["role"], row["verified"]


def test_createadmin_refuses_an_address_sign_in_would_refuse_with_one_line(fresh_db) -> None:
    env = {**GOOD_ENV, "DATABASE_URL": fresh_db, "AIOSHOP_ADMIN_PASSWORD": "a long admin secret"}
    result = run_cli("createadmin", "--email", "admin@localhost", "--name", "Boss", **env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("aioshop: 'admin@localhost' is not an email address: ")
    assert asyncio.run(_user_count(fresh_db)) == 0


async def _user_count(dsn: str) -> int:
    conn = await connect(dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM users")
    finally:
        await conn.close()
    return count
