# Two commands do all set-up on a fresh machine:
#   make demo   create .venv, install the pinned dependencies, run configs/demo/sandbox.yaml
#   make test   the same install, lint, then the whole test suite (.ci/run runs make demo, then this)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Nothing may be installed or downloaded behind our back at run time.
OFFLINE := UV_OFFLINE=1 PIP_NO_INDEX=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline

.PHONY: install demo paper lint test check clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $@

install: $(VENV)/.installed

# --logger sandflow: a line per finished job and a summary; each job's output is in its log under the work_dir.
demo: install
	$(OFFLINE) $(BIN)/snakemake --cores 2 --configfile configs/demo/sandbox.yaml --logger sandflow

# The flagship: the paper's bottom-up recipe search with a tiny model, then its report (outputs/paper/report/).
paper: install
	$(OFFLINE) $(BIN)/snakemake --cores 2 --configfile configs/paper/recipe_search.yaml
	$(OFFLINE) $(BIN)/python -m sandflow.report.recipe_search outputs/paper

# Fast, before the tests: ruff (lint rules in pyproject.toml) and snakefmt on the Snakefile and rules.
lint: install
	$(BIN)/ruff check src tests scripts benchmarks configs
	$(BIN)/ruff format --check src tests scripts benchmarks configs
	$(BIN)/snakefmt --check Snakefile rules
	$(OFFLINE) $(BIN)/snakemake --lint --configfile configs/demo/sandbox.yaml

# Parallel workers (pytest-xdist), each taking whole test files: a module's tests share its module-scoped runs.
# PYTEST_WORKERS=0 runs the suite serially. CONTRIBUTING.md (Tests) says why this many workers.
PYTEST_WORKERS ?= 4
test: lint
	$(OFFLINE) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf outputs .snakemake
