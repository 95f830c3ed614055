# Two commands matter: `make run` (a demo on SQLite at http://127.0.0.1:8000) and `make test`.
# Everything runs from .venv, created on first use with nothing but Python 3.11 and python3-venv.
# DATABASE_URL, REDIS_URL and the other settings come from the environment, untouched.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help venv dev run demo lint format test messages vendor worker beat bench bench-import bench-evaluate bench-issue bench-settle bench-export bench-http bench-carevisits clean distclean

help:
	@echo "make run       create .venv, migrate SQLite, load the demo, serve http://127.0.0.1:8000"
	@echo "make test      install dev tools, lint, run the test suite (DATABASE_URL/REDIS_URL honoured)"
	@echo "make demo      (re)load the demo data idempotently and print the logins"
	@echo "make lint      ruff check + ruff format --check"
	@echo "make format    ruff format + ruff check --fix"
	@echo "make messages  update and compile the zh_Hans and en translations"
	@echo "make vendor    reinstall the browser libraries from package-lock.json (npm) into static/vendor/"
	@echo "make worker    a Celery worker (needs REDIS_URL)"
	@echo "make beat      the Celery beat scheduler (needs REDIS_URL)"
	@echo "make bench     the redemption benchmark (needs a PostgreSQL DATABASE_URL)"
	@echo "make bench-import  the registry import benchmark, 100,000 rows (needs a PostgreSQL DATABASE_URL)"
	@echo "make bench-evaluate  the eligibility benchmark, 2,000,000 seniors, about 5 min (needs a PostgreSQL DATABASE_URL)"
	@echo "make bench-issue  the issuance and card-printing benchmark, 2,000,000 seniors, about 6 min (needs a PostgreSQL DATABASE_URL)"
	@echo "make bench-settle the monthly settlement benchmark, 5,000,000 redemptions (needs a PostgreSQL DATABASE_URL)"
	@echo "make bench-export the settlement workbook of 1,000,000 redemptions against bare openpyxl, about 15 min (PostgreSQL)"
	@echo "make bench-http  scanning over HTTP on gunicorn against a bare WSGI app, about 5 min (PostgreSQL DATABASE_URL, Redis)"
	@echo "make bench-carevisits the care-visit picture and statistics table, 2,000,000 seniors, 300,000 classed (needs a PostgreSQL DATABASE_URL)"
	@echo "make clean     remove caches and collected static files; distclean also .venv and db.sqlite3"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the requirements change (the stamp is older than the file).
$(RUNTIME_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt requirements.txt $(RUNTIME_STAMP)
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(RUNTIME_STAMP)

dev: $(DEV_STAMP)

# DEBUG=1: no SECRET_KEY needed, embedded SQLite unless DATABASE_URL is set, Celery tasks inline.
# The demo's voucher signing key is made once, in var/ (never committed), and kept across runs.
run: venv
	DEBUG=1 $(MANAGE) voucher_signing_key --out var/voucher-signing.key --if-missing
	DEBUG=1 $(MANAGE) migrate
	DEBUG=1 $(MANAGE) demo
	DEBUG=1 $(MANAGE) runserver 127.0.0.1:8000

demo: venv
	DEBUG=1 $(MANAGE) demo

lint: dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: dev lint
	$(VENV)/bin/pytest

messages: dev
	DEBUG=1 $(MANAGE) makemessages -l zh_Hans -l en --ignore=.venv --ignore=staticfiles
	DEBUG=1 $(MANAGE) compilemessages --ignore=.venv

# The scanner's browser libraries, served by the app itself (government intranets have no internet):
# installed exactly as package-lock.json says, then only the files it serves and their licences are
# copied to static/vendor/, which is committed. node_modules/ is not.
VENDOR := static/vendor
vendor:
	npm ci --ignore-scripts --no-audit --no-fund
	rm -rf $(VENDOR)/barcode-detector $(VENDOR)/zxing-wasm $(VENDOR)/noble-ed25519 $(VENDOR)/chartjs
	mkdir -p $(VENDOR)/barcode-detector $(VENDOR)/zxing-wasm $(VENDOR)/noble-ed25519 $(VENDOR)/chartjs
	cp node_modules/barcode-detector/dist/es/ponyfill.js node_modules/barcode-detector/dist/es/zxing-exported.js \
		node_modules/barcode-detector/LICENSE $(VENDOR)/barcode-detector/
	cp node_modules/zxing-wasm/dist/reader/zxing_reader.wasm node_modules/zxing-wasm/LICENSE $(VENDOR)/zxing-wasm/
	cp node_modules/@noble/ed25519/index.js node_modules/@noble/ed25519/LICENSE $(VENDOR)/noble-ed25519/
	cp node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/LICENSE.md $(VENDOR)/chartjs/

# Production shape: set SECRET_KEY, DATABASE_URL and REDIS_URL in the environment first.
worker: venv
	$(VENV)/bin/celery -A config worker -l info

beat: venv
	$(VENV)/bin/celery -A config beat -l info

bench: venv
	$(PY) bench/redeem.py

bench-import: venv
	$(PY) bench/import_seniors.py --rows 100000 --repeats 3

bench-evaluate: venv
	$(PY) bench/evaluate.py --seniors 2000000 --repeats 3

bench-issue: venv
	$(PY) bench/issue.py --seniors 2000000 --repeats 3

bench-settle: venv
	$(PY) bench/settle.py --redemptions 5000000 --repeats 3

bench-export: venv
	$(PY) bench/export.py --redemptions 1000000 --repeats 3

bench-http: venv
	$(PY) bench/redeem_http.py

bench-carevisits: venv
	$(PY) bench/carevisits.py --seniors 2000000 --classed 300000 --repeats 3

clean:
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	rm -rf .ruff_cache .pytest_cache .hypothesis staticfiles

distclean: clean
	rm -rf $(VENV) db.sqlite3
