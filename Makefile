# The two commands: `make demo` and `make test`. Each creates .venv and installs the project first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The test (and demo) environment, every package pinned with its hashes, and uv, which installs it;
# `make lock` writes both.
LOCK := requirements/dev.lock
TOOLS_LOCK := requirements/tools.lock
# What production installs (deploy/Containerfile): the dependencies and the postgres extra, at the dev lock's pins.
RUNTIME_LOCK := requirements/runtime.lock
UV := $(BIN)/uv
DEMO_WEEK ?= 2026-W48
# The sample publication's folder: its own digest.toml, .env, store and outbox (var/), never a user's.
DEMO_DIR := examples

.PHONY: demo env-file test check install lock translations chromium systemd-analyze mjml-validator bench-baselines clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version)); set PYTHON=python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)

# Installed again whenever a lock or pyproject.toml changes. uv (pinned in requirements/tools.lock)
# installs the lock, several times faster than pip, and makes .venv match it exactly; the project
# goes in editable, without dependencies (a local folder has no hash to check; setuptools comes
# from the lock). `uv pip check` then catches a lock that lacks what pyproject.toml asks for.
$(STAMP): $(BIN)/python $(TOOLS_LOCK) $(LOCK) pyproject.toml
	$(BIN)/python -m pip install --quiet --require-hashes -r $(TOOLS_LOCK)
	$(UV) pip sync --quiet --python $(BIN)/python --require-hashes $(LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	@$(UV) pip check --quiet --python $(BIN)/python || { \
		echo "$(LOCK) does not match pyproject.toml: run make lock"; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

# Pins what pyproject.toml's dependencies and its dev and postgres extras resolve to, on every
# platform and Python 3.11+, keeping the current pins where they still fit (and uv's own, from
# requirements/tools.in); `make lock LOCK_ARGS=--upgrade` takes the newest releases instead.
lock: $(BIN)/python
	@test -x $(UV) || $(BIN)/python -m pip install --quiet --require-hashes -r $(TOOLS_LOCK)
	$(UV) pip compile pyproject.toml --extra dev --extra postgres --generate-hashes --universal \
		--python-version 3.11 --quiet $(LOCK_ARGS) -o $(LOCK)
	$(UV) pip compile requirements/tools.in --generate-hashes --universal \
		--python-version 3.11 --quiet $(LOCK_ARGS) -o $(TOOLS_LOCK)
	$(UV) pip compile pyproject.toml --extra postgres --generate-hashes --universal \
		--python-version 3.11 --quiet -c $(LOCK) -o $(RUNTIME_LOCK)

# Our own words in the templates and the code, in every language of digest/locale/: extract them into the
# template digest.pot (babel.cfg says where from), bring each language's digest.po up to date with it (new
# messages arrive untranslated, none is guessed), then compile every .po into the .mo the package ships.
# Translate what is new in the .po files and run it again; tests/test_i18n.py fails on a stale .pot or .mo.
# A new language: `$(BIN)/pybabel init -D digest -i $(LOCALE)/digest.pot -d $(LOCALE) -l xx`, then this.
LOCALE := digest/locale
EXTRACT_ARGS := -F babel.cfg -k N_ --no-location --sort-output --ignore-dirs ".* ._ node_modules var" \
	--project digest --copyright-holder "the digest authors" --msgid-bugs-address ""
translations: install
	$(BIN)/pybabel -q extract $(EXTRACT_ARGS) -o $(LOCALE)/digest.pot .
	$(BIN)/pybabel -q update -D digest -i $(LOCALE)/digest.pot -d $(LOCALE) --no-fuzzy-matching --ignore-obsolete -w 100
	$(BIN)/pybabel compile -D digest -d $(LOCALE) --statistics

# The demo: migrate, import the sample subscribers, run the weekly job once on the sample publication
# in $(DEMO_DIR)/ (its articles are dated in $(DEMO_WEEK), so the demo works in any year). Offline,
# outbox provider; its store and outbox are $(DEMO_DIR)/var/, so a publication of your own starts empty.
# A DIGEST_CONFIG of the caller's shell would name another newsletter file: it is left out.
DEMO_DIGEST := env -u DIGEST_CONFIG $(BIN)/digest --dir $(DEMO_DIR)
demo: install env-file
	$(DEMO_DIGEST) db upgrade
	$(DEMO_DIGEST) subscribers import $(DEMO_DIR)/subscribers.csv
	DIGEST_BASE_URL=$${DIGEST_BASE_URL:-https://meridian-review.example.org} $(DEMO_DIGEST) run --once --week $(DEMO_WEEK)

# The demo's .env with a fresh secret key unless it has one; created and kept readable by its owner alone.
env-file:
	@umask 077; grep -qs '^DIGEST_SECRET_KEY=.\+' $(DEMO_DIR)/.env || { \
		echo "DIGEST_SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(32))')" >> $(DEMO_DIR)/.env; \
		echo "generated DIGEST_SECRET_KEY into $(DEMO_DIR)/.env"; }; \
		chmod 600 $(DEMO_DIR)/.env

# Debian's chromium drives the browser tests; installed here when missing and apt is usable.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian's chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium is missing and apt is not usable: browser tests will be skipped (CI fails instead)"; fi; }

# systemd-analyze (Debian's systemd) verifies the units in deploy/; installed here when missing and apt is usable.
systemd-analyze:
	@command -v systemd-analyze >/dev/null 2>&1 || { \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian's systemd for systemd-analyze (the unit tests)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; \
		else echo "systemd-analyze is missing and apt is not usable: the unit tests will be skipped (CI fails instead)"; fi; }

# Dev-time Node tools for two tests; the product itself never needs Node: the official MJML validator
# (npm package mjml, tests/test_render_mjml_validator.py) and the Can I email check (doiuse-email, run by
# tools/mjml/caniemail.mjs in tests/test_render_caniemail.py). Installed from tools/mjml/package-lock.json,
# and again only when that file changes.
MJML_STAMP := tools/mjml/node_modules/.installed
$(MJML_STAMP): tools/mjml/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tools/mjml --no-audit --no-fund --silent && touch $(MJML_STAMP) || \
		echo "npm ci in tools/mjml failed: the MJML validator and Can I email tests will be skipped (CI fails instead)"; \
	else echo "npm is missing: the MJML validator and Can I email tests will be skipped (CI fails instead)"; fi

mjml-validator: $(MJML_STAMP)

# The static checks, each named as it runs; all run, and the names of those that failed end the output.
CHECKS := "ruff check ." "ruff format --check ." "lint-imports" "mypy"
check: install
	@failed=""; for c in $(CHECKS); do \
		echo ">>> $$c"; $(BIN)/$$c || failed="$$failed; $$c"; \
	done; \
	if [ -n "$$failed" ]; then echo "check failed: $${failed#; }"; exit 1; fi; \
	echo "checks passed: ruff, ruff format, lint-imports, mypy"

# pytest exits 5 when it collected no tests: a broken selection, reported plainly (a failure in CI).
test: install check chromium systemd-analyze mjml-validator
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then \
		echo "pytest collected no tests"; \
		if [ "$$CI" = "true" ]; then exit 1; else exit 0; fi; \
	fi; exit $$rc

# rss2email, the baseline bench/gather.py measures beside the product, from requirements/bench.txt.
bench-baselines: install
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes --target var/rss2email -r requirements/bench.txt

clean:
	rm -rf var $(DEMO_DIR)/var test-artifacts .pytest_cache
