# Two commands do all the set-up on a fresh clone: `make run` and `make test` (`make check`
# runs everything, as CI does).
SHELL := /bin/bash
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python

# The first Python 3.12+ on PATH; pyenv users get the one .python-version names.
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; \
	done)

.PHONY: run serve lint test check bench format tools

$(PY):
	@test -n "$(PYTHON)" || { echo "R4C needs Python 3.12 or newer on PATH (python3.13, python3.12 or python3)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# The web server on http://127.0.0.1:$(PORT) and the mail worker beside it, with development
# settings and a demo catalog. Ctrl-C stops both.
run: export DEBUG = true
run: export HTTPS = false
run: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo_catalog
	@trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT; \
	$(PY) manage.py send_notices & worker=$$!; \
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

# The production form on one host: migrations, static files, then gunicorn on
# http://$(HOST):$(PORT) for a reverse proxy that terminates TLS, and the mail worker beside it.
# Settings come from the environment or .env (DEBUG off; see .env.example). Ctrl-C or
# SIGTERM stops both. gthread workers keep idle keep-alive connections off their threads, so
# a few slow or idle clients cannot take every worker.
HOST ?= 127.0.0.1
WEB_WORKERS ?= 2
WEB_THREADS ?= 8
serve: export DEBUG = false
# Where gunicorn's processes leave their request metrics for /metrics to sum (emptied at start).
serve: export PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/.metrics-$(PORT)
serve: $(VENV)/.runtime
	rm -rf "$$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$$PROMETHEUS_MULTIPROC_DIR"
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@trap 'kill $$web $$worker 2>/dev/null; wait $$web $$worker; \
	rm -rf "$$PROMETHEUS_MULTIPROC_DIR"' EXIT INT TERM; \
	$(PY) manage.py send_notices & worker=$$!; \
	$(VENV)/bin/gunicorn R4C.wsgi -c python:R4C.gunicorn_conf --bind $(HOST):$(PORT) \
		--worker-class gthread --workers $(WEB_WORKERS) --threads $(WEB_THREADS) --no-control-socket \
		--access-logfile - --graceful-timeout 20 & web=$$!; \
	wait -n $$web $$worker

# What make check needs from Debian's packages: Chromium, its WebDriver and LibreOffice's
# spreadsheet for the browser and print tests, promtool (package prometheus) for the alert
# rules, pg_dump for PostgreSQL's backups (installed once, as root or through sudo).
CHECK_PACKAGES := chromium chromium-driver libreoffice-calc-nogui prometheus postgresql-client
tools:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
	command -v soffice >/dev/null && command -v promtool >/dev/null && \
	command -v pg_dump >/dev/null || { \
	sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	$$sudo apt-get install -y -qq --no-install-recommends $(CHECK_PACKAGES); }

lint: $(VENV)/.dev
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The fast loop: lint and every test not marked slow, on SQLite (or DATABASE_URL's database).
# No root, no browser; the test settings are R4C/tests/settings.py.
test: lint
	$(VENV)/bin/pytest -m "not slow"

# Everything, as CI runs it: the tools above, the alert rules, then the
# whole suite (real processes, Chromium, hypothesis at full size) on SQLite and again on
# PostgreSQL at CHECK_DATABASE_URL. In CI a tier that cannot run fails instead of skipping.
CHECK_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/r4c
check: export HYPOTHESIS_PROFILE = full
check: lint tools
	promtool check rules docs/prometheus/alerts.yml
	promtool test rules docs/prometheus/alerts-test.yml
	promtool check config --syntax-only docs/prometheus/scrape.yml
	DATABASE_URL= $(VENV)/bin/pytest
	@pg_isready -q -d "$(CHECK_DATABASE_URL)" || { \
	echo "PostgreSQL does not answer at $(CHECK_DATABASE_URL): start it, or set CHECK_DATABASE_URL."; \
	exit 1; }
	DATABASE_URL=$(CHECK_DATABASE_URL) $(VENV)/bin/pytest

# One table: the API under wrk next to two reference views, on SQLite and the local
# PostgreSQL, notice latency and delivery rate (bench/serve.py says how).
bench: export HTTPS = false
bench: $(VENV)/.dev
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) bench/serve.py

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
