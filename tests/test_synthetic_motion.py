"""Synthetic motion from stills (training data of temporal models, issue #16 item 4)."""

from __future__ import annotations

import numpy as np

from diffcodec import metrics
from diffcodec.training.synthetic_motion import Motion, random_motion, sequence, undo

from conftest import synthetic_image


def test_a_pan_moves_content_and_no_motion_is_the_identity():
    img = synthetic_image(48, 64, seed=2)
    assert np.array_equal(undo(img, Motion()), img)
    prev = undo(img, Motion(dy=2.0, dx=3.0))
    # content moved by (+2, +3) from prev to img: prev at p is img at p + (2, 3)
    assert np.array_equal(prev[5:40, 5:50], img[7:42, 8:53])
    brighter = undo(img, Motion(gain=0.5))
    assert np.all(brighter >= img) and brighter.mean() > img.mean() + 20


def test_a_sequence_ends_at_the_still_and_moves_between_frames():
    img = synthetic_image(64, 64, seed=4)
    rng = np.random.default_rng(0)
    frames = sequence(img, 4, rng)
    assert len(frames) == 4 and np.array_equal(frames[-1], img)
    assert all(f.shape == img.shape and f.dtype == np.uint8 for f in frames)
    assert all(metrics.psnr(a, b) < 40 for a, b in zip(frames, frames[1:]))
    motions = [random_motion(np.random.default_rng(s)) for s in range(200)]
    assert all(abs(m.dy) <= 6 and abs(m.dx) <= 6 and abs(m.angle) <= 1.5 for m in motions)
    assert 5 <= sum(m == Motion() for m in motions) <= 40        # about a tenth are still


def test_the_p_frame_training_condition_is_an_opq_p_frame_of_the_crop():
    from diffcodec.methods.opq import OPQCodec
    from diffcodec.training.degrade import CodecDegrade, opq_p_frame

    img = synthetic_image(64, 64, seed=6)
    recon = opq_p_frame(OPQCodec(), img, "opq-64-16-16", np.random.default_rng(1))
    assert recon.shape == img.shape and recon.dtype == np.uint8 and 18 < metrics.psnr(img, recon) < 60
    d = CodecDegrade(kinds=("opq",), p_frames=1.0, seed=3)
    base, kind, quality = d.degrade(img)
    assert kind == "opq" and quality in d.opq_presets and base.shape == img.shape


def test_max_quality_widens_the_standard_codecs_training_range():
    from diffcodec.training.degrade import CODEC_QUALITIES, CodecDegrade, codec_qualities

    assert codec_qualities(None) == CODEC_QUALITIES
    wide = codec_qualities(90)
    assert wide == {kind: (lo, 90) for kind, (lo, _) in CODEC_QUALITIES.items()}
    d = CodecDegrade(kinds=("jpeg",), seed=0, qualities=wide)
    img = synthetic_image(32, 32, seed=2)
    qualities = [d.degrade(img)[2] for _ in range(60)]
    assert max(qualities) > CODEC_QUALITIES["jpeg"][1] and min(qualities) >= 1 and max(qualities) <= 90
    assert "90" in d.description


def test_the_h264_training_condition_is_x264s_last_frame_conditioned_as_ddcm_conditions_it():
    import pytest

    pytest.importorskip("av", reason="PyAV (the x264 extra) is not installed")
    import torch

    from diffcodec.methods.codec_refiner import BASE_KINDS, coarseness
    from diffcodec.methods.ddcm.h264_base import CONDITION_KIND, condition_quality
    from diffcodec.training.degrade import H264_CRFS, CodecDegrade, h264_frame

    img = synthetic_image(48, 64, seed=4)
    base, crf = h264_frame(img, np.random.default_rng(2))
    assert base.shape == img.shape and base.dtype == np.uint8
    assert H264_CRFS[0] <= crf <= H264_CRFS[1] and (crf * 4).is_integer()
    assert 15 < metrics.psnr(img, base) < 60          # coded, and close to the crop
    d = CodecDegrade(kinds=("h264",), seed=5)
    x0 = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    cond = d(x0)
    assert cond.shape == (1, 8, 48, 64)
    kind = cond[0, 3:7].mean(dim=(1, 2))
    assert kind.tolist() == [float(k == CONDITION_KIND) for k in BASE_KINDS]
    assert cond[0, 7].mean().item() in [pytest.approx(coarseness("avif", condition_quality(c)))
                                        for c in np.arange(H264_CRFS[0], H264_CRFS[1] + 0.25, 0.25)]
