"""Generate the golden clip vectors (format 1.1, and 2.0 with P-frames) in formats/golden/ (run only when a
vector is added or the format changes on purpose): small generated clips (a test picture moving sideways, so no
data files are needed) coded with opq, whose decoding is exact on every machine. clips.json records how each
source clip is made, the sha256 of the .ddc, its layout (version, header, video chunk, index, payload lengths)
and the sha256 of the decoded planes; tests/test_golden_clips.py checks all of it. clips_network.json does the same
for clips of the network methods (NETWORK_CLIPS), with their decoded planes stored and the environment recorded.

    python formats/make_golden_clips.py           (the network clips: only new ones; --all: every one again)
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np

from diffcodec import clips, container, video, yuv
from diffcodec.testimage import synthetic_image

HERE = Path(__file__).resolve().parent / "golden"

CLIPS = [
    # name, preset, height, width, frames, chroma, fps, seed, gop, coded ("rgb": through RGB, as before pixel
    # formats 2 and 3; "yuv": the YCbCr planes themselves)
    ("clip-opq-32-8-8_420_24x40_3f", "opq-32-8-8", 24, 40, 3, "420", (30000, 1001), 1, 1, "rgb"),
    ("clip-opq-16-8-8_mono_17x23_2f", "opq-16-8-8", 17, 23, 2, "mono", (25, 1), 2, 1, "rgb"),
    ("clip-opq-64-16-16_420_40x56_5f_gop3", "opq-64-16-16", 40, 56, 5, "420", (25, 1), 3, 3, "rgb"),
    ("clip-opq-32-8-8_mono_21x35_3f_gop3", "opq-32-8-8", 21, 35, 3, "mono", (12, 1), 4, 3, "rgb"),
    ("clip-opq-32-8-8_yuv420_27x45_4f_gop3", "opq-32-8-8", 27, 45, 4, "420", (25, 1), 5, 3, "yuv"),
    ("clip-opq-64-16-16_yuv444_20x36_3f_gop2", "opq-64-16-16", 20, 36, 3, "444", (24, 1), 6, 2, "yuv"),
]


def source_planes(height: int, width: int, frames: int, chroma: str, seed: int) -> list[tuple[np.ndarray, ...]]:
    wide = synthetic_image(height, width + 4 * frames, seed)
    return [yuv.rgb_to_planes(np.ascontiguousarray(wide[:, 4 * i:4 * i + width]), chroma) for i in range(frames)]


def zoom_planes(height: int, width: int, frames: int, chroma: str, seed: int) -> list[tuple[np.ndarray, ...]]:
    """A test picture growing about its centre by 8 % a frame (Pillow's bilinear resize of shrinking crops)."""
    from PIL import Image

    big = synthetic_image(2 * height, 2 * width, seed)
    out = []
    for i in range(frames):
        ch, cw = round(height * 1.5 / (1 + 0.08 * i)), round(width * 1.5 / (1 + 0.08 * i))
        y0, x0 = (2 * height - ch) // 2, (2 * width - cw) // 2
        crop = Image.fromarray(np.ascontiguousarray(big[y0:y0 + ch, x0:x0 + cw])).resize((width, height),
                                                                                         Image.BILINEAR)
        out.append(yuv.rgb_to_planes(np.asarray(crop), chroma))
    return out


def source_y4m(height, width, frames, chroma, fps, seed, source="pan") -> bytes:
    info = video.VideoInfo(width, height, fps, chroma)
    out = io.BytesIO()
    out.write(video.y4m_header(info))
    make = {"pan": source_planes, "zoom": zoom_planes}[source]
    for planes in make(height, width, frames, chroma, seed):
        out.write(b"FRAME\n" + b"".join(np.ascontiguousarray(p).tobytes() for p in planes))
    return out.getvalue()


# Clips of the network methods (clips_network.json): exact only in the environment they were made in (one torch
# thread; make_golden.environment(), and PyAV's version for an H.264 base), within the image vectors' tolerance
# elsewhere; the decoded planes are stored beside them (NAME.decoded.y4m). ddcm P-frames on an opq base, ddcm on
# an H.264 base and diffae with temporal compression (issue #16).
NETWORK_CLIPS = [
    # name, encode options, height, width, frames, chroma, fps, seed, gop
    ("clip-ddcm-opq-32-8-8-n1_420_32x48_4f_gop2", {"method": "ddcm", "base": "opq-32-8-8", "steps": 1,
                                                   "refine": True}, 32, 48, 4, "420", (25, 1), 7, 2),
    ("clip-ddcm-x264-crf30_yuv420_32x48_4f_gop2", {"method": "ddcm", "base": "x264:crf30",
                                                   "refiner": "codec-refiner-3"}, 32, 48, 4, "420", (25, 1), 8, 2),
    ("clip-diffae-grid7-t2_420_32x48_5f_gop2", {"method": "diffae", "grid": 7}, 32, 48, 5, "420", (25, 1), 9, 2),
    # ... on a zoom (``_source``: what the source clip does), so that the P chunks hold motion fields (session 16)
    ("clip-diffae-grid7-t2-field_420_64x96_4f_gop2", {"method": "diffae", "grid": 7, "_source": "zoom"}, 64, 96, 4,
     "420", (25, 1), 10, 2),
]


def encode(preset, height, width, frames, chroma, fps, seed, gop=1, coded="rgb", method="opq", _source="pan",
           **params) -> bytes:
    out = io.BytesIO()
    with video.open_video(io.BytesIO(source_y4m(height, width, frames, chroma, fps, seed, _source))) as reader:
        if method == "opq":
            clips.encode_clip(reader, out, "opq", preset, gop=gop, planar=coded == "yuv")
        else:
            clips.encode_clip(reader, out, method, gop=gop, device="cpu", **params)
    return out.getvalue()


def network_environment() -> dict:
    """make_golden.environment() and PyAV's version (x264's bytes and libavcodec come with it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden", Path(__file__).resolve().parent / "make_golden.py")
    make_golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_golden)
    env = make_golden.environment()
    try:
        import av

        env["av"] = av.__version__
    except ImportError:
        env["av"] = None
    return env


def write_y4m(path: Path, frames, height: int, width: int, chroma: str, fps) -> None:
    info = video.VideoInfo(width, height, tuple(fps), chroma)
    with open(path, "wb") as f:
        f.write(video.y4m_header(info))
        for planes in frames:
            f.write(b"FRAME\n" + b"".join(np.ascontiguousarray(p).tobytes() for p in planes))


def read_y4m(path: Path) -> list:
    with video.open_video(str(path)) as r:
        return [f.planes for f in r]


def planes_sha256(frames) -> str:
    h = hashlib.sha256()
    for planes in frames:
        for p in planes:
            h.update(np.ascontiguousarray(p).tobytes() + repr(p.shape).encode())
    return h.hexdigest()


def layout(data: bytes) -> dict:
    c = container.read_container(data)
    h = c.header
    return {"version": list(c.version), "method": h.method, "model": h.model, "model_sha": h.model_sha,
            "width": h.width, "height": h.height, "pixel_format": h.pixel_format, "frames": h.frames,
            "params": h.params, "rng": h.rng, "video": c.video, "index": c.index,
            "chunks": [[ch.type, len(ch.data)] for ch in c.chunks]}


def decoded(data: bytes, **options) -> list:
    return [p for _, p in clips.decode_frames(container.StreamReader(io.BytesIO(data)), **options)]


def main() -> None:
    table = []
    for name, preset, h, w, n, chroma, fps, seed, gop, coded in CLIPS:
        data = encode(preset, h, w, n, chroma, fps, seed, gop, coded)
        (HERE / f"{name}.ddc").write_bytes(data)
        table.append({"file": f"{name}.ddc", "preset": preset, "height": h, "width": w, "frames": n,
                      "chroma": chroma, "fps": list(fps), "seed": seed, "gop": gop, "coded": coded, "bytes": len(data),
                      "ddc_sha256": hashlib.sha256(data).hexdigest(), "layout": layout(data),
                      "decoded_sha256": planes_sha256(decoded(data))})
    (HERE / "clips.json").write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {len(table)} clip vectors to {HERE}")
    import torch

    torch.set_num_threads(1)
    network = []
    table_file = HERE / "clips_network.json"
    old = {e["file"]: e for e in json.loads(table_file.read_text())} if table_file.exists() else {}
    for name, params, h, w, n, chroma, fps, seed, gop in NETWORK_CLIPS:
        if f"{name}.ddc" in old and (HERE / f"{name}.ddc").exists() and "--all" not in sys.argv:
            network.append(old[f"{name}.ddc"])      # made in its own environment: kept as it is
            continue
        data = encode(None, h, w, n, chroma, fps, seed, gop, **params)
        (HERE / f"{name}.ddc").write_bytes(data)
        frames = decoded(data, device="cpu")
        write_y4m(HERE / f"{name}.decoded.y4m", frames, h, w, chroma, fps)
        network.append({"file": f"{name}.ddc", "params": params, "height": h, "width": w, "frames": n,
                        "chroma": chroma, "fps": list(fps), "seed": seed, "gop": gop, "bytes": len(data),
                        "ddc_sha256": hashlib.sha256(data).hexdigest(), "layout": layout(data),
                        "decoded_y4m": f"{name}.decoded.y4m", "decoded_sha256": planes_sha256(frames),
                        "env": network_environment()})
    (HERE / "clips_network.json").write_text(json.dumps(network, indent=2) + "\n")
    print(f"wrote {len(network)} network clip vectors to {HERE}")


if __name__ == "__main__":
    main()
