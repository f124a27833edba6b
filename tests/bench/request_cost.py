"""Instructions per request of one web process, counted by callgrind: a cost that does not
depend on the machine's load (wrk's req/s on a shared machine drift by a quarter within a minute).

    .venv/bin/python -m tests.bench.request_cost [--rows detail,list,page] [-n 2000] [-c 16]
        [--bare] [--products 100000]

One web process (the app as `aioshop web` serves it, SEARCH_INDEX=sql so it starts in seconds)
runs under `valgrind --tool=callgrind` with counting off; each row's paths (the catalog bench's
mixes, cached rows only: each path is requested once first) are then requested `n` times over
`c` keep-alive connections with counting on. `--bare` counts the bare endpoint instead
(tests/bench/bare_app.py on uvloop), the baseline of the catalog bench's ratios.

Under callgrind the process runs about a hundred times slower, so what depends on time (the
catalog cache's 0.1 s local window) happens per fewer requests than at full speed: compare
trees with the same -n and -c, and read the numbers as relative. Start-up takes minutes.
Reads the seeded catalog (aioshop_bench_catalog_<products>) and writes nothing to it; the
cache lives in Redis database 13 (flushed first).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from tests.bench.catalog_bench import SERVER_ENV, sample_paths, warm
from tests.bench.support import clean_env, dsn_for, free_port, healthy

REDIS_URL = "redis://127.0.0.1:6379/13"
ROWS = {"detail": "detail", "page": "pages", "product_page": "product_pages"}
SERVE = """
import sys
from web.cli.main import load_settings, run_loop, serve, setup_metrics
settings = load_settings("web")
setup_metrics("web", settings)
from web.app import create_app
run_loop(serve(create_app(settings), "127.0.0.1", int(sys.argv[1]), 5), settings)
"""


async def fetch(port: int, paths: list[str], count: int, connections: int) -> None:
    """`count` GETs of `paths` in turn over `connections` keep-alive connections (every
    answer must be a 200)."""
    sent = 0

    async def connection(first: int) -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        index = first
        while sent < count:
            sent += 1
            path = paths[index % len(paths)]
            index += connections
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"{path}: {head[:40]!r}")
            length = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
        writer.close()

    await asyncio.gather(*(connection(k) for k in range(connections)))


def callgrind(pid: int, *argv: str) -> None:
    subprocess.run(["callgrind_control", *argv, str(pid)], check=True, capture_output=True)


def counted(out_dir: Path) -> int:
    """The instructions of the newest dump (callgrind.out.<pid>.<n>)."""
    dumps = sorted(out_dir.glob("callgrind.out.*.*"), key=lambda p: int(p.suffix[1:]))
    for line in dumps[-1].read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dumps[-1]}")


async def main(args: argparse.Namespace) -> None:
    dsn = dsn_for(f"aioshop_bench_catalog_{args.products}")
    mixes = await sample_paths(dsn)
    mixes["list"] = ["/api/v1/products?limit=24"]
    with redis.Redis.from_url(REDIS_URL) as client:
        client.flushdb()
    port = free_port()
    target = ["-m", "tests.bench.bare_app", "--uvloop"] if args.bare else ["-c", SERVE]
    with tempfile.TemporaryDirectory(prefix="aioshop_cost_") as tmp:
        out_dir = Path(tmp)
        env = clean_env(
            SERVER_ENV
            | {"DATABASE_URL": dsn, "DATA_DIR": tmp, "REDIS_URL": REDIS_URL, "SEARCH_INDEX": "sql"}
        )
        argv = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out_dir}/callgrind.out.%p",
            sys.executable,
            *target,
            *(["--port", str(port)] if args.bare else [str(port)]),
        ]
        with (out_dir / "server.log").open("wb") as log:
            server = subprocess.Popen(
                argv, env=env | {"PYTHONMALLOC": "malloc"}, stdout=log, stderr=log
            )
        try:
            for _ in range(1200):
                if await healthy(f"http://127.0.0.1:{port}") or server.poll() is not None:
                    break
                await asyncio.sleep(0.5)
            for row in ["bare"] if args.bare else args.rows.split(","):
                paths = ["/json"] if args.bare else mixes[ROWS.get(row, row)]
                await warm(f"http://127.0.0.1:{port}", paths)
                callgrind(server.pid, "-z")
                callgrind(server.pid, "-i", "on")
                await fetch(port, paths, args.n, args.c)
                callgrind(server.pid, "-i", "off")
                callgrind(server.pid, "-d", row)
                await asyncio.sleep(0.5)  # the dump is written by the server's next slice
                per_request = counted(out_dir) / args.n
                print(f"{row}: {per_request / 1000:,.0f} k instructions per request", flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="detail,list,page", help="detail, list, page, ...")
    parser.add_argument("-n", type=int, default=2000, help="requests counted per row")
    parser.add_argument("-c", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--bare", action="store_true", help="the bare endpoint instead")
    parser.add_argument("--products", type=int, default=100000)
    asyncio.run(main(parser.parse_args()))
