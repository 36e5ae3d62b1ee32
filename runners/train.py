"""Train a model from a preset on the task stream (runners.train_data): how the demo checkpoints are made.

    python -m runners.train --preset demo-rattention --out checkpoints/rattention-w64 --steps 1000

AdamW (b2 0.95, weight decay on matrices only) with linear warmup and cosine decay to 10% of the peak,
global-norm clipping. The loss is answer_loss + copy_loss + text_loss, each the mean next-token
cross-entropy over its positions (runners.train_data): task answers (the references after the answer
prefix, and the EOS that ends them), second copies of repeated text, and everything else (prompts and
haystack text); so the sparse answers weigh as much as the text. Local layers run the kernels' "xla" path (differentiable), global layers the query-blocked form.

OUT gets the checkpoint (config.json + params/, loadable by model_adapters.load) at every save,
OUT/train_state/ (parameters, optimizer state and step; orbax, atomic) to resume from, OUT/train_log.jsonl
(one line per logged step) and, when done, OUT/training.json (recipe, steps, wall time, final loss).
`--init-from CKPT` starts from a checkpoint of the same preset instead of the preset's init (a second
stage: fresh optimizer and schedule, its own data recipe); training.json then names the source by its
model_fingerprint and carries the source's own training.json.
`--until N` stops after step N of the --steps schedule (a training budget); a later run with a larger
--until continues it, and the result equals one uninterrupted run.
Rerunning the same command resumes from the last saved step and gives the same parameters an
uninterrupted run would; a different recipe in the same OUT is refused.
"""

from __future__ import annotations

import argparse
import functools
from concurrent.futures import ThreadPoolExecutor
import shlex
import sys
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from tqdm import tqdm

from model_adapters.checkpoint import load, model_fingerprint, save
from model_adapters.generation import stop_id
from model_adapters.model import Attention, RAttentionLM
from model_adapters.presets import PRESETS, preset_config
from model_adapters.tokenizers import tokenizer_from_config
from common.errors import UserError
from common.files import append_jsonl, atomic_write_json, atomic_write_jsonl, read_json, read_jsonl
from common.cli import user_errors_exit_2
from runners.train_data import ANSWER_ORDERS, RECALL_PHASE_FORMS, TrainingStream

FINAL_LR_FRACTION = 0.1


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the trained parameters (a resumed run must match it)."""

    preset: str
    steps: int
    context: int
    batch_tokens: int
    lr: float
    warmup: int
    weight_decay: float
    clip: float
    text_fraction: float
    copy_fraction: float
    recall_fraction: float
    recall_steps: int
    recall_length: int
    seed: int
    rla_init_scale: float = 1.0  # RAttention layers' RLA-branch norm scale at step 0 (0: each starts as SWA)
    recall_phase_forms: str = "easy"  # the recall phase's recall rows: "easy" (one compact form) or "all" compact forms
    recall_loss: str = "all"  # a recall row's loss: on "all" tokens of each value, its "first" only, or "first+all"
    recall_length_end: int | None = None  # the recall phase's row length at its end (None: recall_length throughout)
    rla_hold_steps: int = 0  # steps for which RAttention layers' RLA-branch norm scales stay at rla_init_scale
    recall_needle_share: float = 0.5  # share of recall rows of 512+ tokens in RULER's needle-and-question form
    recall_short_questions: float = 0.0  # share of those rows' questions that are RULER's answer prefix alone
    recall_uuid_share: float = 0.2  # share of those rows whose values are UUIDs (the rest numbers)
    recall_multivalue_share: float = 0.0  # share of those rows of 1,024+ tokens with 2-4 values per key, asked all at once
    answer_order: str = "reference"  # task answers' order: RULER's references' ("reference") or "document"
    init_from: str | None = None  # checkpoint whose parameters the run starts from (None: the preset's init)


def recipe_with_defaults(saved: dict) -> dict:
    """A saved recipe (recipe.json, training.json's "recipe") with the fields added since it was written at
    their defaults, which reproduce what it trained."""
    return {**{f.name: f.default for f in fields(Recipe) if f.default is not MISSING}, **saved}


def parse_args(argv=None) -> tuple[Recipe, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m runners.train", description=__doc__.splitlines()[0])
    p.add_argument("--preset", required=True, choices=sorted(PRESETS))
    p.add_argument("--out", required=True, help="checkpoint directory to write (and resume from)")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--context", type=int, default=None, help="training context in tokens (default: the preset's train_context)")
    p.add_argument("--batch-tokens", type=int, default=8192, help="tokens per step (rows = this // the step's length)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip")
    p.add_argument("--text-fraction", type=float, default=0.05, help="share of rows that are plain haystack text")
    p.add_argument("--copy-fraction", type=float, default=0.25, help="share of rows that are a text slice repeated")
    p.add_argument("--recall-fraction", type=float, default=0.0,
                   help="share of rows that are dense key-value recall, after the recall phase")
    p.add_argument("--recall-steps", type=int, default=0,
                   help="length of the first phase, in steps: recall rows (see --recall-phase-forms) and "
                        "repeat rows, at --recall-length tokens")
    p.add_argument("--recall-length", type=int, default=256, help="row length in tokens of the recall phase")
    p.add_argument("--recall-length-end", type=int, default=None,
                   help="grow the recall phase's rows from --recall-length to this many tokens over the phase's second "
                        "half (default: no growth)")
    p.add_argument("--recall-phase-forms", choices=RECALL_PHASE_FORMS, default="easy",
                   help="the recall phase's recall rows: easy (4-letter keys, 4-digit values) or all compact forms "
                        "(2-4 letter or word keys, 4- or 7-digit values)")
    p.add_argument("--recall-loss", choices=RECALL_LOSSES, default="all",
                   help="recall rows' loss: the mean over all tokens of each recalled value; over its first token only "
                        "(the one only a key match predicts; the rest can be copied from the stored value); or the "
                        "sum of the two (first+all: key matching and copying)")
    p.add_argument("--seed", type=int, default=0, help="initialization and data seed")
    p.add_argument("--rla-init-scale", type=float, default=1.0,
                   help="initial scale of RAttention layers' RLA-branch norm (0: each layer starts as its SWA branch "
                        "and grows the linear-attention residual as training finds it useful; no effect on other layers)")
    p.add_argument("--rla-hold-steps", type=int, default=0,
                   help="hold RAttention layers' RLA-branch norm scales at --rla-init-scale for this many steps (with "
                        "--rla-init-scale 0, each RAttention layer is its SWA branch until then; no effect on other "
                        "layers)")
    p.add_argument("--recall-needle-share", type=float, default=0.5,
                   help="share of recall rows of 512+ tokens written as RULER needle sentences and questions "
                        "(the rest compact)")
    p.add_argument("--recall-short-questions", type=float, default=0.0,
                   help="share of needle-form recall questions that are RULER's answer prefix alone (shorter, so "
                        "more keys are asked per row)")
    p.add_argument("--recall-uuid-share", type=float, default=0.2,
                   help="share of needle-form recall rows whose values are RULER's UUIDs (the rest numbers)")
    p.add_argument("--recall-multivalue-share", type=float, default=0.0,
                   help="share of needle-form recall rows of 1,024+ tokens whose keys have 2-4 values each, asked "
                        "with RULER's multi-value question and answered in the order the needles stand")
    p.add_argument("--answer-order", default="reference", choices=ANSWER_ORDERS,
                   help="order of a task answer's values: RULER's references' (reference) or, for the values asked "
                        "for one NIAH key, the order their needles stand in the prompt (document)")
    p.add_argument("--init-from", default=None, metavar="CKPT",
                   help="start from this checkpoint's parameters (same preset; fresh optimizer and schedule): a "
                        "second training stage. Read when the run starts; a resumed run continues from its own state")
    p.add_argument("--until", type=int, default=None,
                   help="stop after this step (default: --steps); the schedule still spans --steps, and rerunning "
                        "with a larger --until continues it exactly")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=10)
    args = p.parse_args(argv)
    config = preset_config(args.preset)
    context = args.context or config.train_context
    if not context or context < 2:
        raise UserError(f"--context: preset {args.preset} has no train_context; pass --context (e.g. 1024)")
    if context > config.max_context:
        raise UserError(f"--context {context} exceeds the preset's max_context {config.max_context}; pass a smaller --context")
    if not 0 <= args.rla_hold_steps <= args.steps:
        raise UserError(f"--rla-hold-steps {args.rla_hold_steps} must be in [0, --steps {args.steps}]")
    for name in ("steps", "batch_tokens", "save_every", "log_every"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')}: must be at least 1, got {getattr(args, name)}")
    if not 0 <= args.warmup < args.steps:
        raise UserError(f"--warmup {args.warmup} must be in [0, --steps)")
    args.until = args.steps if args.until is None else args.until
    if not 1 <= args.until <= args.steps:
        raise UserError(f"--until {args.until} must be in [1, --steps {args.steps}]")
    recipe = Recipe(preset=args.preset, steps=args.steps, context=context, batch_tokens=args.batch_tokens, lr=args.lr,
                    warmup=args.warmup, weight_decay=args.weight_decay, clip=args.clip,
                    text_fraction=args.text_fraction, copy_fraction=args.copy_fraction,
                    recall_fraction=args.recall_fraction, recall_steps=args.recall_steps,
                    recall_length=args.recall_length, seed=args.seed, rla_init_scale=args.rla_init_scale,
                    recall_phase_forms=args.recall_phase_forms, recall_loss=args.recall_loss,
                    recall_length_end=args.recall_length_end, rla_hold_steps=args.rla_hold_steps,
                    recall_needle_share=args.recall_needle_share, recall_short_questions=args.recall_short_questions,
                    recall_uuid_share=args.recall_uuid_share, recall_multivalue_share=args.recall_multivalue_share,
                    answer_order=args.answer_order, init_from=args.init_from)
    return recipe, args


def learning_rate(recipe: Recipe) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(
        0.0, recipe.lr, recipe.warmup, recipe.steps, end_value=recipe.lr * FINAL_LR_FRACTION
    )


def rla_norm_mask(params):
    """params -> the same tree of bools: True on RAttention layers' RLA-branch norm scales."""
    return jax.tree_util.tree_map_with_path(lambda path, _: any(getattr(p, "key", None) == "rla_norm" for p in path),
                                            params)


def optimizer(recipe: Recipe, params) -> optax.GradientTransformation:
    """Clipping, then AdamW; weight decay on matrices (ndim >= 2) only, not on norms' scales. With
    recipe.rla_hold_steps, the RLA-branch norm scales are held for that many steps first (a model without
    RAttention layers gets the same optimizer, state included, with or without it)."""
    decay_mask = jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)
    rla = rla_norm_mask(params)
    hold = []
    if recipe.rla_hold_steps and any(jax.tree.leaves(rla)):  # their gradients times 0 until then: AdamW leaves them be
        released = optax.scale_by_schedule(lambda count: (count >= recipe.rla_hold_steps).astype(jnp.float32))
        hold = [optax.masked(released, rla)]
    return optax.chain(
        *hold,
        optax.clip_by_global_norm(recipe.clip),
        optax.adamw(learning_rate(recipe), b1=0.9, b2=0.95, weight_decay=recipe.weight_decay, mask=decay_mask),
    )


LOSS_TERMS = ("answer", "copy", "recall", "text")  # runners.train_data.Batch.masks order
RECALL_LOSSES = ("all", "first", "first+all")


def first_of_runs(mask):
    """mask [B,N] bool -> [B,N] bool: the first position of each run of True (a recalled value's first token)."""
    return mask & ~jnp.pad(mask[:, :-1], ((0, 0), (1, 0)))


def loss_terms(model: RAttentionLM, tokens, masks, recall_loss: str = "all"):
    """tokens [B,L] int32, masks: one [B,L-1] bool per LOSS_TERMS -> (sum of the mean losses,
    {<term>_loss: mean cross-entropy over its targets, <term>_acc: share of them predicted by argmax,
    recall_first_acc: the same share over each recalled value's first token only}).

    recall_loss="first" takes recall_loss over each recalled value's first token only, "first+all" adds
    that to the mean over all its tokens (recall_acc scores every recalled token either way).

    recall_first_acc is the key-matching accuracy: a value's first token is predicted only by finding its
    key, while the rest mostly follows by copying the stored value that starts with it (a model that picks
    a stored value at random and copies it scores high recall_acc and chance recall_first_acc).
    A term with no targets in the batch contributes 0 to its loss and accuracies.
    """
    logits = model(tokens[:, :-1], impl="xla")  # [B,L-1,V] float32
    targets = tokens[:, 1:]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    hit = jnp.argmax(logits, axis=-1) == targets
    terms = {}

    def mean(values, mask):
        return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1)

    for name, mask in zip(LOSS_TERMS, masks):
        terms[f"{name}_loss"] = mean(ce, mask)
        terms[f"{name}_acc"] = mean(hit, mask)
    first = first_of_runs(masks[LOSS_TERMS.index("recall")])
    terms["recall_first_acc"] = mean(hit, first)
    if recall_loss == "first":
        terms["recall_loss"] = mean(ce, first)
    elif recall_loss == "first+all":
        terms["recall_loss"] = mean(ce, first) + terms["recall_loss"]
    return sum(terms[f"{name}_loss"] for name in LOSS_TERMS), terms


def make_train_step(graphdef, tx: optax.GradientTransformation, recall_loss: str = "all"):
    """A jitted (params, opt_state, tokens, masks) -> (params, opt_state, metrics); one compile per row
    length (runners.train_data's buckets)."""

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, tokens, masks):
        def loss_fn(p):
            return loss_terms(nnx.merge(graphdef, p), tokens, masks, recall_loss)

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        metrics = {"loss": loss, **terms, "grad_norm": optax.tree.norm(grads)}
        return optax.apply_updates(params, updates), opt_state, metrics

    return train_step


class Trainer:
    """One training run in OUT: builds or restores the state, steps, logs and saves."""

    def __init__(self, recipe: Recipe, out: str | Path):
        self.recipe = recipe
        self.out = Path(out).absolute()
        self.config = preset_config(recipe.preset)
        self.tokenizer = tokenizer_from_config(self.out, self.config.tokenizer.to_dict())
        model = self._initial_model()
        self.graphdef, state = nnx.split(model)
        self.params = nnx.to_pure_dict(state)
        self.tx = optimizer(recipe, self.params)
        self.opt_state = self.tx.init(self.params)
        self.step = 0
        self.elapsed = 0.0  # training seconds before this process (resumed runs)
        self.stream = TrainingStream(
            self.tokenizer, context=recipe.context, steps=recipe.steps, seed=recipe.seed, bos_id=self.config.bos_id,
            eos_id=self._eos_id(), batch_tokens=recipe.batch_tokens, text_fraction=recipe.text_fraction,
            copy_fraction=recipe.copy_fraction, recall_fraction=recipe.recall_fraction,
            recall_steps=recipe.recall_steps, recall_length=recipe.recall_length,
            recall_phase_forms=recipe.recall_phase_forms, recall_length_end=recipe.recall_length_end,
            recall_needle_share=recipe.recall_needle_share, recall_short_questions=recipe.recall_short_questions,
            recall_uuid_share=recipe.recall_uuid_share, recall_multivalue_share=recipe.recall_multivalue_share,
            answer_order=recipe.answer_order,
        )
        self.manager = ocp.CheckpointManager(
            self.out / "train_state", options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
        )
        self.log_path = self.out / "train_log.jsonl"

    def _initial_model(self) -> RAttentionLM:
        """The preset's model at its seeded init (RAttention layers' RLA-branch norm scales at rla_init_scale),
        or, with init_from, that checkpoint's model, whose config must equal the preset's; self.init_source then
        names it (model_fingerprint, and its training.json if it has one) for training.json."""
        if self.recipe.init_from is None:
            self.init_source = None
            model = RAttentionLM(self.config, rngs=nnx.Rngs(self.recipe.seed))
            for _, module in nnx.iter_modules(model):
                if isinstance(module, Attention) and module.kind == "rattention":
                    module.rla_norm.scale[...] = jnp.full_like(module.rla_norm.scale[...], self.recipe.rla_init_scale)
            return model
        source = Path(self.recipe.init_from)
        model, _ = load(source)
        self.init_source = {"fingerprint": model_fingerprint(source),
                            "training": read_json(source / "training.json") if (source / "training.json").is_file() else None}
        if model.config != self.config:
            raise UserError(f"--init-from {self.recipe.init_from} is not a {self.recipe.preset} model (its config.json "
                            f"differs from the preset's); pass a checkpoint of that preset")
        return model

    def _eos_id(self) -> int:
        eos = stop_id(self.config, self.tokenizer)
        if eos is None:
            raise UserError(f"preset {self.recipe.preset}: no eos_id in its config or tokenizer; training needs one to end answers")
        return eos

    def _tree(self) -> dict:
        return {"params": self.params, "opt_state": self.opt_state, "step": self.step, "elapsed": self.elapsed}

    def restore(self) -> None:
        """Continues from OUT/train_state if present; refuses one made with a different recipe."""
        recipe_path = self.out / "recipe.json"
        if recipe_path.is_file():
            saved = recipe_with_defaults(read_json(recipe_path))
            if saved != asdict(self.recipe):
                diff = ", ".join(f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in asdict(self.recipe).items() if saved.get(k) != v)
                raise UserError(f"{self.out} holds a run with a different recipe ({diff}); use a new --out")
        latest = self.manager.latest_step()
        if latest is None:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(recipe_path, asdict(self.recipe))
            if self.log_path.exists():
                self.log_path.unlink()
            return
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)), self._tree())
        try:
            tree = self.manager.restore(latest, args=ocp.args.StandardRestore(target))
        except ValueError as e:  # orbax: the saved tree's structure or shapes differ from this recipe's
            raise UserError(f"{self.out}/train_state (step {latest}) does not match the state this recipe trains "
                            f"({str(e).splitlines()[0][:200]}); use a new --out") from e
        self.params, self.opt_state = tree["params"], tree["opt_state"]
        self.step, self.elapsed = int(tree["step"]), float(tree["elapsed"])
        if self.log_path.exists():  # drop lines logged after the restored step
            lines = [r for r in read_jsonl(self.log_path, allow_torn_tail=True) if r["step"] <= self.step]
            atomic_write_jsonl(self.log_path, lines)

    def save(self) -> None:
        self.manager.save(self.step, args=ocp.args.StandardSave(self._tree()), force=True)
        self.manager.wait_until_finished()
        save(nnx.merge(self.graphdef, self.params), self.out)

    def run(self, *, until: int, save_every: int, log_every: int, progress: bool = True) -> None:
        """Trains to step `until` (<= recipe.steps), logging every `log_every` steps and saving every
        `save_every` steps and at `until`."""
        train_step = make_train_step(self.graphdef, self.tx, self.recipe.recall_loss)
        schedule = learning_rate(self.recipe)
        window = []
        start = time.perf_counter() - self.elapsed
        with open(self.log_path, "a", encoding="utf-8") as log, tqdm(
            initial=self.step, total=self.recipe.steps, unit="step", desc=self.recipe.preset, disable=not progress
        ) as bar, ThreadPoolExecutor(1) as prefetch:  # the next batch is made while this step runs
            upcoming = prefetch.submit(self.stream.batch, self.step)
            while self.step < until:
                batch = upcoming.result()
                if self.step + 1 < until:
                    upcoming = prefetch.submit(self.stream.batch, self.step + 1)
                self.params, self.opt_state, metrics = train_step(self.params, self.opt_state, batch.tokens, batch.masks)
                self.step += 1
                window.append(metrics)
                if self.step % log_every == 0 or self.step == until:
                    means = {k: float(np.mean([float(m[k]) for m in window])) for k in window[0]}
                    if not np.isfinite(means["loss"]):
                        raise UserError(f"loss is {means['loss']} at step {self.step}; lower --lr or raise --warmup, in a new --out")
                    self.elapsed = time.perf_counter() - start
                    append_jsonl(log, {"step": self.step, **means, "lr": float(schedule(self.step - 1)),
                                       "elapsed_s": round(self.elapsed, 1)})
                    bar.set_postfix(answer=f"{means['answer_loss']:.3f}", recall_acc=f"{means['recall_acc']:.3f}")
                    window = []
                bar.update(1)
                if self.step % save_every == 0 or self.step == until:
                    self.elapsed = time.perf_counter() - start
                    self.save()


@user_errors_exit_2
def main(argv=None) -> int:
    recipe, args = parse_args(argv)
    trainer = Trainer(recipe, args.out)
    trainer.restore()
    if trainer.step > args.until:
        raise UserError(f"{trainer.out} is already trained to step {trainer.step}, past --until {args.until}; "
                        f"raise --until or use a new --out")
    done = trainer.out / "training.json"
    if trainer.step == args.until and done.is_file() and read_json(done)["steps"] == trainer.step:
        print(f"{trainer.out}: already trained to step {trainer.step}")
        return 0
    trainer.run(until=args.until, save_every=args.save_every, log_every=args.log_every)
    last = read_jsonl(trainer.log_path)[-1]
    summary = {
        "command": "python -m runners.train " + shlex.join(sys.argv[1:] if argv is None else argv),
        "recipe": asdict(recipe),
        "steps": trainer.step,
        "schedule_steps": recipe.steps,
        "wall_s": round(trainer.elapsed, 1),
        "final": {k: v for k, v in last.items() if k.endswith(("loss", "_acc"))},
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
    }
    if recipe.init_from:
        summary["init_from"] = trainer.init_source
    atomic_write_json(trainer.out / "training.json", summary)
    print(f"trained {recipe.preset} for {trainer.step} steps in {trainer.elapsed:.0f} s; final loss {last['loss']:.4f} "
          f"(answer {last['answer_loss']:.4f}); checkpoint in {trainer.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
