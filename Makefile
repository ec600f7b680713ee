# Two commands: `make run` opens the app, `make test` runs the suite.
# Both create .venv on first use (pinned versions from pyproject.toml).
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: run test bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(VPY) main.py

test: $(VENV)/.installed
	$(VPY) -m pytest -q

bench: $(VENV)/.installed
	$(VPY) bench/graph_bench.py

clean:
	rm -rf $(VENV) build *.egg-info
