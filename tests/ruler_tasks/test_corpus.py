"""Haystack corpora: the shipped default, RULER's json, text files, folders, saved datasets; chat templates."""

import json

import pytest

from ruler_tasks import corpus
from ruler_tasks.chat_templates import resolve_chat_template
from ruler_tasks.errors import UserError

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
