import math

import numpy as np
import pytest

from diffcodec.entropy import (
    Decoder,
    Encoder,
    discretized_laplace_table,
    fixed_length_bits,
    quantize_table,
)
from diffcodec.errors import CorruptInputError


def test_mixed_models_round_trip():
    rng = np.random.default_rng(1)
    u = rng.integers(0, 4096, 500)
    table = quantize_table(rng.random(16) ** 4)
    c = rng.choice(16, 800, p=table / table.sum())
    per = quantize_table(rng.random((300, 256)))
    s = rng.integers(0, 256, 300)
    enc = Encoder()
    enc.uniform(u, 4096)
    enc.categorical(c, table)
    enc.categorical_per_symbol(s, per)
    data = enc.finish()
    dec = Decoder(data)
    assert np.array_equal(dec.uniform(500, 4096), u)
    assert np.array_equal(dec.categorical(800, table), c)
    assert np.array_equal(dec.categorical_per_symbol(per), s)


def test_encoding_is_deterministic_and_near_entropy():
    rng = np.random.default_rng(2)
    p = np.array([0.7, 0.2, 0.05, 0.05])
    table = quantize_table(p)
    sym = rng.choice(4, 20000, p=p)
    a, b = Encoder(), Encoder()
    a.categorical(sym, table)
    b.categorical(sym, table)
    da, db = a.finish(), b.finish()
    assert da == db
    counts = np.bincount(sym, minlength=4)
    ideal = -(counts * np.log2(table / table.sum())).sum()
    assert len(da) * 8 <= ideal * 1.01 + 64
    assert len(da) * 8 < fixed_length_bits(20000, 4) * 0.75


def test_quantize_table_properties():
    t = quantize_table(np.array([0.0, 1e-12, 0.5, 0.5]))
    assert t.dtype == np.int32 and t.min() >= 1
    assert abs(int(t.sum()) - (1 << 16)) <= 4
    with pytest.raises(ValueError):
        Encoder().categorical(np.array([0]), np.array([0, 5]))
    with pytest.raises(TypeError):
        Encoder().categorical(np.array([0]), np.array([0.5, 0.5]))


def test_laplace_table_is_symmetric_and_peaked():
    t = discretized_laplace_table(1.5, 10)
    assert t.shape == (21,)
    assert np.array_equal(t, t[::-1])
    assert t.argmax() == 10 and t.min() >= 1
    # the mass of the centre bin matches the continuous Laplace within rounding
    centre = 1 - math.exp(-0.5 / 1.5)
    assert abs(t[10] / t.sum() - centre) < 1e-3


def test_corrupt_payloads_raise_corrupt_input():
    with pytest.raises(CorruptInputError):
        Decoder(b"abc")
    table = quantize_table(np.ones(8))
    enc = Encoder()
    enc.categorical(np.arange(8), table)
    data = enc.finish()
    # decoding more symbols than were written from a well-formed stream must not crash the process
    dec = Decoder(data)
    dec.categorical(8, table)
    assert dec.maybe_exhausted()
