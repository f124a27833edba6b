"""compose.yml's production topology, read as data (no container engine is needed) and held to
the code it deploys: every app service's environment makes valid Settings with the required ones
set, the service URLs name the stack's services on their configured ports, the database URLs are
ready for a failover, web scales behind NGINX, workers and relays run as replicas whose health
checks are real `aioshop` commands, every other health check asks a real route, every service has
a health check, nothing but NGINX is published beyond loopback, and the WAL archive is where
PostgreSQL's archive_command writes. The helpers are test_compose.py's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from actors.ops.heartbeats import KINDS
from configs.settings import Settings
from configs.urls import postgres_hosts
from tests.unit.test_compose import (
    ROOT,
    app_services,
    command,
    compose,
    environment,
    exec_form,
    final_stage,
    interpolate,
    mounts,
    nginx_include,
    parses,
    published,
    rabbitmq_conf,
    services,
)

POSTGRES_CONF = ROOT / "configs" / "postgres" / "primary.conf"
SCALED = ("web", "worker", "relay")
ONE_SHOT = {"migrate"}  # runs to completion: nothing to check while it runs


def settings_of(name: str, **overrides: str) -> Settings:
    """The Settings a process of service `name` builds from compose's environment alone (each
    variable at its default), or a failure naming what Settings refuses."""
    env = {key: interpolate(value or "") for key, value in environment(services()[name]).items()}
    values: dict[str, Any] = {key.lower(): value for key, value in {**env, **overrides}.items()}
    try:
        return Settings(**values)
    except ValidationError as exc:
        pytest.fail(f"{name}: Settings refuses compose's environment: {exc}")


def postgres_conf() -> dict[str, str]:
    pairs = (
        line.split("#", 1)[0].split("=", 1)
        for line in POSTGRES_CONF.read_text().splitlines()
        if "=" in line.split("#", 1)[0]
    )
    return {key.strip(): value.strip().strip("'") for key, value in pairs}


def health_test(name: str) -> list[str]:
    check = services()[name].get("healthcheck") or {}
    test = check.get("test")
    return [str(part) for part in test] if isinstance(test, list) else []


def image_healthcheck_url() -> str:
    [check] = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"][-1:]
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*?)['\"]", check)
    assert match, check
    return f"{match[1]} {match[2]}"


@pytest.mark.parametrize("name", sorted(app_services()))
def test_app_environment_makes_valid_settings_with_every_required_one(name: str) -> None:
    env = environment(services()[name])
    missing = [
        field.upper()
        for field, info in Settings.model_fields.items()
        if info.is_required() and field.upper() not in env
    ]
    assert not missing, f"{name} does not set {missing}"
    settings_of(name)


def test_database_urls_list_both_servers_for_a_failover() -> None:
    port = postgres_conf()["port"]
    for name in app_services():
        settings = settings_of(name)
        primary, replica = str(settings.database_url), str(settings.replica_database_url)
        assert postgres_hosts(primary) == [f"postgres:{port}", f"postgres-replica:{port}"]
        assert postgres_hosts(replica) == [f"postgres-replica:{port}", f"postgres:{port}"]
        assert parse_qs(urlsplit(primary).query)["target_session_attrs"] == ["read-write"]
        assert parse_qs(urlsplit(replica).query)["target_session_attrs"] == ["prefer-standby"]
    assert {"postgres", "postgres-replica"} <= set(services())


def test_service_urls_name_the_stack_services_on_their_ports() -> None:
    broker_port = int(rabbitmq_conf()["listeners.tcp.default"])
    for name in app_services():
        settings = settings_of(name)
        redis = urlsplit(str(settings.redis_url))
        assert (redis.hostname, redis.port) == ("redis", 6379), name
        assert "--port" not in command(services()["redis"])  # Redis on its default port
        broker = urlsplit(settings.broker_url)
        assert (broker.hostname, broker.port) == ("rabbitmq", broker_port), name
        search = urlsplit(str(settings.elasticsearch_url))
        assert (search.hostname, search.port) == ("elasticsearch", 9200), name
        assert "9200" in " ".join(health_test("elasticsearch"))


def test_the_shop_declares_quorum_queues() -> None:
    for name in app_services():
        settings = settings_of(name)
        assert settings.rabbitmq_queue_type == "quorum", name
        assert settings.broker_kind == "rabbitmq", name


def test_web_scales_with_docker_compose_scale() -> None:
    web = services()["web"]
    for fixed in ("container_name", "hostname", "ports"):
        assert fixed not in web, f"web sets {fixed}: `--scale web=3` would clash"
    argv = command(web)
    assert argv[0] == "web" and parses(argv)
    assert settings_of("web").web_processes >= 1, "set WEB_PROCESSES: one per CPU may be many"


def test_nginx_reaches_every_web_replica_without_a_reload() -> None:
    upstream = nginx_include("/etc/nginx/aioshop/upstream.conf")
    argv = command(services()["web"])
    port = argv[argv.index("--port") + 1]
    servers = re.findall(r"^\s*server\s+([^;]+);", upstream, re.MULTILINE)
    assert len(servers) == 1 and servers[0].split()[:2] == [f"web:{port}", "resolve"], servers
    # `resolve` needs the upstream in shared memory and Docker's resolver.
    assert re.search(r"^\s*zone\s+\S+\s+\d+k;", upstream, re.MULTILINE)
    assert re.search(r"^\s*resolver\s+127\.0\.0\.11\b", upstream, re.MULTILINE)
    # `server ... resolve` came to open-source NGINX in 1.27.3.
    image = interpolate(services()["nginx"]["image"])
    version = tuple(int(part) for part in image.partition(":")[2].split("."))
    assert version >= (1, 28) or version >= (1, 27, 3), image


@pytest.mark.parametrize("kind", KINDS)
def test_workers_and_relays_run_as_replicas_with_heartbeat_health_checks(kind: str) -> None:
    service = services()[kind]
    assert service.get("deploy", {}).get("replicas") == 2, kind
    # The heartbeat names the container's host name: each replica must keep its own.
    assert "hostname" not in service and "container_name" not in service, kind
    assert command(service)[0] == kind
    test = health_test(kind)
    assert test[:2] == ["CMD", "aioshop"], test
    assert test[2:] == ["health", kind] and parses(test[2:]), test
    assert settings_of(kind).redis_url  # what `aioshop health` reads


def test_every_long_running_service_has_a_health_check() -> None:
    image_check = image_healthcheck_url()
    for name, service in services().items():
        if name in ONE_SHOT:
            assert str(service.get("restart")) == "no", name
            continue
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), f"{name} disables its health check"
        if "test" in check:
            continue
        # Only the image's own check (GET /healthz on 8080) is inherited: web, on that port.
        argv = command(service)
        assert name in app_services() and argv[0] == "web", f"{name} has no health check"
        assert f"{argv[argv.index('--port') + 1]} /healthz" == image_check, name


def test_health_checks_ask_routes_the_app_serves(tmp_path: Path) -> None:
    from web.app import create_app

    app = create_app(settings_of("web", DATA_DIR=str(tmp_path)))
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    asked = [image_healthcheck_url().split()[1]]
    asked += re.findall(r"https?://127\.0\.0\.1(/\S*)", " ".join(health_test("nginx")))
    assert asked == ["/healthz", "/healthz"], asked
    for path in asked:
        assert ("GET", path) in routes, path
    assert ("GET", "/readyz") in routes


def test_nothing_but_nginx_is_published_beyond_loopback() -> None:
    for name in services():
        for port in published(name):
            if name != "nginx":
                assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert published("adminer") == ["127.0.0.1:${ADMINER_PORT:-8081}:8080"]
    assert environment(services()["adminer"])["ADMINER_DEFAULT_SERVER"] == "postgres"


def test_the_wal_archive_is_a_volume_where_archive_command_writes() -> None:
    conf = postgres_conf()
    assert conf["archive_mode"] == "on" and conf["wal_level"] in {"replica", "logical"}
    match = re.search(r"cp %p (\S+)/%f", conf["archive_command"])
    assert match, conf["archive_command"]
    archive = match[1]
    assert conf["restore_command"] == f"cp {archive}/%f %p"
    for name in ("postgres", "postgres-replica"):
        service = services()[name]
        volumes = {target: source for source, target in mounts(service)}
        assert volumes.get(archive) == "postgres-wal-archive", f"{name} lacks the archive"
        # Its entrypoint gives the (root-owned) new volume to postgres.
        entrypoint = [str(part) for part in service["entrypoint"]]
        script = {target: source for source, target in mounts(service)}[entrypoint[-1]]
        assert f"WAL_ARCHIVE={archive}" in (ROOT / script).read_text(), name
    assert "postgres-wal-archive" in compose()["volumes"]


def test_every_named_volume_is_declared_and_used() -> None:
    used = {
        source
        for service in services().values()
        for source, _ in mounts(service)
        if source and not source.startswith(("./", "../", "/", "$"))
    }
    assert used == set(compose()["volumes"])


def test_the_health_check_commands_are_on_the_image_path() -> None:
    """`CMD aioshop ...` runs without a shell: `aioshop` must be on the image's PATH."""
    assert exec_form("ENTRYPOINT") == ["aioshop"]
    env = " ".join(rest for keyword, rest in final_stage() if keyword == "ENV")
    match = re.search(r"\bPATH=(\S+)", env)
    assert match and "/app/.venv/bin" in match[1].split(":"), env
