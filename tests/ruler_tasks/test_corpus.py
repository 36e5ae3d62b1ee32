"""Haystack corpora: the shipped default, RULER's json, text files, folders, saved datasets; chat templates."""

import json

import pytest

from ruler_tasks import corpus
from ruler_tasks.chat_templates import resolve_chat_template
from common.errors import UserError

TEXT = "The first sentence is here.  It has Mr. Smith in it.\nThe third   one ends the text."


def test_default_corpus_is_large_natural_prose():
    sentences = corpus.load_sentences(None)
    words = sum(len(s.split()) for s in sentences)
    assert len(sentences) > 3000 and words > 55_000
    assert len(set(sentences)) > 0.95 * len(sentences), "no obvious repetition"


@pytest.mark.parametrize("kind", ["txt", "folder", "ruler-json"])
def test_user_corpora_load_and_normalize(tmp_path, kind):
    if kind == "txt":
        spec = tmp_path / "c.txt"
        spec.write_text(TEXT)
    elif kind == "folder":
        spec = tmp_path / "essays"
        spec.mkdir()
        (spec / "a.txt").write_text(TEXT[:28])
        (spec / "b.txt").write_text(TEXT[28:])
    else:
        spec = tmp_path / "PaulGrahamEssays.json"
        spec.write_text(json.dumps({"text": TEXT}))
    assert corpus.normalize(corpus.load_text(str(spec))) == corpus.normalize(TEXT)


def test_saved_dataset_corpus(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["One essay here.", "Another essay there."]}).save_to_disk(str(tmp_path / "ds"))
    assert corpus.load_text(str(tmp_path / "ds")) == "One essay here.\nAnother essay there."


@pytest.mark.parametrize("spec", ["missing.txt", "bad.json"])
def test_bad_corpus_is_a_user_error(tmp_path, spec):
    (tmp_path / "bad.json").write_text(json.dumps(["not", "ruler"]))
    with pytest.raises(UserError, match="haystack"):
        corpus.load_text(str(tmp_path / spec))


def test_chat_templates_by_name_or_format_string():
    assert resolve_chat_template("meta-chat").wrap("X") == "[INST] X [/INST]"
    assert resolve_chat_template("base").wrap("X") == "X"
    assert resolve_chat_template("<u>{task_template}</u>").wrap("X") == "<u>X</u>"
    with pytest.raises(UserError, match="chat template 'llama9'"):
        resolve_chat_template("llama9")


CACHE_TEXT = "Dr. Who came at noon. He left at once. The cache keeps these sentences."


def test_sentence_cache_is_written_once_and_read_back(monkeypatch):
    path = corpus.cache_path(CACHE_TEXT)
    path.unlink(missing_ok=True)
    first = corpus.cached_split(CACHE_TEXT)
    assert json.loads(path.read_text(encoding="utf-8")) == first
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "written atomically"
    monkeypatch.setattr(corpus, "split_sentences", lambda text: pytest.fail("a valid cache entry must be reused"))
    assert corpus.cached_split(CACHE_TEXT) == first


@pytest.mark.parametrize("damage", [b"\xff\xfe not utf-8", b'["cut', b'{"not": "a list"}', b"[1, 2]", b"[]"],
                         ids=["not-utf8", "truncated", "object", "not-strings", "empty"])
def test_corrupt_sentence_cache_is_ignored_and_rewritten(damage):
    path = corpus.cache_path(CACHE_TEXT)
    expected = corpus.split_sentences(CACHE_TEXT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(damage)
    assert corpus.cached_split(CACHE_TEXT) == expected
    assert json.loads(path.read_text(encoding="utf-8")) == expected, "the damaged entry is replaced"


def test_sentence_cache_key_covers_text_and_nltk_version(monkeypatch):
    key = corpus.cache_path(CACHE_TEXT)
    assert corpus.cache_path(CACHE_TEXT + " One more.") != key
    monkeypatch.setattr(corpus.metadata, "version", lambda name: "0.0-other")
    assert corpus.cache_path(CACHE_TEXT) != key
