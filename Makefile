# Thin wrappers over the runners. Lists accept commas or spaces: LENGTHS="4096 8192" or LENGTHS=4096,8192.
PY ?= .venv/bin/python
PYTEST_ARGS ?= -n auto

.PHONY: bench-1b bench-long bench-demo setup test prepare eval-ruler eval-demo train-demo report bench bench-prepare bench-kernels bench-decode bench-eval

setup:
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e '.[test]'

test:
	$(PY) -m pytest $(PYTEST_ARGS)

TASKS ?= all
LENGTHS ?=
SAMPLES ?= 5
SEED ?= 42
RUN ?=
# User task files (YAML or .py, space-separated), passed to prepare, eval-ruler and report as --task-file:
#   make eval-ruler TASK_FILE=my_tasks.yaml TASKS=my_task     make prepare TASKS=list TASK_FILE=my_tasks.py
# TASKS=list prints the task registry (TASK_FILE's tasks included) and exits.
TASK_FILE ?=
TASK_FILE_ARGS = $(foreach f,$(TASK_FILE),--task-file "$(f)")

# Generate RULER samples only (no model): make prepare RUN=runs/data-only LENGTHS=4096 SAMPLES=10 TOKENIZER=byte
TOKENIZER ?= byte
prepare:
	$(PY) -m runners.prepare --tasks "$(TASKS)" --lengths "$(or $(LENGTHS),4096)" --samples $(SAMPLES) \
		--tokenizer "$(TOKENIZER)" --seed $(SEED) --out "$(or $(RUN),runs/prepared)" \
		$(if $(TEMPLATE),--chat-template "$(TEMPLATE)") $(TASK_FILE_ARGS)

# Evaluate a checkpoint: make eval-ruler CKPT=dir LENGTHS=4096,8192 TASKS=all SAMPLES=N RUN=runs/name
# With no CKPT: the shipped SWA demo; with no LENGTHS: 1x, 2x, 4x the checkpoint's train_context;
# with no RUN: runs/<checkpoint name>-seed<SEED>-<TEMPLATE>. CHUNK = --prefill-chunk, TEMPLATE = --chat-template.
CKPT ?=
BATCH ?=
CHUNK ?=
TEMPLATE ?=
eval-ruler:
	$(PY) -m runners.eval_ruler $(if $(CKPT),--checkpoint "$(CKPT)") $(if $(LENGTHS),--lengths "$(LENGTHS)") --tasks "$(TASKS)" \
		--samples $(SAMPLES) --seed $(SEED) $(if $(RUN),--run "$(RUN)") $(if $(BATCH),--batch $(BATCH)) \
		$(if $(CHUNK),--prefill-chunk $(CHUNK)) $(if $(TEMPLATE),--chat-template "$(TEMPLATE)") $(TASK_FILE_ARGS)

# The three shipped demo models (checkpoints/: RAttention-64, SWA-64, full attention) at 1x-8x their
# training length (1K-8K), 20 samples a cell, then one comparison report in runs/demo/report.
DEMO_MODELS = rattention-w64 swa-w64 full-attention
DEMO_RUNS = runs/demo
DEMO_LENGTHS = 1024 2048 4096 8192
DEMO_SAMPLES = 20
eval-demo:
	for m in $(DEMO_MODELS); do \
		$(MAKE) --no-print-directory eval-ruler CKPT=checkpoints/$$m RUN=$(DEMO_RUNS)/$$m LENGTHS="$(DEMO_LENGTHS)" \
			SAMPLES=$(DEMO_SAMPLES) || exit $$?; \
	done
	$(MAKE) --no-print-directory report RUNS="$(addprefix $(DEMO_RUNS)/,$(DEMO_MODELS))" OUT=$(DEMO_RUNS)/report \
		REPORT_ARGS="--label RAttention-64=$(DEMO_RUNS)/rattention-w64 --label SWA-64=$(DEMO_RUNS)/swa-w64 --label Full=$(DEMO_RUNS)/full-attention"

# Retrain the demo models (the recipe in README "Demo models"; resumable): make train-demo
DEMO_RECIPE = --steps 7200 --recall-steps 3000 --recall-length 128 --recall-length-end 1024 --recall-phase-forms all --recall-loss first+all --recall-fraction 0.3 --copy-fraction 0.05 --text-fraction 0.05 --batch-tokens 4096 --lr 3e-3 --warmup 100 --save-every 100 --log-every 25 --rla-init-scale 0 --recall-short-questions 0.5 --seed 1
train-demo:
	$(PY) -m runners.train --preset demo-rattention --out checkpoints/rattention-w64 $(DEMO_RECIPE)
	$(PY) -m runners.train --preset demo-swa --out checkpoints/swa-w64 $(DEMO_RECIPE)
	$(PY) -m runners.train --preset demo-full --out checkpoints/full-attention $(DEMO_RECIPE)

# Reports from run directories: make report RUNS="runs/a runs/b" OUT=runs/report THRESHOLD=85.6
# [REPORT_ARGS="--label NAME=runs/a ..."]
REPORT_ARGS ?=
RUNS ?=
OUT ?= runs/report
THRESHOLD ?= 85.6
report:
	$(PY) -m runners.report $(RUNS) --out "$(OUT)" --threshold $(THRESHOLD) $(TASK_FILE_ARGS) $(REPORT_ARGS)

# Render OUT/report.html to OUT/report.png in headless Chromium, to look at the page as a reader will
# (Debian: apt-get install chromium): make report-screenshot OUT=runs/report [SHOT_SIZE=1280,9000]
.PHONY: report-screenshot
CHROMIUM ?= chromium
SHOT_SIZE ?= 1280,9000
report-screenshot:
	$(CHROMIUM) --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=$(SHOT_SIZE) \
		--screenshot="$(abspath $(OUT))/report.png" "file://$(abspath $(OUT))/report.html"

# Benchmarks write JSON under bench/results/. bench-prepare, -kernels, -decode and -eval never replace a
# file there that git tracks (the published numbers): they refuse with one line before running, unless
# BENCH_OVERWRITE=1; an untracked file is replaced. BENCH_ARGS passes flags through, e.g. on a CPU:
#   make bench-kernels BENCH_ARGS="--lengths 1024,4096 --heads 4 --skip-full --out runs/bench"
#   make bench-decode BENCH_ARGS="--small --out runs/bench/decode-small.json"
BENCH_ARGS ?=
BENCH_OVERWRITE ?=
BENCH_FLAGS = $(BENCH_ARGS) $(if $(filter 1,$(BENCH_OVERWRITE)),--overwrite)
bench: bench-prepare bench-kernels bench-decode bench-eval

bench-prepare:
	$(PY) -m runners.bench_prepare $(BENCH_FLAGS)

bench-kernels:
	$(PY) -m runners.bench_kernels $(BENCH_FLAGS)

bench-decode:
	$(PY) -m runners.bench_decode $(BENCH_FLAGS)

bench-eval:
	$(PY) -m runners.bench_eval $(BENCH_FLAGS)

# A 1B RAttention model beside its all-global twin: prefill at 16K and 64K, a niah_single_2 cell at 64K (GPU)
bench-1b:
	$(PY) -m runners.bench_1b $(BENCH_FLAGS)

# The demo models against their quality bar (8 NIAH tasks at the training length, 20 samples, seed 42)
bench-demo:
	$(PY) -m runners.bench_demo $(BENCH_FLAGS)

# RULER at 32K-1M tokens on a local-layers-only model: peak RSS, prefill tokens/s, decode ms/token
bench-long:
	$(PY) -m runners.bench_long $(BENCH_FLAGS)

# Mutation testing (mutmut; slow, not part of CI) of the modules whose bugs change numbers, each in a
# scratch copy (build/mutate): writes bench/results/mutation.json. MUTATE picks modules, e.g.
#   nice -n 15 make mutate MUTATE="ruler_tasks/metrics.py reports/aggregate.py"
.PHONY: mutate
MUTATE ?=
mutate:
	$(PY) tests/mutate.py $(MUTATE)
