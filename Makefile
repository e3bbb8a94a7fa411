# Every target builds what it needs itself: a fresh clone needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOURCES := src tests examples bench
PYTEST_ARGS ?=

.PHONY: demo test test-long lint bench docs clean

# The venv is rebuilt from scratch whenever pyproject.toml changes.
$(VENV)/.created: pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed-dev: $(VENV)/.created
	$(BIN)/python -m pip install --quiet -e '.[dev,cli,postgres,otel]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e '.[dev,cli,postgres,otel,bench]'
	touch $@

$(VENV)/.installed-cli: $(VENV)/.created
	$(BIN)/python -m pip install --quiet -e '.[cli]'
	touch $@

## demo: the bundled order under both runners, with its timelines (the `coordination demo`
##       command). FAIL=sellers.reserve_stock makes an action fail; DB=orders.db keeps the
##       runs (then: .venv/bin/coordination runs list --db orders.db). The narrated tour, and
##       the interrupt-and-recover one: .venv/bin/python -m examples.ecommerce [--db orders.db]
demo: $(VENV)/.installed-cli
	$(BIN)/coordination demo --mode $(or $(MODE),both) $(if $(FAIL),--fail $(FAIL)) \
	$(if $(DB),--db $(DB))

## lint: ruff, formatting and mypy strict
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

# The tests' PostgreSQL server: installed with apt if missing, on a private port, stopped
# afterwards whatever the tests did.
WITH_POSTGRES = scripts/postgres.sh start && \
	COORDINATION_TEST_POSTGRES=$$(scripts/postgres.sh url)

# The diagram tests' renderers (Graphviz dot, Mermaid's parser under node): installed when
# missing, in seconds when present.
RENDERERS = scripts/renderers.sh

# The suite runs on every core (pytest-xdist); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= auto

## test: lint, then the whole (fast, deterministic) test suite, on every core
test: lint
	$(RENDERERS)
	$(WITH_POSTGRES) $(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS); \
	status=$$?; scripts/postgres.sh stop; exit $$status

## test-long: long hypothesis and crash runs (a test may take up to 30 minutes there: the
## long profile runs ten times the examples; a hang still fails)
test-long: $(VENV)/.installed-dev
	$(RENDERERS)
	$(WITH_POSTGRES) HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -m 'long or not long' \
	--timeout 1800 $(PYTEST_ARGS); status=$$?; scripts/postgres.sh stop; exit $$status

## bench: benchmarks side by side with their baselines (see docs/performance.md); each
## prints its targets, and a missed one does not stop the others
bench: $(VENV)/.installed-bench
	-PYTHONPATH=. $(BIN)/python bench/orchestration.py
	-PYTHONPATH=. $(BIN)/python bench/bus.py
	-PYTHONPATH=. $(BIN)/python bench/choreography.py
	-PYTHONPATH=. $(BIN)/python bench/durable.py
	-PYTHONPATH=. $(BIN)/python bench/recovery.py
	-PYTHONPATH=. $(BIN)/python bench/lint.py
	-$(WITH_POSTGRES) PYTHONPATH=. $(BIN)/python bench/workers.py; scripts/postgres.sh stop

docs: $(VENV)/.installed-dev
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .renderers .mypy_cache .ruff_cache .pytest_cache .hypothesis site dist
