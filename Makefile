# taskgate entry points. Needs only Python 3.11+ and make; everything else is installed here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv from PATH, else a private copy installed with pip into .tools/ on first use.
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
export UV_PYTHON_DOWNLOADS ?= never
TEST_SUITES := services/auth/tests services/tasks/tests tests/e2e tests/deploy tests/soak
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

.PHONY: bench
bench: install ## measure the hot paths (see bench/)
	$(UV) run python bench/crypto_costs.py
	$(UV) run python bench/revocation_delay.py
	$(UV) run python bench/run.py
	$(UV) run python bench/event_streams.py

.PHONY: bench-scale
bench-scale: install ## task paths at 1k, 10k and 100k tasks for one user among 10,000 users (minutes)
	$(UV) run python bench/scale.py

.PHONY: keys
keys: install ## create the signing key under .data/keys/ unless it exists
	$(UV) run python -m auth_service keys generate --if-missing

# Grafana's admin password, random on first use, readable by Grafana's uid 472 in Compose.
GRAFANA_PASSWORD_FILE ?= $(CURDIR)/.data/grafana/admin-password
$(GRAFANA_PASSWORD_FILE):
	mkdir -p $(dir $@)
	$(PYTHON) -c "import secrets; print(secrets.token_urlsafe(24))" > $@
	chmod 0644 $@

.PHONY: up
up: keys $(GRAFANA_PASSWORD_FILE) ## the Docker Compose deploy (needs Docker and a .env, see .env.example)
	docker compose up -d --build

.PHONY: down
down: ## stop the Compose deploy (volumes are kept)
	docker compose down

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
