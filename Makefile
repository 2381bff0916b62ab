# Two commands do all set-up on a fresh machine with Python 3.11+:
#   make run    installs jetgate in .venv, compiles its message path and starts it
#               (embedded mode, deploy/jetgate.conf)
#   make test   the same install with the test extra, then lints (ruff, mypy) and runs the suite
# JETGATE_PURE=1 before either runs jetgate as plain Python, without compiling.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= deploy/jetgate.conf
SOURCES := $(shell find gateway streams -name '*.py')

ifdef JETGATE_PURE
BUILT := $(VENV)/.pure
else
BUILT := $(VENV)/.compiled
endif

.PHONY: run test lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# pip installs without compiling; the rules below build in place.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/activate
	JETGATE_PURE=1 $(BIN)/python -m pip install --quiet -e '.[compile]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/activate
	JETGATE_PURE=1 $(BIN)/python -m pip install --quiet -e '.[compile,test]'
	touch $@ $(VENV)/.installed-run

# The message path, compiled by mypyc into extensions beside its sources
# (setup.py lists the modules); rebuilt whenever a source changes, so no
# extension ever shadows a newer source.
$(VENV)/.compiled: Makefile setup.py $(SOURCES) | $(VENV)/.installed-run
	rm -f $(VENV)/.pure
	find gateway streams -name '*.so' -delete
	$(BIN)/python setup.py --quiet build_ext --inplace --parallel 2
	find gateway streams -name '*.so' -exec touch {} +  # copies keep the build's times
	touch $@

$(VENV)/.pure: setup.py $(SOURCES) | $(VENV)/.installed-run
	rm -f $(VENV)/.compiled
	find gateway streams -name '*.so' -delete
	touch $@

run: $(BUILT)
	$(BIN)/jetgate -c $(CONFIG)

test: $(VENV)/.installed-test $(BUILT)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.installed-test $(BUILT)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	find gateway streams -name '*.so' -delete
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
