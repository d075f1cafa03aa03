"""Golden clip vectors (format 1.1 and, with P-frames, 2.0; formats/golden/clip-*.ddc): the files, their layout,
their decoded planes and the encoder's bytes are pinned (opq decodes exactly on every machine)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent.parent / "formats" / "golden"
VECTORS = json.loads((GOLDEN / "clips.json").read_text())

spec = importlib.util.spec_from_file_location("make_golden_clips", GOLDEN.parent / "make_golden_clips.py")
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: v["file"])
def test_golden_clip_layout_and_pixels(vec):
    data = (GOLDEN / vec["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == vec["ddc_sha256"], "golden file itself was modified"
    assert make.layout(data) == vec["layout"]
    assert make.planes_sha256(make.decoded(data)) == vec["decoded_sha256"]


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: v["file"])
def test_encoder_reproduces_golden_clip(vec):
    data = make.encode(vec["preset"], vec["height"], vec["width"], vec["frames"], vec["chroma"], tuple(vec["fps"]),
                       vec["seed"], vec["gop"], vec["coded"])
    assert data == (GOLDEN / vec["file"]).read_bytes()
