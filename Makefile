# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make demo   -> ReST^EM in the paper's setting (default preset), 3 seeds (10 min 12 s,
#                  712 CPU-s on the 2-core CPU at light load; see README)
#   make test   -> lint + the default (non-slow) test suite
#   make test-gpu -> installs jax[$(JAX_CUDA)] (same JAX version) and runs the default suite
#                  on the GPU (full-float32 matmuls and deterministic ops: tests/conftest.py)
#   make lock   -> recompiles requirements-lock.txt from pyproject.toml (keeps its pins unless
#                  pyproject.toml needs others; `make lock LOCK_FLAGS=--upgrade` moves every
#                  package to its newest allowed version). Run `make test` after, then commit.
# The install step installs exactly the versions in requirements-lock.txt (the project, its
# `dev` extra and pip/setuptools/wheel; Python 3.11, Linux x86-64), then the project itself
# with --no-deps. The optional extras (bench, ray, atari) and test-gpu's jax[cuda] are not in
# the lock.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JAX_CUDA ?= cuda12
LOCK := requirements-lock.txt
LOCK_TOOLS := .lock-tools
UV_VERSION := 0.13.9
LOCK_FLAGS ?=

.PHONY: demo test test-gpu test-slow lint lock clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/selftaught run rest-em --preset default --seeds 3

# --dist loadfile: a test file runs on one worker, so its module fixtures are built once;
# --durations=25: the slowest tests, printed by every run. The tests keep a JAX persistent
# compilation cache outside the clone (tests/conftest.py; JAX_COMPILATION_CACHE_DIR= off).
PYTEST_ARGS ?= -n 2 --dist loadfile -q --durations=25

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

test-gpu: $(STAMP)
	$(BIN)/pip install -q "jax[$(JAX_CUDA)]==$$($(BIN)/python -c 'import jax; print(jax.__version__)')"
	$(BIN)/python -c "import jax; b = jax.default_backend(); assert b == 'gpu', 'JAX sees no GPU (backend: ' + b + ')'; print(jax.devices())"
	$(BIN)/pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow --durations=25

# uv in its own venv (not in the project's); pip, setuptools and wheel are locked too, since
# the install step uses them (--no-build-isolation).
lock:
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/pip install -q uv==$(UV_VERSION)
	printf 'pip\nsetuptools>=68\nwheel\n' | $(LOCK_TOOLS)/bin/uv pip compile pyproject.toml - \
		--extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make lock" $(LOCK_FLAGS) -o $(LOCK)

clean:
	rm -rf $(VENV) $(LOCK_TOOLS) runs
