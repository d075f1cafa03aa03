"""Entropy coding over `constriction` (range coder, i.e. a queue: decode order = encode order).

Every probability model here is an integer frequency table. Tables are handed to constriction as float32
copies of small integers (exact), and constriction's own fixed-point quantisation is deterministic, so a
stream decodes identically on any machine. Models computed from floats (quantised Laplace/Gaussian for
latents) are first turned into integer tables on the CPU in float64 with fixed rounding, see
:func:`discretized_laplace_table`.

    enc = Encoder(); enc.uniform(sym, 256); enc.categorical(sym2, freqs); data = enc.finish()
    dec = Decoder(data); a = dec.uniform(n, 256); b = dec.categorical(n2, freqs)
"""

from __future__ import annotations

import math

import constriction
import numpy as np

from diffcodec.errors import CorruptInputError

_model = constriction.stream.model
_queue = constriction.stream.queue

# Keep every table total below 2**24 so float32 holds its entries exactly.
MAX_TABLE_TOTAL = 1 << 24


def _as_probs(freqs: np.ndarray) -> np.ndarray:
    f = np.asarray(freqs)
    if not np.issubdtype(f.dtype, np.integer):
        raise TypeError("frequency tables must be integer arrays")
    if f.min(initial=1) < 1:
        raise ValueError("every symbol needs a frequency >= 1")
    if f.sum(axis=-1).max(initial=0) >= MAX_TABLE_TOTAL:
        raise ValueError("frequency table total must stay below 2**24")
    return f.astype(np.float32)


def quantize_table(probs: np.ndarray, total: int = 1 << 16) -> np.ndarray:
    """Float probabilities (last axis) -> int32 frequencies summing to about `total`, each >= 1.

    Computed in float64 with round-half-even; use it only at training/export time or on CPU-side
    values that are themselves exact, so every machine gets the same integers.
    """
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum(axis=-1, keepdims=True)
    n = p.shape[-1]
    return (np.rint(p * (total - n)) + 1).astype(np.int32)


def discretized_laplace_table(scale: float, support: int, total: int = 1 << 16) -> np.ndarray:
    """Integer table for a zero-mean Laplace of `scale` discretised on symbols -support..support
    (symbol s is stored at index s + support); tails folded into the end bins."""
    edges = np.arange(-support, support + 2, dtype=np.float64) - 0.5
    cdf = np.where(edges < 0, 0.5 * np.exp(edges / scale), 1 - 0.5 * np.exp(-edges / scale))
    cdf[0], cdf[-1] = 0.0, 1.0
    return quantize_table(np.diff(cdf), total)


CONTEXT_BLOCK = 1 << 14     # symbols per coder call in context coding: bounds the (n, K) probability rows built


class TableSet:
    """Integer frequency tables (n_tables, K), checked once: coding then picks a row per symbol (its context)
    without re-checking the tables for every call."""

    def __init__(self, freqs: np.ndarray):
        self.probs = _as_probs(np.asarray(freqs))
        if self.probs.ndim != 2:
            raise ValueError("a table set is a 2-D array (n_tables, K)")


class Encoder:
    """Collects symbols in decode order and returns the compressed bytes."""

    def __init__(self):
        self._coder = _queue.RangeEncoder()

    def uniform(self, symbols: np.ndarray, size: int) -> None:
        s = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
        if s.size:
            self._coder.encode(s, _model.Uniform(size))

    def categorical(self, symbols: np.ndarray, freqs: np.ndarray) -> None:
        """All symbols under one table `freqs` (shape (K,))."""
        s = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
        if s.size:
            self._coder.encode(s, _model.Categorical(_as_probs(freqs), perfect=False))

    def categorical_per_symbol(self, symbols: np.ndarray, freqs: np.ndarray) -> None:
        """Symbol i under its own table freqs[i] (shape (n, K))."""
        s = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
        if s.size:
            self._coder.encode(s, _model.Categorical(perfect=False), _as_probs(freqs).reshape(s.size, -1))

    def categorical_in_context(self, symbols: np.ndarray, tables: TableSet, contexts: np.ndarray) -> None:
        """Symbol i under row ``contexts[i]`` of ``tables`` (the same coding as categorical_per_symbol)."""
        s = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
        contexts = np.asarray(contexts).ravel()
        for i in range(0, s.size, CONTEXT_BLOCK):     # a queue coder: blocks of calls code exactly as one call
            self._coder.encode(s[i:i + CONTEXT_BLOCK], _model.Categorical(perfect=False),
                               tables.probs[contexts[i:i + CONTEXT_BLOCK]])

    def num_bits(self) -> int:
        return int(self._coder.num_bits())

    def finish(self) -> bytes:
        return self._coder.get_compressed().astype("<u4").tobytes()


class Decoder:
    """Reads symbols back in the order they were encoded. Malformed data -> CorruptInputError."""

    def __init__(self, data: bytes):
        if len(data) % 4:
            raise CorruptInputError("corrupt payload: length is not a whole number of 32-bit words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self._coder = _queue.RangeDecoder(words)
        except Exception as e:  # constriction raises ValueError/AssertionError on bad words
            raise CorruptInputError(f"corrupt payload: {e}") from None

    def _decode(self, *args) -> np.ndarray:
        try:
            return np.asarray(self._coder.decode(*args), dtype=np.int64)
        except Exception as e:
            raise CorruptInputError(f"corrupt payload: {e}") from None

    def uniform(self, n: int, size: int) -> np.ndarray:
        return self._decode(_model.Uniform(size), n) if n else np.zeros(0, np.int64)

    def categorical(self, n: int, freqs: np.ndarray) -> np.ndarray:
        if not n:
            return np.zeros(0, np.int64)
        return self._decode(_model.Categorical(_as_probs(freqs), perfect=False), n)

    def categorical_per_symbol(self, freqs: np.ndarray) -> np.ndarray:
        f = _as_probs(freqs)
        if not f.shape[0]:
            return np.zeros(0, np.int64)
        return self._decode(_model.Categorical(perfect=False), f)

    def categorical_in_context(self, tables: TableSet, contexts: np.ndarray) -> np.ndarray:
        contexts = np.asarray(contexts).ravel()
        if not len(contexts):
            return np.zeros(0, np.int64)
        if len(contexts) <= CONTEXT_BLOCK:
            return self._decode(_model.Categorical(perfect=False), tables.probs[contexts])
        model = _model.Categorical(perfect=False)
        return np.concatenate([self._decode(model, tables.probs[contexts[i:i + CONTEXT_BLOCK]])
                               for i in range(0, len(contexts), CONTEXT_BLOCK)])

    def maybe_exhausted(self) -> bool:
        return bool(self._coder.maybe_exhausted())


def fixed_length_bits(n_symbols: int, alphabet: int) -> int:
    """Bits a plain fixed-length code would need: the reference for reporting entropy-coding gains."""
    return n_symbols * math.ceil(math.log2(alphabet))
