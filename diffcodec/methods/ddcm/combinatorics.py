"""Combinatorics of a coded step: M-subsets <-> ranks (combinatorial number system), (atoms, signs) <->
symbols of the step's alphabet, and the encoder's atom selection."""

from __future__ import annotations

import math

import numpy as np


def subset_rank(indices) -> int:
    """Rank of a subset {c_1 < ... < c_M} in the combinatorial number system: sum_i C(c_i, i) (i from 1).
    A bijection from the M-subsets of 0..K-1 onto 0..C(K, M)-1."""
    cs = sorted(int(c) for c in indices)
    if len(set(cs)) != len(cs) or (cs and cs[0] < 0):
        raise ValueError("subset must hold distinct non-negative integers")
    return sum(math.comb(c, i) for i, c in enumerate(cs, start=1))


def subset_unrank(rank: int, k: int, m: int) -> list[int]:
    """Inverse of :func:`subset_rank` for M-subsets of 0..K-1 (ascending list)."""
    if not 0 <= rank < math.comb(k, m):
        raise ValueError(f"rank {rank} outside 0..C({k}, {m})-1")
    out = []
    hi = k - 1
    for i in range(m, 0, -1):
        lo = i - 1                      # C(i-1, i) = 0 <= rank always
        while lo < hi:                  # largest c in [lo, hi] with C(c, i) <= rank
            mid = (lo + hi + 1) // 2
            if math.comb(mid, i) <= rank:
                lo = mid
            else:
                hi = mid - 1
        out.append(lo)
        rank -= math.comb(lo, i)
        hi = lo - 1
    return out[::-1]


def alphabet(k: int, m: int) -> int:
    """Number of distinct choices of one coded step: K (M = 1), C(K, M) * 2^M (M > 1)."""
    return k if m == 1 else math.comb(k, m) << m


def bits_per_step(k: int, m: int) -> float:
    """log2 of :func:`alphabet` (the fixed-length code would use ceil(log2 C(K, M)) + M, at most 1 bit more)."""
    return math.log2(alphabet(k, m))


def atoms_to_symbol(indices, signs, k: int, m: int) -> int:
    """(ascending indices, +-1 signs) -> symbol in 0..alphabet-1: the index (M = 1), else
    rank * 2^M + sum_j [signs[j] < 0] 2^j."""
    if m == 1:
        return int(indices[0])
    bits = sum(1 << j for j, s in enumerate(signs) if s < 0)
    return (subset_rank(indices) << m) | bits


def symbol_to_atoms(symbol: int, k: int, m: int) -> tuple[list[int], list[int]]:
    if m == 1:
        return [int(symbol)], [1]
    rank, bits = symbol >> m, symbol & ((1 << m) - 1)
    return subset_unrank(rank, k, m), [-1 if (bits >> j) & 1 else 1 for j in range(m)]


def select_atoms(scores: np.ndarray, m: int) -> tuple[list[int], list[int]]:
    """M = 1: argmax score (sign +1, the paper's rule). M > 1: the M largest |score| (ties: lower index first),
    ascending, with the signs of their scores (0 -> +1)."""
    if m == 1:
        return [int(np.argmax(scores))], [1]
    order = np.argsort(-np.abs(scores), kind="stable")[:m]
    idx = sorted(int(i) for i in order)
    return idx, [(-1 if scores[i] < 0 else 1) for i in idx]
