# Switchboard: `make run` (the whole product with a demo company) and `make test` (the suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
WEB_HOST ?= 127.0.0.1
WEB_PORT ?= 8000
export WEB_HOST WEB_PORT

.PHONY: run test lint format install install-dev services db migrate seed clean test-packages cluster messages

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Checks PostgreSQL and Redis (starting local ones that are stopped); fails fast otherwise.
services: install
	@$(PY) manage.py ensure_services --create-db

migrate: services
	$(PY) manage.py migrate --noinput

seed: migrate
	@$(PY) manage.py seed_demo --quiet

# Starts the Procfile's processes; prints the URL and the demo logins (kept in
# var/demo-logins.txt) last, once the web answers /health and the workers a ping.
run: seed
	@mkdir -p var
	@$(PY) manage.py collectstatic --noinput --verbosity 0
	@$(PY) manage.py run_all --url http://$(WEB_HOST):$(WEB_PORT)/

# The production layout on this machine (N uvicorn web processes, daphne for WebSockets,
# workers, beat, nginx with deploy/nginx.conf) on the bench database: bench/cluster.py.
cluster: install
	$(PY) bench/cluster.py $(CLUSTER_ARGS)

# The tests use Debian's chromium (browser tests; Playwright never downloads a browser),
# Dovecot (the IMAP tests start their own) and nginx (the deployment test starts its own).
TEST_PACKAGES := chromium:chromium dovecot:dovecot-imapd nginx:nginx xgettext:gettext
test-packages:
	@missing=""; for pair in $(TEST_PACKAGES); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || [ -x /usr/sbin/$${pair%%:*} ] || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages the tests use:$$missing"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
	  || { echo "missing and not installable (run as root: apt-get install$$missing)"; exit 1; }; \
	fi

test: install-dev test-packages
	@REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} $(PY) manage.py ensure_services
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Translations (README "Languages"): collect every marked string into locale/{ru,uk}
# (new ones arrive empty, changed ones fuzzy: translate them, then run it again), and compile
# the .mo files, which are committed so no machine needs GNU gettext to run Switchboard.
MESSAGES_IGNORE := --ignore=.venv --ignore=tests --ignore=bench --ignore=staticfiles --ignore=var
messages: install
	$(PY) manage.py makemessages -l ru -l uk --no-obsolete $(MESSAGES_IGNORE)
	$(PY) manage.py makemessages -d djangojs -l ru -l uk --no-obsolete $(MESSAGES_IGNORE) --ignore=static/vendor
	$(PY) manage.py compilemessages -l ru -l uk $(MESSAGES_IGNORE)

clean:
	rm -rf $(VENV) staticfiles var .pytest_cache .ruff_cache
