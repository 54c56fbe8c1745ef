# w2v2bench: `make help` lists the targets. Every target sets up .venv first if needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# the CPU build that lies on disk here; elsewhere pick the build for your CUDA (README, "Install")
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install demo test test-slow bench nightly leaderboard open-asr lint format clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed ## create .venv with torch (CPU) and w2v2bench in editable mode

demo: $(VENV)/.installed ## offline: the shipped demo model on the shipped demo corpus, both splits, reference check
	$(PY) -m w2v2bench model=demo data=demo split=clean
	$(PY) -m w2v2bench model=demo data=demo split=other
	$(PY) -m w2v2bench table root=results/demo

test: $(VENV)/.installed ## the test suite, end-to-end tests marked slow left out (no network; GPU tests only where CUDA exists)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: $(VENV)/.installed ## the slow end-to-end tests (kills and resumes, the stand-in Hub, torchrun, make leaderboard); CI runs both
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

bench: $(VENV)/.installed ## benchmark: card script vs harness, exact vs naive batching, RSS (writes results/bench/)
	$(PY) bench/bench.py

NIGHTLY_MATRIX ?= model=demo data=demo split=clean,other
NIGHTLY_ARGS ?=

nightly: $(VENV)/.installed ## the nightly matrix, recorded in results/history.sqlite, compared with the last good runs (its last line: the nightly's exit status)
	@night=results/nightly/$$(date -u +%Y-%m-%d_%H-%M-%S); status=0; \
	$(PY) -m w2v2bench -m $(NIGHTLY_MATRIX) "output_dir=$$night/\$${model.name}/\$${data.partition}-\$${split}" || status=$$?; \
	$(PY) -m w2v2bench nightly runs=$$night history=results/history.sqlite harness_status=$$status $(NIGHTLY_ARGS) || nightly=$$?; \
	echo "nightly exit status: $${nightly:-0} (0 pass, 1 regression, 6 not whole; make itself exits 0 or 2)"; \
	exit $${nightly:-0}

# every official LibriSpeech CTC checkpoint with a card (conf/model/), greedy; and those with an LM, decoder=lm
LEADERBOARD_MODELS ?= wav2vec2-base-960h,wav2vec2-base-100h,wav2vec2-large-960h,wav2vec2-large-960h-lv60,wav2vec2-large-960h-lv60-self,hubert-large-ls960-ft,hubert-xlarge-ls960-ft,data2vec-audio-base-960h,data2vec-audio-large-960h
LEADERBOARD_LM_MODELS ?= wav2vec2-base-960h-4-gram
LEADERBOARD_ARGS ?= device=cuda
LEADERBOARD_DIR ?= results/leaderboard/$(shell date -u +%Y-%m-%d_%H-%M-%S)

leaderboard: $(VENV)/.installed ## the family on test-clean and test-other (greedy; LM rows with decoder=lm), then one table against each card (LEADERBOARD_ARGS="device=cpu ..." to change device or data)
	@status=0; \
	$(PY) -m w2v2bench -m model=$(LEADERBOARD_MODELS) split=clean,other $(LEADERBOARD_ARGS) "output_dir=$(LEADERBOARD_DIR)/\$${model.name}/greedy-\$${split}" || status=$$?; \
	if [ -n "$(LEADERBOARD_LM_MODELS)" ]; then \
	$(PY) -m w2v2bench -m model=$(LEADERBOARD_LM_MODELS) decoder=lm split=clean,other $(LEADERBOARD_ARGS) "output_dir=$(LEADERBOARD_DIR)/\$${model.name}/lm-\$${split}" || status=$$?; fi; \
	$(PY) -m w2v2bench table root=$(LEADERBOARD_DIR) view=leaderboard || status=$$?; \
	exit $$status

# the Open ASR Leaderboard's English test sets (data=open_asr), each scored the harness's way (its normaliser,
# every word) and the leaderboard's (the same normaliser, merged compounds: `score merge_compounds=true`)
OPEN_ASR_SETS ?= ami,earnings22,gigaspeech,librispeech-clean,librispeech-other,spgispeech,voxpopuli
OPEN_ASR_MODELS ?= wav2vec2-base-960h
OPEN_ASR_ARGS ?= device=cuda
OPEN_ASR_DIR ?= results/open-asr/$(shell date -u +%Y-%m-%d_%H-%M-%S)

open-asr: $(VENV)/.installed ## the Open ASR Leaderboard's English sets, scored both ways, then one table (OPEN_ASR_ARGS, OPEN_ASR_SETS, OPEN_ASR_MODELS)
	@status=0; \
	$(PY) -m w2v2bench -m model=$(OPEN_ASR_MODELS) data=open_asr data.set=$(OPEN_ASR_SETS) normalizer=whisper $(OPEN_ASR_ARGS) "output_dir=$(OPEN_ASR_DIR)/\$${model.name}/\$${data.name}" || status=$$?; \
	for summary in $$(find $(OPEN_ASR_DIR) -name summary.json -not -path '*/rescore/*' | sort); do \
	$(PY) -m w2v2bench score "run=$$(dirname $$summary)" merge_compounds=true >/dev/null || status=$$?; done; \
	$(PY) -m w2v2bench table root=$(OPEN_ASR_DIR) rescores=true || status=$$?; \
	exit $$status

lint: $(VENV)/.installed ## ruff lint and format check
	$(PY) -m ruff check src tests bench tools
	$(PY) -m ruff format --check src tests bench tools

format: $(VENV)/.installed ## ruff format and autofix
	$(PY) -m ruff format src tests bench tools
	$(PY) -m ruff check --fix src tests bench tools

clean: ## remove results (keeps .venv)
	rm -rf results/* .pytest_cache
