"""The deployment files agree with the code they deploy.

Docker cannot run in every environment the suite runs in, so this reads compose.yml,
docker/Dockerfile, configs/nginx.conf and the monitoring files (configs/prometheus,
configs/grafana, configs/rabbitmq) as data and checks them against the real CLI parser, the real
Settings and the repository's files. The configurations themselves are checked by Prometheus's
own tools in tests/integration/configs/test_prometheus.py.
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
PROMETHEUS_DIR = ROOT / "configs" / "prometheus"
COMPOSE_PROMETHEUS = PROMETHEUS_DIR / "prometheus.compose.yml"
GRAFANA_DIR = ROOT / "configs" / "grafana"
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
    "prometheus",
    "grafana",
    "adminer",
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
            # The source may be a variable with a default: ${TLS_DIR:-./configs/tls}:/etc/...
            match = re.match(r"(\$\{[^}]*\}|[^:]*):([^:]+)", entry)
            assert match, entry
            source, target = match.groups()
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


def interpolate(value: str) -> str:
    """`value` as compose reads it with no variable set: `${NAME:-default}` is the default,
    `${NAME:?message}` (required) is `required-NAME` padded to 48 characters, `$$` is `$`."""

    def one(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if operator in (":-", "-"):
            return rest
        if operator in (":?", "?"):
            return f"required-{name}".ljust(48, "x")
        return ""

    text = re.sub(r"(?<!\$)\$\{(\w+)(?:(:?[-?])([^}]*))?\}", one, value)
    return text.replace("$$", "$")


def test_bind_mounts_point_at_files_in_the_repository() -> None:
    for name, service in services().items():
        for raw, _ in mounts(service):
            source = interpolate(raw)
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


def nginx_include(target: str) -> str:
    """The text compose gives NGINX at `target` (an inline `configs:` entry), `$$` unescaped."""
    nginx = services()["nginx"]
    [source] = [c["source"] for c in nginx.get("configs") or [] if c["target"] == target]
    return str(compose()["configs"][source]["content"]).replace("$$", "$")


def nginx_prefix() -> PurePosixPath:
    argv = command(services()["nginx"])
    return PurePosixPath(flag(argv, "-p") or "/etc/nginx/")


def test_nginx_upstream_is_the_web_service_on_its_port() -> None:
    upstream = nginx_blocks("upstream")["aioshop_web"]
    assert directive(upstream, "include") == "aioshop/upstream.conf"
    servers = nginx_include("/etc/nginx/aioshop/upstream.conf")
    argv = command(services()["web"])
    port = argv[argv.index("--port") + 1]
    assert (directive(servers, "server") or "").split()[0] == f"web:{port}"
    assert directive(upstream, "keepalive")


def test_nginx_serves_tls_from_the_mounted_certificate_and_redirects_plain_http() -> None:
    assert re.search(r"^\s*include\s+aioshop/listen.conf;", nginx_text(), re.MULTILINE)
    listen = nginx_include("/etc/nginx/aioshop/listen.conf")
    listens = re.findall(r"^\s*listen\s+([^;]+);", listen, re.MULTILINE)
    assert sorted(each.split()[:2] for each in listens) == [
        ["443", "ssl"],
        ["80", "default_server"],
    ]
    nginx = services()["nginx"]
    tls_mounts = [(src, dst) for src, dst in mounts(nginx) if dst == "/etc/nginx/tls"]
    assert tls_mounts == [("${TLS_DIR:-./configs/tls}", "/etc/nginx/tls")], tls_mounts
    tls_dir = ROOT / "configs" / "tls"
    for name in ("ssl_certificate", "ssl_certificate_key"):
        path = PurePosixPath(directive(listen, name) or "")
        assert path.parent == PurePosixPath("/etc/nginx/tls"), (name, path)
        # The key never lands in the repository: the directory ignores it.
        ignored = (tls_dir / ".gitignore").read_text().splitlines()
        assert any(PurePosixPath(path.name).match(pattern) for pattern in ignored), path
    # Plain HTTP goes to the published HTTPS port; the app's own links use the same origin.
    assert directive(listen, "set") == '$https_origin "https://$host:${HTTPS_PORT:-8443}"'
    assert set(published("nginx")) == {"${HTTP_PORT:-8080}:80", "${HTTPS_PORT:-8443}:443"}
    public_url = environment(services()["web"])["PUBLIC_URL"]
    assert public_url == "${PUBLIC_URL:-https://localhost:8443}"


def test_nginx_trusted_by_web_is_the_nginx_container() -> None:
    address = services()["nginx"]["networks"]["default"]["ipv4_address"]
    assert environment(services()["web"])["TRUSTED_PROXIES"] == address


def test_nginx_serves_static_files_from_the_mounted_static_directory() -> None:
    alias = directive(nginx_blocks("location")["/static/"], "alias")
    assert alias == "static/"
    nginx_mounts = {target: source for source, target in mounts(services()["nginx"])}
    served = str(nginx_prefix() / alias)
    assert PurePosixPath(nginx_mounts[served]) == PurePosixPath("web/static")


def test_nginx_serves_media_from_the_app_data_volume() -> None:
    alias = directive(nginx_blocks("location")["/media/"], "alias")
    assert alias
    served = nginx_prefix() / alias
    web = services()["web"]
    data_dir = environment(web)["DATA_DIR"]
    assert data_dir, "web sets no DATA_DIR"
    app_volume = {target: source for source, target in mounts(web)}[data_dir]
    nginx_volume = {target: source for source, target in mounts(services()["nginx"])}
    served_from = [
        target
        for target, source in nginx_volume.items()
        if source == app_volume and served.is_relative_to(target)
    ]
    assert served_from, f"/media/ ({served}) is not inside the {app_volume} volume in nginx"
    assert served == PurePosixPath(served_from[0]) / "media"


def test_nginx_passes_the_request_id_and_forwarding_headers() -> None:
    text = nginx_text()
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"):
        assert re.search(rf"proxy_set_header\s+{header}\s", text), header
    assert "$request_id" in text
    assert directive(text, "client_max_body_size") == "10m"
    assert directive(text, "gzip") == "on"


# --- Monitoring: Prometheus, Grafana, the metrics ports --------------------------------------


def flag(argv: list[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in `argv`."""
    for i, part in enumerate(argv):
        if part.startswith(f"{name}="):
            return part.split("=", 1)[1]
        if part == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


def mounted_from(service: dict[str, Any], target: str) -> Path | None:
    """The repository path mounted at `target` (a file or directory) in `service`, if any."""
    for source, mount_target in mounts(service):
        if PurePosixPath(mount_target) == PurePosixPath(target):
            return ROOT / source if source.startswith(("./", "../")) else None
    return None


def repository_path(service: dict[str, Any], target: PurePosixPath) -> Path | None:
    """Where the file the container sees at `target` comes from, through its bind mounts."""
    for source, mount_target in mounts(service):
        if not source.startswith(("./", "../")):
            continue
        if target == PurePosixPath(mount_target):
            return ROOT / source
        if target.is_relative_to(mount_target):
            return ROOT / source / target.relative_to(mount_target)
    return None


def prometheus_config_path() -> PurePosixPath:
    argv = command(services()["prometheus"])
    path = flag(argv, "--config.file")
    assert path, "prometheus is not given --config.file"
    return PurePosixPath(path)


def prometheus_config() -> dict[str, Any]:
    loaded = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def compose_prometheus_config() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_PROMETHEUS.read_text())
    assert isinstance(loaded, dict)
    return loaded


def scrape_jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in compose_prometheus_config()["scrape_configs"]}


def dns_targets(job_name: str) -> list[tuple[str, int]]:
    """(service name, port) of each type A lookup the compose config gives `job_name`: one
    target per replica of the service."""
    lookups = scrape_jobs()[job_name].get("dns_sd_configs", [])
    assert all(sd.get("type") == "A" for sd in lookups), job_name
    return [(name, int(sd["port"])) for sd in lookups for name in sd["names"]]


def static_targets(job_name: str) -> list[str]:
    return [
        t for group in scrape_jobs()[job_name].get("static_configs", []) for t in group["targets"]
    ]


def setting_default(name: str) -> Any:
    from configs.settings import Settings

    return Settings.model_fields[name].default


def port_setting(service: str, name: str) -> int:
    """The port `service` gets from its environment, else the setting's default."""
    value = environment(services()[service]).get(name.upper())
    return int(value) if value is not None else int(setting_default(name))


def exposed(service: str) -> set[int]:
    return {int(str(port).split("/")[0]) for port in services()[service].get("expose") or []}


def published(service: str) -> list[str]:
    return [str(port) for port in services()[service].get("ports") or []]


def rabbitmq_conf() -> dict[str, str]:
    lines = (ROOT / "configs" / "rabbitmq" / "rabbitmq.conf").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_prometheus_runs_the_compose_config_with_the_shipped_rules() -> None:
    prometheus = services()["prometheus"]
    config_path = prometheus_config_path()
    assert repository_path(prometheus, config_path) == COMPOSE_PROMETHEUS
    # Relative paths in the config resolve against its directory, in the container as here.
    for rule_file in compose_prometheus_config()["rule_files"]:
        source = repository_path(prometheus, config_path.parent / rule_file)
        assert source == PROMETHEUS_DIR / rule_file, f"{rule_file} is not mounted beside it"


def test_the_compose_prometheus_config_is_the_shipped_one_but_for_its_targets() -> None:
    """The same global settings, rules and jobs: the alerts and the dashboard see the same."""
    shipped, composed = prometheus_config(), compose_prometheus_config()
    assert composed["global"] == shipped["global"]
    assert composed["rule_files"] == shipped["rule_files"]
    sd_keys = {"file_sd_configs", "dns_sd_configs", "static_configs"}

    def jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            job["job_name"]: {k: v for k, v in job.items() if k not in sd_keys}
            for job in config["scrape_configs"]
        }

    assert jobs(composed) == jobs(shipped)


def test_prometheus_keeps_its_data_in_a_volume() -> None:
    prometheus = services()["prometheus"]
    storage = flag(command(prometheus), "--storage.tsdb.path")
    assert storage
    volumes = {target: source for source, target in mounts(prometheus)}
    assert volumes.get(storage) in compose()["volumes"], f"{storage} is not a named volume"


def test_prometheus_scrapes_every_process_kind_and_rabbitmq() -> None:
    assert {"web", "worker", "relay", "rabbitmq", "prometheus"} <= set(scrape_jobs())
    assert {job.get("metrics_path", "/metrics") for job in scrape_jobs().values()} == {"/metrics"}


def test_every_scrape_target_is_a_service_port_inside_the_network() -> None:
    web_argv = command(services()["web"])
    expected = {
        "web": ("web", int(web_argv[web_argv.index("--port") + 1])),
        "worker": ("worker", port_setting("worker", "worker_metrics_port")),
        "relay": ("relay", port_setting("relay", "relay_metrics_port")),
        "rabbitmq": ("rabbitmq", int(rabbitmq_conf()["prometheus.tcp.port"])),
    }
    for job, (service, port) in expected.items():
        # The scaled services are looked up in Docker's DNS (every replica); the others named.
        targets = dns_targets(job) or [
            (host, int(p)) for host, p in (t.rsplit(":", 1) for t in static_targets(job))
        ]
        assert targets == [(service, port)], f"job {job} scrapes {targets}"
        assert port in exposed(service), f"{service} does not expose {port} to the network"
        assert not any(p.endswith(f":{port}") for p in published(service)), (
            f"{service} publishes its metrics port {port} outside the network"
        )
    for scaled in ("web", "worker", "relay"):
        assert dns_targets(scaled), f"{scaled} is scaled: scrape each replica, not the name"
    # Prometheus scrapes itself on its default listen address.
    assert flag(command(services()["prometheus"]), "--web.listen-address") in (None, ":9090")
    assert static_targets("prometheus") == ["localhost:9090"]


def test_worker_and_relay_serve_their_metrics_to_the_network() -> None:
    for name in ("worker", "relay"):
        env = environment(services()[name])
        assert env.get("METRICS_HOST") == "0.0.0.0", name  # noqa: S104 (inside the network)
        port_name = f"{name.upper()}_METRICS_PORT"
        assert int(env.get(port_name) or setting_default(port_name.lower())) > 0, name
    # web answers /metrics on its own port; the loopback default suits everything else.
    assert environment(services()["web"]).get("METRICS_HOST") is None


def test_metrics_files_stay_inside_each_container() -> None:
    for name, service in app_services().items():
        metrics_dir = environment(service).get("METRICS_DIR")
        assert metrics_dir, f"{name}: METRICS_DIR would default into the shared data volume"
        volumes = [target for _, target in mounts(service)]
        assert not any(PurePosixPath(metrics_dir).is_relative_to(t) for t in volumes), name


def test_rabbitmq_enables_its_prometheus_plugin() -> None:
    plugins_file = mounted_from(services()["rabbitmq"], "/etc/rabbitmq/enabled_plugins")
    assert plugins_file is not None and plugins_file.exists()
    plugins = re.findall(r"\w+", plugins_file.read_text())
    # The file replaces the image's list: the management UI must stay in it.
    assert {"rabbitmq_prometheus", "rabbitmq_management"} <= set(plugins)
    assert plugins_file.read_text().strip().endswith("].")


@pytest.mark.parametrize("name", ["prometheus", "grafana", "adminer"])
def test_monitoring_ports_are_bound_to_loopback_only(name: str) -> None:
    ports = published(name)
    assert ports, f"{name} publishes no port"
    for port in ports:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


@pytest.mark.parametrize("name", ["prometheus", "grafana", "adminer"])
def test_monitoring_services_have_healthchecks(name: str) -> None:
    check = services()[name].get("healthcheck") or {}
    assert not check.get("disable") and "test" in check, name
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)/\S+", " ".join(map(str, check["test"])))
    assert urls, f"{name}'s healthcheck asks no local URL"
    container_ports = {p.rsplit(":", 1)[1] for p in published(name)}
    assert set(urls) <= container_ports, f"{name}'s healthcheck asks another port"


def test_grafana_admin_password_is_required_and_never_defaulted() -> None:
    value = environment(services()["grafana"]).get("GF_SECURITY_ADMIN_PASSWORD") or ""
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]*\}", value), value
    assert not re.search(r"GRAFANA_ADMIN_PASSWORD:?-", COMPOSE_FILE.read_text())


def grafana_provisioning(kind: str) -> list[dict[str, Any]]:
    provisioning = mounted_from(services()["grafana"], "/etc/grafana/provisioning")
    assert provisioning == GRAFANA_DIR / "provisioning"
    files = sorted((provisioning / kind).glob("*.y*ml"))
    assert files, f"nothing provisions Grafana's {kind}"
    key = "providers" if kind == "dashboards" else kind
    return [entry for path in files for entry in yaml.safe_load(path.read_text())[key]]


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels += [panel, *panel.get("panels", [])]
    return panels


def test_grafana_reads_the_compose_prometheus_at_its_scrape_interval() -> None:
    (source,) = grafana_provisioning("datasources")
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["jsonData"]["timeInterval"] == prometheus_config()["global"]["scrape_interval"]
    assert depends_on(services()["grafana"]).get("prometheus") == "service_healthy"


def test_grafana_loads_the_shipped_dashboard_against_the_provisioned_source() -> None:
    (provider,) = grafana_provisioning("dashboards")
    folder = mounted_from(services()["grafana"], provider["options"]["path"])
    assert folder == GRAFANA_DIR / "dashboards"
    (uid,) = [source["uid"] for source in grafana_provisioning("datasources")]
    dashboards = sorted(folder.glob("*.json"))
    assert dashboards
    home = environment(services()["grafana"]).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home and repository_path(services()["grafana"], PurePosixPath(home)) in dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        charts = [p for p in dashboard_panels(dashboard) if p["type"] != "row"]
        assert charts, path.name
        ids = [p["id"] for p in dashboard_panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        for panel in charts:
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], f"{panel['title']} queries nothing"
            for target in panel["targets"]:
                assert target["expr"].strip(), panel["title"]
                assert target.get("datasource", panel["datasource"])["uid"] == uid
