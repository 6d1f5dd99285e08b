# reset-mailbot developer tasks. `make test` is what CI runs (.ci/run).
# Integration tests start real services (DNS, Dovecot, SMTP, PostgreSQL, MariaDB) on
# loopback; `test-deps` installs the Debian packages they need (as root).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test-deps test lint demo bench clean

venv: $(STAMP)

# Re-install only when the project metadata changed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

test-deps:
	bash scripts/install-test-deps.sh

lint: venv
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/lint-imports

test: venv test-deps lint
	$(BIN)/pytest

# make demo DEMO_EXECUTOR=forus-db (or manual): the same loop with another [executor] kind.
# It ends by serving the support console on the demo's requests (URL printed; Ctrl-C ends).
# The demo needs Dovecot only (and MariaDB for forus-db), not the whole test set.
DEMO_EXECUTOR ?= http
DEMO_PACKAGES := dovecot-imapd dovecot-lmtpd $(if $(filter forus-db,$(DEMO_EXECUTOR)),mariadb-server)
demo: venv
	bash scripts/install-test-deps.sh $(DEMO_PACKAGES)
	$(BIN)/reset-mailbot demo --executor $(DEMO_EXECUTOR) --console

bench: venv
	$(BIN)/python bench/check_throughput.py
	$(BIN)/python bench/daemon_drain.py
	$(BIN)/python bench/failover.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
