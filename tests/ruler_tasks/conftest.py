"""Fixtures for the task-suite tests: tokenizers (byte, and a BPE tokenizer.json trained here on the
shipped corpus) and a sentence cache private to the test session."""

import pytest

from model_adapters.tokenizers import ByteTokenizer, HFTokenizer
from runners.bench_prepare import build_bpe_tokenizer


@pytest.fixture(scope="session", autouse=True)
def private_sentence_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("RULER_CACHE_DIR", str(tmp_path_factory.mktemp("ruler-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def bpe_path(tmp_path_factory):
    return build_bpe_tokenizer(tmp_path_factory.mktemp("bpe") / "tokenizer.json", vocab_size=2048)


@pytest.fixture(scope="session")
def tokenizers_by_name(bpe_path):
    return {"byte": ByteTokenizer(), "bpe": HFTokenizer(bpe_path)}
