"""Golden .ddc files (formats/golden/, made by formats/make_golden.py): old files must keep their layout and keep
decoding to the same pixels, and the encoder must keep writing the same bytes. If a test here fails, a change
broke the format: bump the model id or format version instead of regenerating the vectors.

opq is exact everywhere. The network methods (ddcm, diffae) are exact only in the environment the vector was made
in (torch version, torch threads, CPU model and capability: golden.json's `env`); elsewhere the decode must stay
within the documented cross-thread/cross-machine tolerance of the stored decoded PNG (at most 2 levels, mean
absolute difference < 0.1; formats/ddc-v1.md, "Golden vectors") and a re-encode must give the same header and
chunk lengths."""

import contextlib
import hashlib
import importlib.util
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from diffcodec import api, container

GOLDEN = Path(__file__).resolve().parent.parent / "formats" / "golden"
VECTORS = json.loads((GOLDEN / "golden.json").read_text())

spec = importlib.util.spec_from_file_location("make_golden", GOLDEN.parent / "make_golden.py")
make_golden = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_golden)

NETWORK = make_golden.NETWORK_METHODS
EXACT_ENV_KEYS = ("torch", "torch_threads", "cpu_model", "cpu_capability")   # what the float sums depend on
MAX_ABS, MAX_MEAN = 2, 0.1          # cross-environment decode tolerance (formats/ddc-v1.md, tests/conftest.py)


def _vectors(slow_networks: bool, methods=None):
    """The vectors as test parameters (of ``methods`` only, if given); network ones marked slow if asked."""
    return [pytest.param(v, id=v["file"], marks=[pytest.mark.slow] if slow_networks and v["method"] in NETWORK
                         else []) for v in VECTORS if methods is None or v["method"] in methods]


@contextlib.contextmanager
def recorded_threads(vec):
    """Run with the torch thread count the vector was made with (the network methods' sums depend on it)."""
    if vec["method"] not in NETWORK:
        yield
        return
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(vec["env"]["torch_threads"])
    try:
        yield
    finally:
        torch.set_num_threads(n)


def environment_differs(vec) -> list[str]:
    """The environment keys in which this process differs from the one the vector was made in ([] for opq)."""
    if vec["method"] not in NETWORK:
        return []
    now = make_golden.environment()
    return [f"{k}: {vec['env'][k]!r} recorded, {now[k]!r} here" for k in EXACT_ENV_KEYS if now[k] != vec["env"][k]]


def _warn_inexact(vec, what, differs):
    warnings.warn(f"{vec['file']}: {what} only, the environment differs "
                  f"({'; '.join(differs)})", stacklevel=2)


# ---------------------------------------------------------------------------------------------------- the set


def test_there_are_vectors_for_every_opq_preset():
    from diffcodec.methods.opq import PRESETS

    assert {v["preset"] for v in VECTORS if v["method"] == "opq"} == set(PRESETS)


def test_there_are_vectors_for_every_ddcm_mode_and_diffae():
    modes = set()
    for v in VECTORS:
        p, gray = v["header"]["params"], v["header"]["pixel_format"] == 1
        if v["method"] == "ddcm":
            modes.add("ddcm-conditional" if "b" in p else f"ddcm-{p['sp']}")
            modes |= {"ddcm-gray"} if gray else set()
            modes |= {"ddcm-bpp"} if "bpp" in v["params"] else set()
            modes |= {"ddcm-ensemble"} if "en" in p else set()
        elif v["method"] == "diffae":
            modes.add(f"diffae-n{p['n']}")
    assert modes >= {"ddcm-latent", "ddcm-pixel", "ddcm-conditional", "ddcm-gray", "ddcm-bpp", "ddcm-ensemble",
                     "diffae-n1", "diffae-n2"}


def test_golden_json_lists_exactly_the_vectors_of_make_golden():
    recorded = [(v["file"], v["method"], v["preset"], v["height"], v["width"], v["seed"], v["grayscale"],
                 v["params"]) for v in VECTORS]
    assert recorded == [(f"{name}.ddc", *rest) for name, *rest in make_golden.VECTORS]
    for v in VECTORS:
        if v["method"] in NETWORK:
            assert set(EXACT_ENV_KEYS) <= set(v["env"]) and (GOLDEN / v["decoded_png"]).is_file()


# The `params` and `rng` keys each method writes (ddcm: DDCMParams.header / rng_spec; diffae: its compress)
HEADER_KEYS = {"opq": set(), "ddcm": {"n", "k", "m", "cb", "sp", "b", "bs", "bh", "pr", "pf", "tl", "en", "g", "s"},
               "diffae": {"d", "n", "s"}}


def test_spec_tables_list_the_header_keys_of_every_method():
    """formats/ddc-v1.md has a key table per method: it lists every `params` / `rng` key the method writes, and
    every key a golden file carries."""
    spec = (GOLDEN.parent / "ddc-v1.md").read_text()
    assert {v["method"] for v in VECTORS} == set(HEADER_KEYS)
    for method, expected in HEADER_KEYS.items():
        section = spec.split(f"\n## Method: {method}\n")[1].split("\n## ")[0]
        documented = set(re.findall(r"^\| `([a-z]+)` \|", section, re.M))
        assert expected <= documented, (method, expected - documented)
        for v in (v for v in VECTORS if v["method"] == method):
            keys = set(v["header"]["params"]) | set(v["header"]["rng"] or {})
            assert keys <= expected, (v["file"], keys - expected)


# ------------------------------------------------------------------------------------- the files as they are


@pytest.mark.parametrize("vec", _vectors(slow_networks=False))
def test_golden_file_is_unmodified_and_has_the_recorded_layout(vec):
    data = (GOLDEN / vec["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == vec["ddc_sha256"], "golden file itself was modified"
    assert len(data) == vec["bytes"]
    c = container.read_container(data)
    h = c.header
    assert list(c.version) == vec["version"]
    assert {"method": h.method, "model": h.model, "model_sha": h.model_sha, "width": h.width, "height": h.height,
            "pixel_format": h.pixel_format, "frames": h.frames, "params": h.params, "rng": h.rng} == vec["header"]
    assert (h.method, h.width, h.height, h.pixel_format) == (vec["method"], vec["width"], vec["height"],
                                                              int(vec["grayscale"]))
    assert c.header_bytes == vec["header_bytes"]
    assert [[ch.type, len(ch.data)] for ch in c.chunks] == vec["chunks"]
    assert make_golden.layout(data) == {k: vec[k] for k in make_golden.layout(data)}


@pytest.mark.parametrize("vec", _vectors(False, ("ddcm",)))
def test_ddcm_payload_is_base_layer_then_index_payload(vec):
    """A ddcm D chunk: without a base layer the index payload alone; with one, LEB128(len) + base + index, where
    the base is exactly opq's D chunk of the same image (opq is exact everywhere, so this holds on any machine), or
    a standard codec's file exactly as Pillow writes it."""
    data = (GOLDEN / vec["file"]).read_bytes()
    (payload,) = container.read_container(data).payloads
    layers = vec["ddcm_layers"]
    base_preset = vec["header"]["params"].get("b")
    if base_preset is None:
        assert layers == {"base_bytes": 0, "index_bytes": len(payload)}
        return
    base, index = make_golden.base_layer_split(payload)
    assert (len(base), len(index)) == (layers["base_bytes"], layers["index_bytes"])
    img = make_golden.source_image(vec["height"], vec["width"], vec["seed"], vec["grayscale"])
    if ":q" in base_preset:         # a standard codec's base: its file exactly as Pillow writes it
        from diffcodec import baselines

        kind, q = base_preset.split(":q")
        codec = baselines.get_baseline(kind)
        rows = vec["header"]["params"].get("bh")
        if rows:                    # in stripes: LEB128(len) + the file of each stripe of rows, top to bottom
            rest, stripes = base, []
            while rest:
                stripe, rest = make_golden.base_layer_split(rest)
                stripes.append(stripe)
            assert stripes == [codec.encode(img[top:top + rows], int(q)) for top in range(0, vec["height"], rows)]
            assert len(stripes) > 1 and vec["header"]["params"]["bs"] == 0
            return
        assert codec.encode(img, int(q)) == base and vec["header"]["params"]["bs"] == 0
        return
    opq = container.read_container(api.encode(img, method="opq", preset=base_preset))
    assert opq.payloads == [base] and opq.header.model_sha == vec["header"]["params"]["bs"]


@pytest.mark.parametrize("vec", _vectors(False, NETWORK))
def test_stored_decoded_png_is_the_recorded_decode(vec):
    from PIL import Image

    with Image.open(GOLDEN / vec["decoded_png"]) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im)
    assert make_golden.pixels_sha256(pixels) == vec["decoded_sha256"]


# ------------------------------------------------------------------------------------ decoding and encoding


@pytest.mark.parametrize("vec", _vectors(slow_networks=True))
def test_golden_file_decodes_to_pinned_pixels(vec):
    data = (GOLDEN / vec["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == vec["ddc_sha256"], "golden file itself was modified"
    with recorded_threads(vec):
        pixels = make_golden.decode_vector(vec, data)
        differs = environment_differs(vec)
    if not differs:
        assert make_golden.pixels_sha256(pixels) == vec["decoded_sha256"]
        return
    _warn_inexact(vec, "decoded pixels checked within tolerance", differs)
    from PIL import Image

    with Image.open(GOLDEN / vec["decoded_png"]) as im:
        ref = np.asarray(im)
    assert pixels.shape == ref.shape
    diff = np.abs(pixels.astype(int) - ref.astype(int))
    assert diff.max() <= MAX_ABS and diff.mean() < MAX_MEAN, (diff.max(), diff.mean())


@pytest.mark.parametrize("vec", _vectors(slow_networks=True))
def test_encoder_reproduces_golden_bytes(vec):
    with recorded_threads(vec):
        data = make_golden.encode_vector(vec)
        differs = environment_differs(vec)
    if not differs:
        assert hashlib.sha256(data).hexdigest() == vec["ddc_sha256"]
        return
    # The encoder's choices follow its network's float sums: elsewhere only the layout is pinned (for ddcm the
    # payload size is fixed by the parameters; the opq base layer is exact everywhere).
    _warn_inexact(vec, "encoder output checked for header and chunk lengths", differs)
    layout = make_golden.layout(data)
    assert layout == {k: vec[k] for k in layout}
