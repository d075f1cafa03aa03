"""Tests of the diffusion engine (CPU, tiny models)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from diffcodec.diffusion import (
    EMA,
    NoiseSchedule,
    UNet,
    ddim_step,
    ddpm_step,
    gaussian_noise_sampler,
    load_denoiser,
    randn_cpu,
    sample_ddim,
    sample_ddpm,
    strided_timesteps,
    x0_predictor,
)
from diffcodec.errors import UsageError
from diffcodec.training.data import ImageFolderCrops, validation_crops
from diffcodec.training.denoiser import TrainConfig, train_denoiser

TINY = dict(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,), attn_head_channels=8)


def tiny_unet(**kw) -> UNet:
    torch.manual_seed(0)
    m = UNet(**{**TINY, **kw})
    # zero-initialised output layers would make every prediction 0; perturb them for the sampler tests
    with torch.no_grad():
        for p in m.parameters():
            if p.abs().sum() == 0 and p.ndim > 1:
                p.normal_(0, 0.02)
    return m.eval()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The models here are tiny: one thread is as fast, and an OpenMP team of 2 on a 2-core machine that is
    # busy with something else can be 50x slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    for i in range(4):
        # smooth synthetic images: gradients + a few discs, so denoising is learnable
        img = np.zeros((48, 64, 3), np.float64)
        for c in range(3):
            img[..., c] = 0.5 + 0.4 * np.sin(xx / (6 + 3 * i + c) + yy / (9 + c) + rng.uniform(0, 6))
        for _ in range(3):
            cy, cx, r = rng.uniform(0, 48), rng.uniform(0, 64), rng.uniform(4, 12)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
        ext = ["png", "jpg", "tif", "png"][i]
        Image.fromarray((img * 255).clip(0, 255).astype(np.uint8)).save(d / f"img{i}.{ext}")
    Image.fromarray(np.full((20, 24), 128, np.uint8)).save(d / "small_gray.png")  # upscaled, grey -> RGB
    return d


# ---------------------------------------------------------------------- schedules
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_schedule_alpha_bar(name):
    s = NoiseSchedule(name)
    ab = s.alpha_bar
    assert ab.dtype == np.float64 and ab.shape == (1000,)
    assert np.all(ab > 0) and np.all(ab < 1) and np.all(np.diff(ab) < 0)
    np.testing.assert_allclose(s.alpha ** 2 + s.sigma ** 2, 1.0, atol=1e-12)
    np.testing.assert_allclose(np.exp(s.log_snr), s.snr, rtol=1e-9)
    assert NoiseSchedule.from_config(json.loads(json.dumps(s.config))) == s
    # respacing with every step gives back the original betas
    np.testing.assert_allclose(s.respaced_betas(range(1000)), s.betas, rtol=1e-9, atol=1e-15)


def test_schedule_known_values():
    lin = NoiseSchedule("linear")
    assert lin.betas[0] == pytest.approx(1e-4) and lin.betas[-1] == pytest.approx(0.02)
    cos = NoiseSchedule("cosine")
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert cos.alpha_bar[499] == pytest.approx(f(0.5) / f(0.0), rel=1e-9)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_parameterization_round_trips(name):
    s = NoiseSchedule(name)
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0, 1, 10, 250, 500, 900, 998, 999])
    x0 = torch.rand(8, 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(8, 3, 4, 4, generator=g, dtype=torch.float64)
    x_t = s.q_sample(x0, t, eps)
    v = s.training_target(x0, eps, t, "v")
    for p, out in (("eps", eps), ("x0", x0), ("v", v)):
        torch.testing.assert_close(s.predict_x0(out, x_t, t, p), x0, atol=1e-5, rtol=0)
        torch.testing.assert_close(s.predict_eps(out, x_t, t, p), eps, atol=1e-5, rtol=0)
        torch.testing.assert_close(s.predict_v(out, x_t, t, p), v, atol=1e-5, rtol=0)
    # eps -> x0 -> eps in float32 at moderate t
    tm = torch.tensor([100, 400, 700])
    e32 = eps[:3].float()
    xt32 = s.q_sample(x0[:3].float(), tm, e32)
    back = s.predict_eps(s.predict_x0(e32, xt32, tm, "eps"), xt32, tm, "x0")
    torch.testing.assert_close(back, e32, atol=1e-5, rtol=0)


def test_q_sample_statistics():
    s = NoiseSchedule("cosine")
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((20000, 1), 0.5)
    for t in (10, 300, 700):
        xt = s.q_sample(x0, torch.full((20000,), t), torch.randn(20000, 1, generator=g))
        assert float(xt.mean()) == pytest.approx(0.5 * s.alpha[t], abs=0.02)
        assert float(xt.std()) == pytest.approx(s.sigma[t], rel=0.03)


def test_min_snr_and_p2_weights():
    s = NoiseSchedule("linear")
    t = torch.tensor([0, 300, 600, 999])
    snr = s.snr[t.numpy()]
    # hand-computed: min(SNR, 5) on the x0 loss, / SNR for eps, / (SNR + 1) for v
    for ti in t.tolist():
        ab = s.alpha_bar[ti]
        r = ab / (1 - ab)
        m = min(r, 5.0)
        assert s.loss_weight(torch.tensor([ti]), "x0", "min_snr")[0] == pytest.approx(m, rel=1e-12)
        assert s.loss_weight(torch.tensor([ti]), "eps", "min_snr")[0] == pytest.approx(m / r, rel=1e-12)
        assert s.loss_weight(torch.tensor([ti]), "v", "min_snr")[0] == pytest.approx(m / (r + 1), rel=1e-12)
        assert s.loss_weight(torch.tensor([ti]), "eps", "p2")[0] == pytest.approx(1 / (1 + r), rel=1e-12)
    assert snr[0] > 5 and snr[-1] < 5
    w = s.loss_weight(t, "eps", "min_snr")
    assert w[0] == pytest.approx(5 / snr[0]) and w[-1] == pytest.approx(1.0)  # clipped only at low noise
    assert torch.all(s.loss_weight(t, "v", "const") == 1)
    # the weights make the three parameterizations' losses equal for the same x0 error
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64)
    x0_hat = x0 + 0.1 * torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64)
    x_t = s.q_sample(x0, t, eps)
    losses = {}
    for p in ("x0", "eps", "v"):
        pred = s.convert(x0_hat, x_t, t, "x0", p)
        target = s.training_target(x0, eps, t, p)
        losses[p] = s.loss_weight(t, p, "min_snr") * (pred - target).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(losses["eps"], losses["x0"], rtol=1e-6, atol=0)
    torch.testing.assert_close(losses["v"], losses["x0"], rtol=1e-6, atol=0)


# ---------------------------------------------------------------------- samplers
def test_strided_timesteps():
    assert strided_timesteps(1000, 1) == [999]
    assert strided_timesteps(1000, 2) == [999, 0]
    ts = strided_timesteps(1000, 20)
    assert len(ts) == 20 and ts[0] == 999 and ts[-1] == 0 and all(a > b for a, b in zip(ts, ts[1:]))
    assert strided_timesteps(1000, 1000) == list(range(999, -1, -1))
    with pytest.raises(ValueError):
        strided_timesteps(1000, 1001)


def _counting(model_fn):
    calls = []

    def fn(x, t, cond):
        calls.append(int(t[0]))
        return model_fn(x, t, cond)

    return fn, calls


def test_ddpm_injected_noise_reproducible_and_called():
    s = NoiseSchedule("cosine")
    model_fn = x0_predictor(tiny_unet(), s, "eps")
    ts = strided_timesteps(s.T, 6)
    x_T = randn_cpu((1, 3, 12, 16), torch.Generator().manual_seed(5))

    def run(seed):
        return sample_ddpm(model_fn, x_T, ts, s, gaussian_noise_sampler(torch.Generator().manual_seed(seed)))

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)

    seen = []
    gen = torch.Generator().manual_seed(0)

    def recording(i, t, x_t, x0_hat, mean, std):
        seen.append((i, t, x_t.clone(), x0_hat.clone(), mean.clone(), std))
        return torch.randn(mean.shape, generator=gen)

    outs = []
    fn, calls = _counting(model_fn)
    out = sample_ddpm(fn, x_T, ts, s, recording, callback=lambda i, t, o: outs.append(o))
    assert torch.equal(out, a)
    assert calls == ts  # one model call per step
    assert [r[0] for r in seen] == list(range(len(ts) - 1))  # every step but the last
    assert [r[1] for r in seen] == ts[:-1]
    assert outs[-1].std == 0.0 and outs[-1].noise is None and torch.equal(out, outs[-1].x0_hat)
    for (i, t, x_t, x0_hat, mean, std), o in zip(seen, outs):
        t_prev = ts[i + 1]
        c_x0, c_xt, var = s.posterior(t, t_prev)
        assert std == pytest.approx(math.sqrt(var)) and std > 0
        torch.testing.assert_close(x0_hat, o.x0_hat)
        torch.testing.assert_close(mean, c_x0 * x0_hat + c_xt * x_t)
        torch.testing.assert_close(o.x_prev, mean + std * o.noise)
    # respaced variance: beta' = 1 - ab_t / ab_prev, var = beta' (1 - ab_prev) / (1 - ab_t)
    t, tp = ts[1], ts[2]
    ab_t, ab_p = s.alpha_bar[t], s.alpha_bar[tp]
    assert s.posterior(t, tp)[2] == pytest.approx((1 - ab_t / ab_p) * (1 - ab_p) / (1 - ab_t))


def test_respaced_ddpm_model_calls():
    s = NoiseSchedule("linear")
    fn, calls = _counting(x0_predictor(tiny_unet(), s, "v"))
    x_T = torch.randn(2, 3, 8, 8)
    for n in (1, 3, 7):
        calls.clear()
        out = sample_ddpm(fn, x_T, strided_timesteps(s.T, n), s, gaussian_noise_sampler(torch.Generator()))
        assert len(calls) == n and out.shape == x_T.shape and torch.isfinite(out).all()


def test_ddim_eta0_deterministic_and_eta1_matches_ddpm():
    s = NoiseSchedule("cosine")
    model_fn = x0_predictor(tiny_unet(), s, "eps")
    ts = strided_timesteps(s.T, 5)
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))

    def boom(*a):
        raise AssertionError("eta=0 must not draw noise")

    a = sample_ddim(model_fn, x_T, ts, s, None)
    b = sample_ddim(model_fn, x_T, ts, s, boom)
    c = sample_ddim(model_fn, x_T, ts, s, gaussian_noise_sampler(torch.Generator().manual_seed(9)), eta=0.0)
    assert torch.equal(a, b) and torch.equal(a, c)
    # eta = 1: same mean and std as the DDPM posterior, step by step
    x = x_T
    for t, tp in zip(ts, ts[1:] + [-1]):
        z = torch.randn_like(x)
        o1 = ddpm_step(model_fn, x, t, tp, s, noise=z)
        o2 = ddim_step(model_fn, x, t, tp, s, eta=1.0, noise=z)
        torch.testing.assert_close(o1.mean, o2.mean, atol=1e-5, rtol=1e-5)
        assert o1.std == pytest.approx(o2.std, rel=1e-9)
        x = o1.x_prev
    with pytest.raises(ValueError):
        ddpm_step(model_fn, x_T, ts[0], ts[1], s)  # stochastic step without noise


@pytest.mark.parametrize("sampler,eta", [("ddpm", None), ("ddim", 0.0), ("ddim", 0.5), ("ddim", 1.0)])
def test_oracle_marginals(sampler, eta):
    # data = a single point x*: the exact x0 predictor is constant, and every reverse step must reproduce the
    # forward marginal q(x_t | x*) = N(alpha_t x*, sigma_t^2) at the (respaced) timesteps, ending exactly at x*
    s = NoiseSchedule("linear")
    x_star = 0.3
    model_fn = lambda x, t, c: torch.full_like(x, x_star)  # noqa: E731
    ts = strided_timesteps(s.T, 8)
    gen = torch.Generator().manual_seed(0)
    x = s.alpha[ts[0]] * x_star + s.sigma[ts[0]] * randn_cpu((40000, 1), gen, dtype=torch.float64)
    ns = gaussian_noise_sampler(gen)
    for i, (t, tp) in enumerate(zip(ts, ts[1:] + [-1])):
        if sampler == "ddpm":
            x = ddpm_step(model_fn, x, t, tp, s, ns, step_index=i).x_prev
        else:
            x = ddim_step(model_fn, x, t, tp, s, ns, eta=eta, step_index=i).x_prev
        if tp >= 0:
            assert float(x.mean()) == pytest.approx(s.alpha[tp] * x_star, abs=0.02)
            assert float(x.std()) == pytest.approx(s.sigma[tp], rel=0.03, abs=1e-3)
    torch.testing.assert_close(x, torch.full_like(x, x_star))


def test_unet_odd_sizes_and_conditioning():
    m = tiny_unet()
    x = torch.randn(2, 3, 37, 53)
    assert m(x, torch.tensor([0.1, 0.9])).shape == x.shape
    assert m(torch.randn(1, 3, 5, 3), 0.5).shape == (1, 3, 5, 3)  # smaller than the stride: replicate pad
    mc = tiny_unet(cond_channels=2, channel_mult=(1, 2, 2), attn_levels=(2,), attn_window=4)
    y = mc(torch.randn(1, 3, 37, 53), torch.tensor([0.3]), cond=torch.randn(1, 2, 37, 53))  # windowed + padding
    assert y.shape == (1, 3, 37, 53)
    with pytest.raises(ValueError):
        mc(torch.randn(1, 3, 8, 8), torch.tensor([0.3]))
    with pytest.raises(TypeError):
        m(torch.randn(1, 3, 8, 8), torch.tensor([3]))
    assert UNet.from_config(json.loads(json.dumps(mc.config))).config == mc.config
    default = UNet()
    assert 2_000_000 <= default.num_parameters() <= 3_200_000


def test_ema():
    m = torch.nn.Linear(2, 2)
    ema = EMA(m, decay=0.9)
    with torch.no_grad():
        m.weight.add_(1.0)
    w0 = ema.model.weight.clone()
    ema.update(m)  # warm-up: decay min(0.9, 1/10) = 0.1
    torch.testing.assert_close(ema.model.weight, 0.1 * w0 + 0.9 * m.weight)
    state = ema.state_dict()
    ema2 = EMA(torch.nn.Linear(2, 2), decay=0.5)
    ema2.load_state_dict(state)
    assert ema2.num_updates == 1 and ema2.decay == 0.9
    torch.testing.assert_close(ema2.model.weight, ema.model.weight)


# ---------------------------------------------------------------------- data
def test_data_crops(image_dir):
    ds = ImageFolderCrops([image_dir], crop=16, flips=True)
    assert len(ds) == 5
    b = ds.batch(8, np.random.default_rng(0))
    assert b.shape == (8, 3, 16, 16) and b.dtype == torch.float32
    assert b.min() >= -1 and b.max() <= 1
    assert torch.equal(b, ds.batch(8, np.random.default_rng(0)))
    v1 = validation_crops(image_dir, 16, 7)
    v2 = validation_crops(image_dir, 16, 7)
    assert v1.shape == (7, 3, 16, 16) and torch.equal(v1, v2)


# ---------------------------------------------------------------------- training
def _cfg(image_dir, out, **kw):
    base = dict(
        data=[image_dir], out_dir=out, crop=32, batch=8, lr=2e-3, warmup_steps=5, steps=30,
        parameterization="eps", loss_weighting="const", model=dict(TINY), ema_decay=0.9, device="cpu",
        seed=0, checkpoint_every=10, checkpoint_minutes=None, val_folder=image_dir, val_crops=4,
        val_every=None, val_timesteps=(100, 500), progress=False,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_training_lowers_loss_and_resumes(image_dir, tmp_path):
    s = NoiseSchedule("cosine")
    g = torch.Generator().manual_seed(0)
    fixed = ImageFolderCrops([image_dir], crop=32).batch(8, np.random.default_rng(123))
    t = torch.linspace(50, 900, 8).long()
    noise = torch.randn(fixed.shape, generator=g)
    x_t = s.q_sample(fixed, t, noise)

    def fixed_loss(model):
        with torch.no_grad():
            return float((model(x_t, s.model_time(t), None) - noise).pow(2).mean())

    torch.manual_seed(0)
    before = fixed_loss(UNet.from_config(dict(TINY)))  # same init as the trainer (seed 0)
    out = tmp_path / "run"
    res = train_denoiser(_cfg(image_dir, out, steps=20))
    assert res["steps"] == 20 and (out / "checkpoint.pt").exists()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == list(range(1, 21))
    assert all(len(r["bucket_mse"]) == 5 for r in log if "loss" in r)
    assert any("val" in r for r in log)

    with pytest.raises(UsageError, match="resume"):  # refuses to overwrite a run
        train_denoiser(_cfg(image_dir, out, steps=30))
    res2 = train_denoiser(_cfg(image_dir, out, steps=30, resume=True))
    assert res2["steps"] == 30 and res2["steps_this_run"] == 10
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == list(range(1, 31))

    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    model = UNet.from_config(dict(TINY))
    model.load_state_dict(ck["model"])
    after = fixed_loss(model)
    print("fixed-batch loss before/after", before, after)
    assert after < 0.7 * before, (before, after)

    # resuming reproduces an uninterrupted run exactly (same data, noise and RNG)
    straight = tmp_path / "straight"
    train_denoiser(_cfg(image_dir, straight, steps=30))
    ck2 = torch.load(straight / "checkpoint.pt", weights_only=True)
    for k in ck["model"]:
        torch.testing.assert_close(ck["model"][k], ck2["model"][k], atol=1e-6, rtol=1e-5)


def test_export_and_load_round_trip(image_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(tmp_path / "codebooks"))

    def degrade(x0):  # a conditional (refiner-style) model: condition on a 2x-downsampled copy
        return torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x0, 2), scale_factor=2.0)

    cfg = _cfg(image_dir, tmp_path / "run", steps=3, parameterization="v", loss_weighting="min_snr",
               model={**TINY, "cond_channels": 3}, make_condition=degrade, export_name="denoisers/tiny",
               command="diffcodec train denoiser --tiny", license_note="synthetic test images")
    res = train_denoiser(cfg)
    assert res["export"] and (tmp_path / "codebooks" / "denoisers" / "tiny.safetensors").exists()
    model, schedule, param, manifest = load_denoiser("denoisers/tiny")
    assert param == "v" and schedule == NoiseSchedule("cosine")
    for key in ("model_config", "schedule", "parameterization", "command", "data", "steps", "wall_time_s",
                "device", "validation", "license", "sha256"):
        assert key in manifest, key
    assert manifest["license"] == "synthetic test images" and manifest["steps"] == 3
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    ref = UNet.from_config(manifest["model_config"])
    ref.load_state_dict(ck["ema"]["model"])
    ref.eval()
    x = torch.randn(2, 3, 24, 40)
    c = degrade(torch.rand(2, 3, 24, 40) * 2 - 1)
    tt = torch.tensor([0.2, 0.7])
    with torch.no_grad():
        torch.testing.assert_close(model(x, tt, c), ref(x, tt, c), atol=2e-3, rtol=2e-2)
    assert load_denoiser("denoisers/tiny")[0] is model      # built once per process (batch workers, clips)
    # a damaged file fails loudly
    from diffcodec.errors import ModelError

    p = tmp_path / "codebooks" / "denoisers" / "tiny.safetensors"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ModelError):
        load_denoiser("denoisers/tiny")


def test_cond_residual_unet_starts_at_the_condition_and_round_trips_config():
    from diffcodec.diffusion import UNet

    torch.manual_seed(0)
    m = UNet(cond_channels=3, base_channels=8, channel_mult=(1, 2), attn_levels=(), cond_residual=True)
    x, cond = torch.randn(2, 3, 13, 18), torch.randn(2, 3, 13, 18)
    out = m(x, torch.full((2,), 0.3), cond)
    assert torch.equal(out, cond.contiguous())   # zero-initialised output layer: identity on the condition
    m2 = UNet.from_config(m.config)
    assert m2.cond_residual and m.config["cond_residual"] is True
    assert "cond_residual" not in UNet(base_channels=8).config
    with pytest.raises(ValueError):
        UNet(cond_channels=1, cond_residual=True)
