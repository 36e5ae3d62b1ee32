"""Tokenizers: the protocol the harness relies on and the three loaders it ships.

Anything with `encode(str) -> list[int]` and `decode(list[int]) -> str` is a tokenizer to the task
generators. The loaders here also give `vocab_size`, `bos_id`/`eos_id` (None where absent),
`encode_batch` (fast counting of many pieces) and a `fingerprint` that changes when the vocabulary does.
This module must not import JAX: ruler_tasks and the prepare runner use it without the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

from common.errors import UserError
from common.files import fingerprint


@runtime_checkable
class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255; BOS = 256, EOS = 257; no file needed."""

    vocab_size = 258
    bos_id = 256
    eos_id = 257
    fingerprint = "byte:utf8-258"

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(t.encode("utf-8")) for t in texts]

    def count(self, text: str) -> int:
        return len(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


class SentencePieceTokenizer:
    """A sentencepiece `.model` file (Llama-2, Gemma, ...). Encodes without BOS/EOS."""

    def __init__(self, path: str | Path):
        import sentencepiece

        path = Path(path)
        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            ok = self._sp.Load(str(path))
        except (OSError, RuntimeError) as e:
            raise UserError(f"{path}: not a readable sentencepiece model ({e}); pass a valid .model file") from None
        if not ok:
            raise UserError(f"{path}: not a readable sentencepiece model; pass a valid .model file")
        self.vocab_size = self._sp.GetPieceSize()
        self.bos_id = self._sp.bos_id() if self._sp.bos_id() >= 0 else None
        self.eos_id = self._sp.eos_id() if self._sp.eos_id() >= 0 else None
        self.fingerprint = f"sentencepiece:{fingerprint(path)}"

    def encode(self, text: str) -> list[int]:
        return self._sp.EncodeAsIds(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._sp.EncodeAsIds(list(texts))

    def count(self, text: str) -> int:
        return len(self._sp.EncodeAsIds(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.DecodeIds([int(i) for i in ids])


class HFTokenizer:
    """A Hugging Face `tokenizer.json` (the tokenizers library). Encodes without special tokens."""

    def __init__(self, path: str | Path, *, bos_token: str | None = None, eos_token: str | None = None):
        import tokenizers

        path = Path(path)
        try:
            self._tok = tokenizers.Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust side raises a bare Exception for any parse failure
            raise UserError(f"{path}: not a readable tokenizer.json ({str(e).splitlines()[0]}); pass a valid file") from None
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.bos_id = self._tok.token_to_id(bos_token) if bos_token else None
        self.eos_id = self._tok.token_to_id(eos_token) if eos_token else None
        self.fingerprint = f"hf:{fingerprint(path)}"

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)


def tokenizer_from_config(ckpt_dir: str | Path, spec: dict):
    """The tokenizer a checkpoint's config.json names: {"type": "byte"|"sentencepiece"|"hf", "file": ...}."""
    ckpt_dir = Path(ckpt_dir)
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "byte":
        return ByteTokenizer()
    if kind not in ("sentencepiece", "hf"):
        raise UserError(
            f"{ckpt_dir / 'config.json'}: tokenizer.type must be 'byte', 'sentencepiece' or 'hf', got {kind!r}"
        )
    file = spec.get("file")
    if not file:
        raise UserError(f"{ckpt_dir / 'config.json'}: tokenizer.file is required for a {kind} tokenizer")
    path = ckpt_dir / file
    if not path.is_file():
        raise UserError(f"{path}: tokenizer file missing; copy it into the checkpoint or fix tokenizer.file")
    if kind == "sentencepiece":
        return SentencePieceTokenizer(path)
    return HFTokenizer(path, bos_token=spec.get("bos_token"), eos_token=spec.get("eos_token"))


def load_tokenizer(spec: str | Path):
    """`byte`, a `.model` file, a `tokenizer.json` file, or a checkpoint directory (its config.json)."""
    if str(spec) == "byte":
        return ByteTokenizer()
    path = Path(spec)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise UserError(f"{path}: a directory without config.json is not a checkpoint; pass a checkpoint or a tokenizer file")
        try:
            cfg = json.loads(config.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UserError(f"{config}:{e.lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(cfg, dict) or "tokenizer" not in cfg:
            raise UserError(f"{config}: no 'tokenizer' entry; add {{\"tokenizer\": {{\"type\": \"byte\"}}}} or similar")
        return tokenizer_from_config(path, cfg["tokenizer"])
    if not path.is_file():
        raise UserError(f"tokenizer {str(spec)!r}: no such file; pass 'byte', a .model, a tokenizer.json or a checkpoint directory")
    if path.suffix == ".model":
        return SentencePieceTokenizer(path)
    if path.suffix == ".json":
        return HFTokenizer(path)
    raise UserError(f"tokenizer {str(spec)!r}: unknown kind; pass 'byte', a .model, a tokenizer.json or a checkpoint directory")
