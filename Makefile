# pushd: two commands set everything up on a fresh machine with python3 and make.
#   make serve   run the daemon with queue.yaml.example on the embedded SQLite default
#                (installs the runtime alone: pushd and its ~23 packages)
#   make test    ruff, mypy (strict), import-linter and pytest (installs the development tools too)
#   (make bench: the benchmarks; make chaos: the full reliability campaigns)
PYTHON ?= python3
VENV ?= .venv
ORACLE_VENV ?= .venv-oracle
BIN := $(VENV)/bin
STAMP := $(VENV)/.pushd-installed
RUNTIME_STAMP := $(VENV)/.pushd-runtime
ORACLE_STAMP := $(ORACLE_VENV)/.oracle-installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help serve test lint typecheck pytest bench chaos fmt clean install oracle proto

help:
	@echo "make serve   run pushd with queue.yaml.example (creates $(VENV) with the runtime alone)"
	@echo "make test    lint, type-check and run the test suite"
	@echo "make lint    ruff + import-linter"
	@echo "make bench   every benchmark scenario with the peers, ~15 min (BENCH_ARGS='delivery --quick')"
	@echo "make chaos   the full reliability campaigns (crashes, faults, fuzzing, soak; long)"
	@echo "make fmt     format the code with ruff"
	@echo "make proto   regenerate pushd/proto/*_pb2.py(i) and pushd/cloudtasks/cloudtasks.fds"

# The runtime alone, for `make serve`; the development install below holds it too, so either
# order of `make serve` and `make test` works without installing anything twice.
$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(RUNTIME_STAMP) $@

# Google's App Engine SDK, used only as a test oracle, in a venv of its own so its pins
# (urllib3<2, grpcio, protobuf) never meet pushd's runtime.
$(ORACLE_STAMP): tests/oracle/requirements.txt
	test -x $(ORACLE_VENV)/bin/python || $(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/python -m pip install -q -r tests/oracle/requirements.txt
	touch $@

install: $(STAMP)
oracle: $(ORACLE_STAMP)

serve: $(RUNTIME_STAMP)
	$(BIN)/pushdctl serve --config queue.yaml.example

lint: $(STAMP)
	$(BIN)/ruff check pushd tests benchmarks
	$(BIN)/ruff format --check pushd tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) $(ORACLE_STAMP)
	PUSHD_ORACLE_PYTHON=$(abspath $(ORACLE_VENV))/bin/python $(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# The reliability campaigns at full size (make test runs their short versions).
chaos: $(STAMP)
	PUSHD_CHAOS=full $(BIN)/pytest tests/reliability --timeout 7200 $(PYTEST_ARGS)

# The Cloud Tasks API (pushd/cloudtasks): googleapis' protos (third_party/googleapis, Apache-2.0)
# compiled with their imports into one FileDescriptorSet, loaded into a private descriptor pool
# at run time; tests/unit/test_cloudtasks_descriptors.py checks it is fresh.
CLOUDTASKS_PROTOS := google/cloud/tasks/v2/cloudtasks.proto \
	google/cloud/tasks/v2beta3/cloudtasks.proto google/cloud/tasks/v2beta2/cloudtasks.proto \
	google/cloud/location/locations.proto

# The /rpc_http messages: pushd's own .proto files, compiled with the protobuf toolchain
# (grpcio-tools' protoc, a dev dependency); the generated modules are committed, so the
# runtime needs the protobuf package alone. tests/unit/test_proto.py checks they are fresh.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. pushd/proto/*.proto
	$(BIN)/python -m grpc_tools.protoc -I third_party/googleapis --include_imports \
		--descriptor_set_out=pushd/cloudtasks/cloudtasks.fds $(CLOUDTASKS_PROTOS)

fmt: $(STAMP)
	$(BIN)/ruff format pushd tests benchmarks
	$(BIN)/ruff check --fix pushd tests benchmarks

clean:
	rm -rf $(VENV) $(ORACLE_VENV) .pytest_cache .mypy_cache .ruff_cache
