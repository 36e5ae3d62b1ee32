"""Tiny SQuAD-v2-format and HotpotQA-format files, written by the tests themselves (never the real data).

Paragraphs are made-up prose of varied length (about 40 to 420 bytes) so that the byte tokenizer can
fill 1K to 16K tokens. Every answerable question's answer is a unique code word found only in its
gold paragraph, so a test can check that the gold document made it into the prompt.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_WORDS = (
    "river stone lantern harbor meadow copper violet engine orchard signal marble falcon quiet amber "
    "window thunder garden ribbon cedar planet willow beacon canyon velvet ember summit glacier"
).split()


def _prose(rng: np.random.Generator, n_words: int) -> str:
    words = rng.choice(_WORDS, size=n_words)
    return " ".join(words).capitalize() + "."


def _answer(tag: str, k: int) -> str:
    return f"Code{tag}{k:03d}"


def write_squad(path: Path, *, articles: int = 12, paragraphs: int = 10, seed: int = 0) -> Path:
    """SQuAD v2 dev format: one answerable and one unanswerable question per paragraph.

    The last article repeats its first paragraph (same context, new question) to exercise dedup.
    """
    rng = np.random.default_rng(seed)
    data = []
    k = 0
    for a in range(articles):
        pars = []
        for _ in range(paragraphs):
            answer = _answer("S", k)
            context = f"{_prose(rng, int(rng.integers(1, 30)))} The key is {answer}. {_prose(rng, int(rng.integers(1, 30)))}"
            pars.append(
                {
                    "context": context,
                    "qas": [
                        {"question": f"What is key number {k}?", "id": f"s{k}", "answers": [{"text": answer, "answer_start": context.index(answer)}, {"text": answer.lower(), "answer_start": 0}], "is_impossible": False},
                        {"question": f"What is the lost key {k}?", "id": f"u{k}", "answers": [], "plausible_answers": [{"text": "nothing", "answer_start": 0}], "is_impossible": True},
                    ],
                }
            )
            k += 1
        data.append({"title": f"Article {a}", "paragraphs": pars})
    dup = data[-1]["paragraphs"][0]
    data[-1]["paragraphs"].append({"context": dup["context"], "qas": [{**dup["qas"][0], "id": "dup"}]})
    path.write_text(json.dumps({"version": "v2.0", "data": data}), encoding="utf-8")
    return path


def write_hotpotqa(path: Path, *, records: int = 40, seed: int = 0) -> Path:
    """HotpotQA dev distractor format: ten [title, sentences] paragraphs per question, two supporting.

    Distractor paragraphs are drawn from a shared pool, so the same paragraph appears under many
    questions (as in the real file) and dedup matters.
    """
    rng = np.random.default_rng(seed)
    pool = [[f"Pool {i}", [_prose(rng, int(rng.integers(3, 12))), " " + _prose(rng, int(rng.integers(3, 20)))]] for i in range(120)]
    out = []
    for r in range(records):
        answer = _answer("H", r)
        gold = [
            [f"Gold {r} A", [_prose(rng, int(rng.integers(3, 15))), f" The bridge leads to {answer}."]],
            [f"Gold {r} B", [f"{answer} is a town.", " " + _prose(rng, int(rng.integers(3, 15)))]],
        ]
        distractors = [pool[i] for i in rng.choice(len(pool), size=8, replace=False)]
        context = gold + distractors
        order = rng.permutation(len(context))
        out.append(
            {
                "_id": f"h{r}",
                "question": f"Where does bridge {r} lead?",
                "answer": answer,
                "context": [context[i] for i in order],
                "supporting_facts": [[f"Gold {r} A", 1], [f"Gold {r} B", 0]],
                "type": "bridge",
                "level": "easy",
            }
        )
    path.write_text(json.dumps(out), encoding="utf-8")
    return path


def squad_hub_rows(path: Path) -> list[dict]:
    """The rows of a SQuAD-format file in the Hugging Face Hub schema (rajpurkar/squad_v2)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [
        {
            "id": qa["id"],
            "title": article["title"],
            "context": par["context"],
            "question": qa["question"],
            "answers": {"text": [a["text"] for a in qa["answers"]], "answer_start": [a["answer_start"] for a in qa["answers"]]},
        }
        for article in data
        for par in article["paragraphs"]
        for qa in par["qas"]
    ]


def hotpotqa_hub_rows(path: Path) -> list[dict]:
    """The rows of a HotpotQA-format file in the Hugging Face Hub schema (hotpotqa/hotpot_qa)."""
    return [
        {
            "id": rec["_id"],
            "question": rec["question"],
            "answer": rec["answer"],
            "type": rec["type"],
            "level": rec["level"],
            "supporting_facts": {"title": [f[0] for f in rec["supporting_facts"]], "sent_id": [f[1] for f in rec["supporting_facts"]]},
            "context": {"title": [c[0] for c in rec["context"]], "sentences": [c[1] for c in rec["context"]]},
        }
        for rec in json.loads(path.read_text(encoding="utf-8"))
    ]
