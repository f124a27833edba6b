"""Benchmark of `aioshop seed --products N` on a fresh database of the local server.

A script, not a test: it creates a scratch database (dropped afterwards, even on failure), runs
`aioshop migrate` and then `aioshop seed --products N --seed S` as a child process, and prints the
command's report (rows and seconds per step) and its wall-clock time. Needs TEST_DATABASE_URL (a
server where we may create databases; default the local one).
    .venv/bin/python -m tests.bench.seed_bench [--products 100000] [--seed 1] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid

import asyncpg

ADMIN_DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ENV = {
    "REDIS_URL": "redis://127.0.0.1:6379/14",  # settings only: seed talks to PostgreSQL alone
    "BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/",
    "SECRET_KEY": "bench-secret-" + "k" * 27,
    "LOG_LEVEL": "warning",
}


async def admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def aioshop(dsn: str, *arguments: str) -> float:
    """Run one aioshop command (output passed through); returns its wall-clock seconds."""
    env = {**os.environ, **ENV, "DATABASE_URL": dsn}
    begun = time.monotonic()
    subprocess.run([sys.executable, "-m", "web.cli", *arguments], env=env, check=True)
    return time.monotonic() - begun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    name = f"aioshop_seed_bench_{uuid.uuid4().hex[:8]}"
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        aioshop(dsn, "migrate")
        command = ["seed", "--products", str(args.products), "--seed", str(args.seed)]
        seconds = aioshop(dsn, *command)
        print(f"aioshop {' '.join(command)}: {seconds:.1f} s wall clock, process included")
    finally:
        if args.keep:
            print(f"kept {dsn}")
        else:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
