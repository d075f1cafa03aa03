"""Generation in the OPQ index space (`generate --method opq`, issue 20): the samplers are seeded, a generated latent is
an opq file that decodes to the sample, options and sizes the generator does not take are refused in one line, and a
training step of either formulation runs (tiny synthetic batch). Uses the shipped opq-gen models, with few steps."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffcodec import api, artifacts
from diffcodec.errors import UsageError
from diffcodec.methods import get_codec
from diffcodec.methods import opq_generate as og

from conftest import run_main

needs_models = pytest.mark.skipif(not all(artifacts.artifact_paths(n)[0].is_file() for n in og.ARTIFACTS.values()),
                                  reason="opq-gen models not installed")


@needs_models
@pytest.mark.parametrize("options", [{}, {"categorical": True, "temperature": 0.7}, {"categorical": True,
                                                                                       "temperature": 0}])
def test_seeded_sample_and_its_bitstream(options):
    data, sample = api.generate("opq", 64, 64, steps=6, seed=3, **options)
    again, sample2 = api.generate("opq", 64, 64, steps=6, seed=3, **options)
    assert data == again and np.array_equal(sample, sample2)
    assert sample.shape == (64, 64, 3) and sample.dtype == np.uint8
    assert np.array_equal(api.decode(data), sample)               # the file decodes to exactly the sample
    meta = api.info(data)
    assert meta["method"] == "opq" and meta["model"] == "32-8-8" and (meta["width"], meta["height"]) == (64, 64)
    other, _ = api.generate("opq", 64, 64, steps=6, seed=4, **options)
    if options.get("temperature") != 0:
        assert other != data


@needs_models
def test_other_sizes_and_refine_relation():
    data, sample = api.generate("opq", 32, 48, steps=4, seed=1)
    assert sample.shape == (32, 48, 3) and np.array_equal(api.decode(data), sample)
    data_r, refined = api.generate("opq", 32, 48, steps=4, seed=1, refine=True, device="cpu")
    assert data_r == data                                         # refine changes the image, not the file
    assert np.array_equal(api.decode(data, refine=True, device="cpu"), refined)


@needs_models
def test_cli_generate_then_decode(tmp_path, capsys):
    png, ddc, back = tmp_path / "s.png", tmp_path / "s.ddc", tmp_path / "back.png"
    code, err = run_main(["generate", "--method", "opq", "--categorical", "--temperature", "0.5", "--steps", "5",
                          "--seed", "2", "-o", str(png), "--bitstream", str(ddc), "--quiet"], capsys)
    assert code == 0, err
    code, err = run_main(["decode", str(ddc), "-o", str(back), "--quiet"], capsys)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(back)))


@pytest.mark.parametrize("argv, needle", [
    (["--method", "opq", "--k", "16"], "--k"),
    (["--method", "opq", "--space", "latent"], "--space"),
    (["--method", "opq", "--temperature", "0.5"], "--categorical"),
    (["--method", "opq", "--size", "60"], "multiples of 8"),
    (["--method", "opq", "--size", "1024"], "multiples of 8"),
    (["--method", "ddcm", "--categorical"], "categorical"),
])
def test_refusals_are_one_line(tmp_path, capsys, argv, needle):
    code, err = run_main(["generate", *argv, "-o", str(tmp_path / "x.png")], capsys)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "x.png").exists()


def test_codec_contract():
    codec = get_codec("opq")
    assert codec.can_generate and "categorical" in codec.generate_options and "k" not in codec.generate_options
    assert codec.generate_steps(steps=7) == 7 and codec.generate_steps(steps=7, refine=True) == 8
    with pytest.raises(UsageError, match="atoms"):
        og.check_options({"atoms": 2})


def test_soft_decode_of_one_hot_is_the_codebook_decoding():
    books, _ = og._codebooks()
    idx = np.random.default_rng(0).integers(0, 256, size=(2, 6, 3, 4))
    planes = og.decode_batch_planes(idx, books)
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(idx), 256).permute(0, 1, 4, 2, 3).float()
    soft = og.soft_decode(one_hot, og.torch_tables(books)).numpy()
    assert np.abs(soft - planes).max() < 1e-3
    assert np.array_equal(og.planes_to_rgb(planes)[1], og.decode_indices_image(idx[1], books))


@pytest.mark.parametrize("formulation", og.FORMULATIONS)
def test_training_step_runs(tmp_path, formulation):
    from diffcodec.training import loop
    from diffcodec.training.opq_gen import OPQGenConfig, OPQGenTrainer

    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(20, 6, 2, 2)).astype(np.uint8)
    val = rng.integers(0, 256, size=(3, 6, 2, 2)).astype(np.uint8)
    cfg = OPQGenConfig(data=[], out_dir=tmp_path / "run", formulation=formulation, batch=4, steps=2, width=16,
                       blocks=2, warmup_steps=1, val_timesteps=(100, 800), log_every=1, progress=False,
                       num_threads=1, crop=16)
    summary = loop.train(cfg, lambda c, d: OPQGenTrainer(c, d, pool=pool, val=val))
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])
    assert set(summary["validation"]["denoising"]) == {"100", "800"}
    assert {"acc", "mae", "psnr", "acc_input"} <= set(summary["validation"]["denoising"]["100"])
