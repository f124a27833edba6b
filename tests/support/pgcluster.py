"""A throwaway PostgreSQL primary plus a hot standby streaming from it, for the test run.

Failover operations for the tests that need one: `stop_primary()` (pg_ctl stop -m immediate, a
crash), `promote()` (the standby becomes the primary, pg_ctl promote), and
`rebuild_standby(node)` (the lost node cloned again from the new primary with pg_basebackup, on
its old port, streaming). Nodes keep their names and ports (`primary`, `replica`); the roles move:
`primary_dsn()` and `replica_dsn()` follow them, `hosts_dsn()` names every node, as a multi-host
DATABASE_URL does. `synchronous=True` makes the first primary wait for the standby to flush each
commit (synchronous_standby_names), so a crash loses no commit a client was told about; the
promoted standby runs asynchronous (it has no standby to wait for).

Uses this machine's server binaries and its own temp dir and ports; the machine's own server on
127.0.0.1:5432 is never touched. PostgreSQL refuses to run as root, so under root the server
tools run as the `postgres` system user (via runuser) and the temp dir is chowned to it.
Every failure raises PgClusterError naming the command and the tail of the server log.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from types import TracebackType
from typing import Self

SERVICE_USER = "postgres"
TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "postgres", "psql")
NODES = ("primary", "replica")
SELECT_STREAMING = """
    SELECT pg_is_in_recovery() AND (SELECT status = 'streaming' FROM pg_stat_wal_receiver)
"""
SELECT_SYNCHRONOUS = "SELECT EXISTS (SELECT FROM pg_stat_replication WHERE sync_state = 'sync')"


class PgClusterError(RuntimeError):
    """A server tool failed or timed out; the message has the command and the server log tail."""


def bindir() -> Path | None:
    """Return the server bin dir (`pg_config --bindir`, else the newest distro one), or None."""
    try:
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if found and (Path(found) / "initdb").is_file():
        return Path(found)
    dirs = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    dirs.sort(key=lambda d: [int(part) for part in d.parent.name.split(".") if part.isdigit()])
    return dirs[-1] if dirs else None


def available() -> str | None:
    """Return None if a replication pair can be started here, else a short reason why not."""
    directory = bindir()
    if directory is None:
        return "no PostgreSQL server binaries (initdb) found"
    missing = [tool for tool in TOOLS if not (directory / tool).is_file()]
    if missing:
        return f"{directory} lacks {', '.join(missing)}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root but there is no {SERVICE_USER!r} system user"
        if shutil.which("runuser") is None:
            return "running as root but runuser is missing"
    return None


def free_ports(count: int) -> list[int]:
    """Return count distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    with ExitStack() as stack:  # all held open at once, so the OS cannot hand one out twice
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


class PgCluster:
    """A primary and a streaming hot standby in a temp dir; `with PgCluster() as c:` starts it."""

    def __init__(self, timeout: float = 60.0, *, synchronous: bool = False) -> None:
        self.timeout = timeout
        self.synchronous = synchronous
        self.base: Path | None = None
        self.ports = {"primary": 0, "replica": 0}  # by node (data dir) name
        # role -> node: who is the primary, who streams from it (None: no standby now).
        self.roles: dict[str, str | None] = {"primary": "primary", "replica": "replica"}
        self._bin = Path()

    @property
    def primary_node(self) -> str:
        node = self.roles["primary"]
        assert node is not None
        return node

    @property
    def replica_node(self) -> str:
        node = self.roles["replica"]
        if node is None:
            raise PgClusterError("there is no standby now (promoted, not rebuilt yet)")
        return node

    def node_dsn(self, node: str, dbname: str = "postgres") -> str:
        """Return the DSN of one node (whatever its role) for dbname."""
        return f"postgresql://postgres@127.0.0.1:{self.ports[node]}/{dbname}"

    def primary_dsn(self, dbname: str = "postgres") -> str:
        """Return the current primary's DSN for dbname."""
        return self.node_dsn(self.primary_node, dbname)

    def replica_dsn(self, dbname: str = "postgres") -> str:
        """Return the current standby's DSN for dbname; PgClusterError when there is none."""
        return self.node_dsn(self.replica_node, dbname)

    def hosts_dsn(self, dbname: str, target_session_attrs: str, *, first: str = "primary") -> str:
        """A multi-host DSN naming every node (`first` first), as DATABASE_URL and
        REPLICA_DATABASE_URL name a failover pair."""
        nodes = sorted(self.ports, key=lambda node: node != first)
        hosts = ",".join(f"127.0.0.1:{self.ports[node]}" for node in nodes)
        return f"postgresql://postgres@{hosts}/{dbname}?target_session_attrs={target_session_attrs}"

    def start(self) -> Self:
        """Create and start both servers; return once the replica streams. Stops all on error."""
        if self.base is not None:
            raise PgClusterError("cluster already started")
        if reason := available():
            raise PgClusterError(reason)
        self._bin = bindir() or Path()
        atexit.register(self.stop)  # a crashed test run must not leave servers behind
        try:
            self._create_and_start()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_and_start(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="pgcluster-"))  # short: socket paths are limited
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVICE_USER)
            os.chown(self.base, user.pw_uid, user.pw_gid)
        primary, replica = self._data("primary"), self._data("replica")
        self.ports = dict(zip(NODES, free_ports(len(NODES)), strict=True))
        initdb_options = ["-U", "postgres", "-A", "trust", "--locale=C", "-E", "UTF8", "--no-sync"]
        self._run([self._tool("initdb"), "-D", str(primary), *initdb_options])
        hba = ["local all all trust", "local replication all trust"]
        hba += ["host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"]
        (primary / "pg_hba.conf").write_text("\n".join(hba) + "\n")  # keeps the file's owner
        self._configure(
            "primary",
            listen_addresses="'127.0.0.1'",
            wal_level="replica",
            max_wal_senders="5",
            hot_standby="on",
            fsync="off",
            unix_socket_directories=f"'{self.base}'",
        )
        self._pg_ctl("primary", "start")
        backup_options = ["-R", "-X", "stream", "-c", "fast", "--no-sync"]  # -R: make it a standby
        backup = [self._tool("pg_basebackup"), "-D", str(replica), "-d", self.primary_dsn()]
        self._run([*backup, *backup_options], "primary")
        self._configure("replica")
        self.start_replica()
        if self.synchronous:  # after the backup: the standby, once promoted, waits for nobody
            self._configure("primary", synchronous_standby_names="'*'", synchronous_commit="on")
            self._pg_ctl("primary", "reload")
            self._poll(self.primary_dsn(), SELECT_SYNCHRONOUS, self.timeout, "synchronous standby")

    def stop_replica(self) -> None:
        """Shut the replica down (fast mode) and wait until it is gone. Raises PgClusterError."""
        self._pg_ctl(self.replica_node, "stop", "-m", "fast")

    def start_replica(self) -> None:
        """Start the replica; return once it accepts connections and streams from the primary."""
        self._pg_ctl(self.replica_node, "start")
        self._poll(self.replica_dsn(), SELECT_STREAMING, self.timeout, "replica streaming")

    def postmaster_pid(self, node: str) -> int | None:
        """The node's postmaster process id while it runs, else None."""
        try:
            pid = int((self._data(node) / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if self._is_running(node) else None

    def stop_primary(self, mode: str = "immediate") -> str:
        """Stop the primary (by default as a crash: no checkpoint, clients cut off); return its
        node name. It keeps the primary role until `promote()`: nothing replaces it by itself."""
        node = self.primary_node
        self._pg_ctl(node, "stop", "-m", mode)
        return node

    def promote(self) -> str:
        """Promote the standby (pg_ctl promote, waiting until it accepts writes); it is the
        primary from now on and there is no standby. Returns its node name."""
        node = self.replica_node
        self._pg_ctl(node, "promote")
        self.roles = {"primary": node, "replica": None}
        self._poll(self.primary_dsn(), "SELECT NOT pg_is_in_recovery()", self.timeout, "promotion")
        return node

    def rebuild_standby(self, node: str) -> None:
        """Make `node` (stopped: the lost primary) a standby of the current primary again: its
        data dir is cloned anew with pg_basebackup, on its old port; returns once it streams."""
        if self._is_running(node):
            raise PgClusterError(f"{node} is running: stop it before rebuilding it")
        shutil.rmtree(self._data(node))
        backup = [self._tool("pg_basebackup"), "-D", str(self._data(node))]
        backup += ["-d", self.primary_dsn(), "-R", "-X", "stream", "-c", "fast", "--no-sync"]
        self._run(backup, self.primary_node)
        with (self._data(node) / "postgresql.conf").open("a") as conf:  # not the primary's wait
            conf.write("synchronous_standby_names = ''\n")
        self._configure(node)
        self.roles["replica"] = node
        self.start_replica()

    def wait_for_replay(self, timeout: float = 10.0) -> None:
        """Block until the replica replayed the primary's WAL as of now; else PgClusterError."""
        lsn = self.psql(self.primary_dsn(), "SELECT pg_current_wal_lsn()")
        sql = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
        self._poll(self.replica_dsn(), sql, timeout, f"replica replay up to {lsn}")

    def pause_replay(self) -> None:
        """Ask the replica to stop applying WAL; it keeps receiving it. Idempotent."""
        self.psql(self.replica_dsn(), "SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        """Let the replica apply WAL again. Idempotent."""
        self.psql(self.replica_dsn(), "SELECT pg_wal_replay_resume()")

    def psql(self, dsn: str, sql: str, timeout: float = 10.0) -> str:
        """Run sql with psql against dsn; return unaligned output. Raises PgClusterError."""
        command = [self._tool("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql]
        return self._run(command, as_service=False, timeout=timeout).strip()

    def stop(self) -> None:
        """Stop both servers and delete the temp dir. Idempotent; safe after a partial start."""
        atexit.unregister(self.stop)
        if self.base is None:
            return
        failures = []
        standbys_first = sorted(self.ports, key=lambda node: node == self.roles["primary"])
        for node in standbys_first:  # the primary waits for its walsenders
            try:
                if self._is_running(node):
                    self._pg_ctl(node, "stop", "-m", "fast")
            except PgClusterError as exc:
                with suppress(PgClusterError):
                    self._pg_ctl(node, "stop", "-m", "immediate")
                if self._is_running(node):
                    failures.append(str(exc))
        if failures:  # keep the dir: its logs say why
            raise PgClusterError("\n".join(failures))
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _tool(self, name: str) -> str:
        return str(self._bin / name)

    def _data(self, node: str) -> Path:
        assert self.base is not None, "cluster not started"
        return self.base / node

    def _is_running(self, node: str) -> bool:
        try:  # a crashed server leaves a stale postmaster.pid behind: check its process
            os.kill(int((self._data(node) / "postmaster.pid").read_text().split()[0]), 0)
        except PermissionError:
            return True
        except (OSError, ValueError, IndexError):
            return False
        return True

    def _log(self, node: str) -> Path:
        return self._data(node).with_suffix(".log")  # outside the data dir: not base-backed-up

    def _configure(self, node: str, **settings: str) -> None:
        settings["port"] = str(self.ports[node])
        with (self._data(node) / "postgresql.conf").open("a") as conf:  # append keeps the owner
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _pg_ctl(self, node: str, action: str, *options: str) -> None:
        command = [self._tool("pg_ctl"), action, "-D", str(self._data(node)), "-w"]
        command += ["-t", str(int(self.timeout)), "-l", str(self._log(node)), *options]
        self._run(command, node)

    def _poll(self, dsn: str, sql: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                if (last := self.psql(dsn, sql, timeout=max(1.0, timeout))) == "t":
                    return
            except PgClusterError as exc:
                last = str(exc).partition("\n")[0]
            time.sleep(0.05)
        raise PgClusterError(
            f"timed out after {timeout}s waiting for {what} (last: {last})"
            + "".join(self._tail(node) for node in self.ports)
        )

    def _run(
        self,
        command: list[str],
        node: str | None = None,
        *,
        as_service: bool = True,
        timeout: float | None = None,
    ) -> str:
        if as_service and os.geteuid() == 0:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no PGHOST etc.
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=env,
                cwd=self.base,
                timeout=timeout or self.timeout + 10,
            )
        except subprocess.TimeoutExpired as exc:
            output = ""  # the server log tail below is what explains a hang
            failure = f"timed out after {exc.timeout}s"
        else:
            if done.returncode == 0:
                return done.stdout
            output, failure = done.stdout + done.stderr, f"exited {done.returncode}"
        tail = self._tail(node) if node else ""
        raise PgClusterError(f"{' '.join(command)} {failure}:\n{output.strip()}{tail}")

    def _tail(self, node: str, lines: int = 30) -> str:
        try:
            text = self._log(node).read_text(errors="replace")
        except OSError:
            return ""
        return f"\n--- tail of {node} log ---\n" + "\n".join(text.splitlines()[-lines:])
