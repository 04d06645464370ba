# alignrec-lite: `make tour` runs the main job on the bundled toy data; `make test` runs every test.
# Both create the local virtual environment .venv on first use (Python >= 3.10 and make are all you need).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATASET ?= toy
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Never export MPLBACKEND here: every notebook kernel inherits it, and ipykernel picks its inline
# (figure-showing) backend only when MPLBACKEND is unset.

.PHONY: help setup tour test test-fast lint format lab render site screenshots benchmark clean

help:
	@echo "make tour       open the toy data, train, evaluate, export top-K, render the notebooks"
	@echo "make test       run ruff (format check + lint) and the whole test suite (what CI runs)"
	@echo "make format     reformat and fix lint with ruff (what make lint checks)"
	@echo "make lab        start JupyterLab on the notebooks (prints the URL to open)"
	@echo "make render     execute every notebook at full settings into _build/notebooks and build _build/site (DATASET=toy|movielens)"
	@echo "make site       build the offline course site _build/site/ (renders the notebooks first if needed)"
	@echo "make screenshots  refresh the README's JupyterLab and site pictures in docs/figures/ (needs chromium)"
	@echo "make benchmark  seconds/epoch, evaluation time and memory of every model on Baby, full-ranking eval speed (needs ALIGNREC_DATA)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

tour: $(STAMP)
	$(BIN)/python -m alignrec_lite tour --dataset $(DATASET)

render: $(STAMP)
	$(BIN)/python -m alignrec_lite tour --dataset $(DATASET) --notebooks-only

test: $(STAMP) lint
	CUDA_VISIBLE_DEVICES= $(BIN)/python -m pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-fast: $(STAMP)
	CUDA_VISIBLE_DEVICES= $(BIN)/python -m pytest -q -x -m "not notebook and not realdata"

lab: $(STAMP)
	$(BIN)/python -m alignrec_lite.lab --root notebooks --token $(or $(LAB_TOKEN),alignrec-lite)

site: $(STAMP)
	$(BIN)/python -m alignrec_lite.publish --dataset $(DATASET)

screenshots: $(STAMP)
	ALIGNREC_SCREENSHOTS=$(CURDIR)/docs/figures CUDA_VISIBLE_DEVICES= $(BIN)/python -m pytest -q \
	    tests/test_browser.py -k "(jupyterlab and 03) or site_works"

benchmark: $(STAMP)
	@test -n "$$ALIGNREC_DATA" || { echo "set ALIGNREC_DATA to the folder with amazon-baby-mmrec/"; exit 2; }
	$(BIN)/python benchmarks/bench_train.py --baby $$ALIGNREC_DATA/amazon-baby-mmrec \
	    --models bpr,lightgcn,vbpr,freedom,alignrec --epochs 5 \
	    --out benchmarks/out/bench.jsonl --markdown benchmarks/out/bench.md
	$(BIN)/python benchmarks/bench_eval.py --data $$ALIGNREC_DATA/amazon-baby-mmrec --threads 1,2 \
	    --json benchmarks/out/bench_eval.json

clean:
	rm -rf _build .pytest_cache runs
