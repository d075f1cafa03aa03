"""ddcm on pretrained diffusers models the user adds (`diffcodec models add NAME --diffusers DIR`, `--prior NAME`).

Nothing is downloaded: tiny randomly initialised models are built and saved by their own pipelines inside the test
(tests/tiny_diffusers.py), registered in a temporary DIFFCODEC_MODELS_DIR, and coded through the API and the CLI.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from diffcodec import api, artifacts, container, user_models  # noqa: E402
from diffcodec.diffusion import diffusers_adapter as da  # noqa: E402
from diffcodec.diffusion.samplers import ddpm_step  # noqa: E402
from diffcodec.errors import ModelError, UsageError  # noqa: E402
from diffcodec.methods import ddcm  # noqa: E402

from conftest import check_decode_in_fresh_processes, ddcm_encode_file, synthetic_image  # noqa: E402
from tiny_diffusers import save_latent_sd, save_pixel_ddpm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusers-models")
    return {"px": save_pixel_ddpm(root / "ddpm-pixel"), "sd": save_latent_sd(root / "sd-latent"),
            "px-other": save_pixel_ddpm(root / "ddpm-pixel-other", seed=1)}


@pytest.fixture
def registry(tmp_path, monkeypatch):
    folder = tmp_path / "registry"
    monkeypatch.setenv(user_models.ENV, str(folder))
    return folder


def _cli(args, capsys):
    from diffcodec.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _add(name, folder, capsys, *extra):
    code, out, err = _cli(["models", "add", name, "--diffusers", folder, *extra], capsys)
    assert code == 0, err
    return user_models.get(name)


# ------------------------------------------------------------------------------ the process: diffusers' own step

SCHEDULER_CONFIGS = {
    "eps-linear-leading-clip": {"prediction_type": "epsilon", "beta_schedule": "linear", "clip_sample": True},
    "v-scaled-leading-offset1": {"prediction_type": "v_prediction", "beta_schedule": "scaled_linear",
                                 "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": False, "steps_offset": 1},
    "v-cosine-trailing-zero-snr": {"prediction_type": "v_prediction", "beta_schedule": "squaredcos_cap_v2",
                                   "timestep_spacing": "trailing", "rescale_betas_zero_snr": True,
                                   "clip_sample": False},
    "eps-linspace-clip2": {"prediction_type": "epsilon", "timestep_spacing": "linspace", "clip_sample": True,
                           "clip_sample_range": 2.0},
    "x0-linear-leading": {"prediction_type": "sample", "clip_sample": True},
}


@pytest.mark.parametrize("name", SCHEDULER_CONFIGS)
def test_our_step_matches_the_diffusers_scheduler_step(name):
    """Our schedule and step, driven by the scheduler config (:func:`resolve_process`), equal diffusers' own
    DDPMScheduler.step for the same model outputs and the same injected noise, step by step (and DDIMScheduler.step
    with eta = 1, the DDPM posterior, where its spacing allows)."""
    from diffusers import DDIMScheduler, DDPMScheduler

    cfg = SCHEDULER_CONFIGS[name]
    theirs = DDPMScheduler(**cfg)
    process = {**da.resolve_process({**theirs.config, "_class_name": "DDPMScheduler"}), "channels": 3}
    ours = da.DiffusersSchedule(process)
    assert torch.equal(torch.from_numpy(ours.alpha_bar).float(), theirs.alphas_cumprod)   # the same float32 tables
    for n in (1, 3, 7, 20, 999):
        theirs.set_timesteps(n)
        assert ours.inference_timesteps(n) == theirs.timesteps.tolist(), n
    assert ours.max_steps == (999 if cfg.get("steps_offset") else 1000)

    n, shape = 12, (2, 3, 8, 8)
    theirs.set_timesteps(n)
    ts = ours.inference_timesteps(n)
    g = torch.Generator().manual_seed(3)
    outputs = {t: torch.randn(shape, generator=g) for t in ts}      # what the "network" says at each timestep
    fake_unet = lambda x, t, return_dict=False, **kw: (outputs[int(t[0])],)
    model_fn = da.make_model_fn(fake_unet, ours, process)
    x_ours = x_theirs = x_ddim = torch.randn(shape, generator=g)
    ddim = DDIMScheduler(**cfg, set_alpha_to_one=True) if cfg.get("timestep_spacing", "leading") == "leading" else None
    if ddim is not None:
        ddim.set_timesteps(n)
        assert ddim.timesteps.tolist() == ts
    for i, t in enumerate(ts):
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(100 + i))
        step = ddpm_step(model_fn, x_ours, t, ts[i + 1] if i + 1 < n else -1, ours, noise=noise)
        ref = theirs.step(outputs[t], t, x_theirs, generator=torch.Generator().manual_seed(100 + i))
        torch.testing.assert_close(step.x0_hat, ref.pred_original_sample, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(step.x_prev, ref.prev_sample, rtol=1e-5, atol=1e-5)
        assert (step.std > 0) == (i + 1 < n)            # every step but the last is stochastic: coded
        x_ours, x_theirs = step.x_prev, ref.prev_sample
        if ddim is not None:
            x_ddim = ddim.step(outputs[t], t, x_ddim, eta=1.0, use_clipped_model_output=True,
                               variance_noise=noise).prev_sample
            torch.testing.assert_close(x_ours, x_ddim, rtol=1e-4, atol=1e-4)


def test_unsupported_scheduler_configs_are_refused():
    with pytest.raises(ModelError, match="thresholding"):
        da.resolve_process({"_class_name": "DDPMScheduler", "thresholding": True})
    with pytest.raises(ModelError, match="variance-preserving"):
        da.resolve_process({"_class_name": "FlowMatchEulerDiscreteScheduler"})
    with pytest.raises(ModelError, match="epsilon"):
        da.resolve_process({"_class_name": "DDPMScheduler", "rescale_betas_zero_snr": True})
    with pytest.raises(UsageError, match="at most 999"):
        da.DiffusersSchedule(da.resolve_process({"_class_name": "DDPMScheduler", "steps_offset": 1})) \
            .inference_timesteps(1000)
    trailing = da.DiffusersSchedule(da.resolve_process({"_class_name": "DDPMScheduler",
                                                        "timestep_spacing": "trailing"}))
    assert not trailing.valid_steps(61) and trailing.valid_steps(60)   # diffusers gives 62 steps, the last t = -1
    with pytest.raises(UsageError):
        trailing.inference_timesteps(61)
    p = ddcm.choose_params(1.0, 1024, 1024, 3, n_coded=lambda n: n - 1, model_id="x", k=4096, atoms=512,
                           max_steps=61, valid_steps=trailing.valid_steps)
    assert p.steps == 60                                   # --bpp grows N up to the gap, never onto it


# ------------------------------------------------------------------------------ registration

def test_registration_records_every_file_and_copies_only_when_asked(folders, registry, tmp_path, capsys):
    record = _add("px", folders["px"], capsys)
    assert record["path"] == str(folders["px"]) and not record["copied"] and not (registry / "px").exists()
    assert set(record["files"]) == {"model_index.json", "scheduler/scheduler_config.json", "unet/config.json",
                                    "unet/diffusion_pytorch_model.safetensors"}
    for rel, sha in record["files"].items():
        assert sha == artifacts.sha256_file(folders["px"] / rel)
    assert record["sha256"] == user_models.identity(record) and record["space"] == "pixel"

    sd = _add("sd", folders["sd"], capsys)
    assert sd["space"] == "latent" and "vae/diffusion_pytorch_model.safetensors" in sd["files"]
    assert "text_encoder/model.safetensors" in sd["registration_files"]   # read once, for the embedding only
    assert (registry / "sd.empty-prompt.safetensors").is_file()
    assert sd["process"]["scaling_factor"] == 0.18215 and sd["process"]["steps_offset"] == 1

    code, _, err = _cli(["models", "add", "px", "--diffusers", folders["px-other"]], capsys)
    assert code == 2 and "--force" in err                      # no silent replacement
    code, _, err = _cli(["models", "add", "pixel-ddpm", "--diffusers", folders["px"]], capsys)
    assert code == 2 and "shipped" in err

    # --copy: the registry keeps its own copy, the original folder may go
    original = shutil.copytree(folders["px"], tmp_path / "to-delete")
    copied = _add("copied", original, capsys, "--copy")
    assert copied["copied"] and Path(copied["path"]) == registry / "copied" and copied["sha256"] == record["sha256"]
    shutil.rmtree(original)
    img = synthetic_image(8, 12)
    data, recon, _ = ddcm_encode_file(img, prior="copied", steps=3, k=16, atoms=2)
    assert np.array_equal(api.decode(data, device="cpu"), recon)
    code, out, _ = _cli(["models", "remove", "copied"], capsys)
    assert code == 0 and not (registry / "copied").exists() and not (registry / "copied.json").exists()
    code, _, err = _cli(["models", "remove", "px"], capsys)
    assert code == 0 and folders["px"].is_dir() and "stay" in err        # never the folder it was added from

    code, out, _ = _cli(["models", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["sd"]["source"] == "added" and rows["sd"]["status"] == "ok" and rows["sd"]["kind"] == "diffusers-latent"
    assert "px" not in rows and any(r["source"] == "shipped" for r in rows.values())


# ------------------------------------------------------------------------------ coding

def test_pixel_round_trip_at_an_odd_size(folders, registry, capsys):
    record = _add("px", folders["px"], capsys)
    img = synthetic_image(13, 19)
    data, recon, stats = ddcm_encode_file(img, prior="px", steps=6, k=64, atoms=4)
    c = container.read_container(data)
    assert (c.header.model, c.header.model_sha) == ("px", artifacts.sha_prefix32(record["sha256"]))
    assert c.header.params == {"n": 6, "k": 64, "m": 4, "cb": "mshift", "sp": "pixel", "pf": "diffusers"}
    assert stats.coded_steps == 5 and recon.shape == img.shape
    p = ddcm.DDCMParams.from_header(c.header.params, c.header.rng, "px")
    assert len(data) == ddcm.file_bytes(p, 5, 13, 19, 3, "px", c.header.model_sha)
    assert np.array_equal(api.decode(data, device="cpu"), recon)
    assert api.info(data)["ddcm"]["prior"] == "diffusers"
    # the coding steers the process toward the image: more atoms per step, closer
    _, few, _ = ddcm_encode_file(img, prior="px", steps=6, k=64, atoms=1)
    _, many, _ = ddcm_encode_file(img, prior="px", steps=6, k=64, atoms=32)
    err = lambda r: float(np.mean((r.astype(float) - img) ** 2))
    assert err(many) < err(few)


def test_latent_round_trip_with_the_pipelines_empty_prompt_and_vae_scaling(folders, registry, capsys):
    from diffusers import StableDiffusionPipeline

    record = _add("sd", folders["sd"], capsys)
    pipe = StableDiffusionPipeline.from_pretrained(str(folders["sd"]), local_files_only=True, safety_checker=None)
    expected = pipe.encode_prompt("", "cpu", 1, False)[0]
    assert torch.equal(user_models.load_embedding(record), expected)      # what the pipeline conditions on
    prior = ddcm.load_prior("latent", "cpu", prior="sd")
    rgb = synthetic_image(16, 24)
    with torch.no_grad():
        z = pipe.vae.encode(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1).latent_dist.mean
    torch.testing.assert_close(prior.to_space(rgb), z * pipe.vae.config.scaling_factor)
    assert prior.shape(21, 27) == (4, 6, 8)            # padded to 24 x 32 (VAE f = 4, UNet x 2), cropped back

    for shape in ((21, 27, 3), (19, 23, 1)):
        img = synthetic_image(*shape[:2], channels=shape[2])
        data, recon, stats = ddcm_encode_file(img if shape[2] == 3 else img, prior="sd", space="latent", steps=5,
                                              k=64, atoms=3)
        assert container.read_container(data).header.params["sp"] == "latent" and stats.coded_steps == 4
        out = api.decode(data, device="cpu")
        assert np.array_equal(out.reshape(recon.shape), recon), shape


def test_a_pytorch_bin_checkpoint_loads_as_diffusers_loads_it(folders, registry, tmp_path, capsys):
    from diffusers import UNet2DModel

    folder = shutil.copytree(folders["px"], tmp_path / "bin")
    UNet2DModel.from_pretrained(str(folder / "unet")).save_pretrained(folder / "unet", safe_serialization=False)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    record = _add("bin", folder, capsys)
    assert "unet/diffusion_pytorch_model.bin" in record["files"] and record["load"]["unet"]["safetensors"] is False
    img = synthetic_image(8, 12)
    data, recon, _ = ddcm_encode_file(img, prior="bin", steps=3, k=16, atoms=2)
    assert np.array_equal(api.decode(data, device="cpu"), recon)
    _add("px", folders["px"], capsys)                       # the same weights as safetensors: the same image
    assert np.array_equal(ddcm_encode_file(img, prior="px", steps=3, k=16, atoms=2)[1], recon)


@pytest.mark.slow
def test_latent_decode_in_fresh_processes(folders, registry, tmp_path, capsys):
    """Another process (standing in for another machine) finds the model in the registry and decodes exactly the
    encoder's image with its thread count, within 2 levels with two threads."""
    _add("sd", folders["sd"], capsys)
    img = synthetic_image(24, 40)
    data, recon, _ = ddcm_encode_file(img, prior="sd", space="latent", steps=6, k=256, atoms=8)
    check_decode_in_fresh_processes(data, recon, artifacts.artifacts_dir(), tmp_path)


def test_fp16_precision_is_recorded_and_replayed(folders, registry, capsys):
    _add("px", folders["px"], capsys)
    img = synthetic_image(8, 12)
    data, recon, _ = ddcm_encode_file(img, prior="px", steps=3, k=16, atoms=2, precision="fp16")
    assert container.read_container(data).header.params["pr"] == "fp16"
    assert np.array_equal(api.decode(data, device="cpu"), recon)
    data, _, _ = ddcm_encode_file(img, prior="px", steps=3, k=16, atoms=2, precision="auto")
    assert "pr" not in container.read_container(data).header.params       # auto: fp32 on the CPU ...
    on_gpu = SimpleNamespace(format="diffusers", space="pixel", device="cuda")
    assert ddcm.auto_precision(on_gpu) == "fp16"                           # ... and fp16 on CUDA


def test_a_prior_fixes_the_mode(folders, registry, capsys):
    _add("px", folders["px"], capsys)
    img = synthetic_image(64, 96)
    data = api.encode(img, method="ddcm", prior="px", bpp=0.2, steps=5, device="cpu")   # --bpp alone: a base
    params = container.read_container(data).header.params
    assert "b" not in params and params["sp"] == "pixel" and params["pf"] == "diffusers"
    assert 0.15 < len(data) * 8 / (64 * 96) <= 0.2
    with pytest.raises(UsageError, match="unconditional"):
        api.encode(img, method="ddcm", prior="px", base="jpeg", device="cpu")
    with pytest.raises(UsageError, match="pixel space"):
        api.encode(img, method="ddcm", prior="px", space="latent", device="cpu")
    with pytest.raises(ModelError, match="nothing-here"):
        api.encode(img, method="ddcm", prior="nothing-here", device="cpu")


def test_a_missing_or_altered_model_is_exit_5(folders, registry, tmp_path, capsys):
    own = shutil.copytree(folders["px"], tmp_path / "px")
    _add("px", own, capsys)
    src, ddc, out = tmp_path / "in.png", tmp_path / "a.ddc", tmp_path / "out.png"
    Image.fromarray(synthetic_image(12, 16)).save(src)
    code, _, err = _cli(["encode", src, "-o", ddc, "--method", "ddcm", "--prior", "px", "--steps", "4", "--k", "16",
                         "--atoms", "2", "--device", "cpu", "--quiet"], capsys)
    assert code == 0, err
    code, _, err = _cli(["decode", ddc, "-o", out, "--device", "cpu", "--quiet"], capsys)
    assert code == 0, err
    code, info, _ = _cli(["info", ddc], capsys)
    assert "px" in info and "user-added" in info

    weights = own / "unet" / "diffusion_pytorch_model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-8] + bytes(8))             # the same name, other weights
    code, _, err = _cli(["decode", ddc, "-o", out, "-f", "--device", "cpu"], capsys)
    assert code == 5 and "changed since it was registered" in err and str(weights) in err, err
    code, listing, _ = _cli(["models"], capsys)
    assert code == 5 and "CHANGED" in listing
    weights.write_bytes(good)

    _cli(["models", "remove", "px"], capsys)
    code, _, err = _cli(["decode", ddc, "-o", out, "-f", "--device", "cpu"], capsys)
    assert code == 5 and "'px'" in err and "models add px" in err, err

    _add("px", folders["px-other"], capsys)                # another model under that name
    code, _, err = _cli(["decode", ddc, "-o", out, "-f", "--device", "cpu"], capsys)
    assert code == 5 and "sha256 prefix" in err, err


def test_without_diffusers_the_message_is_one_line(folders, registry, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    code, _, err = _cli(["models", "add", "px", "--diffusers", folders["px"]], capsys)
    assert code == 2 and da.INSTALL_HINT in err and len(err.strip().splitlines()) == 1


def test_coding_without_a_user_prior_never_imports_diffusers():
    code = ("import sys; import diffcodec.cli, diffcodec.api, diffcodec.methods.ddcm, diffcodec.user_models; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('diffusers', 'transformers') "
            "or m.endswith('diffusers_adapter')))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, check=True)
    assert p.stdout.decode().strip() == "[]"
