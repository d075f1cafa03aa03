"""ddcm P-frames (formats/ddc-v1.md, "ddcm P-frames"): on an opq base layer, each P-frame's base is the opq
P-frame and the header's refinement runs over it where it beats it; the prediction chain is opq's, so decoding
from any keyframe gives the frames of a decode from the start."""

from __future__ import annotations

import io

import numpy as np
import pytest
from test_clips import encode, make_clip, make_still_clip
from test_clips_inter import _chunks, _rebuild

from diffcodec import clips, container, metrics
from diffcodec.errors import CorruptInputError, UsageError
from diffcodec.methods import get_codec
from diffcodec.methods.ddcm import inter
from diffcodec.methods.ddcm.priors import CLIP_MODEL, model_installed

from conftest import synthetic_image

CPU = {"device": "cpu"}


def decode_all(data: bytes, first: int = 0, stop: int | None = None):
    return list(clips.decode_frames(container.StreamReader(io.BytesIO(data)), first, stop, device="cpu"))


def test_p_frames_decode_to_the_encoders_frames_from_the_start_and_from_any_keyframe(tmp_path, one_thread):
    src = tmp_path / "in.y4m"
    planes = make_clip(src, frames=7, height=40, width=56)
    data, summary = encode(src, "ddcm", base="opq-32-8-8", steps=1, refine=True, gop=3, **CPU)
    c = container.read_container(data)
    assert c.version == (2, 0) and [ch.type for ch in c.chunks if ch.type in "DP"] == list("DPPDPPD")
    assert c.header.params["b"] == "opq-32-8-8" and c.header.params["n"] == 1
    whole = decode_all(data)
    psnr = [metrics.psnr_planes(a, b)["y"] for a, (_, b) in zip(planes, whole)]
    assert summary["psnr_y"] == pytest.approx(np.mean(psnr), abs=1e-6)   # encoder and decoder agree
    part = decode_all(data, 4, 6)
    assert [i for i, _ in part] == [4, 5]
    for (_, a), (_, b) in zip(part, whole[4:6]):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # the P-frames are a fraction of the keyframes
    key, p1, p2 = (len(p) for p in c.payloads[:3])
    assert p1 < key / 2 and p2 < key / 2, (key, p1, p2)


def _frames(n=4, height=48, width=64):
    base = synthetic_image(height + 8, width + 8 * n, seed=5)
    return [np.ascontiguousarray(base[i % 3:i % 3 + height, 6 * i:6 * i + width]) for i in range(n)]


def test_a_p_frames_base_is_opqs_own_p_frame_and_its_refinement_is_kept_only_where_it_gains(one_thread):
    ddcm, opq = get_codec("ddcm"), get_codec("opq")
    frames = _frames()
    key, recon, ref = ddcm.compress_keyframe(frames[0], None, predicted=True, base="opq-32-8-8", steps=1,
                                             refine=True, **CPU)
    okey, _, oref = opq.compress_keyframe(frames[0], "opq-32-8-8")
    refined = []
    for image in frames[1:]:
        payload, recon, ref = ddcm.compress_predicted(image, ref, key, **CPU)
        opayload, obase, oref = opq.compress_predicted(image, oref, okey)
        flag, base, _ = inter.split(payload)
        assert base == opayload                                 # the base layer: exactly opq's P-frame
        assert metrics.mse(recon, image) <= metrics.mse(obase, image)
        assert np.array_equal(recon, obase) == (not flag)
        refined.append(flag)
    assert any(refined), "the refiner gained on no P-frame"


def test_decoding_a_p_frame_reproduces_the_encoders_reconstruction(one_thread):
    ddcm = get_codec("ddcm")
    frames = _frames(3)
    key, _, enc_ref = ddcm.compress_keyframe(frames[0], None, predicted=True, base="opq-16-8-8", steps=1,
                                             refine=True, **CPU)
    out, dec_ref = ddcm.decompress_keyframe(key, 48, 64, 3, **CPU)
    for image in frames[1:]:
        payload, recon, enc_ref = ddcm.compress_predicted(image, enc_ref, key, **CPU)
        out, dec_ref = ddcm.decompress_predicted(payload, dec_ref, key, 48, 64, 3, **CPU)
        assert np.array_equal(out, recon)


def test_p_frames_need_an_opq_base(tmp_path):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=2)
    with pytest.raises(UsageError, match="built on opq P-frames"):
        encode(src, "ddcm", base="jpeg:q30", steps=1, gop=2, **CPU)
    with pytest.raises(UsageError, match="--gop 1"):
        encode(src, "ddcm", space="latent", steps=3, k=64, gop=2, **CPU)
    with pytest.raises(UsageError, match="opq base"):
        encode(src, "ddcm", preset="n20-k4096-m1", gop=2, **CPU)
    # a rate alone picks the largest opq base whose keyframe fits a few frames' share (the free step: n 1)
    for bpp, base in ((0.3, "opq-16-8-8"), (1.0, "opq-64-16-16")):
        data, _ = encode(src, "ddcm", bpp=bpp, refine=True, gop=2, **CPU)
        header = container.read_container(data).header
        assert (header.params["b"], header.params["n"]) == (base, 1)
        assert header.model == ("opq-clip-refiner" if model_installed(CLIP_MODEL) else "opq-refiner")


def test_a_damaged_ddcm_p_frame_is_corrupt(tmp_path):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=2, height=40, width=56)
    data, _ = encode(src, "ddcm", base="opq-32-8-8", steps=1, refine=True, gop=2, **CPU)
    chunks = _chunks(data)
    body = chunks[-1][1]

    def decode_with(p_body: bytes):
        return decode_all(_rebuild(container.SIGNATURE_INTER, chunks[:-1] + [("P", p_body)]))

    for bad in (bytes([2]) + body[1:], b"", bytes([0]) + body[1:] + b"\x07"):
        with pytest.raises(CorruptInputError):
            decode_with(bad)
    # a refined P-frame in a clip whose keyframes were coded without refinement
    base_only, _ = encode(src, "ddcm", base="opq-32-8-8", steps=1, refine=False, gop=2, **CPU)
    bchunks = _chunks(base_only)
    assert bchunks[-1][1][0] == 0
    with pytest.raises(CorruptInputError, match="no refinement"):
        decode_all(_rebuild(container.SIGNATURE_INTER, bchunks[:-1] + [("P", b"\x01" + bchunks[-1][1][1:])]))


def test_a_still_ddcm_clip_codes_p_frames_in_a_few_bytes(tmp_path):
    src = tmp_path / "still.y4m"
    make_still_clip(src, 4)
    data, _ = encode(src, "ddcm", base="opq-64-16-16", steps=1, gop=4, **CPU)
    key, *p_frames = container.read_container(data).payloads
    assert len(key) > 100 and all(len(p) <= 16 for p in p_frames), [len(key)] + [len(p) for p in p_frames]
    assert clips.is_clip(container.StreamReader(io.BytesIO(data)))


def test_the_clip_refiner_is_named_by_the_headers_model_on_opq_bases_only():
    from diffcodec.methods.ddcm.params import DDCMParams

    params = {"n": 1, "k": 4096, "m": 1, "cb": "mshift", "sp": "pixel", "b": "opq-32-8-8", "bs": 1}
    rng = {"g": "philox-np", "s": 0}
    p = DDCMParams.from_header(params, rng, "opq-clip-refiner")
    assert p.refiner == "opq-clip-refiner" and p.model_id == "opq-clip-refiner"
    assert DDCMParams.from_header(params, rng, "opq-refiner").model_id == "opq-refiner"
    codec_base = {**params, "b": "jpeg:q30", "bs": 0}
    assert DDCMParams.from_header(codec_base, rng, "opq-clip-refiner").model_id == "codec-refiner"
    assert DDCMParams.from_header(codec_base, rng, "codec-refiner-2").model_id == "codec-refiner-2"
    assert DDCMParams.from_header(params, rng, "codec-refiner-2").model_id == "opq-refiner"
    assert DDCMParams.from_header(codec_base, rng, "codec-refiner-3").model_id == "codec-refiner-3"
    with pytest.raises(UsageError, match="opq-clip-refiner on opq base layers"):
        DDCMParams(base="jpeg:q30", space="pixel", refiner="opq-clip-refiner").check()
    with pytest.raises(UsageError, match="codec-refiner-2 / codec-refiner-3 on codec base layers"):
        DDCMParams(base="opq-32-8-8", space="pixel", refiner="codec-refiner-2").check()


def test_an_opq_base_is_refined_by_the_clip_refiner_unless_the_file_asks_for_the_opq_refiner(one_thread):
    """Images too: an opq base layer takes opq-clip-refiner where it is installed (the shipped models), and
    --param refiner=opq-refiner still writes the older files; each decodes to what its encoder reconstructed."""
    from diffcodec import api
    from diffcodec.methods.ddcm.priors import BASE_MODEL

    if not model_installed(CLIP_MODEL):
        pytest.skip("models/opq-clip-refiner is not installed")
    img = synthetic_image(32, 48, seed=5)
    codec = get_codec("ddcm")
    for refiner, model in ((None, CLIP_MODEL), (BASE_MODEL, BASE_MODEL), (CLIP_MODEL, CLIP_MODEL)):
        params = {"base": "opq-32-8-8", "steps": 1, "refine": True, **CPU}
        if refiner is not None:
            params["refiner"] = refiner
        data = api.encode(img, method="ddcm", **params)
        assert container.read_container(data).header.model == model
        _, recon = codec.compress_with_reconstruction(img, **params)
        assert np.array_equal(api.decode(data, **CPU), recon)
    with pytest.raises(UsageError, match="must be codec-refiner-3 or codec-refiner-2 or codec-refiner,"):
        api.encode(img, method="ddcm", base="jpeg:q30", refiner=BASE_MODEL, **CPU)
    with pytest.raises(UsageError, match="give --base"):
        api.encode(img, method="ddcm", space="pixel", steps=2, k=4, atoms=1, refiner=CLIP_MODEL, **CPU)
    with pytest.raises(UsageError, match="must be opq-clip-refiner or opq-refiner"):
        api.encode(img, method="ddcm", base="opq-32-8-8", refiner="pixel-ddpm", **CPU)


def test_a_standard_codec_base_is_refined_by_the_newest_refiner_unless_the_file_asks_for_an_older_one(one_thread):
    """As for opq bases: the newest refiner where installed, an older one on request; files naming any decode."""
    from diffcodec import api
    from diffcodec.methods.ddcm.priors import CODEC_BASE_MODEL, CODEC_MODEL_2, CODEC_MODEL_3, model_installed

    if not (model_installed(CODEC_MODEL_2) and model_installed(CODEC_MODEL_3)):
        pytest.skip("models/codec-refiner-2 and -3 are not installed")
    img = synthetic_image(32, 48, seed=6)
    codec = get_codec("ddcm")
    for refiner, model in ((None, CODEC_MODEL_3), (CODEC_MODEL_2, CODEC_MODEL_2), (CODEC_BASE_MODEL, CODEC_BASE_MODEL)):
        params = {"base": "jpeg:q40", "steps": 1, "refine": True, **CPU,
                  **({"refiner": refiner} if refiner else {})}
        data = api.encode(img, method="ddcm", **params)
        assert container.read_container(data).header.model == model
        _, recon = codec.compress_with_reconstruction(img, **params)
        assert np.array_equal(api.decode(data, **CPU), recon)
