"""Generate the golden .ddc test vectors in formats/golden/ (run only when a new vector is added or a format
change is intended).

Each vector is a small generated image (diffcodec.testimage.synthetic_image, so no data files are needed),
encoded with one method, preset and encode parameters. golden.json records, per file: how the source image is
made, the encode parameters, the sha256 of the .ddc bytes, its layout as read back (header fields, chunk types
and lengths) and the sha256 of the decoded pixels (uint8, C order, with the shape). tests/test_golden.py
checks all of it on every CI run, so a change that breaks old files fails.

The network methods (ddcm, diffae) decode to exactly the same pixels only with the same software, CPU and
thread count (formats/ddc-v1.md, "Golden vectors"). For them the vector also stores the decoded image as a
lossless PNG beside the .ddc (NAME.decoded.png) and golden.json records the environment it was made in
(torch version, torch threads, CPU model and torch's CPU capability, platform). Everything here runs on the
CPU with one torch thread, so a fresh one-thread process on the same kind of machine reproduces the bytes.

    python formats/make_golden.py                  # write only the vectors whose .ddc file is absent
    python formats/make_golden.py --only NAME ...  # (re)write these vectors
    python formats/make_golden.py --all            # rewrite every vector (a format change)

Files that are not rewritten keep their golden.json entry as it is (layout fields an older entry lacks are
read from its unchanged file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
from pathlib import Path

import numpy as np

from diffcodec import api, container
from diffcodec.testimage import synthetic_image

HERE = Path(__file__).resolve().parent / "golden"
THREADS = 1                     # torch threads for every network vector (recorded in golden.json)
NETWORK_METHODS = ("ddcm", "diffae")
# Encode parameters every network vector gets: the CPU (a GPU rounds differently), and for ddcm fp32 (its
# `precision=auto` picks bf16 on CPUs with AVX512-BF16/AMX, so the file would depend on the machine).
_CPU = {"device": "cpu"}

VECTORS = [
    # name, method, preset, height, width, seed, grayscale, encode params
    ("opq-16-8-8_rgb_48x64", "opq", "opq-16-8-8", 48, 64, 1, False, {}),
    ("opq-32-8-8_rgb_37x29", "opq", "opq-32-8-8", 37, 29, 2, False, {}),
    ("opq-64-16-16_gray_23x31", "opq", "opq-64-16-16", 23, 31, 3, True, {}),
    ("opq-128-32-32_rgb_16x24", "opq", "opq-128-32-32", 16, 24, 4, False, {}),
    # ddcm, latent space (latent-ddpm + latent-ae): a preset, and --bpp (its own N/K/M search)
    ("ddcm-latent_n20-k4096-m16_rgb_32x48", "ddcm", "n20-k4096-m16", 32, 48, 5, False,
     {"space": "latent", "precision": "fp32", **_CPU}),
    ("ddcm-latent_bpp2_rgb_37x29", "ddcm", None, 37, 29, 6, False,
     {"space": "latent", "bpp": 2.0, "precision": "fp32", **_CPU}),
    # ddcm, pixel space (pixel-ddpm), a short process
    ("ddcm-pixel_n5-k4096-m16_rgb_29x37", "ddcm", "n20-k4096-m16", 29, 37, 7, False,
     {"space": "pixel", "steps": 5, "precision": "fp32", **_CPU}),
    # conditional ddcm: opq-16-8-8 base layer + opq-refiner (the opq bases' refiner until opq-clip-refiner), the
    # default base preset n3-k4096-m512
    ("ddcm-cond_opq-16-8-8_n3-k4096-m512_rgb_32x48", "ddcm", None, 32, 48, 8, False,
     {"base": "opq-16-8-8", "refiner": "opq-refiner", "precision": "fp32", **_CPU}),
    # ... and on opq-32-8-8 with today's default refiner of an opq base (opq-clip-refiner), one free step
    ("ddcm-cond_opq-32-8-8_clip-refiner_n1_rgb_32x48", "ddcm", None, 32, 48, 13, False,
     {"base": "opq-32-8-8", "steps": 1, "refine": True, "ensemble": 1, "precision": "fp32", **_CPU}),
    # conditional ddcm on a standard codec's file (JPEG q30, stored verbatim) + codec-refiner, one free step
    ("ddcm-cond_jpeg-q30_n1_rgb_32x48", "ddcm", None, 32, 48, 12, False,
     {"base": "jpeg:q30", "steps": 1, "refine": True, "ensemble": 1, "refiner": "codec-refiner", "precision": "fp32",
      **_CPU}),
    # ... and with codec-refiner-2 (the default refiner of a standard-codec base before codec-refiner-3), WebP q40
    ("ddcm-cond_webp-q40_codec-refiner-2_n1_rgb_32x48", "ddcm", None, 32, 48, 14, False,
     {"base": "webp:q40", "steps": 1, "refine": True, "ensemble": 1, "refiner": "codec-refiner-2", "precision": "fp32",
      **_CPU}),
    # ... and with today's default refiner of a standard-codec base (codec-refiner-3) and the free step's ensemble of
    # four views (header en), JPEG q50
    ("ddcm-cond_jpeg-q50_codec-refiner-3_en4_n1_rgb_32x48", "ddcm", None, 32, 48, 15, False,
     {"base": "jpeg:q50", "steps": 1, "refine": True, "ensemble": 4, "precision": "fp32", **_CPU}),
    # ... and a big image's standard-codec base in stripes of rows (header bh, session 16), JPEG q40 in stripes of 64
    # rows: the stripe rule forced onto a small image (``_stripe_pixels``: encode_vector sets the rule's pixels)
    ("ddcm-cond_jpeg-q40_bh64_n1_rgb_136x40", "ddcm", None, 136, 40, 16, False,
     {"base": "jpeg:q40", "steps": 1, "refine": True, "ensemble": 1, "precision": "fp32", "_stripe_pixels": 64 * 40,
      **_CPU}),
    # grayscale ddcm (coded as RGB with the plane replicated, output the rounded mean)
    ("ddcm-latent_n20-k4096-m16_gray_29x37", "ddcm", "n20-k4096-m16", 29, 37, 9, True,
     {"space": "latent", "precision": "fp32", **_CPU}),
    # diffae: a preset with the default 2 decoder steps, and one decoder step
    ("diffae_medium_rgb_32x48", "diffae", "medium", 32, 48, 10, False, {**_CPU}),
    ("diffae_high-n1_rgb_37x29", "diffae", "high", 37, 29, 11, False, {"steps": 1, **_CPU}),
]

DECODE_OPTIONS = {"ddcm": _CPU, "diffae": _CPU}     # api.decode options per method (none for opq)


def source_image(height: int, width: int, seed: int, gray: bool) -> np.ndarray:
    img = synthetic_image(height, width, seed)
    return img[..., 1] if gray else img


def pixels_sha256(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes() + repr(pixels.shape).encode()).hexdigest()


def encode_vector(vec: dict) -> bytes:
    """The .ddc bytes of a golden.json entry's source image, encoded as recorded."""
    img = source_image(vec["height"], vec["width"], vec["seed"], vec["grayscale"])
    params = dict(vec.get("params", {}))
    stripe_pixels = params.pop("_stripe_pixels", None)
    if stripe_pixels is None:
        return api.encode(img, method=vec["method"], preset=vec["preset"], **params)
    from diffcodec.methods.ddcm import base_layer

    rule = base_layer.STRIPE_ABOVE_PIXELS, base_layer.STRIPE_PIXELS
    base_layer.STRIPE_ABOVE_PIXELS, base_layer.STRIPE_PIXELS = 0, stripe_pixels
    try:
        return api.encode(img, method=vec["method"], preset=vec["preset"], **params)
    finally:
        base_layer.STRIPE_ABOVE_PIXELS, base_layer.STRIPE_PIXELS = rule


def decode_vector(vec: dict, data: bytes) -> np.ndarray:
    return api.decode(data, **DECODE_OPTIONS.get(vec["method"], {}))


def layout(data: bytes) -> dict:
    """The header fields and chunk layout of a .ddc file, as container.read_container reads them."""
    c = container.read_container(data)
    h = c.header
    out = {"version": list(c.version),
           "header": {"method": h.method, "model": h.model, "model_sha": h.model_sha, "width": h.width,
                      "height": h.height, "pixel_format": h.pixel_format, "frames": h.frames,
                      "params": h.params, "rng": h.rng},
           "header_bytes": c.header_bytes,
           "chunks": [[ch.type, len(ch.data)] for ch in c.chunks]}
    if h.method == "ddcm":      # the D chunk's split into opq base layer and index payload
        (payload,) = c.payloads
        base, index = base_layer_split(payload) if "b" in h.params else (b"", payload)
        out["ddcm_layers"] = {"base_bytes": len(base), "index_bytes": len(index)}
    return out


def base_layer_split(payload: bytes) -> tuple[bytes, bytes]:
    """A conditional ddcm D chunk is LEB128(len(base)) || base || index payload (formats/ddc-v1.md): (base, index)."""
    n, pos = 0, 0
    while True:
        b = payload[pos]
        n |= (b & 0x7F) << (7 * pos)
        pos += 1
        if not b & 0x80:
            break
    return payload[pos:pos + n], payload[pos + n:]


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment() -> dict:
    """What the network methods' float arithmetic depends on (the first four must match for exact pixels)."""
    import torch

    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cpu_model": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__}


def save_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path, format="PNG")        # lossless, L for (H, W), RGB for (H, W, 3)


def make_entry(name: str, method: str, preset: str | None, h: int, w: int, seed: int, gray: bool,
               params: dict) -> dict:
    entry = {"file": f"{name}.ddc", "method": method, "preset": preset, "params": params, "height": h, "width": w,
             "seed": seed, "grayscale": gray}
    data = encode_vector(entry)
    pixels = decode_vector(entry, data)
    (HERE / entry["file"]).write_bytes(data)
    entry.update(ddc_sha256=hashlib.sha256(data).hexdigest(), decoded_sha256=pixels_sha256(pixels), bytes=len(data))
    if method in NETWORK_METHODS:
        entry["decoded_png"] = f"{name}.decoded.png"
        save_png(HERE / entry["decoded_png"], pixels)
        entry["env"] = environment()
    entry.update(layout(data))
    return entry


def dump_json(obj, indent: int = 0) -> str:
    """JSON with one key per line, but short lists (chunk lengths, versions) on one line."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(k)}: {dump_json(v, indent + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and any(isinstance(v, dict) for v in obj):
        return "[\n" + ",\n".join(inner + dump_json(v, indent + 2) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj)


_ORDER = ("file", "method", "preset", "params", "height", "width", "seed", "grayscale", "ddc_sha256",
          "decoded_sha256", "bytes", "decoded_png", "env")


def _ordered(entry: dict) -> dict:
    return {**{k: entry[k] for k in _ORDER if k in entry}, **entry}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="(re)write only these vectors")
    ap.add_argument("--all", action="store_true", help="rewrite every vector, also the existing files")
    args = ap.parse_args(argv)
    names = [v[0] for v in VECTORS]
    if args.only and not set(args.only) <= set(names):
        ap.error(f"unknown vector(s) {', '.join(sorted(set(args.only) - set(names)))}; known: {', '.join(names)}")

    import torch

    torch.set_num_threads(THREADS)
    HERE.mkdir(exist_ok=True)
    table = HERE / "golden.json"
    old = {e["file"]: e for e in json.loads(table.read_text())} if table.exists() else {}
    out, wrote = [], []
    for vec in VECTORS:
        name = vec[0]
        file = HERE / f"{name}.ddc"
        if args.all or (args.only and name in args.only) or not file.exists() or file.name not in old:
            out.append(make_entry(*vec))
            wrote.append(name)
        else:
            entry = {"params": vec[7], **old[file.name]}
            if "chunks" not in entry:       # an older entry: add the layout, read from its unchanged file
                entry.update(layout(file.read_bytes()))
            out.append(_ordered(entry))
    table.write_text(dump_json(out) + "\n")
    print(f"wrote {len(wrote)} of {len(out)} vectors to {HERE}" + (f": {', '.join(wrote)}" if wrote else ""))


if __name__ == "__main__":
    main()
