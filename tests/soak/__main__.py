"""`python -m tests.soak`: the soak run from the command line (`make soak SOAK_ARGS=...`).

Prints the invariant table, what the operator saw (tests/soak/operator.py) and the paths of the
screenshots of the /ops pages (tests/soak/screenshots.py; --no-screenshots takes none). Exits 0
when every invariant held, 1 when one did not (the last lines name the seed and the command that
reproduces the run), 2 when the tree could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from tests.soak.faults import KINDS, ScheduleError
from tests.soak.run import SoakConfig, run_soak
from tests.soak.screenshots import ARTIFACTS
from tests.soak.tree import MachineSpec, TreeError


def parse(argv: list[str] | None = None) -> SoakConfig:
    defaults = SoakConfig()
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="of load (default 10)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--shoppers", type=int, default=defaults.shoppers)
    parser.add_argument("--app-clients", type=int, default=defaults.app_clients)
    parser.add_argument("--staff", type=int, default=defaults.staff)
    parser.add_argument(
        "--faults",
        default=defaults.faults,
        help="auto (auto,-KIND,... leaves kinds out), none, or AT:KIND[:SECONDS],... with KIND"
        f" one of {', '.join(KINDS)}",
    )
    parser.add_argument(
        "--fault-every", type=float, default=defaults.fault_every, help="seconds, for auto"
    )
    parser.add_argument("--drain-seconds", type=float, default=defaults.drain_seconds)
    parser.add_argument("--grace-seconds", type=float, default=defaults.grace_seconds)
    parser.add_argument("--products", type=int, default=defaults.products)
    parser.add_argument(
        "--pool-size", type=int, default=defaults.pool_size, help="DATABASE_POOL_SIZE"
    )
    parser.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=defaults.heartbeat_seconds,
        help="HEARTBEAT_INTERVAL_SECONDS of the workers and relays (default: the shop's 5)",
    )
    parser.add_argument(
        "--machines",
        type=int,
        default=len(defaults.machines),
        help="machines of a web, a worker and a relay each (default 2; lose-machine needs 2)",
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument(
        "--screenshots",
        type=Path,
        default=ARTIFACTS,
        metavar="DIR",
        help=f"save screenshots of the /ops pages under load here (default {ARTIFACTS})",
    )
    parser.add_argument("--no-screenshots", action="store_true", help="take none")
    args = parser.parse_args(argv)
    if args.staff < 1:
        parser.error("--staff must be at least 1")
    if not 1 <= args.machines <= 26:
        parser.error("--machines must be 1 to 26")
    return SoakConfig(
        seconds=args.minutes * 60,
        seed=args.seed,
        shoppers=args.shoppers,
        app_clients=args.app_clients,
        staff=args.staff,
        faults=args.faults,
        fault_every=args.fault_every,
        drain_seconds=args.drain_seconds,
        grace_seconds=args.grace_seconds,
        products=args.products,
        pool_size=args.pool_size,
        heartbeat_seconds=args.heartbeat_seconds,
        log_dir=args.log_dir,
        machines=machines(args.machines),
        screenshots=None if args.no_screenshots else args.screenshots,
    )


def machines(count: int) -> tuple[MachineSpec, ...]:
    """machine-a, machine-b, ...: a web, a worker and a relay each."""
    return tuple(MachineSpec(f"machine-{chr(ord('a') + i)}") for i in range(count))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    config = parse(argv)
    # SIGTERM as Ctrl-C: the run is cancelled and its process tree and servers are stopped on
    # the way out, instead of being left behind as orphans.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = asyncio.run(run_soak(config))
    except (TreeError, ScheduleError) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
