# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make demo   -> ReST^EM on its default preset with 3 seeds (about 9 minutes on an idle
#                  2-core CPU: 8 min 50 s measured, see README)
#   make test   -> lint + the default (non-slow) test suite
#   make test-gpu -> installs jax[$(JAX_CUDA)] (same JAX version) and runs the default suite
#                  on the GPU (full-float32 matmuls and deterministic ops: tests/conftest.py)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JAX_CUDA ?= cuda12

.PHONY: demo test test-gpu test-slow lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
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

clean:
	rm -rf $(VENV) runs
