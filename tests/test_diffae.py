"""diffae: diffusion-autoencoder codec and its training, with tiny models trained for a few steps in a temp folder."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffcodec import api, artifacts, container
from diffcodec.errors import CorruptInputError, ModelError, UsageError
from diffcodec.methods import diffae, get_codec

from conftest import check_decode_in_fresh_processes, rewrite_container, synthetic_image

# widths with >= 2 channels per GroupNorm group, so that a 1x1 image (one latent cell) still normalises
TINY = dict(latent_channels=4, encoder_channels=[8, 8, 48], cond_channels=8, delta_grid=8,
            unet=dict(base_channels=12, channel_mult=[1, 2], attn_levels=[1], attn_head_channels=12))


pytestmark = pytest.mark.usefixtures("one_thread")


def _train_cfg(root: Path, space: str, **kw):
    from diffcodec.training.diffae import DiffAETrainConfig

    base = dict(data=[root / "train"], out_dir=root / f"run-{space}", space=space, model=dict(TINY), crop=32,
                batch=2, steps=3, warmup_steps=1, val_folder=root / "val", val_crops=2, val_crop=32, val_every=2,
                val_steps=(1, 2), log_every=1, device="cpu", progress=False, checkpoint_minutes=None,
                export_name=f"models/{diffae.SPACE_MODELS[space]}", command="diffcodec train diffae (test)",
                license_note="synthetic test images")
    base.update(kw)
    return DiffAETrainConfig(**base)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny random latent-ae and two tiny diffae models (latent, pixel) trained for 3 steps."""
    from diffcodec.autoencoder import Autoencoder, export_autoencoder
    from diffcodec.training.diffae import train_diffae

    root = tmp_path_factory.mktemp("diffae")
    mp = pytest.MonkeyPatch()
    mp.setenv("DIFFCODEC_CODEBOOKS", str(root / "codebooks"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for sub, n in (("train", 3), ("val", 2)):
        (root / sub).mkdir()
        for i in range(n):
            Image.fromarray(synthetic_image(48, 64, seed=10 * (sub == "val") + i)).save(root / sub / f"{i}.png")
    torch.manual_seed(0)
    export_autoencoder("models/latent-ae", Autoencoder(factor=8, latent_channels=4, channels=(8, 8, 8)),
                       {"command": "test"})
    summaries = {"latent": train_diffae(_train_cfg(root, "latent")),
                 "pixel": train_diffae(_train_cfg(root, "pixel", val_folder=None))}
    torch.set_num_threads(threads)
    yield {"root": root, "codebooks": root / "codebooks", **summaries}
    mp.undo()


def _encode(img, **params):
    params.setdefault("device", "cpu")
    return api.encode(img, method="diffae", **params)




# ------------------------------------------------------------------------------------------------ training

@pytest.mark.slow
def test_training_log_checkpoint_manifest_and_resume(models):
    from diffcodec.training.diffae import train_diffae

    root = models["root"]
    res = models["latent"]
    assert res["steps"] == 3 and res["export"].endswith("models/diffae.safetensors")
    log = [json.loads(line) for line in (root / "run-latent" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["bpp"] > 0 for r in log if "loss" in r)
    assert any("val" in r for r in log)
    assert (root / "run-latent" / "latent_cache.pt").exists()

    manifest = artifacts.read_manifest("models/diffae")
    ae_sha = artifacts.sha256_file(models["codebooks"] / "models" / "latent-ae.safetensors")
    assert manifest["autoencoder_sha256"] == ae_sha and manifest["space"] == "latent"
    for key in ("model_config", "schedule", "parameterization", "deltas", "presets", "command", "data", "steps",
                "wall_time_s", "device", "validation", "license", "sha256"):
        assert key in manifest, key
    assert manifest["parameterization"] == "x0" and manifest["loss_weighting"] == "min_snr"
    assert manifest["schedule"]["name"] == "cosine"
    val = manifest["validation"]
    assert len(val["grid_bpp"]) == TINY["delta_grid"]
    assert [val["presets"][p]["index"] for p in diffae.PRESETS] == [manifest["presets"][p] for p in diffae.PRESETS]
    assert set(val["presets"]["medium"]["psnr"]) == {"1", "2"}
    assert artifacts.read_manifest("models/diffae-pixel")["autoencoder_sha256"] is None

    with pytest.raises(UsageError):   # never overwrites a run
        train_diffae(_train_cfg(root, "latent", export_name=None))
    res2 = train_diffae(_train_cfg(root, "latent", steps=4, resume=True, export_name=None, val_folder=None))
    assert res2["steps"] == 4 and res2["steps_this_run"] == 1
    log = [json.loads(line) for line in (root / "run-latent" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4]


def test_integer_tables_are_rebuilt_exactly_from_the_stored_prior(models):
    tensors, _, _ = artifacts.load_artifact("models/diffae")
    tables, supports = diffae.build_tables(tensors["net.prior.logits"], tensors["net.prior.means"],
                                           tensors["net.prior.log_scales"], tensors["deltas"])
    assert np.array_equal(supports, tensors["supports"])
    for g, t in enumerate(tables):
        stored = tensors[f"tables.{g:02d}"]
        assert stored.dtype == np.int32 and stored.min() >= 1 and np.array_equal(t, stored)
        assert abs(int(stored[0].sum()) - diffae.TABLE_TOTAL) <= stored.shape[1]
    assert tensors["net.prior.means"].dtype == np.float32 and tensors["net.unet.conv_in.weight"].dtype == np.float16
    d = tensors["deltas"]
    assert d.dtype == np.float32 and np.all(np.diff(d) < 0)    # grid index up = smaller step = more bits


# ------------------------------------------------------------------------------------------------ codec

@pytest.mark.parametrize("shape,space", [((37, 53, 3), "latent"), ((1, 1, 3), "latent"), ((16, 32, 3), "latent"),
                                         ((37, 53, 3), "pixel")])
def test_round_trip_any_size(models, shape, space):
    img = synthetic_image(*shape)
    data = _encode(img, space=space, steps=2)
    meta = api.info(data)
    assert meta["method"] == "diffae" and meta["model"] == diffae.SPACE_MODELS[space]
    assert meta["params"] == {"d": meta["params"]["d"], "n": 2, "s": 0}
    out = api.decode(data, device="cpu")
    assert out.shape == shape and out.dtype == np.uint8


def test_grayscale(models):
    img = synthetic_image(21, 30, 1)[..., 0]
    data = _encode(img, preset="low")
    assert api.info(data)["channels"] == 1
    out = api.decode(data, device="cpu")
    assert out.shape == (21, 30) and out.dtype == np.uint8


@pytest.mark.slow
def test_decode_is_deterministic_across_runs_and_processes(models, tmp_path):
    img = synthetic_image(24, 40)
    data = _encode(img, steps=3, seed=7)
    assert api.info(data)["params"]["s"] == 7
    a, b = api.decode(data, device="cpu"), api.decode(data, device="cpu")
    assert np.array_equal(a, b)
    check_decode_in_fresh_processes(data, a, models["codebooks"], tmp_path)
    # another seed or step count is another (valid) decode of the same payload
    c = api.decode(rewrite_container(data, params={"d": api.info(data)["params"]["d"], "n": 3, "s": 8}), device="cpu")
    assert c.shape == a.shape and not np.array_equal(c, a)
    assert api.decode(data, device="cpu", steps=1).shape == a.shape


def test_bit_accounting(models):
    img = synthetic_image(40, 56)
    codec = get_codec("diffae")
    enc = codec.compress(img, "high", device="cpu")
    model = diffae.load_model("diffae", "cpu")
    g = enc.params["d"]
    assert g == model.presets["high"]
    q = diffae.quantize(diffae.analyse(model, img), model.deltas[g], int(model.supports[g]))
    assert q.shape == (4, 3, 4)
    payload = diffae.encode_latent(q, model.tables[g], int(model.supports[g]))
    assert enc.chunks == [payload]
    assert np.array_equal(diffae.decode_latent(payload, q.shape, model.tables[g], int(model.supports[g])), q)
    data = _encode(img, preset="high")
    meta = api.info(data)
    assert meta["payload_bytes"] == len(payload) and len(payload) % 4 == 0
    assert meta["file_bytes"] == len(data)
    assert meta["bpp"] == pytest.approx(len(data) * 8 / (40 * 56), rel=1e-12)
    assert meta["payload_bpp"] == pytest.approx(len(payload) * 8 / (40 * 56), rel=1e-12)


def test_bpp_picks_the_largest_file_at_or_under_the_target(models):
    img = synthetic_image(64, 96)
    model = diffae.load_model("diffae", "cpu")
    y = diffae.analyse(model, img)
    sizes = []
    for g in range(len(model.deltas)):
        L = int(model.supports[g])
        payload = diffae.encode_latent(diffae.quantize(y, model.deltas[g], L), model.tables[g], L)
        sizes.append(diffae._file_bytes(model, {"d": g, "n": 4, "s": 0}, 64, 96, 3, len(payload)))
    pixels = 64 * 96
    for target_bytes in sorted(set(sizes)):
        target = (target_bytes + 0.5) * 8 / pixels
        data = _encode(img, bpp=target)
        assert len(data) == max(s for s in sizes if s * 8 <= target * pixels)
        assert api.info(data)["bpp"] <= target
    with pytest.raises(UsageError, match="below"):
        _encode(img, bpp=(min(sizes) - 1) * 8 / pixels)


def test_corrupt_and_truncated_streams(models):
    data = _encode(synthetic_image(32, 48), preset="high")
    payload = container.read_container(data).payloads[0]
    flipped = bytearray(data)
    flipped[-6] ^= 0x10
    bad = [
        bytes(flipped),                                             # CRC
        data[:-3],                                                  # truncated file
        rewrite_container(data, payload=payload[:-4]),                       # truncated payload (valid CRC)
        rewrite_container(data, payload=payload + b"\x00\x00\x00\x01"),      # extra words
        rewrite_container(data, payload=payload[:-1]),                       # not whole words
        rewrite_container(data, payload=bytes(len(payload))),                # garbage of the right size
        rewrite_container(data, params={"d": 99, "n": 4, "s": 0}),           # grid index outside the model's grid
        rewrite_container(data, params={"d": 1, "n": 0, "s": 0}),            # steps out of range
        rewrite_container(data, params={"n": 4, "s": 0}),                    # missing parameter
        rewrite_container(data, params={"d": "x", "n": 4, "s": 0}),
        rewrite_container(data, rng={"g": "philox-np", "s": 0}),          # diffae files carry no rng map
        rewrite_container(data, model="latent-ae"),                         # an installed model of another kind
    ]
    for i, b in enumerate(bad):
        with pytest.raises(CorruptInputError):
            api.decode(b, device="cpu")
            pytest.fail(f"case {i} decoded")


def test_usage_errors(models):
    img = synthetic_image(16, 16)
    with pytest.raises(UsageError, match="preset"):
        _encode(img, preset="ultra")
    with pytest.raises(UsageError):
        get_codec("diffae").compress(img, "ultra")
    for params in ({"steps": 0}, {"steps": 51}, {"seed": -1}, {"k": 4}, {"bpp": -1.0}, {"space": "foo"}):
        with pytest.raises(UsageError):
            _encode(img, **params)
    with pytest.raises(UsageError, match="not both"):
        _encode(img, preset="low", bpp=0.5)
    with pytest.raises(UsageError):
        api.decode(_encode(img), device="cpu", refine=True)
    with pytest.raises(UsageError):
        api.decode(_encode(img), device="cpu", steps=99)


def test_missing_model_names_it(models, tmp_path, monkeypatch):
    data = _encode(synthetic_image(16, 16))
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="diffae"):
        _encode(synthetic_image(16, 16))
    with pytest.raises(ModelError, match="'diffae-pixel'"):
        _encode(synthetic_image(16, 16), space="pixel")
    with pytest.raises(ModelError, match="diffae"):
        api.decode(data, device="cpu")


def test_other_model_or_autoencoder_is_a_model_error(models, tmp_path, monkeypatch):
    from diffcodec.autoencoder import Autoencoder, export_autoencoder

    data = _encode(synthetic_image(16, 16))
    with pytest.raises(ModelError, match="different"):
        api.decode(rewrite_container(data, model_sha=container.read_container(data).header.model_sha ^ 1), device="cpu")
    copy = tmp_path / "codebooks"
    shutil.copytree(models["codebooks"], copy)
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(copy))
    assert api.decode(data, device="cpu").shape == (16, 16, 3)
    torch.manual_seed(1)   # another autoencoder under the same name: its own (valid) sha256
    export_autoencoder("models/latent-ae", Autoencoder(factor=8, latent_channels=4, channels=(8, 8, 8)), {})
    with pytest.raises(ModelError, match="autoencoder"):
        api.decode(data, device="cpu")
    with pytest.raises(ModelError, match="autoencoder"):
        _encode(synthetic_image(16, 16))


@pytest.mark.slow
def test_cli_encode_decode_and_train(models, tmp_path, capsys):
    from diffcodec.cli import main

    def run(*args):
        try:
            main(list(args))
            return 0
        except SystemExit as e:
            return e.code

    src = tmp_path / "in.png"
    Image.fromarray(synthetic_image(20, 28)).save(src)
    ddc, png = tmp_path / "a.ddc", tmp_path / "a.png"
    assert run("encode", str(src), "-o", str(ddc), "--method", "diffae", "--preset", "low", "--steps", "2",
               "--seed", "3", "--device", "cpu", "--quiet") == 0
    assert api.info(ddc.read_bytes())["params"] == {"d": diffae.load_model("diffae").presets["low"], "n": 2, "s": 3}
    assert run("decode", str(ddc), "-o", str(png), "--steps", "1", "--device", "cpu", "--quiet") == 0
    assert np.asarray(Image.open(png)).shape == (20, 28, 3)
    assert run("encode", str(src), "-o", str(tmp_path / "b.ddc"), "--method", "diffae", "--bpp", "1.5",
               "--space", "pixel", "--device", "cpu", "--quiet") == 0
    assert api.info((tmp_path / "b.ddc").read_bytes())["bpp"] <= 1.5
    assert run("encode", str(src), "-o", str(tmp_path / "c.ddc"), "--method", "diffae", "--preset", "x") == 2
    capsys.readouterr()

    kodak = tmp_path / "kodak"
    shutil.copytree(models["root"] / "train", kodak)
    assert run("train", "diffae", "--data", str(kodak), "--steps", "1", "--no-export") == 2
    out = tmp_path / "cli-run"
    assert run("train", "diffae", "--data", str(models["root"] / "train"), "--space", "pixel", "--crop", "32",
               "--batch", "1", "--steps", "1", "--base-channels", "8", "--latent-channels", "2",
               "--encoder-channels", "8,8,8", "--cond-channels", "4", "--out", str(out), "--no-export",
               "--device", "cpu", "--threads", "1", "--quiet") == 0
    assert (out / "checkpoint.pt").exists()


def test_a_model_missing_a_tensor_is_a_one_line_model_error(models, tmp_path, monkeypatch):
    from diffcodec import artifacts

    data = _encode(synthetic_image(16, 16))
    copy = tmp_path / "codebooks"
    shutil.copytree(models["codebooks"], copy)
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(copy))
    tensors, manifest, _ = artifacts.load_artifact("models/diffae")
    dropped = next(k for k in tensors if k.startswith("net."))
    artifacts.save_artifact("models/diffae", {k: v for k, v in tensors.items() if k != dropped}, manifest)
    with pytest.raises(ModelError) as e:
        api.decode(data, device="cpu")
    assert "does not match its manifest" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ big images

def test_tile_plan_covers_the_grid_once():
    from diffcodec import tiling

    for h, w, core, halo in ((10, 7, 3, 2), (5, 5, 8, 1), (64, 130, 64, 64)):
        seen = np.zeros((h, w), int)
        for t in tiling.plan(h, w, core, halo):
            seen[t.core] += 1
            assert (t.ya, t.xa) == (max(0, t.y0 - halo), max(0, t.x0 - halo))
            assert (t.yb, t.xb) == (min(h, t.y1 + halo), min(w, t.x1 + halo))
        assert (seen == 1).all()
    sub = tiling.plan(4, 6, 4, 3, top=10, left=20, bounds=(8, 16, 18, 30))
    assert [(t.y0, t.y1, t.x0, t.x1) for t in sub] == [(10, 14, 20, 24), (10, 14, 24, 26)]
    assert [(t.ya, t.yb, t.xa, t.xb) for t in sub] == [(8, 16, 18, 27), (8, 16, 21, 29)]


def _untiled_with_initial_noise(model, q, g, height, width, steps, seed):
    """The spec's tiled decoding with one window: steps 2-6 on the whole image, x_T the ddcm initial noise."""
    from diffcodec import codebooks_rng
    from diffcodec.data import to_uint8
    from diffcodec.diffusion.samplers import sample_ddim, strided_timesteps, x0_predictor

    net = model.net
    y_hat = torch.from_numpy(diffae.dequantize(q, model.deltas[g]))[None]
    with torch.inference_mode():
        cond = net.condition(y_hat, torch.full((1,), float(model.deltas[g])))
        x_T = torch.from_numpy(codebooks_rng.initial_noise(seed, net.target_shape(q.shape[1], q.shape[2])))[None]
        fn = x0_predictor(net.unet, model.schedule, model.parameterization,
                          clip=1.0 if model.space == "pixel" else None)
        x0 = sample_ddim(fn, x_T, strided_timesteps(model.schedule.T, steps), model.schedule, None, cond=cond)
        # the tiled decoder hands the autoencoder channels-last latents (the same sums, another memory layout)
        x0 = x0.contiguous(memory_format=torch.channels_last)
        return to_uint8(diffae.to_images(x0, model.space, model.autoencoder, height, width))[0]


@pytest.mark.parametrize("space", ["latent", "pixel"])
def test_big_images_are_coded_in_tiles(models, monkeypatch, space):
    # above tiling.TILE_ABOVE_PIXELS the encoder runs in windows and the file says tl; windows that see the whole
    # image give the whole image's computation exactly (the cores' bookkeeping), small ones close pixels
    from diffcodec import tiling

    img = synthetic_image(75, 117, seed=3)
    plain = _encode(img, space=space)
    assert "tl" not in api.info(plain)["params"]
    model = diffae.load_model(diffae.SPACE_MODELS[space])
    y = diffae.analyse(model, img)
    monkeypatch.setattr(tiling, "TILE_ABOVE_PIXELS", 0)
    monkeypatch.setattr(diffae, "ENCODE_TILE", 2)
    monkeypatch.setattr(diffae, "ENCODE_HALO", 64)
    assert np.array_equal(diffae.analyse(model, img), y)
    monkeypatch.setattr(diffae, "ENCODE_HALO", 1)
    y_small = diffae.analyse(model, img)
    assert y_small.shape == y.shape and not np.array_equal(y_small, y)
    tiled = _encode(img, space=space)
    params = api.info(tiled)["params"]
    assert params["tl"] == diffae.DECODE_TILE and api.info(tiled)["diffae"]["tile"] == diffae.DECODE_TILE
    out = api.decode(tiled, device="cpu")
    assert out.shape == img.shape and np.array_equal(out, api.decode(tiled, device="cpu"))

    g, n, s = params["d"], params["n"], params["s"]
    q = diffae.quantize(diffae.analyse(model, img), model.deltas[g], int(model.supports[g]))
    whole = _untiled_with_initial_noise(model, q, g, 75, 117, n, s)
    assert np.array_equal(out, whole)                     # one window (tl = 128 covers this image)
    up = model.net.up
    y_hat = diffae.dequantize(q, model.deltas[g])
    for tile, ae_tile in ((3, 2), (5, 64), (64, 3)):
        many = diffae.synthesize_tiled(model, y_hat, g, 75, 117, n, s, tile, halo=4096, ae_tile=ae_tile, ae_halo=4096)
        assert np.array_equal(many, whole), (tile, ae_tile)
    near = diffae.synthesize_tiled(model, y_hat, g, 75, 117, n, s, 2 * up, halo=up, ae_tile=2, ae_halo=1)
    assert near.shape == whole.shape and not np.array_equal(near, whole)
    grey = _encode(img[..., :1], space=space)
    assert api.decode(grey, device="cpu").shape == (75, 117)


def test_a_bad_tile_header_is_corrupt(models):
    data = _encode(synthetic_image(32, 48))
    p = api.info(data)["params"]
    for bad in ("x", 0, 8, 17, 8192, 128.0, True):
        with pytest.raises(CorruptInputError, match="tl"):
            api.decode(rewrite_container(data, params={**p, "tl": bad}), device="cpu")
    assert api.decode(rewrite_container(data, params={**p, "tl": 16}), device="cpu").shape == (32, 48, 3)
