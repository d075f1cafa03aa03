"""Regenerate the golden .ddc test vectors in formats/golden/ (run only when a format change is intended).

Each vector is a small generated image (diffcodec.testimage.synthetic_image, so no data files are needed),
encoded with one method/preset. golden.json records, per file: how the source image is made, the sha256 of
the .ddc bytes and the sha256 of the decoded pixels (uint8, C order, with the shape). tests/test_golden.py
decodes every file on every CI run, so a change that breaks old files fails.

    python formats/make_golden.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from diffcodec import api
from diffcodec.testimage import synthetic_image

HERE = Path(__file__).resolve().parent / "golden"

VECTORS = [
    # name, method, preset, height, width, seed, grayscale
    ("opq-16-8-8_rgb_48x64", "opq", "opq-16-8-8", 48, 64, 1, False),
    ("opq-32-8-8_rgb_37x29", "opq", "opq-32-8-8", 37, 29, 2, False),
    ("opq-64-16-16_gray_23x31", "opq", "opq-64-16-16", 23, 31, 3, True),
    ("opq-128-32-32_rgb_16x24", "opq", "opq-128-32-32", 16, 24, 4, False),
]


def source_image(height: int, width: int, seed: int, gray: bool) -> np.ndarray:
    img = synthetic_image(height, width, seed)
    return img[..., 1] if gray else img


def pixels_sha256(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes() + repr(pixels.shape).encode()).hexdigest()


def main() -> None:
    HERE.mkdir(exist_ok=True)
    table = []
    for name, method, preset, h, w, seed, gray in VECTORS:
        data = api.encode(source_image(h, w, seed, gray), method=method, preset=preset)
        (HERE / f"{name}.ddc").write_bytes(data)
        table.append({"file": f"{name}.ddc", "method": method, "preset": preset, "height": h, "width": w,
                      "seed": seed, "grayscale": gray, "ddc_sha256": hashlib.sha256(data).hexdigest(),
                      "decoded_sha256": pixels_sha256(api.decode(data)), "bytes": len(data)})
    (HERE / "golden.json").write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {len(table)} vectors to {HERE}")


if __name__ == "__main__":
    main()
