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

.PHONY: run serve lint test check check-pooled bench format tools units

$(PY):
	@test -n "$(PYTHON)" || { echo "R4C needs Python 3.12 or newer on PATH (python3.13, python3.12 or python3)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# The project's own Russian for what Django and django-axes leave in English (locale/).
MESSAGES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))
%.mo: %.po $(VENV)/.runtime
	$(PY) -c 'import polib, sys; polib.pofile(sys.argv[1]).save_as_mofile(sys.argv[2])' $< $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# The servers run in the background of the recipe's shell, which waits for any to end.
# nginx's log filter (python -m R4C.logs) ignores the stop signals: it ends when nginx does,
# and a Ctrl-C that finds it starting must not print its traceback.
# Ctrl-C, SIGTERM (make passes it on when it gets it alone, as from a supervisor) or a
# terminal's hangup stops them all and their children (runserver's reloader's), and a
# normal stop is no error; then $(1) cleans up.
define supervise
trap 'trap - EXIT; pkill -P "$${pids// /,}"; kill $$pids 2>/dev/null; wait $$pids; $(1)' EXIT; \
trap 'exit 0' INT TERM HUP; \
wait -n $$pids
endef

# The mail worker, started again whenever it ends: the web beside it never stops for it.
KEEP_WORKER = deploy/keep-running "notice worker" $(PY) manage.py send_notices

# The web server on http://127.0.0.1:$(PORT) and the mail worker beside it, with development
# settings and a demo catalog. Ctrl-C stops both.
run: export DEBUG = true
run: export HTTPS = false
run: $(VENV)/.runtime $(MESSAGES)
	@$(PY) manage.py check_serving
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo_catalog
	@$(KEEP_WORKER) & pids=$$!; \
	$(PY) manage.py runserver 127.0.0.1:$(PORT) & pids="$$pids $$!"; \
	$(call supervise,)

# The production form on one host: migrations, static files, then on http://$(HOST):$(PORT)
# Debian's nginx (deploy/nginx.conf around deploy/nginx-site.conf), which reads each request whole before gunicorn's threads see
# it, so that slow or silent clients hold none of them; gunicorn behind it on a socket in
# .serve-$(PORT)/; and the mail worker. For a reverse proxy that terminates TLS. Settings come
# from the environment or .env (DEBUG off; see .env.example). Ctrl-C or SIGTERM stops all three.
HOST ?= 127.0.0.1
RUN = $(CURDIR)/.serve-$(PORT)
NGINX ?= $(firstword $(shell command -v nginx) /usr/sbin/nginx)
serve: export DEBUG = false
# Where gunicorn's processes leave their request metrics for /metrics to sum (emptied at start).
serve: export PROMETHEUS_MULTIPROC_DIR ?= $(RUN)/metrics
serve: $(VENV)/.runtime $(MESSAGES)
	@test -x "$(NGINX)" && test -f /usr/lib/nginx/modules/ngx_http_lua_module.so || { \
	echo "make serve puts nginx with Lua in front of gunicorn: install them (Debian: \
	apt-get install nginx libnginx-mod-http-lua)."; exit 1; }
	@# Settings first: a missing or bad one stops here, in one line, before any migration.
	@$(PY) manage.py check_serving
	@# Quiet from here on: every line it prints is a log line (JSON under LOG_FORMAT=json).
	@rm -rf "$(RUN)" && mkdir -p "$$PROMETHEUS_MULTIPROC_DIR"
	@sed -e 's|@RUN@|$(RUN)|g' deploy/nginx.conf > "$(RUN)/nginx.conf"
	@sed -e 's|@LISTEN@|$(HOST):$(PORT)|g; s|@SOCKET@|$(RUN)/web.sock|g' deploy/nginx-site.conf \
		> "$(RUN)/site.conf"
	@# As root (a container), nginx's workers would run as nobody, who may not reach the socket.
	@[ "$$(id -u)" != 0 ] || sed -i '1i user root;' "$(RUN)/nginx.conf"
	@$(PY) manage.py migrate --noinput --verbosity 0
	@$(PY) manage.py collectstatic --noinput --verbosity 0
	@$(KEEP_WORKER) & pids=$$!; \
	$(VENV)/bin/gunicorn R4C.wsgi -c python:R4C.gunicorn_conf --bind "unix:$(RUN)/web.sock" \
		--no-control-socket \
		--access-logfile - --graceful-timeout 20 & pids="$$pids $$!"; \
	"$(NGINX)" -p "$(RUN)" -c "$(RUN)/nginx.conf" -e stderr \
		2> >(trap '' INT TERM HUP; exec $(PY) -m R4C.logs) & \
	pids="$$pids $$!"; \
	$(call supervise,rm -rf "$(RUN)")

# What make check needs from Debian's packages: Chromium, its WebDriver and LibreOffice's
# spreadsheet for the browser and print tests, promtool (package prometheus) for the alert
# rules, pg_dump for PostgreSQL's backups, nginx and its Lua module for make serve, pdftoppm (poppler-utils) to
# look at the printed report, systemd-analyze for the units, PostgreSQL's server programs,
# iproute2 and iptables for the failover and partition drills, PgBouncer for the pooler's
# tests (installed once, as root or through sudo).
CHECK_PACKAGES := chromium chromium-driver libreoffice-calc-nogui prometheus postgresql-client \
	nginx libnginx-mod-http-lua poppler-utils systemd postgresql iproute2 iptables pgbouncer
tools:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
	command -v soffice >/dev/null && command -v promtool >/dev/null && \
	command -v pg_dump >/dev/null && test -x "$(NGINX)" && command -v pdftoppm >/dev/null && \
	test -f /usr/lib/nginx/modules/ngx_http_lua_module.so && \
	command -v systemd-analyze >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null && \
	command -v ip >/dev/null && command -v iptables >/dev/null && \
	command -v pgbouncer >/dev/null || { \
	sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	$$sudo apt-get install -y -qq --no-install-recommends $(CHECK_PACKAGES); }

# The systemd units for real hosts (deploy/systemd/): valid as systemd reads them (with this
# clone in place of /srv/r4c, so that their programs exist), and sandboxed: each service's
# exposure, as `systemd-analyze security` scores it, at most 2.0. No running systemd needed.
units: $(VENV)/.runtime
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	for unit in deploy/systemd/*; do sed 's|/srv/r4c|$(CURDIR)|g' "$$unit" > "$$dir/$${unit##*/}"; done && \
	systemd-analyze verify "$$dir"/* && \
	for unit in "$$dir"/*.service; do \
	systemd-analyze security --offline=true --threshold=20 "$$unit" | tail -n 1 || exit 1; done

# axe-core for the browser tests' accessibility checks, from the npm registry (package.json).
node_modules/axe-core/axe.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

lint: $(VENV)/.dev $(MESSAGES)
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
check: lint tools units node_modules/axe-core/axe.min.js
	promtool check rules docs/prometheus/alerts.yml
	promtool test rules docs/prometheus/alerts-test.yml
	promtool check config --syntax-only docs/prometheus/scrape.yml
	DATABASE_URL= $(VENV)/bin/pytest
	@pg_isready -q -d "$(CHECK_DATABASE_URL)" || { \
	echo "PostgreSQL does not answer at $(CHECK_DATABASE_URL): start it, or set CHECK_DATABASE_URL."; \
	exit 1; }
	DATABASE_URL=$(CHECK_DATABASE_URL) $(VENV)/bin/pytest
	@$(MAKE) --no-print-directory check-pooled

# The production suite, the mail's race and lock tests and the pooler's own again through
# PgBouncer in transaction mode (R4C/tests/pgbouncer.ini) in front of the local PostgreSQL,
# with docs/production.md's settings: DATABASE_POOLED, the worker's LISTEN direct. As root,
# PgBouncer runs as postgres (it refuses root).
# Not PgBouncer's 6432, which one of the machine's own may hold.
POOLER_PORT ?= 16432
POOLED_TESTS ?= R4C/tests/test_service.py R4C/tests/test_pooler.py orders/tests/test_send_notices.py
check-pooled: $(VENV)/.dev
	@run=$$(mktemp -d) && trap 'kill $$(cat "$$run/pgbouncer.pid") 2>/dev/null; rm -rf "$$run"' EXIT && \
	sed -e 's|@RUN@|'"$$run"'|g; s|@PORT@|$(POOLER_PORT)|g' R4C/tests/pgbouncer.ini > "$$run/pgbouncer.ini" && \
	if [ "$$(id -u)" = 0 ]; then chown -R postgres "$$run"; as="runuser -u postgres --"; fi && \
	$$as pgbouncer -d "$$run/pgbouncer.ini" && \
	dropdb --if-exists -h 127.0.0.1 -U postgres test_r4c_pooled && \
	DATABASE_URL=postgres://postgres@127.0.0.1:$(POOLER_PORT)/r4c_pooled DATABASE_POOLED=true \
	LISTEN_DATABASE_URL=postgres://postgres@127.0.0.1:5432/r4c_pooled \
	$(VENV)/bin/pytest --reuse-db $(POOLED_TESTS)

# One table: the API under wrk next to two reference views, on SQLite and the local
# PostgreSQL, notice latency and delivery rate (bench/serve.py says how).
bench: export HTTPS = false
bench: $(VENV)/.dev
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) bench/serve.py

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
