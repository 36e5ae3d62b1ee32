"""The demo models' training stream: key-value recall, RULER-style task samples and haystack text, made on the fly.

    stream = TrainingStream(tokenizer, context=1024, steps=2200, seed=0, bos_id=256, eos_id=257,
                            recall_steps=1000, recall_fraction=0.3)
    batch = stream.batch(step)   # tokens [B, L] int32; answer/copy/recall/text masks [B, L - 1] bool

Phases: the first `recall_steps` steps are at `recall_length` tokens (with `recall_length_end`, growing
from it to that over the phase's second half, in steps of RECALL_LENGTH_STEP tokens), half recall rows
(dense associative recall, `_recall_row`: with `recall_phase_forms="easy"` in their easy form, 4-letter keys and 4-digit
values; with "all", in every compact form, 2-4 letter or word keys and 4- or 7-digit values) and half repeat
rows (a random string of letters and digits, then spans of it in random order: `_repeat_row`), whose
spans only a content match back into the string predicts: the induction that retrieval is built from,
as a dense signal. After the phase, the mixture below, with `recall_fraction` of the rows recall rows
in all their forms. The length curriculum starts when the recall phase ends. (What each phase did for
the demo models is measured in README "Demo models".)

Lengths: each step's rows share one length L from the buckets 3/8, 1/2, 3/4 and 1 x context (those at
which some task's sample fits: 512, 768 and 1024 for the byte-level demos at 1,024), with
B = batch_tokens // L rows, so a step costs about the same at every length. Curriculum: the longest
bucket allowed grows from the shortest to the full context over the first CURRICULUM_FRACTION of the
steps; a step takes the longest allowed bucket with probability 1/2, else one of the allowed uniformly.
Short samples make retrieval easy to discover (fewer positions to attend over); the full context stays
the most frequent length once the curriculum is over.

Rows (drawn independently): with probability `recall_fraction`, a recall row; with `text_fraction`, a random slice of the haystack essay text
(default: the shipped corpus); with probability `copy_fraction`, such a slice in which a few short spans
of the first half are repeated at random places in the second half (those repeats are "copy" targets:
predicting them needs content-matched attention back over the row, the induction that retrieval is
built from, with a denser signal than a task row's few answer tokens); otherwise a sample of a task, uniform over the suite's tasks that need no external
data (the 11 non-QA tasks) and fit length L. A task row is
`[bos] + input + answer_prefix + sep + ", ".join(outputs) + [eos]`, right-padded with eos; the answer
and its eos are "answer" targets, the rest "text". Samples are generated with room for ANSWER_ROOM
tokens after the prompt instead of the task's full tokens_to_generate (RULER's decode budget, far more
than the answers take), so that retrieval tasks fit the short buckets; a sample whose answer does not
fit is drawn again with the task's own budget (and failing that, another task is drawn).

Seeds: row r of step s comes from `default_rng([TRAIN_SEED_TAG, seed, s, r])`, a four-word entropy
that starts with a fixed tag, while evaluation files use `[seed, crc32(task), length]` (three words,
runners.prepare.file_rng), so no training row shares a random stream with an evaluation sample. A
batch depends only on (seed, step): a resumed run sees exactly the rows an uninterrupted run would.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ruler_tasks.base import Context, Sample
from ruler_tasks.chat_templates import resolve_chat_template
from ruler_tasks.corpus import load_text, normalize
from common.errors import UserError
from ruler_tasks.registry import Task, load_registry
from ruler_tasks.templates import NIAH_NEEDLE, NOISE_LINE
from ruler_tasks.words import random_values

TRAIN_SEED_TAG = zlib.crc32(b"rattn-ruler/train")
BUCKET_FRACTIONS = (3 / 8, 1 / 2, 3 / 4, 1)
CURRICULUM_FRACTION = 0.4
ANSWER_ROOM = 48
COPY_SPANS = 4
COPY_SPAN_TOKENS = (16, 48)
RECALL_LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)
REPEAT_SYMBOLS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", np.uint8)
REPEAT_SPAN_TOKENS = (8, 17)
RECALL_PHASE_REPEAT_SHARE = 0.5
NEEDLE_RECALL_MIN_LENGTH = 512
MULTIVALUE_RECALL_MIN_LENGTH = 1024  # four needles per key and their question fit from here
RECALL_PHASE_FORMS = ("easy", "all")
ANSWER_ORDERS = ("reference", "document")
RECALL_LENGTH_STEP = 64
RECALL_QUESTION = "What is the special magic {kind} for {key} mentioned in the provided text? "
RECALL_ANSWER_PREFIX = "The special magic {kind} for {key} mentioned in the provided text is "
RECALL_QUESTION_ALL = "What are all the special magic {kind}s for {key} mentioned in the provided text? "
RECALL_ANSWER_PREFIX_ALL = "The special magic {kind}s for {key} mentioned in the provided text are "


def recall_pairs(rng: np.random.Generator, count: int, keys: str, value_kind: str,
                 value_chars: int | None = None) -> list[tuple[str, str]]:
    """`count` distinct-key pairs: keys "words" (wonderwords adjective-noun, RULER's), "2-4" random letters
    or a fixed number of them ("4"); values of RULER's `value_kind` ("numbers", "uuids"), cut to value_chars."""
    pairs: dict[str, str] = {}
    while len(pairs) < count:
        if keys == "words":
            key = random_values("words", rng, 1)[0]
        else:
            key = bytes(rng.choice(RECALL_LETTERS, int(rng.integers(2, 5)) if keys == "2-4" else int(keys))).decode()
        pairs.setdefault(key, random_values(value_kind, rng, 1)[0][:value_chars])
    return list(pairs.items())


def recall_row_tokens(encode, bos: list[int], pairs: list[tuple[str, str]], length: int, rng: np.random.Generator,
                      needle_kind: str | None = None, short_questions: float = 0.0, values_per_key: int = 1,
                      ) -> tuple[list[int], np.ndarray, list[tuple[str, str]]]:
    """A recall row from key-value pairs -> (tokens: bos, the pairs that fit in 45% of `length`, then queries
    for their keys in shuffled order, at most `length` in all; recall targets [len(tokens) - 1] bool, each
    queried value's tokens; the stored pairs in the order they stand).

    Compact (`key:value;` pairs, `?key:value;` queries) when needle_kind is None; else RULER's NIAH needle
    sentences for values of that kind ("number", "uuid"), 30% of them after a noise line, and NIAH questions
    (RULER's question then its answer prefix; with probability `short_questions` each, the answer prefix alone,
    which names the key just as closely before the value in half the tokens).
    With values_per_key > 1, each run of that many pairs is one key (the run's first) with their values:
    the stored pairs are shuffled, and a query (RULER's multi-value question in the needle layout) is
    answered by the key's values in the order they stand, comma-separated, each value scored.
    """
    plural = values_per_key > 1
    if needle_kind is None:
        def store(k, v):
            return f"{k}:{v};"
        def ask(k):
            return f"?{k}:"
        end = ";"
    else:
        question, prefix = (RECALL_QUESTION_ALL, RECALL_ANSWER_PREFIX_ALL) if plural else (RECALL_QUESTION, RECALL_ANSWER_PREFIX)
        def store(k, v):
            return NIAH_NEEDLE.format(type_needle_v=needle_kind + "s", key=k, value=v) + "\n"
        def ask(k):
            short = short_questions > 0 and rng.random() < short_questions
            return ("" if short else question.format(kind=needle_kind, key=k)) + prefix.format(kind=needle_kind, key=k)
        end = ".\n"
    ids, scored = list(bos), [False] * len(bos)
    needles, keys = [], []  # needles: (tokens, key, value)
    used, budget = len(ids), int(0.45 * length)

    def after_noise(piece):
        return encode(NOISE_LINE + "\n") + piece if needle_kind is not None and rng.random() < 0.3 else piece

    for start in range(0, len(pairs) - values_per_key + 1, values_per_key):
        k, values = pairs[start][0], [v for _, v in pairs[start : start + values_per_key]]
        pieces = [encode(store(k, v)) for v in values]
        if plural:  # a key's noise lines count toward the budget, so its question still fits
            pieces = [after_noise(piece) for piece in pieces]
        if used + sum(map(len, pieces)) > budget:
            break
        for v, piece in zip(values, pieces):
            piece = piece if plural else after_noise(piece)  # one value per key: noise drawn once the needle fits
            needles.append((piece, k, v))
            used += len(piece)
        keys.append(k)
    if plural:
        needles = [needles[i] for i in rng.permutation(len(needles))]
    for piece, _, _ in needles:
        ids += piece
        scored += [False] * len(piece)
    sep, tail = encode(", "), encode(end)
    for i in rng.permutation(len(keys)):
        prompt = encode(ask(keys[i]))
        values = [encode(v) for _, k, v in needles if k == keys[i]]
        if len(ids) + len(prompt) + sum(map(len, values)) + len(sep) * (len(values) - 1) + len(tail) > length:
            break
        ids += prompt
        scored += [False] * len(prompt)
        for j, value in enumerate(values):
            if j:
                ids += sep
                scored += [False] * len(sep)
            ids += value
            scored += [True] * len(value)
        ids += tail
        scored += [False] * len(tail)
    return ids, np.asarray(scored[1:], bool), [(k, v) for _, k, v in needles]


@dataclass(frozen=True)
class Batch:
    """tokens [B, L] int32; answer_mask, copy_mask, recall_mask, text_mask [B, L - 1] bool mark the targets
    tokens[:, 1:] (column t: whether tokens[:, t + 1] is scored, and as what); names [B]: each row's task,
    "text", "copy", "repeat" (scored as copy) or "recall"."""

    tokens: np.ndarray
    answer_mask: np.ndarray
    copy_mask: np.ndarray
    recall_mask: np.ndarray
    text_mask: np.ndarray
    names: tuple[str, ...]

    @property
    def masks(self) -> tuple[np.ndarray, ...]:
        """(answer, copy, recall, text): the loss terms' masks, in runners.train.LOSS_TERMS order."""
        return self.answer_mask, self.copy_mask, self.recall_mask, self.text_mask


def document_order(sample: Sample) -> list[str]:
    """sample.outputs with the values asked for each NIAH key (meta "queries", in the question's order) in
    the order they stand in the prompt; other tasks' outputs as they are. RULER lists a key's values in the
    order they were drawn, which the prompt does not show (and string_match_all ignores)."""
    queries = sample.meta.get("queries")
    if not queries or len(sample.outputs) % len(queries):
        return list(sample.outputs)
    per_key = len(sample.outputs) // len(queries)
    groups = [sample.outputs[i : i + per_key] for i in range(0, len(sample.outputs), per_key)]
    return [value for group in groups for value in sorted(group, key=sample.input.find)]


def answer_text(answer_prefix: str, outputs: list[str]) -> str:
    """The continuation a task row is trained on: the references, comma-separated, after the prefix."""
    sep = "" if not answer_prefix or answer_prefix[-1].isspace() else " "
    return sep + ", ".join(outputs)


class TrainingStream:
    """Deterministic batches of task samples and haystack text at lengths up to `context` tokens."""

    def __init__(self, tokenizer, *, context: int, steps: int, seed: int, bos_id: int | None, eos_id: int,
                 batch_tokens: int = 8192, text_fraction: float = 0.05, copy_fraction: float = 0.25,
                 recall_fraction: float = 0.0, recall_steps: int = 0, recall_length: int = 256,
                 recall_phase_forms: str = "easy", recall_length_end: int | None = None,
                 recall_needle_share: float = 0.5, recall_short_questions: float = 0.0, recall_uuid_share: float = 0.2,
                 recall_multivalue_share: float = 0.0, answer_order: str = "reference", haystack: str | None = None,
                 chat_template: str = "base"):
        fractions = (text_fraction, copy_fraction, recall_fraction)
        if min(fractions) < 0 or sum(fractions) > 1:
            raise UserError(f"--text-fraction {text_fraction}, --copy-fraction {copy_fraction} and --recall-fraction "
                            f"{recall_fraction} must be >= 0 with a sum <= 1")
        if batch_tokens < context:
            raise UserError(f"--batch-tokens {batch_tokens} is less than one row of --context {context}; raise it")
        if not 0 <= recall_steps < steps:
            raise UserError(f"--recall-steps {recall_steps} must be in [0, --steps {steps})")
        if not 64 <= recall_length <= context:
            raise UserError(f"--recall-length {recall_length} must be in [64, --context {context}]")
        recall_length_end = recall_length if recall_length_end is None else recall_length_end
        if not recall_length <= recall_length_end <= context:
            raise UserError(f"--recall-length-end {recall_length_end} must be in [--recall-length {recall_length}, "
                            f"--context {context}]")
        for name, share in (("--recall-needle-share", recall_needle_share), ("--recall-short-questions", recall_short_questions),
                            ("--recall-uuid-share", recall_uuid_share), ("--recall-multivalue-share", recall_multivalue_share)):
            if not 0 <= share <= 1:
                raise UserError(f"{name} {share} must be in [0, 1]")
        if answer_order not in ANSWER_ORDERS:
            raise UserError(f"--answer-order {answer_order!r}: pick one of {', '.join(ANSWER_ORDERS)}")
        if recall_phase_forms not in RECALL_PHASE_FORMS:
            raise UserError(f"--recall-phase-forms {recall_phase_forms!r}: pick one of {', '.join(RECALL_PHASE_FORMS)}")
        self.tokenizer = tokenizer
        self.context = context
        self.steps = steps
        self.seed = seed
        self.bos = [] if bos_id is None else [bos_id]
        self.eos_id = eos_id
        self.batch_tokens = batch_tokens
        self.text_fraction = text_fraction
        self.copy_fraction = copy_fraction
        self.recall_fraction = recall_fraction
        self.recall_steps = recall_steps
        self.recall_length = recall_length
        self.recall_length_end = recall_length_end
        self.recall_phase_forms = recall_phase_forms
        self.recall_needle_share = recall_needle_share
        self.recall_short_questions = recall_short_questions
        self.recall_uuid_share = recall_uuid_share
        self.recall_multivalue_share = recall_multivalue_share
        self.answer_order = answer_order
        self.options = {"haystack": haystack} if haystack else {}
        self.chat = resolve_chat_template(chat_template)
        self.text = normalize(load_text(haystack))
        registry = load_registry()
        tasks = [t for t in (registry.get(n) for n in registry.names()) if not t.generator.data_missing(self.options)]
        self.buckets = sorted({max(2, int(f * context)) for f in BUCKET_FRACTIONS})
        self.tasks_at = {length: [t for t in tasks if self._fits(t, length)] for length in self.buckets}
        too_short = [t.name for t in tasks if t not in self.tasks_at[context]]
        if too_short:
            raise UserError(f"--context {context} is too short for task(s) {', '.join(too_short)}; use --context 1024 or more")
        self.buckets = [length for length in self.buckets if self.tasks_at[length]]

    def _sample(self, task: Task, length: int, rng: np.random.Generator, room: int) -> Sample:
        return task.generator.sample(Context(length, room, self.tokenizer, self.chat, self.options, seed=self.seed), rng)

    def _fits(self, task: Task, length: int) -> bool:
        try:
            self._sample(task, length, np.random.default_rng(0), min(ANSWER_ROOM, task.tokens_to_generate))
        except UserError:
            return False
        return True

    def length_at(self, step: int, rng: np.random.Generator) -> int:
        """The step's row length: in the recall phase, recall_length, then over its second half a linear
        ramp to recall_length_end (rounded down to a multiple of RECALL_LENGTH_STEP); after it, the
        curriculum's longest allowed bucket half the time, else any allowed one."""
        if step < self.recall_steps:
            half = self.recall_steps // 2
            ramp = max(0, step - half) / max(1, self.recall_steps - 1 - half)  # 1 at the phase's last step
            length = self.recall_length + ramp * (self.recall_length_end - self.recall_length)
            return max(self.recall_length, int(length) // RECALL_LENGTH_STEP * RECALL_LENGTH_STEP)
        progress = min(1.0, (step - self.recall_steps) / max(1.0, CURRICULUM_FRACTION * (self.steps - self.recall_steps)))
        limit = self.buckets[0] + progress * (self.context - self.buckets[0])
        allowed = [length for length in self.buckets if length <= limit]
        return allowed[-1] if rng.random() < 0.5 else allowed[rng.integers(len(allowed))]

    def _task_row(self, length: int, rng: np.random.Generator) -> tuple[list[int], int, str]:
        """(tokens, index of the first answer token, task name) of one sample whose answer fits `length`.

        Tries ANSWER_ROOM, then the task's own tokens_to_generate; a task whose answer fits neither at this
        length (cwe's ten words in a short bucket, say) gives way to another draw.
        """
        tasks = self.tasks_at[length]
        while True:
            task = tasks[rng.integers(len(tasks))]
            sample_seed = rng.integers(2**63)
            for room in (min(ANSWER_ROOM, task.tokens_to_generate), task.tokens_to_generate):
                try:
                    sample = self._sample(task, length, np.random.default_rng(sample_seed), room)
                except UserError:
                    continue
                prompt = self.bos + list(self.tokenizer.encode(sample.input + sample.answer_prefix))
                outputs = document_order(sample) if self.answer_order == "document" else sample.outputs
                answer = list(self.tokenizer.encode(answer_text(sample.answer_prefix, outputs))) + [self.eos_id]
                if len(prompt) + len(answer) <= length:
                    return prompt + answer, len(prompt), task.name

    def _text_slice(self, tokens: int, rng: np.random.Generator) -> list[int]:
        """`tokens` tokens of the haystack text from a random character offset."""
        span = 8 * tokens  # characters: enough for `tokens` tokens of any tokenizer
        start = int(rng.integers(max(1, len(self.text) - span)))
        return list(self.tokenizer.encode(self.text[start:start + span]))[:tokens]

    def _copy_row(self, length: int, rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
        """(bos + haystack text with COPY_SPANS spans of its first half repeated in its second half, copy
        targets [length - 1] bool).

        Each span (COPY_SPAN_TOKENS long) lands at a random offset inside its own slot of the second half,
        so the distance back to its source varies and only matching content (not a fixed offset) predicts
        it. Targets from the span's third token on are "copy" (its first two say which span this is).
        """
        text = np.asarray(self._text_slice(length - len(self.bos), rng))
        copy = np.zeros(length - 1, bool)
        half = len(text) // 2
        slot = (len(text) - half) // COPY_SPANS
        for i in range(COPY_SPANS):
            span = int(rng.integers(COPY_SPAN_TOKENS[0], min(COPY_SPAN_TOKENS[1], slot) + 1))
            source = int(rng.integers(0, half - span + 1))
            dest = half + i * slot + int(rng.integers(0, slot - span + 1))
            text[dest:dest + span] = text[source:source + span]
            copy[len(self.bos) + dest + 1 : len(self.bos) + dest + span - 1] = True  # column t scores token t + 1
        return self.bos + text.tolist(), copy

    def _repeat_row(self, length: int, rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
        """(bos + s + "|" + spans of s in random order, for a random string s of letters and digits; copy
        targets [len(tokens) - 1] bool).

        Each span (REPEAT_SPAN_TOKENS long, from a random offset of s) is scored from its third token on:
        its first two say which span it is, after which only a content match back into s predicts the
        next token. A span's distance back to its source varies, so a fixed-offset copy does not do it.
        """
        sep = list(self.tokenizer.encode("|"))
        half = (length - len(self.bos) - len(sep)) // 2
        s = list(self.tokenizer.encode(bytes(rng.choice(REPEAT_SYMBOLS, half)).decode()))[:half]
        ids = self.bos + s + sep
        copy = []
        while len(ids) < length:
            span = min(int(rng.integers(*REPEAT_SPAN_TOKENS)), length - len(ids), len(s))
            source = int(rng.integers(0, len(s) - span + 1))
            ids += s[source:source + span]
            copy += [False] * min(2, span) + [True] * (span - 2)
        mask = np.zeros(len(ids) - 1, bool)
        mask[len(ids) - 1 - len(copy):] = copy  # column t scores token t + 1
        return ids, mask

    def _recall_row(self, length: int, rng: np.random.Generator, easy: bool = False) -> tuple[list[int], np.ndarray]:
        """(tokens: bos + key-value pairs then queries for them, at most `length` of them; recall targets
        [len(tokens) - 1] bool): dense associative recall, every queried value scored.

        Rows are compact (`key:value;` pairs, then `?key:value;` queries in shuffled order) or, a share
        `recall_needle_share` of those of NEEDLE_RECALL_MIN_LENGTH tokens or more (where several needles and
        questions fit), RULER-shaped: NIAH needle sentences among noise lines, then NIAH questions each followed
        by its value (`recall_short_questions` of them the answer prefix alone: recall_row_tokens); a share
        `recall_multivalue_share` of those of MULTIVALUE_RECALL_MIN_LENGTH tokens or more hold 2-4 needles per
        key and ask RULER's multi-value question.
        Keys are 2-4 random letters or wonderwords adjective-noun pairs (RULER's word keys); values are
        RULER's 7-digit numbers, or 4-digit numbers, or (in a share `recall_uuid_share` of needle rows) UUIDs.
        An `easy` row is compact, with 4-letter keys and 4-digit values.
        """
        needle_format = not easy and length >= NEEDLE_RECALL_MIN_LENGTH and rng.random() < self.recall_needle_share
        word_keys = not easy and rng.random() < 0.5
        value_kind = "uuids" if needle_format and rng.random() < self.recall_uuid_share else "numbers"
        short_values = value_kind == "numbers" and (easy or rng.random() < 0.3)
        multivalue = (needle_format and length >= MULTIVALUE_RECALL_MIN_LENGTH and self.recall_multivalue_share > 0
                      and rng.random() < self.recall_multivalue_share)
        values_per_key = int(rng.integers(2, 5)) if multivalue else 1
        keys = "words" if word_keys else "4" if easy else "2-4"
        pairs = recall_pairs(rng, length // 8, keys, value_kind, 4 if short_values else None)  # more than fit
        ids, scored, _ = recall_row_tokens(self.tokenizer.encode, self.bos, pairs, length, rng,
                                           needle_kind=value_kind[:-1] if needle_format else None,
                                           short_questions=self.recall_short_questions, values_per_key=values_per_key)
        return ids, scored

    def batch(self, step: int) -> Batch:
        length = self.length_at(step, np.random.default_rng([TRAIN_SEED_TAG, self.seed, step]))
        rows = self.batch_tokens // length
        tokens = np.full((rows, length), self.eos_id, np.int32)
        answer_mask = np.zeros((rows, length - 1), bool)
        copy_mask = np.zeros((rows, length - 1), bool)
        recall_mask = np.zeros((rows, length - 1), bool)
        text_mask = np.zeros((rows, length - 1), bool)
        names = []
        recall_phase = step < self.recall_steps
        recall_fraction = 1.0 if recall_phase else self.recall_fraction
        for row in range(rows):
            rng = np.random.default_rng([TRAIN_SEED_TAG, self.seed, step, row])
            draw = rng.random()
            if recall_phase and draw < RECALL_PHASE_REPEAT_SHARE:
                ids, copy = self._repeat_row(length, rng)
                split, target, name = len(ids), None, "repeat"
                copy_mask[row, : len(ids) - 1] = copy
            elif draw < recall_fraction:
                ids, recall = self._recall_row(length, rng, easy=recall_phase and self.recall_phase_forms == "easy")
                split, target, name = len(ids), None, "recall"
                recall_mask[row, : len(ids) - 1] = recall
            elif draw < recall_fraction + self.text_fraction:
                ids, name = (self.bos + self._text_slice(length - len(self.bos), rng)), "text"
                split, target = len(ids), None
            elif draw < recall_fraction + self.text_fraction + self.copy_fraction:
                ids, copy = self._copy_row(length, rng)
                split, target, name = len(ids), None, "copy"
                copy_mask[row, : len(ids) - 1] = copy[: len(ids) - 1]
            else:
                ids, split, name = self._task_row(length, rng)
                target = answer_mask
            tokens[row, : len(ids)] = ids
            text_mask[row, : split - 1] = ~(copy_mask[row, : split - 1] | recall_mask[row, : split - 1])  # targets tokens[1:split]
            if target is not None:
                target[row, split - 1 : len(ids) - 1] = True  # targets tokens[split:]
            names.append(name)
        return Batch(tokens, answer_mask, copy_mask, recall_mask, text_mask, tuple(names))
