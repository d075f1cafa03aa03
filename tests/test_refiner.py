"""`decode --refine`: the OPQ diffusion refiner path, with a tiny randomly initialised refiner."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffcodec import api, artifacts
from diffcodec.errors import ModelError, UsageError

from conftest import synthetic_image


@pytest.fixture
def codebooks(tmp_path, monkeypatch):
    shutil.copytree(artifacts.artifacts_dir() / "opq", tmp_path / "opq")
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(tmp_path))
    return tmp_path


@pytest.fixture
def tiny_refiner(codebooks):
    from diffcodec.diffusion import NoiseSchedule, UNet
    from diffcodec.diffusion.models import export_denoiser
    from diffcodec.methods.opq_refine import REFINER_NAME

    torch.manual_seed(0)
    model = UNet(cond_channels=3, base_channels=8, channel_mult=(1, 2), attn_levels=())
    export_denoiser(REFINER_NAME, model, NoiseSchedule("cosine"), "x0", {"command": "test"})
    return codebooks


def test_refined_decode_is_deterministic_and_keeps_shape(tiny_refiner):
    img = synthetic_image(27, 41)
    data = api.encode(img, method="opq", preset="opq-16-8-8")
    plain = api.decode(data)
    a = api.decode(data, refine=True, steps=2)
    b = api.decode(data, refine=True, steps=2)
    assert a.shape == plain.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, plain)


def test_refine_on_grayscale(tiny_refiner):
    data = api.encode(synthetic_image(20, 24, 1)[..., 0], method="opq")
    assert api.decode(data, refine=True, steps=1).shape == (20, 24)


def test_bad_steps_and_unknown_options(tiny_refiner):
    data = api.encode(synthetic_image(16, 16), method="opq")
    with pytest.raises(UsageError):
        api.decode(data, refine=True, steps=0)
    with pytest.raises(UsageError):
        api.decode(data, sharpen=True)


def test_missing_refiner_is_a_model_error(codebooks):
    data = api.encode(synthetic_image(16, 16), method="opq")
    with pytest.raises(ModelError, match="opq-refiner"):
        api.decode(data, refine=True)


@pytest.mark.slow
def test_cli_refine_flags(tiny_refiner, tmp_path):
    src = tmp_path / "a.ddc"
    src.write_bytes(api.encode(synthetic_image(16, 16), method="opq"))
    run = lambda *a: subprocess.run([sys.executable, "-m", "diffcodec", *a], capture_output=True)  # noqa: E731
    p = run("decode", str(src), "-o", str(tmp_path / "r.png"), "--refine", "--steps", "1", "--device", "cpu")
    assert p.returncode == 0, p.stderr.decode()
    p = run("decode", str(src), "-o", str(tmp_path / "s.png"), "--steps", "3")
    assert p.returncode == 2 and b"--refine" in p.stderr and b"Traceback" not in p.stderr


def test_progress_bar_only_on_a_tty(monkeypatch, capsys):
    from diffcodec import progress

    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert progress.bar(range(3)).disable
    progress.set_enabled(False)
    try:
        monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
        assert progress.bar(range(3)).disable
    finally:
        progress.set_enabled(True)
    assert not progress.bar(range(3)).disable
