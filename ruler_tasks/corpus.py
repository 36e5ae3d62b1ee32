"""The essay haystack's corpus: loading, whitespace normalization and Punkt sentence splitting.

Sources (`load_sentences(spec)`): None for the shipped default (The Devil's Dictionary by Ambrose
Bierce, 1911, public domain; see NOTICE), RULER's `PaulGrahamEssays.json` (`{"text": ...}`), a `.txt`
file, a folder of `.txt` files (sorted by name), or a `datasets` dataset saved with `save_to_disk`
(its `text` column). Text is whitespace-normalized as RULER does, then split into sentences by nltk's
Punkt trained on the corpus itself (PunktTrainer is unsupervised: nothing is downloaded).

Splitting costs seconds (importing nltk alone is about 1.5 s), so the sentence list is cached as JSON
under `$RULER_CACHE_DIR` (default `~/.cache/rattn-ruler`), keyed by a hash of the normalized text and
the nltk version, and in memory for the process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from importlib import metadata
from pathlib import Path

from common.errors import UserError
from common.files import atomic_write_json, fingerprint

DEFAULT_CORPUS = Path(__file__).parent / "data" / "devils_dictionary.txt"
_WHITESPACE = re.compile(r"\s+")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"haystack {path}: not UTF-8 text ({e.reason}); convert it or pass another corpus") from None


def _load_dataset_text(path: Path) -> str:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"haystack {path}: not a dataset saved with save_to_disk ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[sorted(ds)[0]]
    if "text" not in ds.column_names:
        raise UserError(f"haystack {path}: the dataset has no 'text' column (columns: {ds.column_names})")
    return "\n".join(ds["text"])


def load_text(spec: str | os.PathLike | None) -> str:
    """The raw corpus text named by `spec` (see the module docstring)."""
    if spec is None or str(spec) in ("", "default"):
        return _read_text(DEFAULT_CORPUS)
    path = Path(spec)
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return _load_dataset_text(path)
        files = sorted(path.glob("*.txt"))
        if not files:
            raise UserError(f"haystack {path}: a folder with no .txt files and no saved dataset")
        return "\n".join(_read_text(f) for f in files)
    if not path.is_file():
        raise UserError(f"haystack {path}: no such file or folder; pass a .txt, a folder, PaulGrahamEssays.json or a saved dataset")
    if path.suffix == ".json":
        try:
            data = json.loads(_read_text(path))
        except json.JSONDecodeError as e:
            raise UserError(f"haystack {path}:{e.lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise UserError(f"haystack {path}: expected RULER's format, a JSON object with a 'text' string")
        return data["text"]
    return _read_text(path)


def normalize(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _cache_dir() -> Path:
    return Path(os.environ.get("RULER_CACHE_DIR") or Path.home() / ".cache" / "rattn-ruler")


def split_sentences(text: str) -> list[str]:
    """Punkt, trained on `text` itself (no pretrained model, no download, no warning)."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

    trainer = PunktTrainer()
    trainer.train(text, finalize=True)
    return PunktSentenceTokenizer(trainer.get_params()).tokenize(text)


def cache_path(text: str) -> Path:
    """Where the sentences of `text` (normalized) are cached: keyed by the text and the nltk version."""
    key = hashlib.sha256(f"{metadata.version('nltk')}\n{text}".encode()).hexdigest()[:24]
    return _cache_dir() / f"sentences-{key}.json"


def cached_split(text: str) -> list[str]:
    """`split_sentences(text)`, read from the disk cache when a valid entry is there; otherwise computed
    and written atomically (a damaged or foreign entry is ignored and replaced)."""
    cache = cache_path(text)
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if isinstance(cached, list) and cached and all(isinstance(s, str) for s in cached):
            return cached
    except (OSError, ValueError):
        pass  # absent, unreadable, not UTF-8 or not JSON: recompute and replace
    sentences = split_sentences(text)
    try:
        atomic_write_json(cache, sentences)
    except OSError:
        pass  # a read-only home only costs the recomputation next time
    return sentences


@functools.cache
def load_sentences(spec: str | None = None) -> tuple[str, ...]:
    """The corpus named by `spec` as a tuple of sentences (cached on disk and in memory)."""
    text = normalize(load_text(spec))
    if not text:
        raise UserError(f"haystack {spec or DEFAULT_CORPUS}: the corpus is empty")
    return tuple(cached_split(text))


def corpus_id(spec: str | None) -> str:
    """What the manifest records for the haystack: the default, or the user's path with a fingerprint of
    its content (so a haystack edited in place is detected). A missing path is reported when loaded."""
    if spec in (None, "", "default"):
        return "default:devils_dictionary"
    path = Path(spec).resolve()
    return f"{path}#{fingerprint(path)}" if path.exists() else str(path)
