# One-command set-up: `make demo` and `make test` install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install kafka-jars system-deps demo test soak lint typecheck check bench sample docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test,dev]'
	touch $@

install: $(STAMP)

# Java and Maven fetch and run the broker; Prometheus and promtool check the
# dashboards and rules, amtool the Alertmanager example; kcat (librdkafka) produces
# the interop test's messages; chromium renders the report; openssl makes the mutual-TLS
# test's client key. All from Debian when missing.
system-deps:
	@command -v java >/dev/null && command -v mvn >/dev/null && command -v promtool >/dev/null \
	  && command -v prometheus >/dev/null && command -v amtool >/dev/null \
	  && command -v kcat >/dev/null && command -v chromium >/dev/null \
	  && command -v openssl >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends openjdk-17-jre-headless maven prometheus prometheus-alertmanager \
	    kcat chromium openssl; }

kafka-jars: install system-deps
	$(BIN)/livewatch kafka fetch

demo: kafka-jars
	$(BIN)/livewatch demo

test: kafka-jars lint typecheck
	$(BIN)/pytest -q

# The long fault and load runs (docs/reliability.md): the suite's versions of these
# tests, bigger and longer. About an hour. The burst lasts long enough for the lag
# rule as shipped (`for: 5m`, scrapes as deployed) to fire while the worker is behind.
soak: kafka-jars
	LIVEWATCH_SOAK_HOSTILE=100000 $(BIN)/pytest -q -s tests/integration/test_worker_hostile.py
	LIVEWATCH_SOAK_BURST=36 LIVEWATCH_SOAK_LAG_FOR=5m \
	  $(BIN)/pytest -q -s tests/integration/test_worker_overload.py
	LIVEWATCH_SOAK_ROOMS=1000000 LIVEWATCH_SOAK_VIEWERS=1000000 \
	  $(BIN)/pytest -q -s tests/streams/logs/test_room_budget.py
	LIVEWATCH_SOAK_JUNK_ROOMS=1000000 $(BIN)/pytest -q -s tests/integration/test_worker_cardinality.py
	LIVEWATCH_SOAK_BROKER_SPEED=2 LIVEWATCH_SOAK_BROKER_DOWN_S=60 LIVEWATCH_SOAK_BROKER_KILL=1 \
	  $(BIN)/pytest -q -s tests/integration/test_broker_restart.py
	LIVEWATCH_SOAK_FAILOVER_SPEED=2 $(BIN)/pytest -q -s tests/integration/test_worker_failover.py

lint: install
	$(BIN)/ruff check streams detectors tests deploy benchmarks grafana
	$(BIN)/ruff format --check streams detectors tests deploy benchmarks grafana
	$(BIN)/lint-imports
	$(BIN)/deptry .

typecheck: install
	$(BIN)/mypy

check: test

# Benchmark-only dependencies (the peers, py-spy) come from the `bench` extra.
bench: kafka-jars
	$(BIN)/pip install -q -c constraints.txt -e '.[test,dev,bench]'
	$(BIN)/python -m benchmarks.room_memory
	$(BIN)/python -m benchmarks.engine_speed
	$(BIN)/python -m benchmarks.throughput
	$(BIN)/python -m benchmarks.hot_room
	$(BIN)/python -m benchmarks.many_rooms
	$(BIN)/python -m benchmarks.alert_latency
	$(BIN)/python -m benchmarks.backtest_speed
	$(BIN)/python -m benchmarks.detector_quality

# The night `make demo` replays (a test checks it matches the generator).
sample: install
	$(BIN)/livewatch simulate --scenario demo --seed 1 \
	  --out streams/dev/samples/demo-night.jsonl.gz --labels-out streams/dev/samples/demo-night.labels.json

# Generated pages (a test fails when they are stale).
docs: install
	$(BIN)/livewatch settings reference > docs/settings.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .livewatch-state
