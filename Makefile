# The two commands: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := demo-out

.PHONY: demo test lint typecheck pytest bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The kernels compiled ahead of time (src/vigile/jit.py says why; without them numba
# compiles them on first use). Rebuilt when a kernel source or the environment changes.
KERNELS := $(VENV)/.kernels
$(KERNELS): $(STAMP) src/vigile/jit.py src/vigile/jitbuild.py \
		$(wildcard src/vigile/ingest/packet/*.py src/vigile/detect/*.py)
	$(BIN)/python -m vigile.jitbuild
	touch $(KERNELS)

demo: $(STAMP) $(KERNELS)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/vigile simulate --out $(DEMO)/logs --seed 7 --days 3
	$(BIN)/vigile hunt $(DEMO)/logs --db $(DEMO)/vigile.duckdb --config $(DEMO)/logs/vigile.toml --report $(DEMO)/report.md
	@echo "Report written to $(DEMO)/report.md"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collects no test; that is not a failure of the suite.
pytest: $(STAMP) $(KERNELS)
	$(BIN)/pytest -q tests || [ $$? -eq 5 ]

test: lint typecheck pytest

docs: $(STAMP)
	$(BIN)/python -m vigile.cli.docgen > docs/cli.md
	$(BIN)/python -m vigile.web.app > docs/openapi.json

bench: $(STAMP) $(KERNELS)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache src/vigile/_kernels.*
