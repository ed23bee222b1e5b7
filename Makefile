# Two commands on a fresh machine, offline:  make demo   and   make test
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
PYTHON  ?= python3
# a CPU build of torch lies on this machine's disk; installing it first keeps pip from
# fetching a multi-GB CUDA build to satisfy pyproject's range
TORCH   ?= torch==2.13.0

.PHONY: demo test test-slow install clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test,serve]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/unirank demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) build *.egg-info
