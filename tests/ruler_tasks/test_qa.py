"""QA tasks (qa_1 SQuAD, qa_2 HotpotQA) on tiny fixture files: loading, length fit, gold presence,
determinism, and the one-line errors for missing or malformed data."""

from __future__ import annotations

import re

import numpy as np
import pytest
from qa_fixtures import hotpotqa_hub_rows, squad_hub_rows, write_hotpotqa, write_squad

from model_adapters.tokenizers import ByteTokenizer
from ruler_tasks import qa_data
from ruler_tasks.base import Context
from ruler_tasks.chat_templates import resolve_chat_template
from common.errors import UserError
from ruler_tasks.qa import QA, pack, ruler_shuffle
from ruler_tasks.registry import load_registry
from ruler_tasks.templates import QA_ANSWER_PREFIX, QA_DOCUMENT

TOKENIZER = ByteTokenizer()


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    """Keeps `datasets`' Arrow cache out of the user's home."""
    import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_cache")))
        yield


@pytest.fixture(autouse=True)
def no_env_paths(monkeypatch):
    for src in qa_data.SOURCES.values():
        monkeypatch.delenv(src.env_var, raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    return {"squad": write_squad(root / "dev-v2.0.json"), "hotpotqa": write_hotpotqa(root / "hotpot.json")}


def ctx(length: int, chat: str = "base", **options) -> Context:
    return Context(length, QA.tokens_to_generate, TOKENIZER, resolve_chat_template(chat), options)


def test_squad_loader_skips_unanswerable_and_dedups(files):
    data = qa_data.load_qa("squad", files["squad"])
    assert len(data.docs) == 12 * 10  # the repeated paragraph is one document
    assert list(data.docs) == sorted(data.docs)
    assert len(data.items) == 12 * 10 + 1  # answerable ones only, the duplicate's question included
    assert not any("lost key" in it.query for it in data.items)
    for it in data.items:
        assert len(it.gold) == 1 and it.answers[0] in data.docs[it.gold[0]]
        assert it.gold[0] not in it.related and len(it.related) in (9, 10)


def test_hotpotqa_loader_gold_is_supporting_paragraphs(files):
    data = qa_data.load_qa("hotpotqa", files["hotpotqa"])
    assert len(data.items) == 40
    assert len(data.docs) < 40 * 10  # distractors shared across questions are deduplicated
    for r, it in enumerate(data.items):
        gold_titles = sorted(data.docs[i].split("\n")[0] for i in it.gold)
        assert gold_titles == [f"Gold {r} A", f"Gold {r} B"]
        assert len(it.related) == 8 and not set(it.gold) & set(it.related)
    doc = data.docs[data.items[0].gold[0]]
    title, body = doc.split("\n")
    assert body.count(".") >= 2 and not body.startswith(" ")  # title + "\n" + "".join(sentences)


@pytest.mark.parametrize("length", [1024, 4096, 16384], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("dataset", ["squad", "hotpotqa"])
def test_fill_bounds_and_gold_present(files, dataset, length):
    gen = QA(dataset=dataset, path=str(files[dataset]))
    data = qa_data.load_qa(dataset, files[dataset])
    for s in gen.generate(ctx(length), np.random.default_rng(7), 4):
        prompt = s.input + s.answer_prefix
        assert s.length == len(TOKENIZER.encode(prompt)) + QA.tokens_to_generate
        assert 0.95 * length <= s.length <= length, f"fill {s.length / length:.3f}"
        assert s.answer_prefix == QA_ANSWER_PREFIX
        item = data.items[s.meta["question_index"]]
        assert s.outputs == list(item.answers)
        assert s.input.endswith(f"\n\nQuestion: {item.query}")
        n = s.meta["num_docs"]
        assert n >= len(item.gold)
        assert [int(i) for i in re.findall(r"\n\nDocument (\d+):\n", s.input)] == list(range(1, n + 1))
        gold_text = {data.docs[i] for i in item.gold}
        found = {
            d for d in gold_text for g in s.meta["gold_docs"] if QA_DOCUMENT.format(i=g, document=d) in s.input
        }
        assert found == gold_text, "gold documents are not at the numbers meta gives"


@pytest.mark.parametrize("dataset", ["squad", "hotpotqa"])
def test_questions_in_file_order_with_rulers_fixed_document_shuffle(files, dataset):
    gen = QA(dataset=dataset, path=str(files[dataset]))
    samples = gen.generate(ctx(8192), np.random.default_rng(3), 5, start_index=2)
    assert [s.meta["question_index"] for s in samples] == [2, 3, 4, 5, 6], "sample i asks question i, as RULER"
    data = qa_data.load_qa(dataset, files[dataset])
    for s in samples:
        n, item = s.meta["num_docs"], data.items[s.meta["question_index"]]
        shuffle = ruler_shuffle(n).tolist()
        # The documents in order of preference start with the gold ones; RULER's fixed shuffle places
        # preference rank r at prompt number shuffle.index(r) + 1.
        assert s.meta["gold_docs"] == sorted(shuffle.index(r) + 1 for r in range(len(item.gold)))


def test_chat_template_counted_in_length(files):
    gen = QA(dataset="squad", path=str(files["squad"]))
    chat = resolve_chat_template("meta-llama3")
    (s,) = gen.generate(ctx(2048, "meta-llama3"), np.random.default_rng(0), 1)
    assert s.input.startswith(chat.before) and s.input.endswith(chat.after)
    assert s.length == len(TOKENIZER.encode(s.input + s.answer_prefix)) + QA.tokens_to_generate <= 2048


def test_deterministic_under_rng(files):
    gen = QA(dataset="hotpotqa", path=str(files["hotpotqa"]))
    a = gen.generate(ctx(4096), np.random.default_rng(1), 3)
    b = QA(dataset="hotpotqa", path=str(files["hotpotqa"])).generate(ctx(4096), np.random.default_rng(1), 3)
    c = gen.generate(ctx(4096), np.random.default_rng(2), 3)
    assert a == b
    assert [s.input for s in a] != [s.input for s in c]


def test_data_path_from_run_options_and_env(files, monkeypatch):
    gen = QA(dataset="squad")
    assert gen.data_missing({"squad": str(files["squad"])}) is None
    (s,) = gen.generate(ctx(1024, squad=str(files["squad"])), np.random.default_rng(0), 1)
    assert s.length <= 1024
    monkeypatch.setenv("RULER_SQUAD", str(files["squad"]))
    assert gen.data_missing({}) is None


@pytest.mark.parametrize("dataset,env_var,file_name", [
    ("squad", "RULER_SQUAD", "dev-v2.0.json"),
    ("hotpotqa", "RULER_HOTPOTQA", "hotpot_dev_distractor_v1.json"),
])
def test_missing_data_says_where_to_put_it(tmp_path, dataset, env_var, file_name):
    gen = QA(dataset=dataset)
    message = gen.data_missing({})
    assert message is not None and "\n" not in message
    assert env_var in message and file_name in message
    with pytest.raises(qa_data.QADataMissing) as e:
        gen.prepare(ctx(4096))
    assert isinstance(e.value, UserError) and str(e.value) == message
    absent = tmp_path / "nowhere.json"
    message = QA(dataset=dataset, path=str(absent)).data_missing({})
    assert str(absent) in message and env_var in message


@pytest.mark.parametrize("dataset,text,says", [
    ("squad", '{"data": [1, 2', "malformed JSON"),
    ("squad", '{"version": "v2.0"}', "no list 'data'"),
    ("squad", '{"data": [{"title": "t", "paragraphs": [{"context": "c"}]}]}', "no list 'qas'"),
    ("hotpotqa", "[]", "no answerable questions"),
    ("hotpotqa", '[{"question": "q", "answer": "a", "context": [["title only"]]}]', "not [title, [sentences]]"),
], ids=["squad-truncated", "squad-no-data", "squad-no-qas", "hotpot-empty", "hotpot-bad-context"])
def test_malformed_file_is_one_line_user_error(tmp_path, dataset, text, says):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as e:
        qa_data.load_qa(dataset, path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message and says in message
    assert not isinstance(e.value, qa_data.QADataMissing)


@pytest.mark.parametrize("dataset,to_rows", [("squad", squad_hub_rows), ("hotpotqa", hotpotqa_hub_rows)])
def test_datasets_copy_in_hub_schema_reads_the_same(files, tmp_path, dataset, to_rows):
    import datasets

    ds = datasets.Dataset.from_list(to_rows(files[dataset]))
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(tmp_path / "saved"))
    ds.to_parquet(str(tmp_path / "validation.parquet"))
    official = qa_data.load_qa(dataset, files[dataset])
    for copy in (tmp_path / "saved", tmp_path / "validation.parquet"):
        assert qa_data.load_qa(dataset, copy) == official, copy.name
    ds.remove_columns(["question"]).to_parquet(str(tmp_path / "broken.parquet"))
    with pytest.raises(UserError, match="broken.parquet: row 0: missing or mistyped fields"):
        qa_data.load_qa(dataset, tmp_path / "broken.parquet")


def test_length_too_short_and_dataset_too_small(files, tmp_path):
    with pytest.raises(UserError, match="longer --lengths"):
        QA(dataset="squad", path=str(files["squad"])).generate(ctx(256), np.random.default_rng(0), 1)
    small = write_squad(tmp_path / "small.json", articles=1, paragraphs=3)
    with pytest.raises(UserError, match="shorter --lengths"):
        QA(dataset="squad", path=str(small)).generate(ctx(8192), np.random.default_rng(0), 1)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(UserError, match="squad, hotpotqa"):
        QA(dataset="triviaqa")


def test_registry_entries():
    reg = load_registry()
    for name, dataset in (("qa_1", "squad"), ("qa_2", "hotpotqa")):
        task = reg.get(name)
        assert isinstance(task.generator, QA) and task.generator.dataset == dataset
        assert (task.metric, task.tokens_to_generate, task.needs_data) == ("string_match_part", 32, True)


@pytest.mark.parametrize("costs,n_required,room,taken,used", [
    ([5, 7, 7, 3], 1, 15, [0, 1, 3], 15),  # prefix, then a later item fills the gap
    ([5, 6, 8], 1, 13, [0, 2], 13),  # one swap fills what first-fit left
    ([9, 4], 1, 5, [0], 9),  # required items are taken even over the room
    ([2, 9, 4], 2, 14, [0, 1], 11),  # nothing optional fits
], ids=["first-fit", "swap", "required-over", "no-fit"])
def test_pack(costs, n_required, room, taken, used):
    picks, total = pack(np.asarray(costs, dtype=np.int64), n_required, room)
    assert picks.tolist() == taken and total == used
