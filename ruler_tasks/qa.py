"""RULER's QA tasks (qa.py): a question, its gold document(s) hidden among distractors, shuffled.

qa_1 is this generator on SQuAD v2 dev, qa_2 on HotpotQA dev (distractor); `ruler_tasks.qa_data`
loads them. Sample i asks question i in file order, as RULER does (wrapping past the last; when its
gold documents do not fit the length, the next one in file order that fits). Documents are taken in
RULER's order of preference: the gold ones, the question's related ones (the other paragraphs of its
SQuAD article / its other HotpotQA paragraphs) in random order, then random others, packed into the
token budget (first-fit, then one best swap) so that the prompt fills it (>= 95%) even at 1K. The
chosen documents, in that order, get RULER's fixed shuffle: `random.Random(42).shuffle`, the
permutation RULER applies with its default seed, which depends only on the number of documents (so
the gold document's position is a function of the document count, as in RULER). They are written as
"Document {i}:\\n{text}" joined by blank lines inside RULER's template (version 2). The data path
is the task's `path` argument, else the run's option named after the dataset (`squad` / `hotpotqa`),
else the RULER_SQUAD / RULER_HOTPOTQA environment variable.

meta: dataset, question index, number of documents, the gold documents' numbers (1-based, as in the
prompt) and their depths (number - 1) / number of documents.

Differences from RULER, none of which changes the prompt format: RULER uses one document count per
length (found on sample 0, shrunk by 10 when a sample overflows, so it crashes below 4K); here each
sample fits its own documents. RULER keeps related documents in file order when all of them are
taken; here they are always in random order (they are interchangeable distractors).
"""

from __future__ import annotations

import functools
import random
from typing import Mapping

import numpy as np

from ruler_tasks import qa_data
from ruler_tasks.base import MIN_FILL, Context, PromptFrame, Sample, TaskGenerator, require_fill
from common.errors import UserError
from common.files import fingerprint
from ruler_tasks.length_fit import count_pieces, count_tokens, fit
from ruler_tasks.registry import register_generator
from ruler_tasks.templates import QA_ANSWER_PREFIX, QA_DOCUMENT, QA_TEMPLATE

DOC_SEPARATOR = "\n\n"
RULER_SHUFFLE_SEED = 42  # RULER's default --random_seed, which seeds its per-sample document shuffle
FILL_SCAN = 64  # candidates counted beyond the budget (x4 while the gap stays open), for packing
COUNT_BATCH = 256  # documents counted per tokenizer call
TARGET_FILL = 0.98  # below this estimated fill, packing looks at more candidates


@functools.lru_cache(maxsize=64)
def ruler_shuffle(n: int) -> np.ndarray:
    """RULER's fixed document shuffle of n documents: out[k] = the index (in order of preference) of the
    k-th document in the prompt, shape (n,)."""
    order = list(range(n))
    random.Random(RULER_SHUFFLE_SEED).shuffle(order)
    return np.asarray(order, dtype=np.int64)


def pack(costs: np.ndarray, n_required: int, room: int) -> tuple[np.ndarray, int]:
    """Items with `costs` (shape (m,)) packed into `room`, the first `n_required` always taken.

    First-fit in order of preference (the longest fitting prefix by a search on the cumulative sums,
    then each later item that still fits), then the one swap of a taken optional item for an untaken
    one that best fills what is left. Returns (the taken indices, sorted; their total cost).
    """
    cum = np.cumsum(costs)
    k = max(int(np.searchsorted(cum, room, side="right")), n_required)
    taken = np.zeros(len(costs), dtype=bool)
    taken[:k] = True
    used = int(cum[k - 1])
    j = k
    while j < len(costs):
        fitting = np.flatnonzero(costs[j:] <= room - used)
        if not fitting.size:
            break
        j += int(fitting[0])
        taken[j] = True
        used += int(costs[j])
        j += 1
    out_ids = np.flatnonzero(~taken)
    in_ids = np.flatnonzero(taken[n_required:]) + n_required
    if out_ids.size and in_ids.size and used < room:
        by_cost = out_ids[np.argsort(costs[out_ids], kind="stable")]
        best = np.searchsorted(costs[by_cost], costs[in_ids] + (room - used), side="right") - 1
        gain = np.where(best >= 0, costs[by_cost[np.maximum(best, 0)]] - costs[in_ids], 0)
        i = int(np.argmax(gain))
        if gain[i] > 0:
            taken[in_ids[i]], taken[by_cost[best[i]]] = False, True
            used += int(gain[i])
    return np.flatnonzero(taken), used


@register_generator("qa")
class QA(TaskGenerator):
    version = "2"
    tokens_to_generate = 32
    metric = "string_match_part"
    needs_data = True

    def __init__(self, *, dataset: str, path: str | None = None):
        if dataset not in qa_data.SOURCES:
            raise UserError(f"dataset: {dataset!r} is not one of {', '.join(qa_data.SOURCES)}")
        self.dataset = dataset
        self.path = path
        self._data: qa_data.QADataset | None = None
        self._tokenizer = None
        self._doc_tokens = np.zeros(0, dtype=np.int64)
        self._header_tokens = 0
        self._position_tokens = np.zeros(1, dtype=np.int64)

    def _path(self, options: Mapping[str, str]) -> str | None:
        return self.path or options.get(self.dataset) or None

    def data_missing(self, options: Mapping[str, str]) -> str | None:
        try:
            qa_data.resolve_path(self.dataset, self._path(options))
        except qa_data.QADataMissing as e:
            return str(e)
        return None

    def data_id(self, options: Mapping[str, str]) -> str | None:
        return fingerprint(qa_data.resolve_path(self.dataset, self._path(options)))

    def prepare(self, ctx: Context) -> None:
        """Loads the dataset (cached per file) and resets the per-document token counts on a new
        tokenizer or file; counts are filled lazily, each document counted at most once."""
        data = qa_data.load_qa(self.dataset, self._path(ctx.options))
        if data is not self._data or ctx.tokenizer is not self._tokenizer:
            self._data, self._tokenizer = data, ctx.tokenizer
            self._doc_tokens = np.full(len(data.docs), -1, dtype=np.int64)
            self._position_tokens = np.zeros(1, dtype=np.int64)
            self._header_tokens = int(np.diff(self._positions(len(data.docs))).max())

    def _doc_counts(self, ids: np.ndarray) -> np.ndarray:
        """Token counts of documents `ids` (shape (n,)), counting the ones not seen yet in one batch."""
        missing = np.unique(ids[self._doc_tokens[ids] < 0])
        if missing.size:
            self._doc_tokens[missing] = count_pieces(self._tokenizer, [self._data.docs[i] for i in missing])
        return self._doc_tokens[ids]

    def _positions(self, n: int) -> np.ndarray:
        """cum[k] = tokens of the separators and headers of documents 1..k, shape (n + 1,); counted once."""
        have = len(self._position_tokens) - 1
        if n > have:
            pieces = [(DOC_SEPARATOR if i > 1 else "") + QA_DOCUMENT.format(i=i, document="") for i in range(have + 1, n + 1)]
            more = self._position_tokens[-1] + np.cumsum(count_pieces(self._tokenizer, pieces))
            self._position_tokens = np.concatenate([self._position_tokens, more])
        return self._position_tokens[: n + 1]

    def _costs(self, ids: np.ndarray) -> np.ndarray:
        """Packing cost of each document (shape (n,)): its text and the dearest header and separator,
        so that whatever fits at that cost fits wherever the document lands."""
        return self._doc_counts(ids) + self._header_tokens

    def _question(self, ctx: Context) -> tuple[int, PromptFrame, int]:
        """Question ctx.index in file order, or the next one whose prompt fits with its gold documents:
        (index, frame, tokens of the empty frame)."""
        items = self._data.items
        for k in range(len(items)):
            q = (ctx.index + k) % len(items)
            frame = PromptFrame.build(ctx, QA_TEMPLATE, QA_ANSWER_PREFIX, query=items[q].query)
            tokens = count_tokens(ctx.tokenizer, frame.prompt(""))
            if tokens + int(self._costs(np.asarray(items[q].gold, dtype=np.int64)).sum()) <= ctx.budget:
                return q, frame, tokens
        raise UserError(
            f"qa ({self.dataset}) at length {ctx.length}: no question's gold documents fit in "
            f"{ctx.budget} tokens; use a longer --lengths value"
        )

    def _candidates(self, item: qa_data.QAItem, rng: np.random.Generator) -> np.ndarray:
        """All document ids in order of preference: gold, then related shuffled, then the rest shuffled."""
        own = np.asarray(item.gold + item.related, dtype=np.int64)
        taken = np.zeros(len(self._data.docs), dtype=bool)
        taken[own] = True
        rest = rng.permutation(len(self._data.docs))
        return np.concatenate([own[: len(item.gold)], rng.permutation(own[len(item.gold) :]), rest[~taken[rest]]])

    def _counted_prefix(self, candidates: np.ndarray, room: int, extra: int) -> np.ndarray:
        """Costs (shape (m,)) of the shortest prefix of `candidates` that overflows `room`, plus `extra`
        more for packing; all of them when they never overflow."""
        end, total = 0, 0
        while end < len(candidates):
            costs = self._costs(candidates[end : end + COUNT_BATCH])
            over = np.nonzero(total + np.cumsum(costs) > room)[0]
            if over.size:
                end += int(over[0]) + 1 + extra
                break
            total += int(costs.sum())
            end += COUNT_BATCH
        return self._costs(candidates[:end])

    def sample(self, ctx: Context, rng: np.random.Generator) -> Sample:
        q, frame, frame_tokens = self._question(ctx)
        item = self._data.items[q]
        n_gold = len(item.gold)
        candidates = self._candidates(item, rng)
        room = ctx.budget - frame_tokens
        extra = FILL_SCAN
        costs = self._counted_prefix(candidates, room, extra)
        while frame_tokens + pack(costs, n_gold, room)[1] < TARGET_FILL * ctx.budget and len(costs) < len(candidates):
            extra *= 4  # a gap these cannot fill: look at more documents
            costs = self._counted_prefix(candidates, room, extra)
        texts = costs - self._header_tokens
        positions = self._positions(len(costs))
        chosen_cache: dict[int, np.ndarray] = {}

        def chosen(room: int) -> np.ndarray:
            """Indices into `candidates` of the documents packed into `room`, in prompt order."""
            if room not in chosen_cache:
                picks = pack(costs, n_gold, room)[0]  # ascending: in order of preference
                chosen_cache[room] = picks[ruler_shuffle(len(picks))]
            return chosen_cache[room]

        def context(room: int) -> str:
            docs = (self._data.docs[candidates[j]] for j in chosen(room))
            return DOC_SEPARATOR.join(QA_DOCUMENT.format(i=i + 1, document=d) for i, d in enumerate(docs))

        fitted = fit(
            build=lambda room: frame.prompt(context(room)),
            estimate=lambda room: frame_tokens + int(texts[chosen(room)].sum()) + int(positions[len(chosen(room))]),
            n_min=int(costs[:n_gold].sum()),
            n_max=int(costs.sum()),
            budget=ctx.budget,
            tokenizer=ctx.tokenizer,
            what=f"qa ({self.dataset}) at length {ctx.length}",
        )
        order = chosen(fitted.n)
        length = fitted.tokens + ctx.tokens_to_generate
        if len(order) == len(self._data.docs) and length < MIN_FILL * ctx.length:
            raise UserError(
                f"qa ({self.dataset}): all {len(order)} documents fill only {length} of {ctx.length} tokens; "
                f"use a shorter --lengths value or the full dataset file"
            )
        require_fill(f"qa ({self.dataset}) at length {ctx.length}", ctx, length)
        gold_docs = sorted(int(i) + 1 for i in np.nonzero(order < n_gold)[0])
        meta = {
            "dataset": self.dataset,
            "question_index": q,
            "num_docs": len(order),
            "gold_docs": gold_docs,
            "gold_depths": [round((g - 1) / len(order), 4) for g in gold_docs],
        }
        return Sample(frame.input(context(fitted.n)), frame.answer_prefix, list(item.answers), length, meta)
