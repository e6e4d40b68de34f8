# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make demo   -> ReST^EM on its default preset with 3 seeds (about 15 minutes on 2 CPU cores)
#   make test   -> lint + the default (non-slow) test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint clean

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

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

clean:
	rm -rf $(VENV) runs
