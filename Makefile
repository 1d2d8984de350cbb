# callscribe developer entry points. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROTO_SRC := proto
PROTO_OUT := proto/python

.PHONY: proto proto-check
proto: ## regenerate the Python code from proto/ (never edit the generated files)
	$(PY) -m grpc_tools.protoc -I $(PROTO_SRC) --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) \
	  --grpc_python_out=$(PROTO_OUT) $(PROTO_SRC)/callscribe/v1/*.proto
	touch $(PROTO_OUT)/callscribe/v1/__init__.py

proto-check: ## fail when the generated code is stale
	@tmp=$$(mktemp -d); mkdir -p $$tmp/out; \
	$(PY) -m grpc_tools.protoc -I $(PROTO_SRC) --python_out=$$tmp/out --pyi_out=$$tmp/out \
	  --grpc_python_out=$$tmp/out $(PROTO_SRC)/callscribe/v1/*.proto && touch $$tmp/out/callscribe/v1/__init__.py; \
	if diff -r $$tmp/out/callscribe $(PROTO_OUT)/callscribe >/dev/null; then echo "generated code is up to date"; rm -rf $$tmp; \
	else diff -r $$tmp/out/callscribe $(PROTO_OUT)/callscribe | head -20; rm -rf $$tmp; echo "generated code is stale: run 'make proto' and commit"; exit 1; fi
