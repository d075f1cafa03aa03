"""Golden clip vectors (format 1.1 and, with P-frames, 2.0; formats/golden/clip-*.ddc): the files, their layout,
their decoded planes and the encoder's bytes are pinned (opq decodes exactly on every machine)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
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


# ------------------------------------------------------------------------ clips of the network methods (ddcm)
NETWORK_VECTORS = json.loads((GOLDEN / "clips_network.json").read_text())
EXACT_ENV_KEYS = ("torch", "torch_threads", "cpu_model", "cpu_capability", "av")   # what their bytes depend on
MAX_ABS, MAX_MEAN = 2, 0.1          # the image vectors' cross-environment tolerance (tests/test_golden.py)


def _needs(vec):
    if "x264" in str(vec["params"].get("base")):
        pytest.importorskip("av", reason="PyAV (the x264 extra) is not installed")


def _environment_differs(vec) -> list[str]:
    now = make.network_environment()
    return [f"{k}: {vec['env'][k]!r} recorded, {now[k]!r} here" for k in EXACT_ENV_KEYS if now[k] != vec["env"][k]]


@pytest.mark.parametrize("vec", NETWORK_VECTORS, ids=lambda v: v["file"])
def test_golden_network_clip_layout_and_pixels(vec, one_thread):
    _needs(vec)
    data = (GOLDEN / vec["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == vec["ddc_sha256"], "golden file itself was modified"
    assert make.layout(data) == vec["layout"]
    frames = make.decoded(data, device="cpu")
    stored = make.read_y4m(GOLDEN / vec["decoded_y4m"])
    assert make.planes_sha256(stored) == vec["decoded_sha256"]
    if not _environment_differs(vec):
        assert make.planes_sha256(frames) == vec["decoded_sha256"]
        return
    assert len(frames) == len(stored)
    for a, b in zip(frames, stored):
        for x, y in zip(a, b):
            diff = np.abs(x.astype(int) - y.astype(int))
            assert diff.max() <= MAX_ABS and diff.mean() < MAX_MEAN, (diff.max(), diff.mean())


@pytest.mark.parametrize("vec", NETWORK_VECTORS, ids=lambda v: v["file"])
def test_encoder_reproduces_golden_network_clip(vec, one_thread):
    _needs(vec)
    data = make.encode(None, vec["height"], vec["width"], vec["frames"], vec["chroma"], tuple(vec["fps"]),
                       vec["seed"], vec["gop"], **vec["params"])
    if not _environment_differs(vec):
        assert data == (GOLDEN / vec["file"]).read_bytes()
        return
    ours, golden = make.layout(data), vec["layout"]       # elsewhere: the same structure
    assert [c[0] for c in ours["chunks"]] == [c[0] for c in golden["chunks"]]
    assert {k: v for k, v in ours["params"].items() if k != "pr"} == \
        {k: v for k, v in golden["params"].items() if k != "pr"}
