"""Golden .ddc files: old files must keep decoding to the same pixels, and the encoder must keep writing
the same bytes. If a test here fails, a change broke the format: bump the model id or format version
instead of regenerating the vectors."""

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from diffcodec import api

GOLDEN = Path(__file__).resolve().parent.parent / "formats" / "golden"
VECTORS = json.loads((GOLDEN / "golden.json").read_text())

spec = importlib.util.spec_from_file_location("make_golden", GOLDEN.parent / "make_golden.py")
make_golden = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_golden)


def test_there_are_vectors_for_every_opq_preset():
    from diffcodec.methods.opq import PRESETS

    assert {v["preset"] for v in VECTORS if v["method"] == "opq"} == set(PRESETS)


@pytest.mark.parametrize("vec", VECTORS, ids=[v["file"] for v in VECTORS])
def test_golden_file_decodes_to_pinned_pixels(vec):
    data = (GOLDEN / vec["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == vec["ddc_sha256"], "golden file itself was modified"
    pixels = api.decode(data)
    assert make_golden.pixels_sha256(pixels) == vec["decoded_sha256"]


@pytest.mark.parametrize("vec", VECTORS, ids=[v["file"] for v in VECTORS])
def test_encoder_reproduces_golden_bytes(vec):
    img = make_golden.source_image(vec["height"], vec["width"], vec["seed"], vec["grayscale"])
    data = api.encode(img, method=vec["method"], preset=vec["preset"])
    assert hashlib.sha256(data).hexdigest() == vec["ddc_sha256"]
