# The two quick-start commands (`make demo`, `make test`) work on a fresh clone:
# each installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo demo-compare test test-fast

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cpu,test]'
	touch $@

# The built-in demo sweep (digits, small CNN): a few minutes on 2 CPU cores.
demo: install
	$(VENV)/bin/samplesize run --workers 2

# Two pipelines on the same subsamples (examples/compare.yaml): one curve per variant, where they cross.
demo-compare: install
	$(VENV)/bin/samplesize run --workers 2 --config examples/compare.yaml

# Every test; slow ones train real models, docker ones need a Docker engine (see .ci/run).
test: install
	$(PY) -m pytest

# The fast set, in seconds.
test-fast: install
	$(PY) -m pytest -m "not slow"
