"""A three-node RabbitMQ cluster of the test's own, from Debian's rabbitmq-server, on this machine.

The machine's own RabbitMQ (rabbit@localhost on 5672, run as a service) is left alone: each node
here has its own name (`aioshop-rq1-<token>@localhost`), AMQP and distribution ports, data and
log directories in a temp dir, and the cluster's own Erlang cookie in a HOME of its own (read by
the nodes and by rabbitmqctl). epmd (4369) is shared, as Erlang means it to be. The script in
/usr/lib/rabbitmq/bin is run directly (not the /usr/sbin wrapper, which switches to the rabbitmq
user when run by root), with no plugins (the management UI is not needed).

The nodes boot together and form the cluster themselves (classic_config peer discovery lists
them all), so no rabbitmqctl join_cluster is needed; `start()` returns once all three are
running in one cluster. A node stopped with `kill()` (SIGKILL: a crashed server) or `stop_app()`
comes back with `restart()` and rejoins from its own data. Every wait is bounded, and `close()`
(also on failure, as a context manager) kills what is left and removes the directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.support.pgcluster import free_ports

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
BOOT_TIMEOUT_SECONDS = 90.0
CTL_TIMEOUT_SECONDS = 60.0
NODE_CONFIG = """\
listeners.tcp.default = 127.0.0.1:{port}
loopback_users.guest = false
cluster_formation.peer_discovery_backend = classic_config
{peers}
consumer_timeout = 1800000
log.console = false
log.file.level = info
"""


class ClusterError(Exception):
    """The cluster did not start, or a node did not do as asked in time."""


def available() -> str | None:
    """Why this machine cannot run the cluster, or None when it can."""
    if not SERVER.exists() or not CTL.exists():
        return "Debian's rabbitmq-server is not installed"
    return None


@dataclass
class Node:
    """One node: its name, ports and directory; `process` while it runs."""

    index: int
    name: str
    port: int
    dist_port: int
    base: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(self, vhost: str = "%2F") -> str:
        """An amqp:// URL of this node (guest, loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class RabbitCluster:
    """`with RabbitCluster(size=3) as cluster:` starts a cluster; `cluster.broker_url` lists the
    nodes in order, comma-separated (BROKER_URL)."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.root = Path(tempfile.mkdtemp(prefix="aioshop-rabbit-"))
        self.home = self.root / "home"
        token = secrets.token_hex(3)
        ports = free_ports(2 * size)
        self.nodes = [
            Node(
                i,
                f"aioshop-rq{i}-{token}@localhost",
                ports[2 * i - 2],
                ports[2 * i - 1],
                self.root / f"rq{i}",
            )
            for i in range(1, size + 1)
        ]

    @property
    def broker_url(self) -> str:
        return ",".join(node.url() for node in self.nodes)

    # Life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Boot the nodes; returns once all run in one cluster. Raises ClusterError."""
        self._write_files()
        # All at once: classic_config peer discovery takes a lock, so one node boots first and
        # the others join it.
        for node in self.nodes:
            self._spawn(node)
        for node in self.nodes:
            self.await_startup(node)
        running = self.running_nodes(self.nodes[0])
        if running != {node.name for node in self.nodes}:
            raise ClusterError(f"the nodes did not form one cluster: {sorted(running)}")

    def close(self) -> None:
        """Kill every node still running (its whole process group) and remove the directory."""
        for node in self.nodes:
            self._kill_group(node)
        shutil.rmtree(self.root, ignore_errors=True)

    # Faults ---------------------------------------------------------------------------------

    def kill(self, node: Node) -> None:
        """SIGKILL the node's Erlang VM: a crashed server, its connections cut at once."""
        self._kill_group(node)

    def stop_app(self, node: Node) -> None:
        """Stop RabbitMQ on the node (the Erlang VM stays): its clients are disconnected."""
        self.ctl(node, "stop_app")

    def restart(self, node: Node) -> None:
        """Bring a killed or stopped node back; returns once it runs in the cluster again."""
        if node.running:
            self.ctl(node, "start_app")
        else:
            self._spawn(node)
        self.await_startup(node)

    # Looking ----------------------------------------------------------------------------------

    def ctl(self, node: Node, *arguments: str, timeout: float = CTL_TIMEOUT_SECONDS) -> str:
        """rabbitmqctl on `node`; its output. Raises ClusterError on failure or timeout."""
        command = [str(CTL), "-n", node.name, *arguments]
        try:
            done = subprocess.run(
                command, env=self._environment(), capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise ClusterError(
                f"rabbitmqctl {' '.join(arguments)} on {node.name}: timed out"
            ) from None
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise ClusterError(f"rabbitmqctl {' '.join(arguments)} on {node.name}: {output}")
        return done.stdout.decode(errors="replace")

    def await_startup(self, node: Node, timeout: float = BOOT_TIMEOUT_SECONDS) -> None:
        """Until the node runs RabbitMQ (raises ClusterError at `timeout`, with its log)."""
        deadline = time.monotonic() + timeout
        while True:
            if node.process is not None and node.process.poll() is not None:
                raise ClusterError(f"{node.name} exited: {self.log_tail(node)}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClusterError(f"{node.name} did not start: {self.log_tail(node)}")
            try:
                self.ctl(
                    node,
                    "await_startup",
                    "--timeout",
                    str(int(max(1, min(left, 30)))),
                    timeout=left + 5,
                )
                return
            except ClusterError:
                time.sleep(0.5)

    def running_nodes(self, node: Node) -> set[str]:
        """The cluster's running nodes, as `node` sees them."""
        status = json.loads(self.ctl(node, "cluster_status", "--formatter", "json"))
        return set(status.get("running_nodes", []))

    def connection_names(self, node: Node) -> list[str]:
        """The client-given names of the AMQP connections `node` holds."""
        output = self.ctl(node, "list_connections", "client_properties", "--formatter", "json")
        names = []
        for row in json.loads(output or "[]"):
            names.append(str(_client_property(row.get("client_properties"), "connection_name")))
        return names

    def queues(self, node: Node) -> dict[str, tuple[str, int]]:
        """{queue name: (type, messages)} of the default vhost, as `node` sees them."""
        output = self.ctl(node, "list_queues", "name", "type", "messages", "--formatter", "json")
        return {
            row["name"]: (row["type"], int(row["messages"])) for row in json.loads(output or "[]")
        }

    def log_tail(self, node: Node, characters: int = 3000) -> str:
        logs = [*sorted((node.base / "log").glob("*.log")), node.base / "out.log"]
        text = "\n".join(p.read_text(errors="replace") for p in logs if p.exists())
        return text[-characters:]

    # Inside ---------------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(HOME=str(self.home), RABBITMQ_CONF_ENV_FILE=str(self.root / "rabbitmq-env.conf"))
        return env

    def _write_files(self) -> None:
        self.home.mkdir(parents=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (self.root / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's: its node name
        (self.root / "enabled_plugins").write_text("[].\n")
        peers = "\n".join(
            f"cluster_formation.classic_config.nodes.{n.index} = {n.name}" for n in self.nodes
        )
        for node in self.nodes:
            (node.base / "log").mkdir(parents=True)
            (node.base / "rabbitmq.conf").write_text(
                NODE_CONFIG.format(port=node.port, peers=peers)
            )

    def _spawn(self, node: Node) -> None:
        env = self._environment()
        env.update(
            RABBITMQ_NODENAME=node.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(node.port),
            RABBITMQ_DIST_PORT=str(node.dist_port),
            RABBITMQ_CONFIG_FILE=str(node.base / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(node.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(node.base / "log"),
            RABBITMQ_PID_FILE=str(node.base / "pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        with (node.base / "out.log").open("ab") as out:
            node.process = subprocess.Popen(
                [str(SERVER)], env=env, stdout=out, stderr=out, start_new_session=True
            )

    def _kill_group(self, node: Node) -> None:
        if node.process is None:
            return
        if node.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            node.process.wait(timeout=10)
        # The VM's helpers (erl_child_setup, inet_gethost) are in its process group, killed with
        # it: none is left to keep the node's name registered in epmd.
        node.process = None


def _client_property(properties: Any, key: str) -> Any:
    """One entry of a connection's client_properties as rabbitmqctl's JSON gives them (a map,
    or a list of [key, type, value] triples)."""
    if isinstance(properties, dict):
        return properties.get(key)
    for entry in properties or []:
        if isinstance(entry, list) and entry and entry[0] == key:
            return entry[-1]
    return None
