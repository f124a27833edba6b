"""compose.cluster.yml (RabbitMQ as three nodes, over compose.yml), read as data and held to
compose.yml, the RabbitMQ configs and the shop's settings: the nodes the processes are given are
the nodes that exist, each node names the others by their host names, and every app service gets
them all."""

from __future__ import annotations

import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import yaml

from configs.settings import Settings
from configs.urls import split_broker_url
from tests.unit.test_compose import (
    ROOT,
    app_services,
    environment,
    interpolate,
    mounts,
    rabbitmq_conf,
    services,
)

CLUSTER_FILE = ROOT / "compose.cluster.yml"
CLUSTER_CONF = ROOT / "configs" / "rabbitmq" / "cluster.conf"
NODE_CONFIG_TARGETS = {
    "/etc/rabbitmq/conf.d/20-aioshop.conf",
    "/etc/rabbitmq/conf.d/30-cluster.conf",
    "/etc/rabbitmq/enabled_plugins",
}


@cache
def overlay() -> dict[str, Any]:
    loaded = yaml.safe_load(CLUSTER_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def overlay_services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = overlay()["services"]
    return found


def nodes() -> dict[str, dict[str, Any]]:
    """Every RabbitMQ node with compose.yml's first one as the overlay merges it."""
    first = dict(services()["rabbitmq"])
    extra = overlay_services()["rabbitmq"]
    first["volumes"] = [*first["volumes"], *extra["volumes"]]
    first["environment"] = {**(first.get("environment") or {}), **extra["environment"]}
    rest = {name: s for name, s in overlay_services().items() if name.startswith("rabbitmq-")}
    return {"rabbitmq": first, **rest}


def cluster_members() -> list[str]:
    lines = CLUSTER_CONF.read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    conf = {key.strip(): value.strip() for key, value in pairs}
    assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
    return [v for k, v in sorted(conf.items()) if k.startswith("cluster_formation.classic_config")]


def test_the_overlay_changes_only_rabbitmq_and_the_app_services() -> None:
    extra = set(overlay_services()) - set(services())
    assert extra == {"rabbitmq-2", "rabbitmq-3"}
    assert set(overlay_services()) - extra == {"rabbitmq", *app_services()}
    assert set(overlay()["volumes"]) == {"rabbitmq-2-data", "rabbitmq-3-data"}


def test_each_node_names_every_node_by_its_host_name() -> None:
    assert cluster_members() == [f"rabbit@{s['hostname']}" for s in nodes().values()]
    assert len(nodes()) == 3


def test_every_node_runs_the_same_configuration_with_a_shared_cookie() -> None:
    for name, node in nodes().items():
        targets = {target: source for source, target in mounts(node)}
        assert set(targets) >= NODE_CONFIG_TARGETS, name
        for target in NODE_CONFIG_TARGETS:
            assert (ROOT / targets[target]).exists(), (name, targets[target])
        assert targets["/var/lib/rabbitmq"] == f"{name}-data", name
        cookie = str(node["environment"]["RABBITMQ_ERLANG_COOKIE"])
        assert re.fullmatch(r"\$\{RABBITMQ_ERLANG_COOKIE:\?[^}]*\}", cookie), name
        check = node.get("healthcheck") or {}
        assert "test" in check and not check.get("disable"), name
    for name in ("rabbitmq-2", "rabbitmq-3"):
        assert "ports" not in overlay_services()[name], name  # inside the network only
        assert overlay_services()[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_every_app_service_gets_every_node_and_valid_settings() -> None:
    port = int(rabbitmq_conf()["listeners.tcp.default"])
    for name in app_services():
        env = {k: interpolate(v or "") for k, v in environment(services()[name]).items()}
        env.update(overlay_services()[name]["environment"])
        settings = Settings(**{key.lower(): value for key, value in env.items()})
        hosts = [urlsplit(url) for url in split_broker_url(settings.broker_url)]
        assert [(u.hostname, u.port) for u in hosts] == [(n, port) for n in nodes()], name
        assert settings.rabbitmq_queue_type == "quorum", name
    for name in app_services().keys() - {"migrate"}:
        waits = overlay_services()[name]["depends_on"]
        assert {n for n in waits if waits[n]["condition"] == "service_healthy"} == {
            "rabbitmq-2",
            "rabbitmq-3",
        }, name
