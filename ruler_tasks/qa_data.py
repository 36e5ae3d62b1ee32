"""RULER's QA sources: SQuAD v2 dev and HotpotQA dev (distractor), from local files only.

Accepted inputs, per dataset:
- the official JSON file (SQuAD's dev-v2.0.json, HotpotQA's hotpot_dev_distractor_v1.json), read with
  the stdlib json module: the `datasets` json builder needs ~10x longer on HotpotQA (its mixed
  [title, [sentences]] lists become Arrow Json cells decoded one by one), too slow for prepare;
- a `datasets` copy in the Hugging Face Hub schema (rajpurkar/squad_v2, hotpotqa/hotpot_qa
  "distractor"; the validation split), as a `save_to_disk` directory or .parquet / .arrow files,
  read through `datasets` (the way to go now that the original download hosts are unreliable).

Both become one shape, `QADataset`: a deduplicated, sorted tuple of documents (as RULER's read_squad /
read_hotpotqa build it) and the questions, each pointing at document ids:
- SQuAD: a document is a paragraph's context; a question's gold is its own paragraph, its related
  documents are the other paragraphs of the same article (RULER's `more_context`, the preferred
  distractors). Unanswerable questions are skipped.
- HotpotQA: a document is `title + "\\n" + "".join(sentences)`; a question's gold is the paragraphs named
  by its supporting facts (all its paragraphs when there are none), its related documents are the
  rest of its own ten paragraphs. RULER keeps all ten as one group; at 4K and above all ten always
  fit, so the two agree, and below 4K the supporting ones are what must survive.

Paths come from the caller or the environment variables RULER_SQUAD / RULER_HOTPOTQA. When they are
unset or point nowhere, `QADataMissing` says where to put the files, so a runner can skip the QA
tasks with that one line; a malformed file is a one-line UserError naming it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from common.errors import UserError
from common.files import read_json


class QADataMissing(UserError):
    """The local SQuAD / HotpotQA file is not configured or not there; the message says where to put it."""


@dataclass(frozen=True)
class QAItem:
    """One question: its answers (gold strings) and document ids into `QADataset.docs`."""

    query: str
    answers: tuple[str, ...]
    gold: tuple[int, ...]
    related: tuple[int, ...]


@dataclass(frozen=True)
class QADataset:
    name: str
    docs: tuple[str, ...]
    items: tuple[QAItem, ...]


@dataclass(frozen=True)
class _SquadRow:
    title: str
    context: str
    question: str
    answers: tuple[str, ...]  # empty: unanswerable


@dataclass(frozen=True)
class _HotpotRow:
    question: str
    answer: str
    paragraphs: tuple[tuple[str, tuple[str, ...]], ...]  # (title, sentences)
    supporting: frozenset[str]  # titles


class _Checker:
    """Raises the one-line UserError for a malformed record, naming the file, the record and the shape."""

    def __init__(self, path: Path, shape: str):
        self.path, self.shape = path, shape

    def __call__(self, ok: bool, where: str, problem: str) -> None:
        if not ok:
            raise UserError(f"{self.path}: {where}: {problem}; expected {self.shape} (use the unmodified official file)")


def _strings(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(s, str) for s in x)


SQUAD_JSON = '{"data": [{"title", "paragraphs": [{"context", "qas": [{"question", "answers": [{"text"}], "is_impossible"}]}]}]}'
SQUAD_HF = "columns title, context, question, answers {text: [...]}"
HOTPOT_JSON = '[{"question", "answer", "context": [[title, [sentences]]], "supporting_facts"}]'
HOTPOT_HF = "columns question, answer, context {title, sentences}, supporting_facts {title}"


def _squad_json(path: Path, obj: Any) -> list[_SquadRow]:
    check = _Checker(path, SQUAD_JSON)
    check(isinstance(obj, dict) and isinstance(obj.get("data"), list), "top level", "no list 'data'")
    rows = []
    for a, article in enumerate(obj["data"]):
        check(isinstance(article, dict) and isinstance(article.get("paragraphs"), list), f"data[{a}]", "no list 'paragraphs'")
        for p, par in enumerate(article["paragraphs"]):
            where = f"data[{a}].paragraphs[{p}]"
            check(isinstance(par, dict) and isinstance(par.get("context"), str), where, "no string 'context'")
            check(isinstance(par.get("qas"), list), where, "no list 'qas'")
            for q, qa in enumerate(par["qas"]):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                check(isinstance(qa, dict) and isinstance(qa.get("question"), str), where, "no string 'question'")
                answers = qa.get("answers")
                check(
                    isinstance(answers, list) and all(isinstance(x, dict) and isinstance(x.get("text"), str) for x in answers),
                    where, "no list 'answers' of {'text': ...}",
                )
                texts = () if qa.get("is_impossible") else tuple(x["text"] for x in answers)
                rows.append(_SquadRow(str(article.get("title", a)), par["context"], qa["question"], texts))
    return rows


def _squad_hf(path: Path, records: Iterable[dict]) -> list[_SquadRow]:
    check = _Checker(path, SQUAD_HF)
    rows = []
    for r, rec in enumerate(records):
        answers = rec.get("answers")
        check(
            all(isinstance(rec.get(k), str) for k in ("title", "context", "question"))
            and isinstance(answers, dict) and _strings(answers.get("text")),
            f"row {r}", "missing or mistyped fields",
        )
        rows.append(_SquadRow(rec["title"], rec["context"], rec["question"], tuple(answers["text"])))
    return rows


def _squad_dataset(rows: list[_SquadRow]) -> QADataset:
    docs = sorted({row.context for row in rows})
    doc_id = {d: i for i, d in enumerate(docs)}
    article_docs: dict[str, dict[int, None]] = {}
    for row in rows:
        article_docs.setdefault(row.title, {})[doc_id[row.context]] = None
    items = tuple(
        QAItem(
            query=row.question,
            answers=row.answers,
            gold=(doc_id[row.context],),
            related=tuple(i for i in article_docs[row.title] if i != doc_id[row.context]),
        )
        for row in rows
        if row.answers
    )
    return QADataset("squad", tuple(docs), items)


def _hotpot_json(path: Path, obj: Any) -> list[_HotpotRow]:
    check = _Checker(path, HOTPOT_JSON)
    check(isinstance(obj, list), "top level", "not a list of records")
    rows = []
    for r, rec in enumerate(obj):
        where = f"record {r}"
        check(isinstance(rec, dict) and isinstance(rec.get("question"), str), where, "no string 'question'")
        check(isinstance(rec.get("answer"), str), where, "no string 'answer'")
        check(isinstance(rec.get("context"), list) and rec["context"], where, "no list 'context'")
        for c, pair in enumerate(rec["context"]):
            check(
                isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and _strings(pair[1]),
                f"{where} context[{c}]", "not [title, [sentences]]",
            )
        facts = rec.get("supporting_facts") or []
        check(isinstance(facts, list) and all(isinstance(f, list) and f for f in facts), where, "bad 'supporting_facts'")
        rows.append(
            _HotpotRow(
                rec["question"], rec["answer"], tuple((t, tuple(s)) for t, s in rec["context"]),
                frozenset(str(f[0]) for f in facts),
            )
        )
    return rows


def _hotpot_hf(path: Path, records: Iterable[dict]) -> list[_HotpotRow]:
    check = _Checker(path, HOTPOT_HF)
    rows = []
    for r, rec in enumerate(records):
        context, facts = rec.get("context"), rec.get("supporting_facts") or {"title": []}
        check(
            isinstance(rec.get("question"), str) and isinstance(rec.get("answer"), str)
            and isinstance(context, dict) and _strings(context.get("title"))
            and isinstance(context.get("sentences"), list) and all(_strings(s) for s in context["sentences"])
            and len(context["title"]) == len(context["sentences"]) > 0
            and isinstance(facts, dict) and _strings(facts.get("title")),
            f"row {r}", "missing or mistyped fields",
        )
        paragraphs = tuple((t, tuple(s)) for t, s in zip(context["title"], context["sentences"]))
        rows.append(_HotpotRow(rec["question"], rec["answer"], paragraphs, frozenset(facts["title"])))
    return rows


def _hotpot_dataset(rows: list[_HotpotRow]) -> QADataset:
    def doc(title: str, sentences: tuple[str, ...]) -> str:
        return f"{title}\n{''.join(sentences)}"

    docs = sorted({doc(t, s) for row in rows for t, s in row.paragraphs})
    doc_id = {d: i for i, d in enumerate(docs)}
    items = []
    for row in rows:
        ids = [doc_id[doc(t, s)] for t, s in row.paragraphs]
        gold = [i for i, (t, _) in zip(ids, row.paragraphs) if t in row.supporting] or ids
        items.append(
            QAItem(
                query=row.question,
                answers=(row.answer,),
                gold=tuple(dict.fromkeys(gold)),
                related=tuple(dict.fromkeys(i for i in ids if i not in gold)),
            )
        )
    return QADataset("hotpotqa", tuple(docs), tuple(items))


@dataclass(frozen=True)
class _Source:
    title: str
    env_var: str
    file_name: str
    url: str
    hub_name: str
    from_json: Callable[[Path, Any], list]
    from_hf: Callable[[Path, Iterable[dict]], list]
    build: Callable[[list], QADataset]


SOURCES: dict[str, _Source] = {
    "squad": _Source(
        "SQuAD v2.0 dev", "RULER_SQUAD", "dev-v2.0.json",
        "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json", "rajpurkar/squad_v2",
        _squad_json, _squad_hf, _squad_dataset,
    ),
    "hotpotqa": _Source(
        "HotpotQA dev (distractor)", "RULER_HOTPOTQA", "hotpot_dev_distractor_v1.json",
        "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json", "hotpotqa/hotpot_qa (distractor)",
        _hotpot_json, _hotpot_hf, _hotpot_dataset,
    ),
}


def _source(dataset: str) -> _Source:
    try:
        return SOURCES[dataset]
    except KeyError:
        raise UserError(f"unknown QA dataset {dataset!r}; use one of {', '.join(SOURCES)}") from None


def resolve_path(dataset: str, path: str | os.PathLike | None = None) -> Path:
    """The local file (or `datasets` directory) for `dataset`: `path` if given, else its environment
    variable. Raises QADataMissing (a UserError) naming the variable, the file and where it comes from."""
    src = _source(dataset)
    how = (
        f"download {src.file_name} ({src.url}) or save the validation split of {src.hub_name} with "
        f"datasets' save_to_disk, then set {src.env_var}=/path/to/it or pass path: in the task's args"
    )
    if path is None:
        path = os.environ.get(src.env_var) or None
        if path is None:
            raise QADataMissing(f"{src.title} not configured: {how}")
    path = Path(path).expanduser()
    if not path.exists():
        raise QADataMissing(f"{src.title} not found at {path}: {how}")
    return path


@contextlib.contextmanager
def _quiet_datasets():
    """Silences `datasets`' progress bars for the duration (library code never prints)."""
    import datasets

    was_enabled = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _hf_records(path: Path, src: _Source) -> list[dict]:
    """The rows of a `datasets` copy: a save_to_disk directory (its validation split when it holds a
    DatasetDict) or .parquet / .arrow files."""
    import datasets

    with _quiet_datasets():
        try:
            if path.is_dir():
                ds = datasets.load_from_disk(str(path))
                if isinstance(ds, datasets.DatasetDict):
                    if "validation" not in ds:
                        raise UserError(f"{path}: no 'validation' split (found {', '.join(ds)}); save the validation split of {src.hub_name}")
                    ds = ds["validation"]
            else:
                ds = datasets.load_dataset(path.suffix[1:], data_files=str(path), split="train")
        except (FileNotFoundError, datasets.exceptions.DatasetsError) as e:
            cause = e.__cause__ or e
            detail = (str(cause).splitlines() or [""])[0]
            raise UserError(f"{path}: not a readable `datasets` copy of {src.hub_name} ({type(cause).__name__}: {detail})") from None
    return ds.to_list()


@functools.lru_cache(maxsize=4)
def _load_cached(dataset: str, path: Path, mtime_ns: int, size: int) -> QADataset:
    src = _source(dataset)
    if path.suffix == ".json":
        rows = src.from_json(path, read_json(path))
    elif path.is_dir() or path.suffix in (".parquet", ".arrow"):
        rows = src.from_hf(path, _hf_records(path, src))
    else:
        raise UserError(f"{path}: unknown kind of file; pass {src.file_name} (JSON), a .parquet/.arrow file or a save_to_disk directory")
    qa = src.build(rows)
    if not qa.items:
        raise UserError(f"{path}: no answerable questions in this {src.title} file; use the unmodified official file")
    return qa


def load_qa(dataset: str, path: str | os.PathLike | None = None) -> QADataset:
    """Loads "squad" or "hotpotqa" from `path` (or its environment variable); cached per file version."""
    path = resolve_path(dataset, path).resolve()
    stat = path.stat()
    return _load_cached(dataset, path, stat.st_mtime_ns, stat.st_size)
