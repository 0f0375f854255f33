# Two commands matter: `make demo` and `make test`. Both work on a fresh Debian machine with
# Python 3.11: they create .venv, install what they need (system packages too), and run.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make demo` installs the runtime only (no test or bench tools); its own stamp, so that a later
# `make test` still installs the rest.
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test soak gates pytest bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,test,pkcs11,kmip,aws,sql,api,hybrid]'
	touch $(STAMP) $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[sql,api,hybrid]'
	touch $(DEMO_STAMP)

# ownkey's own modules compiled once here: with PYTHONDONTWRITEBYTECODE set (as on this machine)
# Python never writes them, and every command would compile ~100 modules from source (0.2 s of a
# read-only command's start-up). Up-to-date files are skipped, so this is cheap to repeat.
BYTECODE := $(BIN)/python -m compileall -q src/ownkey

demo: $(DEMO_STAMP)
	$(BYTECODE)
	$(BIN)/ownkey demo

system-deps:
	scripts/ensure-system-deps

test: $(STAMP) system-deps
	$(BYTECODE)
	scripts/run-tests

# The long campaigns of issue 12 (tests/campaigns): >= 1,000,000 fuzz inputs per target, the
# full substitution matrix, the 2-minute load run. atheris is tried; without it the seeded
# mutator of the campaigns runs alone.
FUZZ_TARGETS := envelope policy-request protector-request ownkey-request-header range-header cli-values
soak: $(STAMP) system-deps
	-$(BIN)/pip install --quiet -e '.[fuzz]' || echo "soak: atheris did not install; the seeded mutator runs alone"
	OWNKEY_SOAK=1 $(BIN)/pytest -p no:cacheprovider -s -m 'soak or not soak' tests/campaigns $(ARGS)
	@if $(BIN)/python -c 'import atheris' 2>/dev/null; then \
	  for target in $(FUZZ_TARGETS); do \
	    PYTHONPATH=. $(BIN)/python -m tests.campaigns.fuzz_atheris $$target -atheris_runs=1000000 || exit 1; \
	  done; fi

gates: $(STAMP)
	scripts/run-gates

pytest: $(STAMP)
	$(BIN)/pytest $(ARGS)

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
