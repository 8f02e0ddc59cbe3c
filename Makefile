# The two front doors (see README): `make run` and `make test`. Everything installs itself.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
JARS := kafka/libs/.resolved

.PHONY: install test-deps run test lint broker-start broker-stop clean

$(INSTALLED): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "needs $(PY) (Python 3.11)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

$(JARS): kafka/pom.xml
	@command -v mvn >/dev/null || { echo "needs Maven (mvn) to fetch the Kafka jars once"; exit 1; }
	@command -v java >/dev/null || { echo "needs Java 17+ to run Kafka"; exit 1; }
	mvn -q -B -f kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/kafka/libs
	@touch $@

install: $(INSTALLED) $(JARS)

## chromium, a docker compose client and prometheus, through apt when missing (scripts/test-deps.sh).
test-deps:
	@bash scripts/test-deps.sh

## The main job on the local default: a real local Kafka, topics, a simulated stream, alerts.
run: install
	$(BIN)/agentmon demo

## Unit, component and integration tests (integration tests start their own broker).
test: install test-deps
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy monitor detectors alerts

broker-start: install
	$(BIN)/agentmon broker start

broker-stop:
	$(BIN)/agentmon broker stop

clean: broker-stop
	rm -rf .local $(VENV) kafka/libs .pytest_cache .mypy_cache .ruff_cache
