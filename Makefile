# Thin wrappers over the runners. Lists accept commas or spaces: LENGTHS="4096 8192" or LENGTHS=4096,8192.
PY ?= .venv/bin/python
PYTEST_ARGS ?= -n auto

.PHONY: setup test prepare eval-ruler eval-demo train-demo report bench bench-prepare bench-kernels bench-decode bench-eval

setup:
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e '.[test]'

test:
	$(PY) -m pytest $(PYTEST_ARGS)

TASKS ?= all
LENGTHS ?=
SAMPLES ?= 10
SEED ?= 42
RUN ?=

# Generate RULER samples only (no model): make prepare RUN=runs/data-only LENGTHS=4096 SAMPLES=10 TOKENIZER=byte
TOKENIZER ?= byte
prepare:
	$(PY) -m runners.prepare --tasks "$(TASKS)" --lengths "$(or $(LENGTHS),4096)" --samples $(SAMPLES) \
		--tokenizer "$(TOKENIZER)" --seed $(SEED) --out "$(or $(RUN),runs/prepared)" \
		$(if $(TEMPLATE),--chat-template "$(TEMPLATE)")

# Evaluate a checkpoint: make eval-ruler CKPT=dir LENGTHS=4096,8192 TASKS=all SAMPLES=N RUN=runs/name
# With no CKPT: the shipped RAttention demo; with no LENGTHS: 1x, 2x, 4x, 8x the checkpoint's train_context;
# with no RUN: runs/<checkpoint name>-seed<SEED>-<TEMPLATE>. CHUNK = --prefill-chunk, TEMPLATE = --chat-template.
CKPT ?=
BATCH ?=
CHUNK ?=
TEMPLATE ?=
eval-ruler:
	$(PY) -m runners.eval_ruler $(if $(CKPT),--checkpoint "$(CKPT)") $(if $(LENGTHS),--lengths "$(LENGTHS)") --tasks "$(TASKS)" \
		--samples $(SAMPLES) --seed $(SEED) $(if $(RUN),--run "$(RUN)") $(if $(BATCH),--batch $(BATCH)) \
		$(if $(CHUNK),--prefill-chunk $(CHUNK)) $(if $(TEMPLATE),--chat-template "$(TEMPLATE)")

# The three shipped demo models (checkpoints/: RAttention-64, SWA-64, full attention) at 1x-8x their
# training length, then one comparison report in runs/demo/report.
DEMO_MODELS = rattention-w64 swa-w64 full-attention
DEMO_RUNS = runs/demo
eval-demo:
	for m in $(DEMO_MODELS); do \
		$(MAKE) --no-print-directory eval-ruler CKPT=checkpoints/$$m RUN=$(DEMO_RUNS)/$$m || exit $$?; \
	done
	$(MAKE) --no-print-directory report RUNS="$(addprefix $(DEMO_RUNS)/,$(DEMO_MODELS))" OUT=$(DEMO_RUNS)/report

# Retrain the demo models (the recipe in README "Demo models"; resumable): make train-demo
DEMO_RECIPE = --steps 2200 --recall-steps 1000 --recall-fraction 0.3 --copy-fraction 0.05 --text-fraction 0.05 --batch-tokens 8192 --lr 3e-3 --warmup 100 --save-every 100 --log-every 25
train-demo:
	$(PY) -m runners.train --preset demo-rattention --out checkpoints/rattention-w64 $(DEMO_RECIPE)
	$(PY) -m runners.train --preset demo-swa --out checkpoints/swa-w64 $(DEMO_RECIPE)
	$(PY) -m runners.train --preset demo-full --out checkpoints/full-attention $(DEMO_RECIPE)

# Reports from run directories: make report RUNS="runs/a runs/b" OUT=runs/report THRESHOLD=85.6
RUNS ?=
OUT ?= runs/report
THRESHOLD ?= 85.6
report:
	$(PY) -m reports.build $(RUNS) --out "$(OUT)" --threshold $(THRESHOLD)

# Benchmarks write JSON under bench/results/. BENCH_ARGS passes flags through, e.g. on a CPU:
#   make bench-kernels BENCH_ARGS="--lengths 1024,4096 --heads 4 --skip-full"
#   make bench-decode BENCH_ARGS=--small
BENCH_ARGS ?=
bench: bench-prepare bench-kernels bench-decode bench-eval

bench-prepare:
	$(PY) -m runners.bench_prepare $(BENCH_ARGS)

bench-kernels:
	$(PY) -m runners.bench_kernels $(BENCH_ARGS)

bench-decode:
	$(PY) -m runners.bench_decode $(BENCH_ARGS)

bench-eval:
	$(PY) -m runners.bench_eval $(BENCH_ARGS)
