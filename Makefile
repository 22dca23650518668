# Two commands do everything: `make run` (the whole bundle on 127.0.0.1) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run build test test-unit test-integration test-infra test-e2e typecheck schema lint clean loadtest chaos bench bench-publish

$(STAMP): pyproject.toml tools/dev/pyproject.toml layers/shared/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (set PYTHON=python3.X)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' -e tools/dev
	@touch $@

# checkov (the template's security scan, tests/infra/test_checkov.py) lives in its own venv: it pins boto3, botocore and packaging
# far below the project's, so installing it into .venv would break the functions' dependencies.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	@touch $@

test test-infra: $(CHECKOV_STAMP)
clean: clean-checkov
.PHONY: clean-checkov
clean-checkov:
	rm -rf $(CHECKOV_VENV)

# The SAM CLI (`make build`, `sam validate --lint` in `make lint`) in its own venv too: it pins its own boto3 and
# cfn-lint.
SAM_VENV ?= .venv-sam
SAM_VERSION := 1.170.0
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_VERSION)
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_VERSION)
	@touch $@

clean: clean-sam
.PHONY: clean-sam
clean-sam:
	rm -rf $(SAM_VENV)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m ledger_dev.local_stack

# `sam build` with no python3.13 and no Docker (the layer's and the functions' Makefiles), then a check of what it
# built: python3.13 / arm64 wheels only, no development dependency, each handler where the built template says.
build: $(STAMP) $(SAM_STAMP)
	PYTHON=$(CURDIR)/$(BIN)/python $(SAM) build
	$(BIN)/python -m ledger_dev.build_check .aws-sam/build

# The tests by tier: unit (no AWS, no sockets: seconds), integration (moto and the fakes in-process), infra (the
# template: SAM translator, cfn-lint, IAM, checkov), e2e (make run's stack over HTTP, the load test, the bench's
# programs). `make test` runs every tier, after ruff and mypy; it is what .ci/run calls.
PYTEST := $(BIN)/python -m pytest
# The machine has two cores and moto runs in-process on one: the longest files (a 5,000-object history reconciled
# through the real functions, about two and a half minutes; the load, fault, hostile and chaos runs, under a
# minute; the CLI installed alone in a fresh venv) run in a second pytest beside the rest, their output after.
HEAVY_TESTS := tests/integration/test_reconcile_against_the_fake.py tests/e2e/test_loadtest.py \
	tests/e2e/test_cli_installs_alone.py
test: $(STAMP) typecheck
	$(BIN)/ruff check .
	@mkdir -p build
	@$(PYTEST) $(HEAVY_TESTS) > build/test-heavy.log 2>&1 & heavy=$$!; \
	$(PYTEST) tests $(addprefix --ignore=,$(HEAVY_TESTS)); rest=$$?; \
	wait $$heavy; heavy_status=$$?; \
	echo "--- $(HEAVY_TESTS) (run beside the rest)"; cat build/test-heavy.log; \
	exit $$(( rest || heavy_status ))

test-unit: $(STAMP)
	$(PYTEST) tests/unit

test-integration: $(STAMP)
	$(PYTEST) tests/integration

test-infra: $(STAMP)
	$(PYTEST) tests/infra

test-e2e: $(STAMP)
	$(PYTEST) tests/e2e

# mypy --strict on the layer package (pyproject.toml [tool.mypy]).
typecheck: $(STAMP)
	$(BIN)/mypy

# Load, fault and chaos runs against the local stack (127.0.0.1, ephemeral ports; bounded, stops itself).
# Scale down with e.g. `make loadtest LOADTEST_ARGS="--deliveries 500 --chaos-requests 50"`.
LOADTEST_ARGS ?=
loadtest: $(STAMP)
	$(BIN)/python -m ledger_dev.loadtest $(LOADTEST_ARGS)

chaos: $(STAMP)
	$(BIN)/python -m ledger_dev.loadtest --phases chaos $(LOADTEST_ARGS)

# Cold starts, warm cost, DynamoDB capacity, worker throughput and layer size, each as a ratio against a floor
# measured in the same run; prints the table and writes build/bench/PERFORMANCE.md (bounded: a few minutes).
# `make bench-publish` writes the committed docs/PERFORMANCE.md instead.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m ledger_dev.bench $(BENCH_ARGS)

bench-publish: $(STAMP)
	$(BIN)/python -m ledger_dev.bench --output docs/PERFORMANCE.md $(BENCH_ARGS)

# The rollback queue's message contract and the ledger events' schemas (docs/events/), written from the pydantic
# models (unit tests fail when they are stale).
schema: $(STAMP)
	$(BIN)/python -m voucherify_ledger.models.rollback_request > docs/rollback-request.schema.json
	$(BIN)/python -m voucherify_ledger.events.documents docs/events

lint: $(STAMP) $(SAM_STAMP) typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache
