# Thin wrappers over the runners. Lists accept commas or spaces: LENGTHS="4096 8192" or LENGTHS=4096,8192.
PY ?= .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup test prepare eval-ruler report bench bench-prepare bench-kernels bench-decode bench-eval

setup:
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e '.[test]'

test:
	$(PY) -m pytest $(PYTEST_ARGS)

# Generate RULER samples only (no model): make prepare OUT=runs/data-only LENGTHS=4096 SAMPLES=10
TASKS ?= all
LENGTHS ?= 4096
SAMPLES ?= 10
SEED ?= 42
TOKENIZER ?= byte
OUT ?= runs/prepared
prepare:
	$(PY) -m runners.prepare --tasks "$(TASKS)" --lengths "$(LENGTHS)" --samples $(SAMPLES) \
		--tokenizer "$(TOKENIZER)" --seed $(SEED) --out "$(OUT)"

eval-ruler:
	@echo "make eval-ruler is not built yet (issue: the evaluation runner). Use 'make prepare' to generate RULER data." >&2; exit 2

report:
	@echo "make report is not built yet (issue: length-generalization reports)." >&2; exit 2

bench: bench-prepare

bench-prepare:
	$(PY) -m runners.bench_prepare
