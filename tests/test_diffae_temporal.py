"""diffae clips with temporal compression (formats/ddc-v1.md, "diffae clips with temporal compression"): one
coded latent per group of --gop frames, the group's other frames empty P chunks, decoded by the deflate layers
and the image decoder with one noise draw per group."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from test_clips import encode, make_clip
from test_clips_inter import _chunks, _rebuild

from diffcodec import clips, container
from diffcodec import motion_field as mf
from diffcodec.errors import CorruptInputError, ModelError, UsageError
from diffcodec.methods import Encoded, get_codec
from diffcodec.methods import diffae_temporal as dt
from diffcodec.methods.diffae_nets import TemporalLayers

CPU = {"device": "cpu"}


def decode_all(data: bytes, first: int = 0, stop: int | None = None):
    return list(clips.decode_frames(container.StreamReader(io.BytesIO(data)), first, stop, device="cpu"))


def test_the_layers_start_as_plain_pooling_and_copying_and_keep_time_order():
    layers = TemporalLayers(3, 2)
    y = torch.randn(1, 4, 3, 2, 5)
    assert torch.allclose(layers.pool(y, 2)[0], y[0].mean(0), atol=1e-6)
    assert torch.allclose(layers.pool(y[:, :2], 1)[0], y[0, :2].mean(0), atol=1e-6)
    z = torch.randn(1, 3, 2, 5)
    assert torch.allclose(layers.unpool(z, 2), z[:, None].expand(1, 4, 3, 2, 5))
    # a deflate that adds +k to frame k of each pair: the frames come out in time order
    with torch.no_grad():
        for conv in layers.deflate:
            conv.bias.copy_(torch.cat([torch.zeros(3), torch.ones(3)]))
    out = layers.unpool(torch.zeros(1, 3, 1, 1), 2)[0, :, 0, 0, 0]
    assert out.tolist() == [0.0, 1.0, 1.0, 2.0]        # level 1 splits first (0 | 1), then level 0 (+0 | +1)


@pytest.mark.parametrize("gop, frames, layout", [(2, 5, "DPDPD"), (4, 6, "DPPPDP")])
def test_a_temporal_clip_has_one_latent_per_group_and_decodes_alike_from_any_keyframe(tmp_path, one_thread, gop,
                                                                                      frames, layout):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=frames, height=32, width=48)
    data, summary = encode(src, "diffae", gop=gop, preset="low", **CPU)
    c = container.read_container(data)
    assert c.version == (2, 0) and "".join(ch.type for ch in c.chunks if ch.type in "DP") == layout
    p = c.header.params
    assert (p["t"], p["tm"]) == (gop, dt.TEMPORAL_MODEL) and p["d"] == get_codec("diffae")._encoder(
        {}, CPU)[0].presets["low"]
    assert all(len(pl) in (0, 4, 5) or mf.is_field_payload(pl)       # a motion, global or a field
               for pl, ch in zip(c.payloads, [x for x in c.chunks if x.type in "DP"]) if ch.type == "P")
    assert summary["bytes_per_frame"]["min"] <= 4 and summary["frames"] == frames
    whole = decode_all(data)
    assert [i for i, _ in whole] == list(range(frames))
    part = decode_all(data, gop, frames)
    for (_, a), (_, b) in zip(part, whole[gop:]):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_global_motion_is_found_and_a_pan_decodes_as_the_first_frame_moved(tmp_path, one_thread):
    from diffcodec import video, yuv
    from diffcodec.testimage import synthetic_image

    still = synthetic_image(64, 96, seed=5)
    for d in ((0, 0), (3, -5), (-7, 2), (0, 12)):
        assert dt.global_motion(still, dt.shift_frame(still, *d)) == (d[0] * dt.MOTION_UNIT, d[1] * dt.MOTION_UNIT)
    src = tmp_path / "pan.y4m"                       # content moving left 4 px per frame
    wide = synthetic_image(32, 48 + 12, seed=6)
    info = video.VideoInfo(48, 32, (25, 1), "444")
    with video.open_writer(str(src), info) as w:
        for i in range(4):
            w.write(yuv.rgb_to_planes(np.ascontiguousarray(wide[:, 4 * i:4 * i + 48]), "444"))
    data, _ = encode(src, "diffae", gop=4, preset="low", **CPU)
    c = container.read_container(data)
    assert [dt.parse_motion(p, 32, 48) for p in c.payloads[1:]] == [(0, -16), (0, -32), (0, -48)]   # 1/4 px
    assert [len(p) for p in c.payloads[1:]] == [4, 4, 4]          # whole pixels keep the 4-byte form
    frames = [p for _, p in decode_all(data)]
    rgb = [yuv.planes_to_rgb(f, info) for f in frames]
    first = rgb[0]
    for k in (1, 2, 3):     # the decoded frames are the first one moved (away from the repeated right border)
        moved = dt.shift_frame(first, 0, -4 * k)
        assert np.abs(rgb[k][:, :48 - 4 * k].astype(int) - moved[:, :48 - 4 * k]).max() <= 2


def test_the_subpixel_shift_rule_is_integer_bilinear_with_edge_clamping():
    img = np.array([[10, 13, 40], [7, 200, 255]], dtype=np.uint8)
    # (qy, qx) quarter pixels -> the values of formats/ddc-v1.md's rule, ((a (4-fx) + b fx)(4-fy) + ... + 8) >> 4
    expected = {(1, -2): [[12, 27, 40], [81, 177, 201]],      # row 0 col 0: (10 + 13) / 2 = 11.5 -> 12
                (-3, 5): [[8, 8, 117], [7, 7, 152]],
                (2, 2): [[10, 12, 27], [9, 58, 127]],
                (-1, 0): [[9, 60, 94], [7, 200, 255]],
                (4, -8): [[40, 40, 40], [40, 40, 40]]}       # whole pixels: shift_frame's copy
    for (qy, qx), values in expected.items():
        out = dt.shift_subpel(img, qy, qx)
        assert out.dtype == np.uint8 and out.tolist() == values, (qy, qx)
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for qy, qx in ((0, 0), (8, -4), (-12, 20)):
        assert np.array_equal(dt.shift_subpel(rgb, qy, qx), dt.shift_frame(rgb, qy // 4, qx // 4))
    for c in range(3):        # every channel alike
        assert np.array_equal(dt.shift_subpel(rgb, 3, -5)[..., c], dt.shift_subpel(rgb[..., c], 3, -5))


def _smooth_view(height: int, width: int, dy: float, dx: float) -> np.ndarray:
    """A (height, width, 3) view of a smooth random field (Gaussian, 1.5 px) moved by (dy, dx) pixels (within 16)."""
    h, w = height + 32, width + 32
    noise = np.random.default_rng(3).normal(size=(h, w))
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    field = np.fft.ifft2(np.fft.fft2(noise) * np.exp(-(fy ** 2 + fx ** 2) * (2 * np.pi * 1.5) ** 2 / 2)).real
    field = 128 + field / field.std() * 40
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    y, x = yy + 16 - dy, xx + 16 - dx
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    wy, wx = y - y0, x - x0
    v = ((field[y0, x0] * (1 - wx) + field[y0, x0 + 1] * wx) * (1 - wy)
         + (field[y0 + 1, x0] * (1 - wx) + field[y0 + 1, x0 + 1] * wx) * wy)
    return np.repeat(np.clip(np.rint(v), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_subpixel_motion_is_found_and_round_trips_through_p_chunks():
    smooth = lambda dy, dx: _smooth_view(64, 96, dy, dx)  # noqa: E731
    first = smooth(0, 0)
    for qy, qx in ((0, 6), (-3, 10), (5, -1), (0, -13), (7, -30)):
        found = dt.global_motion(first, smooth(qy / 4, qx / 4))
        assert abs(found[0] - qy) <= 1 and abs(found[1] - qx) <= 1, (qy, qx, found)
    assert dt.global_motion(first, first) == (0, 0)
    for q, size in (((0, 0), 0), ((4, -8), 4), ((1, -2), 5), ((-5, 3), 5), ((0, 7), 5), ((-127, 4 * 47 + 3), 5),
                    ((4 * 31, 0), 4), ((-3, -4 * 40), 5)):
        payload = dt.motion_payload(*q)
        assert len(payload) == size and dt.parse_motion(payload, 32, 48) == q, q
    assert dt.motion_payload(1, -2) == bytes([4, 0, 1, 0xff, 0xfe])


def test_corrupt_motion_values_are_refused_and_whole_pixel_chunks_still_decode():
    import struct

    for bad, why in ((struct.pack(">Bhh", 2, 1, 1), "unit 1/2"), (struct.pack(">Bhh", 0, 1, 1), "unit 1/0"),
                     (struct.pack(">Bhh", 4, 0, 0), "is whole pixels"), (struct.pack(">Bhh", 4, 8, -4), "whole"),
                     (struct.pack(">Bhh", 4, 128, 1), "for a 48x32"), (struct.pack(">Bhh", 4, 1, -192), "48x32"),
                     (struct.pack(">hh", 0, 0), "motion \\(0, 0\\)"), (struct.pack(">hh", 32, 1), "48x32"),
                     (b"\x04\x00\x01\x00\x01\x00", "holds 6 bytes"), (b"\x00\x01\x00", "holds 3 bytes")):
        with pytest.raises(CorruptInputError, match=why):
            dt.parse_motion(bad, 32, 48)
    assert dt.parse_motion(struct.pack(">Bhh", 4, 127, -191), 32, 48) == (127, -191)
    assert dt.parse_motion(struct.pack(">hh", 31, -47), 32, 48) == (124, -188)      # a session-14 chunk
    frame = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    from collections import deque

    moved, _ = dt.next_frame(struct.pack(">hh", 1, -2), deque([frame]))
    assert np.array_equal(moved, dt.shift_frame(frame, 1, -2))
    moved, _ = dt.next_frame(struct.pack(">Bhh", 4, 1, -2), deque([frame]))
    assert np.array_equal(moved, dt.shift_subpel(frame, 1, -2))


def test_a_group_keeps_its_motions_only_where_they_lower_its_error(monkeypatch):
    from diffcodec.testimage import synthetic_image

    wide = synthetic_image(32, 48 + 12, seed=6)
    pan = [np.ascontiguousarray(wide[:, 4 * i:4 * i + 48]) for i in range(3)]
    assert dt.group_motion(pan) == [(0, 0), (0, -16), (0, -32)]
    still = [pan[0]] * 3
    assert dt.group_motion(still) == [(0, 0)] * 3
    monkeypatch.setattr(dt, "global_motion", lambda first, frame: (0, 26))     # a wrong motion: refused
    assert dt.group_motion(still) == [(0, 0)] * 3
    assert dt.group_error(still, [(0, 0), (0, 26), (0, 26)], 9) > dt.group_error(still, [(0, 0)] * 3, 9) == 0


def test_a_subpixel_pan_is_coded_with_quarter_pixel_chunks_and_decodes(tmp_path, one_thread):
    from diffcodec import video, yuv

    src = tmp_path / "pan.y4m"                  # smooth content moving right 2.5 px per frame
    info = video.VideoInfo(64, 48, (25, 1), "444")
    with video.open_writer(str(src), info) as w:
        for i in range(2):
            w.write(yuv.rgb_to_planes(_smooth_view(48, 64, 0, 2.5 * i), "444"))
    data, _ = encode(src, "diffae", gop=2, preset="low", **CPU)
    c = container.read_container(data)
    assert len(c.payloads[1]) == 5
    qy, qx = dt.parse_motion(c.payloads[1], 48, 64)
    assert abs(qy) <= 1 and abs(qx - 10) <= 1
    (_, a), (_, b) = decode_all(data)     # the second frame is the first moved by (qy, qx) / 4 (up to YCbCr)
    first, second = yuv.planes_to_rgb(a, info), yuv.planes_to_rgb(b, info)
    assert np.abs(second.astype(int) - dt.shift_subpel(first, qy, qx)).max() <= 3


def test_a_temporal_clip_costs_less_than_its_intra_clip_at_the_same_grid_index(tmp_path, one_thread):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=4, height=32, width=48)
    intra, _ = encode(src, "diffae", gop=1, preset="medium", **CPU)
    t2, _ = encode(src, "diffae", gop=2, preset="medium", **CPU)
    t4, _ = encode(src, "diffae", gop=4, preset="medium", **CPU)
    payload = lambda d: sum(map(len, container.read_container(d).payloads))  # noqa: E731
    assert payload(t4) < payload(t2) < payload(intra)


def test_bpp_picks_the_grid_for_the_group_and_kbps_lands_under_its_target(tmp_path, one_thread):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=4, height=32, width=48)
    data, summary = encode(src, "diffae", gop=2, kbps=40.0, **CPU)
    assert summary["kbps"] <= 40.0
    with pytest.raises(UsageError, match="below what diffae temporal coding reaches"):
        encode(src, "diffae", gop=2, bpp=1e-4, **CPU)
    with pytest.raises(UsageError, match="not both"):
        encode(src, "diffae", gop=2, bpp=0.1, preset="low", **CPU)


def test_damaged_temporal_clips_are_refused(tmp_path, one_thread):
    src = tmp_path / "in.y4m"
    make_clip(src, frames=3, height=32, width=48)
    data, _ = encode(src, "diffae", gop=2, preset="low", **CPU)
    chunks = _chunks(data)
    sig = data[:5]
    types = [t for t, _ in chunks]
    p = types.index("P")
    filled = list(chunks)
    filled[p] = ("P", b"\x00")
    with pytest.raises(CorruptInputError, match="holds 1 bytes"):
        decode_all(_rebuild(sig, filled))
    codec = get_codec("diffae", for_decoding=True)
    c = container.read_container(data)
    key = Encoded(model=c.header.model, model_sha=c.header.model_sha, params=c.header.params)
    frame, ref = codec.decompress_keyframe(Encoded(model=key.model, model_sha=key.model_sha, params=key.params,
                                                   chunks=[c.payloads[0]]), 32, 48, 3, **CPU)
    for bad in (b"\x00\x00\x00\x00", b"\x00\x20\x00\x00", b"\x00\x00\x00\x30", b"\x00\x01\x00"):
        with pytest.raises(CorruptInputError, match="P-frame"):       # (0, 0), |dy| >= H, |dx| >= W, 3 bytes
            codec.decompress_predicted(bad, type(ref)(ref), key, 32, 48, 3, **CPU)
    moved, _ = codec.decompress_predicted(b"\x00\x01\xff\xfe", type(ref)(ref), key, 32, 48, 3, **CPU)
    assert np.array_equal(moved, dt.shift_frame(ref[0], 1, -2))
    _, ref = codec.decompress_predicted(b"", ref, key, 32, 48, 3, **CPU)
    with pytest.raises(CorruptInputError, match="beyond its temporal group"):     # a group of 2 has one P-frame
        codec.decompress_predicted(b"", ref, key, 32, 48, 3, **CPU)
    intra, _ = encode(src, "diffae", gop=1, preset="low", **CPU)
    h = container.read_container(intra).header
    with pytest.raises(CorruptInputError, match="without temporal compression"):
        codec.decompress_predicted(b"", None, Encoded(model=h.model, model_sha=h.model_sha, params=h.params), 32,
                                   48, 3, **CPU)
    c = container.read_container(data)
    key = Encoded(model=c.header.model, model_sha=c.header.model_sha, params=c.header.params, chunks=[c.payloads[0]])
    with pytest.raises(CorruptInputError, match="outside a clip"):
        codec.decompress(key, 32, 48, 3, **CPU)
    for bad in ({"t": 3}, {"t": "2"}, {"th": -1}, {"tm": "../x"}):
        k = Encoded(model=key.model, model_sha=key.model_sha, params={**key.params, **bad}, chunks=key.chunks)
        with pytest.raises(CorruptInputError, match="corrupt diffae header"):
            codec.decompress_keyframe(k, 32, 48, 3, **CPU)
    k = Encoded(model=key.model, model_sha=key.model_sha, params={**key.params, "th": key.params["th"] ^ 1},
                chunks=key.chunks)
    with pytest.raises(ModelError, match="different diffae temporal model"):
        codec.decompress_keyframe(k, 32, 48, 3, **CPU)
    assert codec.decode_steps(key) == key.params["n"] * 2


def test_a_temporal_model_for_another_diffae_model_is_refused(tmp_path, monkeypatch):
    import shutil

    from diffcodec import artifacts
    from diffcodec.methods import diffae

    models = tmp_path / "models"
    models.mkdir()
    src = artifacts.artifacts_dir() / "models"
    for name in ("diffae", "latent-ae", dt.TEMPORAL_MODEL):
        for ext in (".safetensors", ".json"):
            shutil.copy(src / (name + ext), models / (name + ext))
    manifest = models / f"{dt.TEMPORAL_MODEL}.json"
    import json

    m = json.loads(manifest.read_text())
    m["diffae_sha256"] = "0" * 64
    manifest.write_text(json.dumps(m))
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(tmp_path))
    with pytest.raises(ModelError, match="trained for a diffae model"):
        dt.load_temporal(dt.TEMPORAL_MODEL, diffae.load_model("diffae", "cpu"))


def _codebooks_copy(tmp_path, names):
    import shutil

    from diffcodec import artifacts

    models = tmp_path / "models"
    models.mkdir()
    src = artifacts.artifacts_dir() / "models"
    for name in names:
        for ext in (".safetensors", ".json"):
            shutil.copy(src / (name + ext), models / (name + ext))
    return models


def test_the_shipped_layers_are_what_the_training_command_writes_at_step_zero_and_training_runs(tmp_path,
                                                                                               monkeypatch,
                                                                                               one_thread):
    from PIL import Image

    from diffcodec import artifacts
    from diffcodec.testimage import synthetic_image
    from diffcodec.training.diffae_temporal import TemporalTrainConfig, train_temporal

    shipped = artifacts.sha256_file(artifacts.artifact_paths(f"models/{dt.TEMPORAL_MODEL}")[0])
    _codebooks_copy(tmp_path, ("diffae", "latent-ae"))
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(tmp_path))
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_image(96, 128, seed=i)).save(data / f"{i}.png")
    for steps in (0, 2):
        cfg = TemporalTrainConfig(data=[data], out_dir=tmp_path / f"run{steps}", steps=steps, crop=64, batch=1,
                                  export_name=f"models/t{steps}", progress=False)
        summary = train_temporal(cfg)
        assert summary["steps"] == steps
    assert artifacts.sha256_file(tmp_path / "models" / "t0.safetensors") == shipped
    trained = artifacts.sha256_file(tmp_path / "models" / "t2.safetensors")
    assert trained != shipped
    from diffcodec.methods import diffae

    layers = dt.load_temporal("t2", diffae.load_model("diffae", "cpu"))
    assert layers.net.levels == 2 and layers.manifest["steps"] == 2


def test_big_frames_decode_frame_by_frame_in_tiles_from_one_noise_draw(tmp_path, one_thread, monkeypatch):
    # frames of more than tiling.TILE_ABOVE_PIXELS: the keyframe says tl and each frame of the group runs the tiled
    # image decoder alone, all from the seed's one x_T (a still clip: a group's frames share a latent, so decode alike)
    from diffcodec import tiling
    from diffcodec.methods import diffae

    src = tmp_path / "in.y4m"
    make_clip(src, frames=5, height=32, width=48)
    plain, _ = encode(src, "diffae", gop=2, preset="low", **CPU)
    monkeypatch.setattr(tiling, "TILE_ABOVE_PIXELS", 0)
    data, _ = encode(src, "diffae", gop=2, preset="low", **CPU)
    assert container.read_container(data).header.params["tl"] == diffae.DECODE_TILE
    assert "tl" not in container.read_container(plain).header.params
    whole = decode_all(data)
    assert [i for i, _ in whole] == list(range(5))
    assert [i for i, _ in decode_all(data, 2)] == [2, 3, 4]
    for (_, a), (_, b) in zip(decode_all(data, 2), whole[2:]):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    untiled = decode_all(plain)
    assert any(not np.array_equal(x, y) for (_, a), (_, b) in zip(whole, untiled) for x, y in zip(a, b))

    from diffcodec import video, yuv
    from diffcodec.testimage import synthetic_image

    still = tmp_path / "still.y4m"
    with video.open_writer(str(still), video.VideoInfo(48, 32, (25, 1), "444")) as w:
        for _ in range(2):
            w.write(yuv.rgb_to_planes(synthetic_image(32, 48, seed=3), "444"))
    frames = decode_all(encode(still, "diffae", gop=2, preset="low", **CPU)[0])
    assert all(np.array_equal(x, y) for x, y in zip(frames[0][1], frames[1][1]))


# ------------------------------------------------------------------------------------------------ per-region motion
def test_the_field_warp_rule_is_integer_bilinear_interpolation_of_the_nodes_then_of_the_pixels():
    img = np.array([[10, 13, 40], [7, 200, 255]], dtype=np.uint8)
    nodes = np.array([[[0, 0], [0, 32]], [[16, 0], [0, 0]]])     # formats/ddc-v1.md's example, B = 16
    assert mf.grid_shape(2, 3, 4) == (2, 2)
    assert mf.pixel_vectors(nodes, 2, 3, 4).tolist() == [[[0, 0], [0, 2], [0, 4]], [[1, 0], [1, 2], [1, 4]]]
    assert mf.warp(img, nodes, 4).tolist() == [[10, 12, 13], [8, 81, 153]]
    # a constant field is the global motion's shift, in every channel alike
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (37, 70, 3), dtype=np.uint8)
    for q, k in (((3, -5), 4), ((-9, 14), 5), ((8, 0), 6), ((1, 1), 7)):
        ny, nx = mf.grid_shape(37, 70, k)
        const = np.broadcast_to(np.array(q), (ny, nx, 2))
        assert np.array_equal(mf.warp(rgb, const, k), dt.shift_subpel(rgb, *q)), (q, k)
    # against a per-pixel reading of the rule, in Python integers
    k, b = 4, 16
    ny, nx = mf.grid_shape(37, 70, k)
    nodes = rng.integers(-40, 40, (ny, nx, 2))
    out, v = mf.warp(rgb[..., 0], nodes, k), mf.pixel_vectors(nodes, 37, 70, k)
    for y, x in ((0, 0), (5, 17), (36, 69), (16, 32), (31, 47), (20, 3)):
        i, j, ry, rx = y // b, x // b, y % b, x % b
        n = lambda a, c: nodes[min(a, ny - 1), min(c, nx - 1)]  # noqa: E731
        want = ((b - ry) * ((b - rx) * n(i, j) + rx * n(i, j + 1))
                + ry * ((b - rx) * n(i + 1, j) + rx * n(i + 1, j + 1)) + b * b // 2) // (b * b)
        assert v[y, x].tolist() == want.tolist()
        sy, sx = 4 * y - int(want[0]), 4 * x - int(want[1])
        r0, r1 = min(max(sy // 4, 0), 36), min(max(sy // 4 + 1, 0), 36)
        c0, c1 = min(max(sx // 4, 0), 69), min(max(sx // 4 + 1, 0), 69)
        fy, fx, p = sy % 4, sx % 4, rgb[..., 0].astype(int)
        top, bottom = p[r0, c0] * (4 - fx) + p[r0, c1] * fx, p[r1, c0] * (4 - fx) + p[r1, c1] * fx
        assert out[y, x] == (top * (4 - fy) + bottom * fy + 8) // 16


def test_field_payloads_round_trip_and_damaged_ones_are_refused():
    example = mf.Field(np.array([[[0, 0], [0, 32]], [[16, 0], [0, 0]]]), (0, 0), 4)
    payload = mf.field_payload(example)
    assert payload.hex() == "840000000050204106084083"           # the spec's example
    assert dt.parse_motion(payload, 2, 3) == example and dt.payload_of(example) == payload
    rng = np.random.default_rng(4)
    for k in (4, 5, 6, 7):
        ny, nx = mf.grid_shape(120, 200, k)
        affine = np.stack(np.meshgrid(np.arange(ny) * 3 - 7, np.arange(nx) * -2 + 30, indexing="ij"), -1)
        noisy = affine + (rng.random(affine.shape) < 0.2) * rng.integers(-9, 10, affine.shape)
        for nodes in (affine, noisy):
            f = mf.Field(nodes, (-7, 31), k)
            p = mf.field_payload(f)
            assert mf.is_field_payload(p) and dt.parse_motion(p, 120, 200) == f
        assert len(mf.field_payload(mf.Field(affine, (-7, 30), k))) <= 5 + 6   # an affine field: a few bits
    good = mf.field_payload(mf.Field(np.array([[[0, 0], [0, 2]], [[1, 0], [0, 0]]]), (0, 0), 4))
    const = mf.Field(np.full((2, 2, 2), 3), (3, 3), 4)
    padded = mf.field_payload(mf.Field(np.array([[[0, 0], [0, 1]], [[0, 0], [0, 1]]]), (0, 0), 4))
    assert padded[5:] == bytes([0b01010100, 0b11000000])      # ue(1) se(0) se(1) ue(2), then 6 zero bits
    bad = {
        b"\x83" + good[1:]: "spacing 2\\^3", b"\x88" + good[1:]: "spacing 2\\^8",
        good[:5] + b"\x00": "past the end or is too long", good + b"\x00": "bits after",
        padded[:-1] + bytes([padded[-1] | 1]): "bits after",                      # a padding bit set
        good[:5]: "unit 1/132", mf.field_payload(const): "all nodes equal",
        bytes([0x84]) + (40).to_bytes(2, "big", signed=True) + good[3:]: "origin \\(40, 0\\)",
        mf.field_payload(mf.Field(np.array([[[0, 0], [0, 1 << 14]], [[0, 0], [0, 0]]]), (0, 0), 4)):
            "node \\(0, 1\\) vector \\(0, 16384\\)",
        bytes([0x84, 0, 0, 0, 0, 0b01011100]): "residual \\(0, 0\\)",          # run 1, then (0, 0)
        bytes([0x84, 0, 0, 0, 0, 0b00110000]): "run past the grid",              # run 5 of 4 nodes
    }
    for payload, why in bad.items():
        with pytest.raises(CorruptInputError, match=why):
            dt.parse_motion(payload, 2, 3)
    from collections import deque

    frame = rng.integers(0, 256, (2, 3, 3), dtype=np.uint8)
    moved, _ = dt.next_frame(good, deque([frame]))
    assert np.array_equal(moved, mf.warp(frame, np.array([[[0, 0], [0, 2]], [[1, 0], [0, 0]]]), 4))


def _two_way(height: int, width: int, frames: int, step: int) -> list[np.ndarray]:
    """A textured view (:func:`_smooth_view`'s field) whose top half moves right and bottom half left, ``step``
    pixels per frame."""
    m = step * frames
    wide = _smooth_view(height, width + 2 * m, 0, 0)
    out = []
    for i in range(frames):
        f = np.empty((height, width, 3), dtype=np.uint8)
        f[:height // 2] = wide[:height // 2, m - step * i:m - step * i + width]
        f[height // 2:] = wide[height // 2:, m + step * i:m + step * i + width]
        out.append(f)
    return out


def test_parts_moving_apart_get_fields_that_decode_as_the_encoder_moved_them(tmp_path, one_thread):
    from diffcodec import video, yuv

    views = _two_way(128, 128, 4, 1)
    motion = dt.region_motion(views, dt.group_motion(views))
    assert all(isinstance(d, mf.Field) for d in motion[1:])
    for k, d in enumerate(motion[1:], 1):     # the top nodes move right, the bottom ones left, k pixels
        assert np.abs(d.nodes[0, :2, 1] - 4 * k).max() <= 1 and np.abs(d.nodes[-1, :, 1] + 4 * k).max() <= 1, k
    assert dt.group_error(views, motion, 0) < dt.group_error(views, dt.group_motion(views), 0)
    src = tmp_path / "apart.y4m"
    info = video.VideoInfo(128, 128, (25, 1), "444")
    with video.open_writer(str(src), info) as w:
        for f in views:
            w.write(yuv.rgb_to_planes(f, "444"))
    with video.open_video(str(src)) as r:
        seen = [yuv.planes_to_rgb(f.planes, r.info) for f in r]        # what the encoder codes
    data, _ = encode(src, "diffae", gop=2, preset="low", **CPU)
    c = container.read_container(data)
    codec = get_codec("diffae", for_decoding=True)
    whole = decode_all(data)
    for g in (0, 1):
        chosen = dt.region_motion(seen[2 * g:2 * g + 2], dt.group_motion(seen[2 * g:2 * g + 2]))[1]
        field = dt.parse_motion(c.payloads[2 * g + 1], 128, 128)
        assert isinstance(field, mf.Field) and field == chosen           # the chunk holds the encoder's field
        key = Encoded(model=c.header.model, model_sha=c.header.model_sha, params=c.header.params,
                      chunks=[c.payloads[2 * g]])
        first, reference = codec.decompress_keyframe(key, 128, 128, 3, **CPU)
        unmoved = reference[0]
        second, _ = codec.decompress_predicted(c.payloads[2 * g + 1], reference, key, 128, 128, 3, **CPU)
        assert np.array_equal(second, mf.warp(unmoved, field.nodes, field.log2b))     # exactly the rule
        for frame, (_, planes) in zip((first, second), whole[2 * g:2 * g + 2]):
            assert all(np.array_equal(x, y) for x, y in zip(yuv.rgb_to_planes(frame, "444"), planes))
    part = decode_all(data, 2, 4)          # from the second keyframe: no drift
    assert [i for i, _ in part] == [2, 3]
    for (_, a), (_, b) in zip(part, whole[2:]):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
