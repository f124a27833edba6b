"""Prometheus with the shipped files: configs/prometheus (config, alert rules, their unit tests)
and the Grafana dashboard's queries (configs/grafana/dashboards/aioshop.json).

Debian's Prometheus (`make prometheus` installs /usr/bin/prometheus and /usr/bin/promtool):
`promtool check config` of it and of compose's variant (with the rules they load), `promtool check
rules`, and `promtool test rules` (alerts_test.yml). Then a real Prometheus runs the shipped
prometheus.yml, unedited, against real `aioshop web`, `aioshop worker` and `aioshop relay`
processes: it sits in a directory of the test's own beside links to the shipped config and rules,
with a targets/ directory naming the test's processes (compose finds its replicas in Docker's DNS
instead: configs/prometheus/prometheus.compose.yml, otherwise the same). RabbitMQ's target is left
out: its rabbitmq_prometheus plugin may not be enabled on the machine's RabbitMQ, and nothing here
can enable it; compose enables it and keeps the target. After some traffic through the API (a
customer registers, orders and cancels, so a capture, a refund and emails happen, the first email
retried after a moment of SMTP 451s; a guest's card is declined; a guest's email is refused for
good, so a message is dead-lettered; the catalog is browsed and searched with an Elasticsearch that
is down, so PostgreSQL answers instead), every target must be up, every alert loaded and evaluating
without error, and every expression must return data. The failure lists each target down, each
failing alert and each expression without data.

Which expressions: every query of the dashboard ($__rate_interval as 1m), and of each alert
the operands of its comparison, each evaluated alone (`absent(x)` as `x`, numbers skipped). A
whole alert expression returns nothing in a healthy shop by design (that is what not firing
is), so evaluating it would prove nothing; its operands are what must exist for it ever to
fire: a misspelt metric or label there would make the alert silent for ever.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from configs.settings import Settings
from tests.support.orders import ADDRESS, stocked_product
from tests.support.processes import ShopProcess
from tests.support.smtp import SmtpServer

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = ROOT / "configs" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
DASHBOARD = ROOT / "configs" / "grafana" / "dashboards" / "aioshop.json"
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
# Grafana's $__rate_interval is at least four scrape intervals (4 x 5 s); a minute is one of the
# values it takes on the dashboard's usual time ranges.
RATE_INTERVAL = "1m"
CARD = {"number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}
DECLINED_CARD = {"number": "4000 0000 0000 0002", "expiry": "12/39", "cvc": "123"}
REFUSED_EMAIL = "nobody@example.com"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)

pytestmark = pytest.mark.timeout(300)


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    """promtool's answer (bounded: 60 s); fails the test if promtool is missing."""
    if shutil.which(PROMTOOL) is None:
        pytest.fail(f"{PROMTOOL} is missing: `make prometheus` installs Debian's prometheus")
    return subprocess.run(
        [PROMTOOL, *arguments], capture_output=True, text=True, timeout=60, check=False
    )


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


# --- What the two sides of an alert's expression are ------------------------------------------

OPENING, CLOSING = "([{", ")]}"
COMPARISON = re.compile(r"==|!=|>=|<=|>|<")
MODIFIERS = re.compile(
    r"^\s*(?:bool\s*)?(?:(?:on|ignoring)\s*\([^)]*\)\s*)?(?:(?:group_left|group_right)\s*(?:\([^)]*\))?\s*)?"
)
NUMBER = re.compile(r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?\s*$", re.IGNORECASE)
ABSENT = re.compile(r"^\s*absent\s*\((.*)\)\s*$", re.DOTALL)


def outside_brackets(expr: str) -> str:
    """`expr` with everything inside brackets and strings blanked out (same length), so that
    operators found in it are the top-level ones."""
    kept, depth, quote = [], 0, ""
    for position, char in enumerate(expr):
        inside = bool(depth or quote)
        if quote:
            quote = "" if char == quote and expr[position - 1] != "\\" else quote
        elif char in "\"'`":
            quote, inside = char, True
        elif char in OPENING:
            depth, inside = depth + 1, True
        elif char in CLOSING:
            depth -= 1
        kept.append(" " if inside else char)
    return "".join(kept)


def alternatives(expr: str) -> list[str]:
    """`expr` split at its top-level `or`s."""
    parts, start = [], 0
    for match in re.finditer(r"\bor\b", outside_brackets(expr)):
        parts.append(expr[start : match.start()])
        start = match.end()
    return [part.strip() for part in [*parts, expr[start:]]]


def sides(expr: str) -> list[str]:
    """What an alert compares, each side worth evaluating on its own: every alternative's two
    sides around its top-level comparison, without numbers, and `absent(x)` as `x`."""
    found = []
    for alternative in alternatives(expr):
        match = COMPARISON.search(outside_brackets(alternative))
        parts = [alternative]
        if match is not None:
            right = MODIFIERS.sub("", alternative[match.end() :], count=1)
            parts = [alternative[: match.start()], right]
        for part in parts:
            absent = ABSENT.match(part)
            operand = absent.group(1) if absent else part
            if not NUMBER.match(operand):
                found.append(operand.strip())
    return found


def test_sides_of_an_alert_are_its_comparisons_operands() -> None:
    assert sides("max(a) > 60") == ["max(a)"]
    assert sides('max by (q) (m{s="dead"}) > 0') == ['max by (q) (m{s="dead"})']
    assert sides("max by (q) (a) > on (q) max by (q) (b)") == ["max by (q) (a)", "max by (q) (b)"]
    assert sides('max(a{k="w"}) < 1 or absent(a{k="w"})') == ['max(a{k="w"})', 'a{k="w"}']
    assert sides('(sum(rate(c{s=~"5.."}[5m])) or vector(0)) / sum(rate(c[5m])) > 0.01') == [
        '(sum(rate(c{s=~"5.."}[5m])) or vector(0)) / sum(rate(c[5m]))'
    ]
    assert sides("up == 0") == ["up"]
    assert sides('a{x!="y"} >= bool b') == ['a{x!="y"}', "b"]


# --- promtool ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [CONFIG, PROMETHEUS_DIR / "prometheus.compose.yml"])
def test_promtool_accepts_the_shipped_and_the_compose_config_and_their_rules(config: Path) -> None:
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout and "rule files found" in checked.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    cases = [case for test in tests["tests"] for case in test.get("alert_rule_test", [])]
    for rule in alert_rules():
        name = rule["alert"]
        own = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in own), f"no test fires {name}"
        assert any(not case.get("exp_alerts") for case in own), f"no test keeps {name} quiet"


def test_every_alert_waits_has_a_severity_and_tells_where_to_look() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert re.fullmatch(r"\d+[sm]", str(rule.get("for", ""))), f"{name} has no `for:`"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert "/ops/" in rule["annotations"]["description"], f"{name} names no /ops page"
        assert sides(rule["expr"]), name


# --- A real Prometheus against real processes ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def expressions() -> list[tuple[str, str]]:
    """(where it comes from, PromQL) for every dashboard query and every side of every alert."""
    found = []
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]
    for panel in panels:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
            found.append((f"dashboard {panel['title']!r}", expr))
    for rule in alert_rules():
        found += [(f"alert {rule['alert']}", side) for side in sides(rule["expr"])]
    return found


@asynccontextmanager
async def prometheus(tmp_path: Path, targets: dict[str, str]) -> AsyncIterator[str]:
    """A Prometheus on a free port running the shipped config with `targets` ({job: host:port});
    its base URL. Stopped at the end whatever happens."""
    if shutil.which(PROMETHEUS) is None:
        pytest.fail(f"{PROMETHEUS} is missing: `make prometheus` installs Debian's prometheus")
    home = tmp_path / "prometheus"
    (home / "targets").mkdir(parents=True)
    # Links, as compose's mounts: the shipped files themselves, not copies.
    (home / CONFIG.name).symlink_to(CONFIG)
    (home / RULES.name).symlink_to(RULES)
    for job, target in targets.items():
        (home / "targets" / f"{job}.json").write_text(json.dumps([{"targets": [target]}]))
    address = targets["prometheus"]
    log = (tmp_path / "prometheus.log").open("ab")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={home / CONFIG.name}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address={address}",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        yield f"http://{address}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


async def get_json(session: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with session.get(url, params=params) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def until(check: Any, timeout: float, every: float = 1.0) -> Any:
    """Call the coroutine function `check` until it returns something falsy-free (a truthy
    value), or `timeout` seconds pass; its last answer either way."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = await check()
        if answer or asyncio.get_running_loop().time() > deadline:
            return answer
        await asyncio.sleep(every)


async def answers(url: str, timeout: float = 60.0) -> bool:
    async def get() -> bool:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            try:
                async with session.get(url) as response:
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

    return bool(await until(get, timeout, every=0.2))


async def expect(response: aiohttp.ClientResponse, status: int) -> Any:
    async with response:
        assert response.status == status, await response.text()
        return await response.json()


def shopper(base: str) -> aiohttp.ClientSession:
    """A browser of `base`: its cookie jar keeps the cart cookie (the shop is at an IP address)."""
    return aiohttp.ClientSession(
        base, timeout=HTTP_TIMEOUT, cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def shop_traffic(base: str, dsn: str, smtp: SmtpServer) -> None:
    """Orders that are paid, refunded, declined and emailed (one email refused for good), and
    catalog reads, through the API of the running web process."""
    await stocked_product(dsn, "tee", {"TEE": 100}, price=2500)
    smtp.refuse(REFUSED_EMAIL, "550 5.1.1 No such user")
    checkout = {"shipping_address": ADDRESS, "shipping_method": "standard"}
    # A moment of 451s: Ada's first email is retried (dramatiq_message_retries_total, delayed).
    smtp.refuse_all_for(2.0)
    async with shopper(base) as ada:
        token = await expect(
            await ada.post(
                "/api/v1/auth/register",
                json={"email": "ada@example.com", "password": "correct horse", "name": "Ada"},
            ),
            201,
        )
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        await expect(await ada.post("/api/v1/cart/items", json={"sku": "TEE"}, headers=auth), 201)
        order = await expect(
            await ada.post("/api/v1/checkout", json=checkout | {"card": CARD}, headers=auth), 201
        )

        async def paid() -> bool:
            placed = await expect(await ada.get(order["url"], headers=auth), 200)
            return bool(placed["status"] == "confirmed")

        assert await until(paid, 60), "the worker did not capture the order's payment"
        # Cancelled once paid: the payment is refunded.
        await expect(
            await ada.post(f"/api/v1/orders/{order['number']}/cancel", json={}, headers=auth),
            200,
        )
    for email, card in (("bob@example.com", DECLINED_CARD), (REFUSED_EMAIL, CARD)):
        async with shopper(base) as guest:
            await expect(await guest.post("/api/v1/cart/items", json={"sku": "TEE"}), 201)
            body = checkout | {"card": card, "email": email}
            await expect(await guest.post("/api/v1/checkout", json=body), 201)
    async with shopper(base) as browser:
        for _ in range(2):  # a cache miss, then a hit
            await expect(await browser.get("/api/v1/products"), 200)
        await expect(await browser.get("/api/v1/products", params={"q": "tee"}), 200)


async def test_a_real_prometheus_scrapes_every_process_and_answers_every_expression(
    settings_for, fresh_db: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("web", "worker", "relay", "prometheus", "elastic")}
    common: dict[str, Any] = {
        "smtp_url": smtp.url,
        "metrics_host": "127.0.0.1",
        "worker_metrics_port": ports["worker"],
        "relay_metrics_port": ports["relay"],
    }
    settings: Settings = settings_for(fresh_db, **common)
    # Nothing listens there: every search fails over to PostgreSQL (aioshop_search_fallbacks).
    web_settings: Settings = settings_for(
        fresh_db, **common, elasticsearch_url=f"http://127.0.0.1:{ports['elastic']}"
    )
    processes = [
        ShopProcess.aioshop(web_settings, tmp_path / "web.log", "web", "--port", str(ports["web"])),
        ShopProcess.aioshop(
            settings, tmp_path / "worker.log", "worker", "--processes", "1", "--threads", "2"
        ),
        ShopProcess.aioshop(settings, tmp_path / "relay.log", "relay"),
    ]
    targets = {name: f"127.0.0.1:{ports[name]}" for name in ("web", "worker", "relay")}
    targets["prometheus"] = f"127.0.0.1:{ports['prometheus']}"
    try:
        for process in processes:
            process.start()
        assert await answers(f"http://{targets['web']}/healthz"), "web did not start"
        async with (
            prometheus(tmp_path, targets) as base,
            aiohttp.ClientSession(base, timeout=HTTP_TIMEOUT) as session,
        ):
            assert await answers(f"{base}/-/ready", timeout=30), "Prometheus did not start"
            await shop_traffic(f"http://{targets['web']}", fresh_db, smtp)

            async def down() -> dict[str, str]:
                """Each target written but not up (or not yet discovered), with the reason."""
                answer = await get_json(session, "/api/v1/targets")
                active = {t["labels"]["job"]: t for t in answer["data"]["activeTargets"]}
                return {
                    f"{job} {target}": (
                        "not discovered"
                        if job not in active
                        else f"{active[job]['health']}: {active[job]['lastError']}"
                    )
                    for job, target in targets.items()
                    if job not in active or active[job]["health"] != "up"
                }

            async def all_up() -> bool:
                return not await down()

            await until(all_up, 30)
            targets_down = await down()

            async def empty() -> dict[str, str]:
                missing = {}
                for where, expr in expressions():
                    async with session.post("/api/v1/query", data={"query": expr}) as response:
                        answer = await response.json()
                    if answer["status"] != "success":
                        missing[f"{where}: {expr}"] = f"error: {answer.get('error')}"
                    elif not answer["data"]["result"]:
                        missing[f"{where}: {expr}"] = "no data"
                return missing

            async def all_answer() -> bool:
                return not await empty()

            # Rates need two scrapes of a counter after its first increment.
            await until(all_answer, 60, every=2.5)
            without_data = await empty()

            async def unhealthy() -> dict[str, str]:
                """Each alert of alerts.yml Prometheus has not loaded or fails to evaluate (a
                many-to-many match, say, which only real series show)."""
                answer = await get_json(session, "/api/v1/rules", type="alert")
                loaded = {
                    rule["name"]: rule
                    for group in answer["data"]["groups"]
                    for rule in group["rules"]
                }
                return {
                    name: (
                        "not loaded"
                        if name not in loaded
                        else f"{loaded[name]['health']}: {loaded[name].get('lastError', '')}"
                    )
                    for name in (rule["alert"] for rule in alert_rules())
                    if name not in loaded or loaded[name]["health"] != "ok"
                }

            async def all_healthy() -> bool:
                return not await unhealthy()

            await until(all_healthy, 15)
            rules_failing = await unhealthy()
    finally:
        for process in processes:
            process.stop()
    report = [f"target down: {target} ({why})" for target, why in targets_down.items()]
    report += [f"alert {name}: {why}" for name, why in rules_failing.items()]
    report += [f"{why}: {where}" for where, why in without_data.items()]
    checked = f"{len(targets)} targets, {len(alert_rules())} alerts, {len(expressions())} queries"
    assert not report, "\n".join([f"{len(report)} problem(s) ({checked}):", *report])
