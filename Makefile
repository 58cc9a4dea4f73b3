# AOS developer commands. `make help` lists them.
#
#   make run     build and start the server (SQLite in ./data unless DATABASE_URL is set)
#   make test    everything CI checks: fmt, clippy, cargo-deny, tests on PostgreSQL and SQLite, e2e
#   make e2e     the end-to-end tests: the real binary driven over HTTP, MCP servers from the Python SDK
#   make bench-auth   authentication overhead against a same-run baseline (docs/BENCHMARKS.md)
#   make bench-ingest telemetry ingestion through the API against COPY (docs/BENCHMARKS.md)
#   make bench-invoke governed tool invocation against calling the MCP server directly (docs/BENCHMARKS.md)
#   make bench-proxy  OpenAI chat completions through the proxy against the upstream directly (docs/BENCHMARKS.md)
#   make bench-guardrails what the proxy's guardrails cost per request, in process (docs/BENCHMARKS.md)
#   make bench-gateway a tools/call through AOS's /mcp against calling the MCP server directly (docs/BENCHMARKS.md)
#   make bench-scan    the tool-poisoning detector's cost per definition (docs/BENCHMARKS.md)

SHELL := /bin/bash
CARGO ?= cargo
AOS_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
# Python for the end-to-end tests (official `mcp` SDK from PyPI), kept between runs.
VENV ?= $(HOME)/.cache/aos/venv
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
export AOS_TEST_DATABASE_URL

# AOS_TEST_BACKENDS=sqlite leaves the PostgreSQL tests out (explicitly; nothing skips on its own).
ifeq ($(AOS_TEST_BACKENDS),sqlite)
  NEXTEST_FILTER := -E 'not test(/postgres/)'
  CARGO_TEST_SKIP := -- --skip postgres
else
  NEXTEST_FILTER :=
  CARGO_TEST_SKIP :=
endif

.PHONY: help run build test fmt fmt-check clippy deny deny-advisories check-postgres test-suite e2e bench-auth bench-ingest bench-invoke bench-gateway bench-proxy bench-guardrails bench-scan

help:
	@sed -n 's/^#   //p' Makefile

build:
	$(CARGO) build -p aos-server

run: build
	@echo "AOS: starting on http://127.0.0.1:8080 (override with AOS_SERVER__BIND); operator token in ./data/operator-token"
	$(CARGO) run -q -p aos-server -- serve

test: fmt-check clippy deny test-suite e2e

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

# Layer rules, licences and sources; works offline once crates are fetched.
deny:
	$(CARGO) fetch -q
	$(CARGO) deny check bans licenses sources

# RustSec advisories: needs the network (the advisory database is fetched).
deny-advisories:
	$(CARGO) deny check advisories

check-postgres:
ifneq ($(AOS_TEST_BACKENDS),sqlite)
	@scripts/check-postgres.sh
endif

# Doc tests first, so the run closes on the main suite's summary.
test-suite: check-postgres
	$(CARGO) test --workspace --all-features --doc -q
	# tests/cli.rs runs the `aos` binary itself.
	$(CARGO) build -q -p aos-cli
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --all-features --no-fail-fast $(NEXTEST_FILTER); \
	else \
	  $(CARGO) test --workspace --all-features --no-fail-fast $(CARGO_TEST_SKIP); \
	fi

e2e: build
	$(CARGO) build -q -p aos-tests --bin aos-fake-llm
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/e2e/requirements.txt
	AOS_SERVER_BIN=$(abspath $(TARGET_DIR))/debug/aos-server AOS_FAKE_LLM_BIN=$(abspath $(TARGET_DIR))/debug/aos-fake-llm \
	  $(VENV)/bin/python -m pytest -q tests/e2e

bench-auth:
	$(CARGO) run -q --release -p aos-tests --bin aos-bench-auth
	$(CARGO) run -q --release -p aos-tests --bin aos-bench-auth -- --postgres

bench-invoke:
	AOS_TEST_HTTP_WORKERS=$$(nproc) $(CARGO) run -q --release -p aos-tests --bin aos-bench-invoke
	AOS_TEST_HTTP_WORKERS=$$(nproc) $(CARGO) run -q --release -p aos-tests --bin aos-bench-invoke -- --postgres

bench-gateway:
	AOS_TEST_HTTP_WORKERS=$$(nproc) $(CARGO) run -q --release -p aos-tests --bin aos-bench-gateway
	AOS_TEST_HTTP_WORKERS=$$(nproc) $(CARGO) run -q --release -p aos-tests --bin aos-bench-gateway -- --postgres

bench-scan:
	$(CARGO) bench -q -p aos-engines --bench scan

bench-proxy:
	$(CARGO) build -q --release -p aos-tests --bin aos-fake-llm --bin aos-bench-proxy
	AOS_TEST_HTTP_WORKERS=$$(nproc) $(TARGET_DIR)/release/aos-bench-proxy
	AOS_TEST_HTTP_WORKERS=$$(nproc) $(TARGET_DIR)/release/aos-bench-proxy --postgres

bench-guardrails:
	$(CARGO) run -q --release -p aos-engines --example bench_guardrails

bench-ingest:
	AOS_TEST_HTTP_WORKERS=$$(nproc) $(CARGO) run -q --release -p aos-tests --bin aos-bench-ingest
