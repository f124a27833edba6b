# The two commands: `make run` (the shop on embedded defaults) and `make test` (everything).
# Both install what they need: uv (pinned) into .tools/, the locked dependencies into .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test install browser prometheus nginx lint typecheck pytest format clean soak screenshots cluster

run: install
	$(VENV)/bin/aioshop up

test: install browser prometheus nginx lint typecheck pytest

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON) --quiet
	touch $@

# Debian's Chromium for the browser tests (tests/e2e); Playwright's own download is not used.
browser:
	@test -x /usr/bin/chromium || { \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	}

# Debian's Prometheus (/usr/bin/prometheus and /usr/bin/promtool) for the monitoring tests
# (tests/integration/configs/test_prometheus.py): the shipped config, rules and their unit tests.
prometheus:
	@test -x /usr/bin/prometheus -a -x /usr/bin/promtool || { \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	}

# Debian's NGINX (/usr/sbin/nginx) for the topology tests (tests/integration/topology/): the
# shipped configs/nginx.conf in front of two web processes. Waits for an apt run already in
# progress (its log, /tmp/apt.log, ends with a line "done") before starting its own: 10 minutes
# at most (a file of that name left by something else must not hold the build for ever).
nginx:
	@test -x /usr/sbin/nginx || { \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		for _ in $$(seq 120); do \
			{ [ -e /tmp/apt.log ] && ! grep -qx done /tmp/apt.log; } || break; sleep 5; \
		done; \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx; \
	}

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(VENV)/bin/python -m pytest -q --durations=30 $(PYTEST_ARGS)

# Full-page screenshots of every page kind at 375 and 1280 px, from `aioshop up` with its demo
# catalog (tests/screens): `make screenshots OUT=/tmp/shots`.
OUT ?= tests/screens/artifacts
screenshots: install browser
	$(VENV)/bin/python -m tests.screens $(OUT)

# The long soak: the whole process tree under random users while faults are injected (10 minutes
# by default); `make test` runs its one-minute form (tests/integration/test_soak.py).
SOAK_ARGS ?=
soak: install
	$(VENV)/bin/python -m tests.soak $(SOAK_ARGS)

# The RabbitMQ cluster test at length: three local nodes (Debian's rabbitmq-server), quorum queues,
# the node a worker and a relay use killed or stopped CLUSTER_ROUNDS times under order traffic;
# `make test` runs its two-round form (tests/integration/topology/test_broker_cluster.py).
CLUSTER_ROUNDS ?= 6
CLUSTER_ORDERS ?= 40
cluster: install
	CLUSTER_ROUNDS=$(CLUSTER_ROUNDS) CLUSTER_ORDERS=$(CLUSTER_ORDERS) \
		$(VENV)/bin/python -m pytest -q -s tests/integration/topology/test_broker_cluster.py

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache

.PHONY: bench-auth bench-catalog bench-checkout bench-failover bench-topology wrk
bench-auth: install
	$(VENV)/bin/python -m tests.bench.auth_bench

# Catalog reads on 100,000 and 1,000,000 seeded products (kept databases; the first run seeds
# them, ~10 min and ~3 GB of disk), as ratios to a bare aiohttp endpoint (wrk), side by side.
bench-catalog: install wrk
	$(VENV)/bin/python -m tests.bench.catalog_bench $(BENCH_ARGS)

# Checkout throughput (HTTP vs the same transaction through asyncpg), and the highest order rate
# whose confirmation emails arrive within 1 s (p95) of the commit, next to the web's rate.
bench-checkout: install
	$(VENV)/bin/python -m tests.bench.checkout_bench $(BENCH_ARGS)

# A database failover under checkout load: from killing the primary to the next checkout.
bench-failover: install
	$(VENV)/bin/python -m tests.bench.failover_bench $(BENCH_ARGS)

# NGINX in front of `aioshop web --processes 1, 2, 4`: product list (cached, uncached) and checkout
# as ratios to a bare aiohttp endpoint behind the same NGINX (wrk), then bench-failover's figure.
bench-topology: install wrk nginx
	$(VENV)/bin/python -m tests.bench.topology_bench $(BENCH_ARGS)

# Debian's wrk, the load tool of bench-catalog and bench-topology.
wrk:
	@command -v wrk >/dev/null || { \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	}
