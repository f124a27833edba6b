"""The baseline of the catalog benchmark: one aiohttp process answering a small JSON body.

.venv/bin/python -m tests.bench.bare_app --port 8099
"""

from __future__ import annotations

import argparse

from aiohttp import web


async def bare(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "items": []})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/json", bare)
    app.router.add_get("/healthz", bare)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
