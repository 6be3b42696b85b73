# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python

# The first Python 3.12+ on PATH; pyenv users get the one .python-version names.
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; \
	done)

.PHONY: run serve test bench format browser

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
serve: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@trap 'kill $$web $$worker 2>/dev/null; wait $$web $$worker' EXIT INT TERM; \
	$(PY) manage.py send_notices & worker=$$!; \
	$(VENV)/bin/gunicorn R4C.wsgi --bind $(HOST):$(PORT) --worker-class gthread \
		--workers $(WEB_WORKERS) --threads $(WEB_THREADS) --no-control-socket \
		--access-logfile - --graceful-timeout 20 & web=$$!; \
	wait -n $$web $$worker

# What the browser tests drive, from Debian's packages: Chromium, its WebDriver, and
# LibreOffice's spreadsheet to print the report (installed once, as root or through sudo).
BROWSER_PACKAGES := chromium chromium-driver libreoffice-calc-nogui
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
	command -v soffice >/dev/null || { \
	sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	$$sudo apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES); }

# The whole suite, on SQLite, or on the database DATABASE_URL names; browser tests included.
test: export SECRET_KEY ?= test-only-not-secret
test: export HTTPS ?= false
test: export API_KEYS_REQUIRED ?= false
test: export ORDER_LIMIT_PER_CLIENT ?= 0
test: export ORDER_LIMIT_PER_EMAIL ?= 0
test: export SITE_URL ?= https://r4c.example.com
test: $(VENV)/.dev browser
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

# One table: the API under wrk next to two reference views, on SQLite and the local
# PostgreSQL, notice latency and delivery rate (bench/serve.py says how).
bench: export HTTPS = false
bench: $(VENV)/.dev
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) bench/serve.py

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
