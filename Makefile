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

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 -q

test-gpu: $(STAMP)
	$(BIN)/pip install -q "jax[$(JAX_CUDA)]==$$($(BIN)/python -c 'import jax; print(jax.__version__)')"
	$(BIN)/python -c "import jax; b = jax.default_backend(); assert b == 'gpu', 'JAX sees no GPU (backend: ' + b + ')'; print(jax.devices())"
	$(BIN)/pytest -n 2 -q

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

clean:
	rm -rf $(VENV) runs
