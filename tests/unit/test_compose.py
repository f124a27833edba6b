"""The deployment files agree with the code they deploy.

Docker cannot run in every environment the suite runs in, so this reads compose.yml,
docker/Dockerfile and configs/nginx.conf as data and checks them against the real CLI parser,
the real Settings and the repository's files.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
NGINX_CONF = ROOT / "configs" / "nginx.conf"
APP_DOCKERFILE = "docker/Dockerfile"

REQUIRED_SERVICES = {
    "postgres",
    "postgres-replica",
    "redis",
    "rabbitmq",
    "elasticsearch",
    "migrate",
    "web",
    "worker",
    "relay",
    "nginx",
}
APP_PROCESSES = {"migrate", "web", "worker", "relay"}


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def builds_app_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if isinstance(build, str):
        return False  # a bare context uses ./Dockerfile, which is not the app's
    if not isinstance(build, dict):
        return False
    context = PurePosixPath(build.get("context", "."))
    return context == PurePosixPath(".") and build.get("dockerfile") == APP_DOCKERFILE


def app_services() -> dict[str, dict[str, Any]]:
    """Services that build the app image, or run the image those builds are tagged with."""
    built = {name: svc for name, svc in services().items() if builds_app_image(svc)}
    images = {svc["image"] for svc in built.values() if "image" in svc}
    return {
        name: svc
        for name, svc in services().items()
        if name in built or (svc.get("image") in images and "build" not in svc)
    }


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {str(key): None if value is None else str(value) for key, value in env.items()}
    pairs = (str(item).partition("=") for item in env)
    return {key: value if sep else None for key, sep, value in pairs}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    if cmd is None:
        return []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def cli_parser() -> argparse.ArgumentParser:
    from web.cli.main import build_parser

    return build_parser()


def cli_subcommands() -> set[str]:
    parser = cli_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1, "aioshop has one level of subcommands"
    return set(actions[0].choices)


def parses(argv: list[str]) -> bool:
    try:
        cli_parser().parse_args(argv)
    except SystemExit:
        return False
    return True


def setting_names() -> set[str]:
    from configs.settings import Settings

    return {name.upper() for name in Settings.model_fields}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1] :]


def exec_form(instruction: str) -> list[str]:
    matches = [rest for keyword, rest in final_stage() if keyword == instruction]
    assert matches, f"the final stage has no {instruction}"
    value = json.loads(matches[-1])
    assert isinstance(value, list), f"{instruction} should use the exec (JSON) form"
    return [str(part) for part in value]


def nginx_text() -> str:
    return "\n".join(line.split("#", 1)[0] for line in NGINX_CONF.read_text().splitlines())


def nginx_blocks(kind: str) -> dict[str, str]:
    """Bodies of `kind <modifier?> <name> { ... }` blocks (location, upstream) by name."""
    text = nginx_text()
    blocks = {}
    for match in re.finditer(rf"\b{kind}\s+(?:(?:=|\^~|~\*?)\s+)?(\S+)\s*\{{", text):
        depth, pos = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            pos += 1
        blocks[match.group(1)] = text[match.end() : pos - 1]
    return blocks


def directive(body: str, name: str) -> str | None:
    match = re.search(rf"^\s*{name}\s+([^;]+);", body, re.MULTILINE)
    return match.group(1).strip() if match else None


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume entry in the short or the long syntax."""
    result = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            source, target = entry.split(":")[:2]
        else:
            source, target = entry.get("source", ""), entry["target"]
        result.append((source, target))
    return result


def test_compose_defines_every_service_of_the_stack() -> None:
    missing = REQUIRED_SERVICES - set(services())
    assert not missing, f"compose.yml lacks {sorted(missing)}"


def test_compose_follows_the_compose_spec_without_a_version_key() -> None:
    assert "version" not in compose()


def test_the_app_processes_run_from_the_app_image() -> None:
    missing = APP_PROCESSES - set(app_services())
    assert not missing, f"not built from {APP_DOCKERFILE}: {sorted(missing)}"
    assert "nginx" not in app_services()


def test_app_processes_are_given_longer_to_stop_than_they_take() -> None:
    from configs.settings import Settings

    bound = Settings.model_fields["stop_timeout_seconds"].default
    for name in APP_PROCESSES - {"migrate"}:
        grace = str(services()[name].get("stop_grace_period", "10s"))  # Docker's default: 10 s
        match = re.fullmatch(r"(\d+)(s|m)", grace)
        assert match, f"{name}: write stop_grace_period as 40s or 1m, not {grace!r}"
        seconds = int(match[1]) * (60 if match[2] == "m" else 1)
        assert seconds > bound, f"{name} is killed before it may stop by itself"


def test_every_app_service_runs_a_real_cli_subcommand() -> None:
    subcommands = cli_subcommands()
    for name, service in app_services().items():
        argv = command(service)
        assert argv, f"{name} has no command"
        assert argv[0] in subcommands, f"{name}: `{argv[0]}` is not one of {sorted(subcommands)}"
        assert parses(argv), f"{name}: `aioshop {shlex.join(argv)}` does not parse"


def test_app_services_set_only_real_settings() -> None:
    names = setting_names()
    for name, service in app_services().items():
        unknown = set(environment(service)) - names
        assert not unknown, f"{name} sets variables Settings does not read: {sorted(unknown)}"


def test_app_services_set_the_service_urls_and_the_secret() -> None:
    expected = {
        "DATABASE_URL",
        "REPLICA_DATABASE_URL",
        "REDIS_URL",
        "BROKER_URL",
        "ELASTICSEARCH_URL",
        "SECRET_KEY",
        "DATA_DIR",
        "LOG_FORMAT",
    }
    for name, service in app_services().items():
        assert expected <= set(environment(service)), name


def test_secret_key_is_required_and_never_defaulted() -> None:
    for name, service in app_services().items():
        value = environment(service)["SECRET_KEY"] or ""
        assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]*\}", value), f"{name}: SECRET_KEY={value}"
    assert not re.search(r"SECRET_KEY:?-", COMPOSE_FILE.read_text())


def test_every_dependency_names_a_service_of_the_stack() -> None:
    for name, service in services().items():
        missing = set(depends_on(service)) - set(services())
        assert not missing, f"{name} depends on unknown services {sorted(missing)}"


def test_migrate_runs_once_before_the_long_running_processes() -> None:
    migrate = services()["migrate"]
    assert command(migrate)[0] == "migrate"
    assert str(migrate.get("restart", "no")) == "no"
    assert depends_on(migrate).get("postgres") == "service_healthy"
    for name in APP_PROCESSES - {"migrate"}:
        assert depends_on(services()[name]).get("migrate") == "service_completed_successfully", name


def test_waiting_for_health_waits_for_a_service_that_has_a_healthcheck() -> None:
    image_has_healthcheck = any(keyword == "HEALTHCHECK" for keyword, _ in final_stage())
    for name, service in services().items():
        for dependency, condition in depends_on(service).items():
            if condition != "service_healthy":
                continue
            target = services()[dependency]
            check = target.get("healthcheck") or {}
            assert not check.get("disable"), f"{name} waits for {dependency}, which has none"
            inherited = dependency in app_services() and image_has_healthcheck
            assert "test" in check or inherited, f"{name} waits for {dependency}, which has none"


def test_data_services_have_healthchecks() -> None:
    for name in ("postgres", "postgres-replica", "redis", "rabbitmq", "elasticsearch"):
        assert "test" in (services()[name].get("healthcheck") or {}), name


def test_bind_mounts_point_at_files_in_the_repository() -> None:
    for name, service in services().items():
        for source, _ in mounts(service):
            if source.startswith(("./", "../")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_dockerfile_installs_the_locked_dependencies_with_uv() -> None:
    runs = [rest for keyword, rest in dockerfile_instructions() if keyword == "RUN"]
    syncs = [sync for run in runs for sync in re.findall(r"\buv sync\b[^&;|]*", run)]
    assert syncs, "the image does not install with `uv sync`"
    for sync in syncs:
        assert sync.startswith("uv sync --frozen"), sync
        assert "--no-dev" in sync, sync


def test_dockerfile_copies_every_package_the_wheel_ships() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {
        source.rstrip("/")
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY" and not rest.startswith("--from")
        for source in rest.split()[:-1]
        if not source.startswith("--")
    }
    assert set(packages) <= copied
    assert {"pyproject.toml", "uv.lock", "README.md"} <= copied


def test_dockerfile_runs_the_cli_as_a_non_root_user() -> None:
    assert exec_form("ENTRYPOINT") == ["aioshop"]
    default = exec_form("CMD")
    assert default[0] in cli_subcommands()
    assert parses(default)
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_healthcheck_gets_healthz() -> None:
    checks = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    assert checks
    assert "python" in checks[-1]
    assert "http://127.0.0.1:8080/healthz" in checks[-1]


@pytest.mark.parametrize("prefix", ["/api/", "/"])
def test_nginx_proxies_the_app_routes_to_web(prefix: str) -> None:
    body = nginx_blocks("location")[prefix]
    assert directive(body, "proxy_pass") == "http://aioshop_web"


def test_nginx_upstream_is_the_web_service_on_its_port() -> None:
    upstream = nginx_blocks("upstream")["aioshop_web"]
    argv = command(services()["web"])
    port = argv[argv.index("--port") + 1]
    assert (directive(upstream, "server") or "").split()[0] == f"web:{port}"
    assert directive(upstream, "keepalive")


def test_nginx_serves_static_files_from_the_mounted_static_directory() -> None:
    alias = directive(nginx_blocks("location")["/static/"], "alias")
    assert alias == "/srv/static/"
    nginx_mounts = {target: source for source, target in mounts(services()["nginx"])}
    assert PurePosixPath(nginx_mounts["/srv/static"]) == PurePosixPath("web/static")


def test_nginx_serves_media_from_the_app_data_volume() -> None:
    alias = directive(nginx_blocks("location")["/media/"], "alias")
    assert alias
    web = services()["web"]
    data_dir = environment(web)["DATA_DIR"]
    assert data_dir, "web sets no DATA_DIR"
    app_volume = {target: source for source, target in mounts(web)}[data_dir]
    nginx_volume = {target: source for source, target in mounts(services()["nginx"])}
    served_from = [
        target
        for target, source in nginx_volume.items()
        if source == app_volume and PurePosixPath(alias).is_relative_to(target)
    ]
    assert served_from, f"/media/ ({alias}) is not inside the {app_volume} volume in nginx"


def test_nginx_passes_the_request_id_and_forwarding_headers() -> None:
    text = nginx_text()
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"):
        assert re.search(rf"proxy_set_header\s+{header}\s", text), header
    assert "$request_id" in text
    assert directive(text, "client_max_body_size") == "10m"
    assert directive(text, "gzip") == "on"
