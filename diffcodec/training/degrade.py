"""Training pairs of the refiners, made on the fly: `opq-refiner` (`diffcodec train refiner`) sees an OPQ-degraded
copy of each crop (a random opq preset, so one refiner serves several rates); `codec-refiner` (`diffcodec train
codec-refiner`) sees a crop coded by a random base codec and quality, with the kind and coarseness as extra
condition channels, and with ``--p-frames`` (`opq-clip-refiner`) opq crops that are the last P-frame of a short
synthetic-motion sequence."""

from __future__ import annotations

import numpy as np

from diffcodec.data import to_tensor, to_uint8

TRAIN_PRESETS = ("opq-16-8-8", "opq-32-8-8", "opq-64-16-16")


class OPQDegrade:
    """`make_condition` for training: OPQ round trip (no entropy coding) of each crop of a batch."""

    def __init__(self, presets=TRAIN_PRESETS, seed: int = 0):
        from diffcodec.methods.opq import OPQCodec

        self.presets = tuple(presets)
        self.codec = OPQCodec()
        self.rng = np.random.default_rng(seed)

    def __call__(self, x0):
        images = to_uint8(x0)
        recon = np.stack([self.codec.quantize(img, str(self.rng.choice(self.presets)))[1] for img in images])
        return to_tensor(recon).to(x0.device)


# Quality ranges the codec refiner trains on: each codec's range for base layers from its lowest rate to about
# 1 bpp on photos (the Kodak rate per quality is in ../shared/REFERENCE.md).
CODEC_QUALITIES = {"jpeg": (1, 60), "webp": (0, 75), "avif": (0, 75)}
CODEC_KINDS = ("opq", "jpeg", "webp", "avif")
H264_CRFS = (22.0, 46.0)        # x264 CRFs the H.264 refiner trains on (uniform, in steps of 0.25)


def codec_qualities(max_quality: int | None) -> dict[str, tuple[int, int]]:
    """CODEC_QUALITIES with every standard codec's top raised (or lowered) to ``max_quality`` (None: as is)."""
    if max_quality is None:
        return dict(CODEC_QUALITIES)
    return {kind: (lo, max(lo, max_quality)) for kind, (lo, _) in CODEC_QUALITIES.items()}


class CodecDegrade:
    """`make_condition` of the codec refiner: each crop goes through a randomly chosen base codec (opq, or Pillow's
    JPEG / WebP / AVIF at the settings `diffcodec.baselines` uses) at a random quality of its range; the condition
    is :func:`diffcodec.methods.codec_refiner.condition` of the decoded crop (image + kind + coarseness)."""

    def __init__(self, kinds=CODEC_KINDS, opq_presets=TRAIN_PRESETS, seed: int = 0, p_frames: float = 0.0,
                 qualities: dict[str, tuple[int, int]] | None = None):
        from diffcodec.methods.opq import OPQCodec

        self.kinds = tuple(kinds)
        self.opq_presets = tuple(opq_presets)
        self.p_frames = p_frames
        self.qualities = dict(qualities or CODEC_QUALITIES)
        self.codec = OPQCodec()
        self.rng = np.random.default_rng(seed)
        self.description = f"CodecDegrade(kinds={list(self.kinds)}, qualities={self.qualities})"
        if p_frames:
            self.description += f", opq P-frames: {p_frames} of the opq crops (opq_p_frame: 2-4 moving frames)"
        if "h264" in self.kinds:
            self.description += (f", h264: the last frame of 1-4 moving frames through x264 at CRF {H264_CRFS[0]:g}-"
                                 f"{H264_CRFS[1]:g} (h264_frame), conditioned as an AVIF base at "
                                 f"h264_base.condition_quality(CRF)")

    def degrade(self, img: np.ndarray) -> tuple[np.ndarray, str, int | str]:
        """One uint8 (H, W, 3) crop -> (decoded base, kind, quality)."""
        from diffcodec import baselines

        kind = str(self.rng.choice(self.kinds))
        if kind == "h264":                  # conditioned as ddcm's H.264 base is (an AVIF kind at its quality)
            from diffcodec.methods.ddcm.h264_base import CONDITION_KIND, condition_quality

            base, crf = h264_frame(img, self.rng)
            return base, CONDITION_KIND, condition_quality(crf)
        if kind == "opq":
            preset = str(self.rng.choice(self.opq_presets))
            if self.p_frames and self.rng.random() < self.p_frames:
                return opq_p_frame(self.codec, img, preset, self.rng), kind, preset
            return self.codec.quantize(img, preset)[1], kind, preset
        lo, hi = self.qualities[kind]
        q = int(self.rng.integers(lo, hi + 1))
        b = baselines.get_baseline(kind)
        return b.decode(b.encode(img, q), channels=3), kind, q

    def __call__(self, x0):
        import torch

        from diffcodec.methods.codec_refiner import condition

        conds = []
        for img in to_uint8(x0):
            base, kind, q = self.degrade(img)
            conds.append(condition(base[None], kind, q))
        return torch.cat(conds).to(x0.device)



def opq_p_frame(codec, img: np.ndarray, preset: str, rng: np.random.Generator, max_frames: int = 4) -> np.ndarray:
    """The decoded last P-frame of a synthetic sequence (training/synthetic_motion.py: 2 to ``max_frames`` frames
    moved from ``img``, uint8 (H, W, 3), ending at it) coded by opq ``codec`` at ``preset`` as a keyframe and
    P-frames (methods/opq_inter.py)."""
    from diffcodec.training.synthetic_motion import sequence

    frames = sequence(img, int(rng.integers(2, max_frames + 1)), rng)
    key, recon, ref = codec.compress_keyframe(frames[0], preset)
    for frame in frames[1:]:
        _, recon, ref = codec.compress_predicted(frame, ref, key)
    return recon


def h264_frame(img: np.ndarray, rng: np.random.Generator, max_frames: int = 4) -> tuple[np.ndarray, float]:
    """(the decoded last frame as RGB uint8 (H, W, 3), its CRF) of a synthetic sequence of 1 to ``max_frames``
    frames ending at ``img`` (training/synthetic_motion.py) coded by x264 as ddcm's H.264 base codes a clip (4:2:0
    BT.601 limited planes, one keyframe, P-frames; methods/ddcm/h264_base.py); ``img`` of even size."""
    from diffcodec import yuv
    from diffcodec.methods.ddcm import h264_base
    from diffcodec.training.synthetic_motion import sequence

    n = int(rng.integers(1, max_frames + 1))
    frames = sequence(img, n, rng) if n > 1 else [img]
    crf = float(np.round(rng.uniform(*H264_CRFS) / h264_base.CRF_STEP) * h264_base.CRF_STEP)
    h, w = img.shape[:2]
    enc = h264_base.H264Encoder(w, h, (25, 1), crf, n)
    aus = []
    for frame in frames:
        aus += enc.push(yuv.rgb_to_planes(frame, "420"))
    aus += enc.flush()
    dec = h264_base.H264Decoder(w, h, aus[0])
    planes = dec.decode()
    for au in aus[1:]:
        planes = dec.decode(au)
    return h264_base.to_rgb(planes, "limited"), crf
