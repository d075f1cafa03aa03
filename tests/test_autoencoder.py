"""First-stage autoencoder (`latent-ae`), its training loop, the latent API and latent-denoiser training."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffcodec import artifacts, latent
from diffcodec.autoencoder import Autoencoder, export_autoencoder, load_autoencoder
from diffcodec.cli import main as cli_main
from diffcodec.errors import ModelError, UsageError
from diffcodec.training.autoencoder import AETrainConfig, train_autoencoder
from diffcodec.training.latent import LatentCrops, LatentImageCache

from conftest import synthetic_image

TINY = {"factor": 8, "latent_channels": 4, "channels": [8, 8, 16], "num_res_blocks": 1}


@pytest.fixture
def codebooks(tmp_path, monkeypatch):
    root = tmp_path / "codebooks"
    root.mkdir()
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(root))
    return root


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(120 + 10 * i, 140, seed=i)).save(folder / f"im{i}.png")
    return folder


def _tiny(seed=0, **kw) -> Autoencoder:
    torch.manual_seed(seed)
    m = Autoencoder(**{**TINY, **kw}).eval()
    for p in m.parameters():  # the zero-initialised convs would make the decoder blind to the latent
        if p.ndim == 4:
            torch.nn.init.normal_(p, std=0.05)
    return m


@pytest.mark.parametrize("factor,channels", [(8, [8, 8, 16]), (4, [8, 16]), (16, [8, 8, 8, 8])])
@pytest.mark.parametrize("h,w", [(37, 53), (64, 64), (8, 9), (1, 1)])
def test_any_size_round_trip_shapes(factor, channels, h, w):
    m = _tiny(factor=factor, channels=channels)
    x = torch.rand(2, 3, h, w) * 2 - 1
    z = m.encode(x)
    assert tuple(z.shape) == (2, 4, -(-h // factor), -(-w // factor)) == (2, *m.latent_shape(h, w))
    y = m.decode(z, h, w)
    assert y.shape == x.shape and y.abs().max() <= 1.0
    rec, mean, logvar = m(x, sample=False)
    assert rec.shape == x.shape and mean.shape == logvar.shape == z.shape


def test_bad_configs():
    with pytest.raises(ValueError):
        Autoencoder(factor=2)
    with pytest.raises(ValueError):
        Autoencoder(factor=8, channels=(8, 8))
    with pytest.raises(ValueError):
        Autoencoder.from_config({**TINY, "bogus": 1})


def test_calibration_gives_unit_variance_and_is_applied_consistently():
    m = _tiny()
    x = torch.rand(6, 3, 64, 64) * 2 - 1
    raw = m.encode_moments(x)[0]
    m.calibrate(x, batch=4)
    z = m.encode(x)
    per_channel = z.transpose(0, 1).flatten(1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(4), atol=1e-4)
    assert torch.allclose(per_channel.std(1), torch.ones(4), atol=1e-3)
    assert not torch.allclose(m.scale, torch.ones(4))
    # decode() undoes the scaling: it equals the raw decoder on the unscaled mean
    torch.testing.assert_close(m.decode(z), m.decode_raw(raw).clamp(-1, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(m.denormalize(m.normalize(raw)), raw, atol=1e-5, rtol=1e-5)


def test_export_load_and_hash_verification(codebooks):
    m = _tiny()
    m.calibrate(torch.rand(4, 3, 32, 32) * 2 - 1)
    path = export_autoencoder("models/tiny-ae", m, {"command": "test"})
    loaded, manifest = load_autoencoder("models/tiny-ae")
    assert manifest["sha256"] == artifacts.sha256_file(path)
    assert manifest["model_config"] == m.config and manifest["kind"] == "autoencoder"
    assert torch.equal(loaded.scale, m.scale) and torch.equal(loaded.shift, m.shift)  # fp32, exact
    assert manifest["latent_scale"] == pytest.approx(m.scale.tolist(), rel=1e-5)
    x = torch.rand(1, 3, 40, 24) * 2 - 1
    torch.testing.assert_close(loaded.encode(x), m.encode(x), atol=2e-2, rtol=2e-2)  # fp16 weights
    space = latent.load_latent_space("models/tiny-ae")
    rgb = synthetic_image(40, 24)
    z = space.encode_image(rgb)
    assert z.shape == (1, 4, 5, 3) and space.sha256 == manifest["sha256"] and space.factor == 8
    out = space.decode_latent(z, 40, 24)
    assert out.shape == (40, 24, 3) and out.dtype == np.uint8
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_autoencoder("models/tiny-ae")
    with pytest.raises(ModelError, match="missing"):
        load_autoencoder("models/nothing-here")


@pytest.mark.slow
def test_training_runs_resumes_and_exports(codebooks, image_folder, tmp_path):
    cfg = AETrainConfig(data=[image_folder], out_dir=tmp_path / "run", model=dict(TINY), crop=104, batch=2,
                        steps=3, val_folder=image_folder, val_crops=2, val_crop=64, log_every=1,
                        calibrate_crops=4, warmup_steps=1, progress=False)
    first = train_autoencoder(cfg)
    assert first["steps"] == 3 and first["export"] is None
    with pytest.raises(UsageError, match="resume"):
        train_autoencoder(cfg)
    cfg.resume, cfg.steps, cfg.export_name, cfg.command = True, 5, "models/tiny-ae", "diffcodec train autoencoder"
    second = train_autoencoder(cfg)
    assert second["steps"] == 5 and second["steps_this_run"] == 2
    manifest = json.loads((codebooks / "models" / "tiny-ae.json").read_text())
    assert manifest["steps"] == 5 and manifest["command"] == "diffcodec train autoencoder"
    assert set(manifest["validation"]) == {"step", "psnr", "ms_ssim"}
    assert manifest["sha256"] == artifacts.sha256_file(codebooks / "models" / "tiny-ae.safetensors")
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 5
    load_autoencoder("models/tiny-ae")


@pytest.mark.slow
def test_latent_crops_and_latent_denoiser_training_from_the_cli(codebooks, image_folder, tmp_path):
    m = _tiny()
    export_autoencoder("models/latent-ae", m, {"command": "test"})
    from diffcodec.training.data import ImageFolderCrops

    images = ImageFolderCrops([image_folder], crop=64, flips=False)
    cache = LatentImageCache(images, m, "sha", 64, flips=True, cache_path=tmp_path / "lat.pt")
    assert len(cache.latents) == 3 and cache.latents[0][0].shape == (4, 15, 18)   # 120x140 -> ceil(/8)
    # the mirror variant is the latent of the mirrored image
    mirrored = m.encode(torch.from_numpy(images.images[0][:, ::-1].copy()).permute(2, 0, 1)[None].float() / 127.5 - 1)
    torch.testing.assert_close(cache.latents[0][1], mirrored[0], atol=1e-4, rtol=1e-4)
    crops = LatentCrops(cache, 6)
    b = crops.batch(3, np.random.default_rng(0))
    assert b.shape == (3, 4, 6, 6)
    with pytest.raises(UsageError):
        LatentCrops(cache, 19).batch(1, np.random.default_rng(0))
    m2 = _tiny()
    m2.encode = None                                                   # would fail if called
    again = LatentImageCache(images, m2, "sha", 64, flips=True, cache_path=tmp_path / "lat.pt")
    assert torch.equal(again.latents[2][1], cache.latents[2][1])      # read back from the cache

    cli_main(["train", "latent-denoiser", "--data", str(image_folder), "--val", str(image_folder),
              "--out", str(tmp_path / "lrun"), "--steps", "2", "--crop", "8", "--batch", "2",
              "--base-channels", "8", "--quiet"])
    assert (tmp_path / "lrun" / "latents.pt").is_file()
    manifest = json.loads((codebooks / "models" / "latent-ddpm.json").read_text())
    assert manifest["autoencoder_sha256"] == json.loads((codebooks / "models" / "latent-ae.json").read_text())["sha256"]
    assert manifest["model_config"]["in_channels"] == 4 == manifest["model_config"]["out_channels"]
    model, schedule, param, man = latent.load_latent_prior()
    x = torch.randn(1, 4, 8, 8)
    assert model(x, torch.tensor([0.5])).shape == x.shape


def test_cli_refuses_kodak_and_bad_options(codebooks, image_folder, tmp_path, capsys):
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    for args, code in ((["--data", str(kodak)], 2), (["--data", str(image_folder), "--crop", "64"], 2),
                       (["--data", str(image_folder), "--channels", "8,x"], 2),
                       (["--data", str(image_folder), "--channels", "8,8"], 2)):
        with pytest.raises(SystemExit) as e:
            cli_main(["train", "autoencoder", *args, "--out", str(tmp_path / "r"), "--steps", "1", "--quiet"])
        assert e.value.code == code
    err = capsys.readouterr().err
    assert "Kodak" in err and "Traceback" not in err


def test_a_resumed_run_records_every_command():
    from types import SimpleNamespace

    from diffcodec.training.loop import _command_entry, command_fields

    cfg = SimpleNamespace(command="diffcodec train x --resume")
    runs = [{"command": "diffcodec train x", "from_step": 0}, {"command": "diffcodec train x --resume", "from_step": 7}]
    assert command_fields(cfg, {"commands": runs}) == {"command": "diffcodec train x", "resumed_with": runs[1:]}
    assert command_fields(cfg, {"commands": runs[:1]}) == {"command": "diffcodec train x"}
    assert command_fields(cfg, {"commands": [{"command": "", "from_step": 0}, runs[1]]}) == {
        "command": "diffcodec train x --resume"}                       # unrecorded (API) runs are left out
    assert _command_entry("diffcodec train x --resume  # resumed at step 12") == {
        "command": "diffcodec train x --resume", "from_step": 12}
