# Two commands set up a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PIN ?= torch==2.13.0
OUT ?= runs/soc-default

.PHONY: install install-test run serve test lint docs bench bench-api bench-upload bench-progress clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# The CPU wheel first: the project's torch range is then already satisfied.
	$(PIP) install --quiet "$(TORCH_PIN)"
	$(PIP) install --quiet -e ".[test]"
	# The Neural Latents Benchmark's reader and metrics, the tests' peer: it pins pandas<=1.3.4,
	# which current Python cannot build, so it comes without its dependencies (all present).
	$(PIP) install --quiet --no-deps "nlb-tools==0.0.4"
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/lifrnn run lifrnn/examples/soc.json --out $(OUT)

# The job service on the embedded default (SQLite and artifacts under LIFRNN_HOME, in-process
# workers); the local user's API token is written to $LIFRNN_HOME/token at first start.
serve: install
	$(VENV)/bin/lifrnn serve

test: install
	bash scripts/test.sh

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

bench: install
	$(PY) bench/soc.py

bench-api: install
	$(PY) bench/api.py

bench-upload: install
	$(PY) bench/upload.py

# docs/specs.md from the spec models (a test fails when it is stale)
docs: install
	$(PY) -m lifrnn.spec_docs > docs/specs.md

bench-progress: install
	$(PY) bench/progress.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
