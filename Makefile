# mlmd-bundle. `make demo` and `make test` each set everything up first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
# Tests on 2 cores: three pytest workers (tests/conftest.py says how work is split);
# engines get one rank and one thread unless a test asks.
export OMP_NUM_THREADS ?= 1
# Open MPI ranks that wait spin on a core by default; on a shared 2-core machine a
# spinning pw.x rank starves its partner (measured: a 96-atom SCF used 770 CPU-s per rank
# beside the other workers, 161 s wall alone). Yielding ranks give the core back.
export OMPI_MCA_mpi_yield_when_idle ?= 1
TEST_WORKERS ?= 3

.PHONY: setup demo test bench images pack lint format lock clean

setup: $(STAMP)

$(STAMP): containers/requirements.lock.txt containers/stack.lock.yaml pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r containers/requirements.lock.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m bundle.hostsetup
	touch $@

demo: setup
	$(BIN)/bundle run smoke-li2o --run-dir runs/smoke-li2o

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -ra --durations=25 -n $(TEST_WORKERS) --dist loadgroup \
		--no-loadscope-reorder tests

bench: setup
	$(BIN)/python -m tests.bench --out bench-results

images: setup
	$(BIN)/bundle images build --flavor cpu

pack: setup
	$(BIN)/bundle pack --flavor cpu --out dist/mlmd-bundle-cpu --force

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

format:
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# Re-resolve the full Python lock from the top-level pins in the stack lock.
lock:
	$(BIN)/python -m bundle.pylock

clean:
	rm -rf $(VENV) runs bench-results
