# taskgate entry points. Needs only Python 3.11+ and make; everything else is installed here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv from PATH, else a private copy installed with pip into .tools/ on first use.
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
export UV_PYTHON_DOWNLOADS ?= never
TEST_SUITES := services/auth/tests services/tasks/tests tests/e2e tests/deploy tests/soak tests/compose
SOAK_SECONDS ?= 600

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	@echo "uv not found: installing it into .tools/ with pip"
	$(PYTHON) -m venv $(CURDIR)/.tools || $(PYTHON) -m virtualenv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

.PHONY: install
install: $(UV) ## install the workspace (uv sync from uv.lock)
	$(UV) sync --frozen

.PHONY: test
test: install ## run every test (services and end to end), on embedded PostgreSQL
	$(UV) run pytest $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$status

.PHONY: soak
soak: install ## long mixed load with database restarts (SOAK_SECONDS, default 600; docs/reliability.md)
	SOAK_SECONDS=$(SOAK_SECONDS) $(UV) run pytest tests/soak -s -p no:cacheprovider $(PYTEST_ARGS)

.PHONY: dev
dev: install ## run the whole stack locally (no Docker); data kept in .data/
	$(UV) run python -m taskgate_devstack

.PHONY: screenshot
screenshot: install ## regenerate docs/images/board.png (the README's picture) in Chromium
	TASKGATE_README_SCREENSHOT=1 $(UV) run pytest tests/e2e/test_web_app.py -p no:cacheprovider \
	  -k test_main_screens_pass_axe_and_are_captured $(PYTEST_ARGS)
	@test -s docs/images/board.png && echo "wrote docs/images/board.png"

.PHONY: bench
bench: install ## measure the hot paths (see bench/)
	$(UV) run python bench/crypto_costs.py
	$(UV) run python bench/revocation_delay.py
	$(UV) run python bench/run.py
	$(UV) run python bench/event_streams.py
	$(UV) run python bench/gateway_layers.py
	$(UV) run python bench/workers.py
	$(UV) run python bench/journey.py

.PHONY: bench-scale
bench-scale: install ## task paths at 1k, 10k and 100k tasks for one user among 10,000 users (minutes)
	$(UV) run python bench/scale.py

# Compose (`make up`): Compose v2, the plugin (`docker compose`) or the standalone binary
# (COMPOSE=docker-compose, v2 only). SERVICES: start only these (and what they depend on).
COMPOSE ?= docker compose
SERVICES ?=
# The signing key, written with openssl (no Python workspace needed), 0600 in a 0700 folder;
# Compose's `init` service hands a copy to the auth container's user.
AUTH_SIGNING_KEY_PATH ?= $(CURDIR)/.data/keys/signing-key.pem
# Database passwords: random on first use, or the AUTH_/TASKS_DB_PASSWORD of an older .env
# (those databases were created with it). Files, so no environment variable carries them.
AUTH_DB_PASSWORD_FILE ?= $(CURDIR)/.data/secrets/auth-db-password
TASKS_DB_PASSWORD_FILE ?= $(CURDIR)/.data/secrets/tasks-db-password
# Not exported: compose.yaml has the same defaults, and a path set in .env stays .env's.

.PHONY: keys
keys: $(AUTH_SIGNING_KEY_PATH) ## create the signing key under .data/keys/ unless it exists

$(AUTH_SIGNING_KEY_PATH):
	mkdir -p -m 0700 $(dir $@)
	umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $@.partial 2>/dev/null
	mv $@.partial $@

# $(call db-password,VARIABLE): the .env's VARIABLE if it has one, else a random password.
define db-password
	mkdir -p -m 0700 $(dir $@)
	@legacy=$$(sed -n 's/^$(1)=//p' .env 2>/dev/null | tail -n1); umask 077; \
	  if [ -n "$$legacy" ]; then echo "$@: $(1) from .env"; printf '%s\n' "$$legacy" > $@; \
	  else openssl rand -hex 24 > $@; fi
endef

$(AUTH_DB_PASSWORD_FILE):
	$(call db-password,AUTH_DB_PASSWORD)

$(TASKS_DB_PASSWORD_FILE):
	$(call db-password,TASKS_DB_PASSWORD)

# Grafana's admin password, random on first use, readable by Grafana's uid 472 in Compose.
GRAFANA_PASSWORD_FILE ?= $(CURDIR)/.data/grafana/admin-password
$(GRAFANA_PASSWORD_FILE):
	mkdir -p $(dir $@)
	openssl rand -hex 24 > $@
	chmod 0644 $@

.PHONY: up
up: ## the Docker Compose deploy (Docker, Compose v2, a .env from .env.example)
	@version=$$($(COMPOSE) version --short 2>/dev/null); case "$$version" in \
	  v2.*|2.*) ;; \
	  *) echo "make up needs Docker Compose v2 (\`$(COMPOSE) version\` says: $${version:-nothing}); README.md, \"Run it with Docker Compose\"" >&2; exit 1;; esac
	@if [ ! -f .env ] && [ -z "$${COMPOSE_ENV_FILES:-}" ]; then \
	  echo "no .env: copy .env.example to .env and edit it" >&2; exit 1; fi
	@# The secrets only once the checks passed: a failed `make up` leaves nothing behind.
	@$(MAKE) --no-print-directory keys $(AUTH_DB_PASSWORD_FILE) $(TASKS_DB_PASSWORD_FILE) $(GRAFANA_PASSWORD_FILE)
	$(COMPOSE) up -d --build --wait $(SERVICES)

.PHONY: down
down: ## stop the Compose deploy (volumes are kept)
	$(COMPOSE) down

.PHONY: test-compose
test-compose: install ## the Compose deploy for real: build, up, requests through the gateway, down -v (minutes; needs Docker or root)
	TASKGATE_UV=$(UV) $(UV) run pytest tests/compose -p no:cacheprovider --timeout=2400 $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$status

.PHONY: lint
lint: install ## ruff and mypy
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	@# Each test suite has its own conftest.py, so each is checked on its own.
	for suite in $(TEST_SUITES); do $(UV) run mypy $$suite || exit 1; done

.PHONY: fmt
fmt: install ## format and fix what ruff can
	$(UV) run ruff format .
	$(UV) run ruff check --fix .
