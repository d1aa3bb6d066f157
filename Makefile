# mailhat_nb — every target does its own set-up on a fresh Debian machine (root).
# `make demo` and `make test` are the two commands of the README.

SHELL := /bin/bash
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed-stamp
OUT     ?= out
# Debian packages: the lab's mail servers (Dovecot: IMAP, POP3, LMTP; Exim: SMTP,
# as cPanel runs it; unbound: the DNS of its world), and the browser for the UI tests.
DEB_LAB := dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd exim4-daemon-light unbound
DEB_UI  := chromium
# Spark's Java runtime: only the tests need it (`make demo` does not).
DEB_SPARK := openjdk-17-jre-headless
SPARK_STAMP := .venv/.spark-stamp
APT     := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -qq

.PHONY: setup system spark foreign demo test lint unit lab app bench clean

setup: system $(STAMP)

# Debian packages, installed only when missing. Exim replaces Postfix (each is
# the system MTA); every lab package is named in the one apt transaction, so
# resolving that conflict can never remove the lab's Dovecot. The lab runs its
# own private instances, never the system's services.
system:
	@missing=""; for p in $(DEB_LAB) $(DEB_UI); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3 python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(APT) update && $(APT) install --no-install-recommends $(DEB_LAB) $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,dev]'
	@# Notebooks are committed without outputs or widget state.
	@git rev-parse --git-dir >/dev/null 2>&1 && .venv/bin/nbstripout --install --attributes .gitattributes || true
	@touch $(STAMP)

## Spark for `--engine spark` and its tests: a Java runtime and the [spark] extra.
spark: setup $(SPARK_STAMP)

$(SPARK_STAMP): pyproject.toml
	@dpkg-query -W -f='$${Status}' $(DEB_SPARK) 2>/dev/null | grep -q "ok installed" || { \
	  echo "installing Debian packages: $(DEB_SPARK)"; \
	  $(APT) update && $(APT) install --no-install-recommends $(DEB_SPARK) >/dev/null; }
	$(PIP) install -q -e '.[test,dev,spark]'
	@touch $(SPARK_STAMP)

## The main job on the built-in lab: diagnose, sync, chart; prints the report's path.
demo: setup
	$(PY) -m mailhat_nb.cli report --out $(OUT)

## The whole test suite (lint, types, unit, lab, notebooks, browser).
test: setup spark foreign lint
	.venv/bin/pytest

## Foreign mail servers for their test tier: Debian's Cyrus, fetched with `apt-get
## download` and unpacked into .cache/foreign (never installed). Never fails: without
## it those tests skip, saying why.
foreign: setup
	$(PY) tests/foreign.py fetch

lint: setup
	.venv/bin/ruff check mailhat_nb tests benchmarks
	.venv/bin/mypy

## Every benchmark (minutes; on a quiet machine), then README's numbers from them.
RESULTS := benchmarks/results
bench: setup
	@mkdir -p $(RESULTS)
	$(PY) benchmarks/bench_diagnose.py --json $(RESULTS)/diagnose.json
	$(PY) benchmarks/bench_discovery.py --json $(RESULTS)/discovery.json
	$(PY) benchmarks/bench_parse.py --json $(RESULTS)/parse.json
	$(PY) benchmarks/bench_contacts.py --json $(RESULTS)/contacts.json
	$(PY) benchmarks/bench_sync.py --json $(RESULTS)/sync.json
	$(PY) benchmarks/readme_table.py --results $(RESULTS)
	$(PY) benchmarks/bench_latency.py --json-out $(RESULTS)/latency.json --readme

## JupyterLab on 127.0.0.1 with the lab server running.
lab: setup
	$(PY) -m mailhat_nb.cli lab up
	.venv/bin/jupyter lab --ip=127.0.0.1 --no-browser --ServerApp.allow_root=True \
	  --ServerApp.root_dir=notebooks

## The connection doctor as an app (Voilà), sources stripped, tracebacks hidden.
## Each page load gets a kernel that remembers the working password in memory:
## kernels idle for 15 minutes are shut down.
app: setup
	$(PY) -m mailhat_nb.cli lab up
	.venv/bin/voila notebooks/01_connection_doctor.ipynb --Voila.ip=127.0.0.1 --no-browser \
	  --strip_sources=True --show_tracebacks=False \
	  --MappingKernelManager.cull_idle_timeout=900 --MappingKernelManager.cull_interval=60

clean:
	-$(PY) -m mailhat_nb.cli lab down
	rm -rf .venv $(OUT) .pytest_cache .mypy_cache .ruff_cache
