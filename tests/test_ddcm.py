"""ddcm: codebook coding of a diffusion prior's noise (pixel space), with a tiny random prior."""

import itertools
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffcodec import api, artifacts, codebooks_rng, container
from diffcodec.errors import CorruptInputError, ModelError, UnsupportedError, UsageError
from diffcodec.methods import ddcm

from conftest import (
    check_decode_in_fresh_processes,
    ddcm_encode_file,
    rewrite_container,
    subprocess_env,
    synthetic_image,
)

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_thread")


def _export_tiny(seed: int = 0) -> None:
    from diffcodec.diffusion import NoiseSchedule, UNet
    from diffcodec.diffusion.models import export_denoiser

    torch.manual_seed(seed)
    model = UNet(base_channels=8, channel_mult=(1, 2), attn_levels=())
    with torch.no_grad():  # the zero-initialised output conv would make eps = 0: give the prior some opinion
        for p in model.conv_out.parameters():
            p.normal_(0, 0.05)
    export_denoiser("models/pixel-ddpm", model, NoiseSchedule("cosine"), "eps", {"command": "test"})


@pytest.fixture
def prior(tmp_path, monkeypatch):
    """A tiny random pixel-ddpm in a temporary DIFFCODEC_CODEBOOKS (with the real opq codebooks beside it)."""
    folder = tmp_path / "codebooks"
    shutil.copytree(artifacts.artifacts_dir() / "opq", folder / "opq")
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(folder))
    _export_tiny()
    return folder


_encode = ddcm_encode_file




# ------------------------------------------------------------------------------------------------ pure parts


def test_generator_stream_is_pinned():
    # numpy's Philox4x64 + ziggurat standard_normal: a numpy release that changed them would break old files.
    assert codebooks_rng.gaussian(1, codebooks_rng.KIND_IID, 2, 3, (4,)).tolist() == [
        -0.27390458191187084, -0.5320825060800235, -0.19382745067708984, 0.24693611100277912]
    assert codebooks_rng.gaussian(2**64 - 1, codebooks_rng.KIND_SHIFT, 2**24 - 1, 2**32 - 1, (2,)).tolist() == [
        -1.2381239636702663, -2.4101656820867716]
    signs = codebooks_rng.random_signs(1, codebooks_rng.KIND_SIGNS, 2, 0, (10,)).tolist()
    assert signs == [1, -1, 1, 1, -1, -1, 1, 1, -1, -1]     # raw word 0x43f114f638da7732, low bits first
    with pytest.raises(ValueError):
        codebooks_rng.philox_key(2**64, 0, 0, 0)


@pytest.mark.parametrize("kind", ["iid", "shift", "mshift"])
def test_codebook_determinism(kind):
    shape = (3, 12, 20)
    a = codebooks_rng.make_codebook(kind, 5, 3, 40, shape)
    b = codebooks_rng.make_codebook(kind, 5, 3, 40, shape)
    other_step = codebooks_rng.make_codebook(kind, 5, 4, 40, shape)
    other_seed = codebooks_rng.make_codebook(kind, 6, 3, 40, shape)
    for k in (0, 7, 39):
        assert np.array_equal(a.vector(k), b.vector(k))
        assert not np.allclose(a.vector(k), other_step.vector(k))
        assert not np.allclose(a.vector(k), other_seed.vector(k))
        assert a.vector(k).shape == shape
    assert not np.allclose(a.vector(0), a.vector(1))
    assert np.array_equal(a.combine([2, 9], [1, -1]), b.combine([2, 9], [1, -1]))


@pytest.mark.parametrize("kind,shape,size", [("shift", (3, 13, 18), 100), ("shift", (3, 32, 32), 64),
                                             ("shift", (1, 5, 3), 7), ("iid", (3, 9, 11), 50),
                                             ("mshift", (3, 13, 18), 1000), ("mshift", (2, 4, 5), 7)])
def test_scores_equal_brute_force_dot_products(kind, shape, size, monkeypatch):
    monkeypatch.setattr(codebooks_rng, "CHUNK_FLOATS", 1000)   # several i.i.d. chunks
    cb = codebooks_rng.make_codebook(kind, 11, 2, size, shape)
    r = np.random.default_rng(0).standard_normal(shape)
    brute = np.array([np.sum(cb.vector(k) * r) for k in range(size)])
    np.testing.assert_allclose(cb.scores(r), brute, rtol=1e-10, atol=1e-10)


def test_shift_codebook_layout():
    cb = codebooks_rng.ShiftCodebook(0, 0, 40, (3, 10, 13))
    assert cb.shifts == 3 * 4 and cb.fields == 4
    assert cb.offset(0) == (0, 0, 0) and cb.offset(5) == (0, 4, 4) and cb.offset(13) == (1, 0, 4)
    assert np.array_equal(cb.vector(13), np.roll(cb.field(1), (0, 4), axis=(1, 2)))
    # distinct shifts of one white field are (nearly) uncorrelated, like independent codewords
    big = codebooks_rng.ShiftCodebook(0, 0, 64, (3, 32, 32))
    z = np.stack([big.vector(k).ravel() for k in range(64)])
    corr = np.corrcoef(z)[~np.eye(64, dtype=bool)]
    assert np.abs(corr).max() < 0.1


def test_mshift_codebook_layout():
    cb = codebooks_rng.ModShiftCodebook(0, 0, 300, (3, 10, 13))
    assert cb.shifts == 130 and cb.fields == 3
    assert cb.offset(0) == (0, 0, 0) and cb.offset(14) == (0, 1, 1) and cb.offset(131) == (1, 0, 1)
    assert np.array_equal(cb.vector(131), cb.signs * np.roll(cb.field(1), (0, 1), axis=(1, 2)))
    assert set(np.unique(cb.signs)) == {-1.0, 1.0}


def test_mshift_scores_are_decorrelated_on_smooth_residuals():
    """The reason mshift replaced shift as the default: on a smooth residual with a mean (what x0 - x0_hat
    looks like at the noisy steps) plain shifts' best score falls far below K i.i.d. codewords', mshift's not."""
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    r = np.stack([0.5 + np.sin(3 * xx + c) * np.cos(2 * yy) for c in range(3)])
    best = {kind: np.mean([codebooks_rng.make_codebook(kind, s, 0, 256, r.shape).scores(r).max()
                           for s in range(8)]) / np.linalg.norm(r) for kind in ("iid", "shift", "mshift")}
    assert best["shift"] < 0.75 * best["iid"]
    assert best["mshift"] > 0.85 * best["iid"]


def test_rank_unrank_bijective():
    for K, M in [(1, 1), (5, 2), (7, 3), (8, 8), (10, 4), (12, 6)]:
        ranks = set()
        for c in itertools.combinations(range(K), M):
            r = ddcm.subset_rank(c)
            assert ddcm.subset_unrank(r, K, M) == list(c)
            ranks.add(r)
        assert ranks == set(range(math.comb(K, M)))
    rng = np.random.default_rng(1)
    for _ in range(20):  # large K, M: exact Python integers
        K, M = 16384, int(rng.integers(2, 300))
        c = sorted(rng.choice(K, M, replace=False).tolist())
        assert ddcm.subset_unrank(ddcm.subset_rank(c), K, M) == c
    for K, M in [(6, 1), (6, 3), (4, 4)]:
        seen = set()
        for v in range(ddcm.alphabet(K, M)):
            idx, signs = ddcm.symbol_to_atoms(v, K, M)
            assert ddcm.atoms_to_symbol(idx, signs, K, M) == v
            seen.add((tuple(idx), tuple(signs)))
        assert len(seen) == ddcm.alphabet(K, M)


def test_turbo_selection_rule():
    s = np.array([0.5, -3.0, 2.0, 0.1, -2.5])
    assert ddcm.select_atoms(s, 1) == ([2], [1])            # paper DDCM: argmax of the signed score
    assert ddcm.select_atoms(s, 3) == ([1, 2, 4], [-1, 1, -1])


def test_payload_is_exact_and_rejects_damage():
    rng = np.random.default_rng(0)
    for K, M, n in [(4096, 1, 19), (64, 4, 7), (2, 1, 1), (1, 1, 5), (16384, 96, 3)]:
        a = ddcm.alphabet(K, M)
        syms = [int(rng.integers(0, min(a, 2**62))) for _ in range(n)]
        data = ddcm.encode_payload(syms, [a] * n)
        bits = ddcm.payload_bits([a] * n)
        assert bits == math.ceil(n * math.log2(a) - 1e-9) if a > 1 else bits == 0
        assert bits <= n * (math.ceil(math.log2(math.comb(K, M))) + (M if M > 1 else 0))
        assert len(data) == ddcm.payload_bytes([a] * n)
        assert 0 <= len(data) - 4 * math.ceil(bits / 32) <= 4          # within one 32-bit word
        assert ddcm.decode_payload(data, [a] * n) == syms
        if data:
            with pytest.raises(CorruptInputError):
                ddcm.decode_payload(data[:-4], [a] * n)
            with pytest.raises(CorruptInputError):
                ddcm.decode_payload(data + bytes(4), [a] * n)


def test_bpp_grid_rule_is_monotone():
    kw = {"n_coded": lambda n: n - 1, "model_id": "pixel-ddpm", "model_sha": 1,
          "template": ddcm.DDCMParams(space="pixel")}
    sizes = []
    for bpp in (0.02, 0.05, 0.1, 0.3, 1.0):
        p = ddcm.choose_params(bpp, 256, 256, 3, **kw)
        size = ddcm.file_bytes(p, p.steps - 1, 256, 256, 3, "pixel-ddpm", 1)
        assert size * 8 <= bpp * 256 * 256
        sizes.append(size)
    assert sizes == sorted(sizes)
    assert ddcm.choose_params(0.3, 256, 256, 3, **kw).steps == 20          # fills atoms first
    p = ddcm.choose_params(0.1, 256, 256, 3, atoms=8, **kw)                # fixed atoms: steps fill up
    assert p.atoms == 8 and p.steps > 20
    with pytest.raises(UsageError, match="below"):
        ddcm.choose_params(0.001, 16, 16, 3, **kw)


# ------------------------------------------------------------------------------------------------ with a prior


@pytest.mark.parametrize("codebook,atoms,shape", [("mshift", 1, (24, 30, 3)), ("mshift", 3, (17, 23, 3)),
                                                  ("iid", 2, (16, 16, 3)), ("shift", 2, (13, 19, 1))])
def test_round_trip_is_the_encoder_reconstruction(prior, codebook, atoms, shape):
    h, w, c = shape
    img = synthetic_image(h, w, c)
    data, recon, stats = _encode(img, k=32, steps=4, atoms=atoms, codebook=codebook, seed=3)
    assert stats.coded_steps == 3 and len(stats.symbols) == 3
    out = api.decode(data, device="cpu")
    assert recon.shape == (h, w, c)
    assert np.array_equal(out, recon[..., 0] if c == 1 else recon)
    meta = api.info(data)
    assert meta["method"] == "ddcm" and meta["model"] == "pixel-ddpm"
    assert meta["params"] == {"n": 4, "k": 32, "m": atoms, "cb": codebook, "sp": "pixel"}
    assert meta["rng"] == {"g": "philox-np", "s": 3}
    assert meta["model_sha256_prefix"] == artifacts.read_manifest("models/pixel-ddpm")["sha256"][:8]
    # file size = exact formula (payload bits, range-coder words, container framing)
    a = ddcm.alphabet(32, atoms)
    bits = ddcm.payload_bits([a] * 3)
    assert bits == math.ceil(3 * math.log2(a))
    assert meta["payload_bytes"] == ddcm.payload_bytes([a] * 3)
    assert 0 <= meta["payload_bytes"] - 4 * math.ceil(bits / 32) <= 4
    p = ddcm.DDCMParams.from_header(meta["params"], meta["rng"])
    assert meta["file_bytes"] == ddcm.file_bytes(p, 3, h, w, c, "pixel-ddpm", int(meta["model_sha256_prefix"], 16))


def test_api_encode_and_presets(prior):
    img = synthetic_image(16, 20)
    data = api.encode(img, method="ddcm", preset="n20-k4096-m1", steps=3, space="pixel", device="cpu")
    assert api.info(data)["params"]["k"] == 4096 and api.info(data)["params"]["m"] == 1
    assert api.decode(data, device="cpu").shape == img.shape
    # a different seed is a different process
    a = api.encode(img, method="ddcm", steps=3, k=16, seed=1, space="pixel", device="cpu")
    assert api.decode(a, device="cpu").shape == img.shape
    with pytest.raises(UsageError):
        api.encode(img, method="ddcm", sharpen=1)
    with pytest.raises(UsageError):
        api.encode(img, method="opq", k=16)       # opq still takes no parameters
    with pytest.raises(UsageError):
        api.decode(data, refine=True)


def test_coding_steers_toward_the_target(prior):
    """With the same prior and seed, more bits must bring the reconstruction closer to the image."""
    img = synthetic_image(16, 16)
    errs = []
    for atoms in (1, 8):
        _, recon, _ = _encode(img, k=64, steps=6, atoms=atoms)
        errs.append(np.abs(recon.astype(float) - img).mean())
    _, sample = ddcm.generate(16, 16, k=64, steps=6, atoms=8, seed=0, device="cpu")
    assert errs[1] < errs[0] < np.abs(sample.astype(float) - img).mean()


def test_index_histogram_is_flat(prior):
    """Indices are ~uniform: a chi-square test does not reject uniformity, so no entropy model is used."""
    from scipy.stats import chisquare

    K = 16
    counts = np.zeros(K, dtype=int)
    for seed, kind in [(0, "mshift"), (1, "iid"), (2, "shift")]:
        img = synthetic_image(16, 16, seed=seed)
        _, _, stats = _encode(img, k=K, steps=21, atoms=1, codebook=kind, seed=seed)
        counts += np.bincount(stats.symbols, minlength=K)
    assert counts.sum() == 60
    assert chisquare(counts).pvalue > 1e-3
    p = counts / counts.sum()
    entropy = -(p[p > 0] * np.log2(p[p > 0])).sum()
    assert entropy > math.log2(K) - 0.6     # 60 samples: a plug-in estimate sits below log2 K even if uniform


def test_bpp_lands_at_or_under_target(prior):
    img = synthetic_image(24, 24)
    for target in (2.0, 4.0):
        data = api.encode(img, method="ddcm", bpp=target, k=64, space="pixel", device="cpu")
        meta = api.info(data)
        assert meta["bpp"] <= target
        assert meta["bpp"] > target / 3
    with pytest.raises(UsageError, match="below"):
        api.encode(img, method="ddcm", bpp=0.01, space="pixel", device="cpu")


def test_corrupt_streams(prior):
    img = synthetic_image(16, 16)
    data, _, _ = _encode(img, k=64, steps=4, atoms=2)
    payload = container.read_container(data).payloads[0]
    with pytest.raises(CorruptInputError):
        api.decode(rewrite_container(data, payload=payload[:-4]))
    with pytest.raises(CorruptInputError):
        api.decode(rewrite_container(data, payload=b""))
    with pytest.raises(CorruptInputError):
        api.decode(rewrite_container(data, payload=b"\xff" * len(payload)))   # value beyond the alphabet
    good = container.read_container(data).header.params
    bad_params = [
        {k: v for k, v in good.items() if k != "k"},
        {**good, "k": "64"},
        {**good, "k": True},
        {**good, "m": 65},
        {**good, "n": 0},
        {**good, "n": 5000},
        {**good, "cb": "fractal"},
        {**good, "sp": "voxel"},
        {**good, "n": 9},          # payload no longer matches the step count
    ]
    for params in bad_params:
        with pytest.raises(CorruptInputError):
            api.decode(rewrite_container(data, params=params))
    for rng in (None, {"g": "philox-np"}, {"g": "philox-np", "s": -1}):
        with pytest.raises(CorruptInputError):
            api.decode(rewrite_container(data, rng=rng))
    with pytest.raises(UnsupportedError):
        api.decode(rewrite_container(data, rng={"g": "mt19937", "s": 0}))
    with pytest.raises(UnsupportedError):
        api.decode(rewrite_container(data, params={**good, "sp": "latent"}))


def test_wrong_model_is_a_model_error(prior):
    data, _, _ = _encode(synthetic_image(16, 16), k=16, steps=3)
    _export_tiny(seed=1)                                     # retrained prior: other weights, other sha
    with pytest.raises(ModelError, match="different"):
        api.decode(data)


def test_missing_prior_and_latent_space(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(tmp_path))
    img = synthetic_image(16, 16)
    with pytest.raises(ModelError, match="pixel-ddpm"):
        api.encode(img, method="ddcm", space="pixel", device="cpu")
    with pytest.raises(UsageError, match="latent"):
        api.encode(img, method="ddcm", space="latent", device="cpu")
    # no rate, space or base: the default rate's automatic mode, which starts from the codec-refiner
    with pytest.raises(ModelError, match="codec-refiner"):
        api.encode(img, method="ddcm", device="cpu")


def test_generate_round_trip(prior):
    data, sample = ddcm.generate(20, 28, k=16, steps=4, atoms=2, seed=7, device="cpu")
    assert sample.shape == (20, 28, 3) and sample.dtype == np.uint8
    assert np.array_equal(api.decode(data, device="cpu"), sample)
    again, sample2 = ddcm.generate(20, 28, k=16, steps=4, atoms=2, seed=7, device="cpu")
    assert again == data and np.array_equal(sample, sample2)
    other, _ = ddcm.generate(20, 28, k=16, steps=4, atoms=2, seed=8, device="cpu")
    assert other != data


# ------------------------------------------------------------------------------------------------ processes


def _run(env, *args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, env=env, cwd=kw.get("cwd", ROOT), check=False)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_decode_in_other_processes_and_thread_counts(prior, tmp_path, precision):
    img = synthetic_image(40, 56)
    data, recon, _ = _encode(img, k=32, steps=4, atoms=2, precision=precision)
    check_decode_in_fresh_processes(data, recon, prior, tmp_path)


@pytest.mark.slow
def test_cli_encode_decode_generate(prior, tmp_path):
    from PIL import Image

    env = subprocess_env(prior)
    cli = ("-m", "diffcodec")
    src = tmp_path / "in.png"
    Image.fromarray(synthetic_image(20, 24)).save(src)
    p = _run(env, *cli, "encode", str(src), "-o", str(tmp_path / "a.ddc"), "--method", "ddcm", "--k", "16",
             "--steps", "3", "--atoms", "2", "--codebook", "iid", "--seed", "5", "--space", "pixel", "--device", "cpu",
             "--json")
    assert p.returncode == 0, p.stderr.decode()
    assert b'"k": 16' in p.stdout and b'"cb": "iid"' in p.stdout
    p = _run(env, *cli, "decode", str(tmp_path / "a.ddc"), "-o", str(tmp_path / "a.png"))
    assert p.returncode == 0, p.stderr.decode()
    assert np.asarray(Image.open(tmp_path / "a.png")).shape == (20, 24, 3)

    p = _run(env, *cli, "encode", str(src), "-o", str(tmp_path / "b.ddc"), "--method", "ddcm", "--bpp", "2.5",
             "--k", "64", "--space", "pixel", "--device", "cpu", "--json")
    assert p.returncode == 0, p.stderr.decode()
    assert api.info((tmp_path / "b.ddc").read_bytes())["bpp"] <= 2.5

    p = _run(env, *cli, "encode", str(src), "-o", str(tmp_path / "c.ddc"), "--method", "ddcm", "--space", "latent")
    assert p.returncode == 2 and b"latent" in p.stderr and b"Traceback" not in p.stderr
    p = _run(env, *cli, "encode", str(src), "-o", str(tmp_path / "c.ddc"), "--method", "ddcm")   # default rate: auto
    assert p.returncode == 5 and b"codec-refiner" in p.stderr and b"Traceback" not in p.stderr
    p = _run(env, *cli, "encode", str(src), "-o", str(tmp_path / "d.ddc"), "--k", "16")   # opq: no ddcm options
    assert p.returncode == 2 and b"Traceback" not in p.stderr

    bad = tmp_path / "bad.ddc"
    data = (tmp_path / "a.ddc").read_bytes()
    bad.write_bytes(rewrite_container(data, payload=container.read_container(data).payloads[0][:-4]))
    p = _run(env, *cli, "decode", str(bad), "-o", str(tmp_path / "bad.png"))
    assert p.returncode == 3 and b"Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1

    p = _run(env, *cli, "generate", "--method", "ddcm", "--k", "16", "--steps", "3", "--size", "24x16",
             "--seed", "4", "-o", str(tmp_path / "g.png"), "--bitstream", str(tmp_path / "g.ddc"), "--device", "cpu")
    assert p.returncode == 0, p.stderr.decode()
    sample = np.asarray(Image.open(tmp_path / "g.png"))
    assert sample.shape == (16, 24, 3)
    p = _run(env, *cli, "decode", str(tmp_path / "g.ddc"), "-o", str(tmp_path / "g2.png"))
    assert p.returncode == 0, p.stderr.decode()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g2.png")), sample)


# ------------------------------------------------------------------------------------------------ precision


def test_bf16_precision_is_recorded_and_replayed(prior):
    img = synthetic_image(20, 28, 3)
    data, recon, _ = _encode(img, k=32, steps=4, atoms=2, seed=1, precision="bf16")
    params = api.info(data)["params"]
    assert params["pr"] == "bf16"
    assert np.array_equal(api.decode(data, device="cpu"), recon)
    # the precision changes the process (the decoder must replay it, not run fp32): compare the final floats
    p32 = ddcm.DDCMParams(4, 32, 2, seed=1)
    p16 = ddcm.DDCMParams(4, 32, 2, seed=1, precision="bf16")
    pri = ddcm.load_prior("pixel", "cpu")
    x32, _ = ddcm.run_process(pri, p32, (3, 20, 28), lambda i, cb, x0: 0)
    x16, _ = ddcm.run_process(pri, p16, (3, 20, 28), lambda i, cb, x0: 0)
    assert x32.dtype == x16.dtype == torch.float32 and not torch.equal(x32, x16)
    fp32_file = rewrite_container(data, params={k: v for k, v in params.items() if k != "pr"})
    assert ddcm.DDCMParams.from_header(container.read_container(fp32_file).header.params,
                                       {"g": "philox-np", "s": 1}).precision == "fp32"   # absent = fp32


def test_precision_errors_and_auto(prior, monkeypatch):
    img = synthetic_image(16, 16, 3)
    with pytest.raises(UsageError, match="precision"):
        api.encode(img, method="ddcm", k=16, steps=3, precision="fp8", space="pixel", device="cpu")
    data, _, _ = _encode(img, k=16, steps=3, atoms=1)
    params = api.info(data)["params"]
    assert "pr" not in params
    with pytest.raises(CorruptInputError, match="precision"):
        api.decode(rewrite_container(data, params={**params, "pr": "fp8"}))
    for native, expected in ((True, "bf16"), (False, None)):
        monkeypatch.setattr(ddcm.priors, "native_bf16", lambda device, native=native: native)
        out = api.info(api.encode(img, method="ddcm", k=16, steps=3, space="pixel", device="cpu"))["params"]
        assert out.get("pr") == expected


@pytest.mark.parametrize("kind", ["shift", "mshift"])
def test_fast_shift_combine_is_the_normative_sum_bit_for_bit(kind):
    # the slice-wise accumulation must give exactly the per-codeword float64 order (the format's definition),
    # across several fields (K > offsets per field), edge offsets, negative first terms and M = 1
    rng = np.random.default_rng(0)
    cb = codebooks_rng.make_codebook(kind, 7, 2, 1500, (2, 9, 13))
    for m in (1, 2, 5, 40):
        idx = sorted(rng.choice(1500, m, replace=False).tolist())
        signs = [-1] + rng.choice([-1, 1], m - 1).tolist()
        fast = cb.combine(idx, signs)
        assert fast.tobytes() == cb.combine(idx, signs, per_codeword=True).tobytes()
        literal = sum((s * cb.vector(k) for k, s in zip(idx[1:], signs[1:])), signs[0] * cb.vector(idx[0]))
        assert np.array_equal(fast, (literal / math.sqrt(m) if m > 1 else literal).astype(np.float32))


def test_bpp_first_steps_depend_on_the_mode():
    kw = {"n_coded": lambda n: n - 1, "model_id": "m", "model_sha": 1}
    first = lambda template, **more: ddcm.choose_params(0.02, 256, 256, 3, template=template, **kw, **more).steps
    assert first(ddcm.DDCMParams(space="pixel")) == ddcm.DEFAULT_STEPS == 20
    assert first(ddcm.DDCMParams(space="latent")) == ddcm.LATENT_DEFAULT_STEPS == 50
    assert first(ddcm.DDCMParams(space="latent"), max_steps=40) == 40              # bounded by the prior's T
    base = ddcm.DDCMParams(space="pixel", base="opq-16-8-8")
    assert ddcm.choose_params(0.1, 256, 256, 3, template=base, **kw).steps == ddcm.BASE_DEFAULT_STEPS == 3
    assert first(base) == 1          # 0.02 bpp buys N = 3 too few atoms: one free refiner step instead


def test_bpp_lands_close_under_the_target():
    # any M (not a grid) below saturation; above it N grows one step at a time: within one step's bits
    kw = {"n_coded": lambda n: n - 1, "model_id": "pixel-ddpm", "model_sha": 1,
          "template": ddcm.DDCMParams(space="pixel")}
    for target in (0.03, 0.1, 0.2, 0.4):
        p = ddcm.choose_params(target, 512, 768, 3, **kw)
        bpp = ddcm.file_bytes(p, p.steps - 1, 512, 768, 3, "pixel-ddpm", 1) * 8 / (512 * 768)
        step_bpp = ddcm.bits_per_step(p.k, p.atoms) / (512 * 768)
        assert target - step_bpp - 0.001 <= bpp <= target, (target, p, bpp)
    assert ddcm.choose_params(0.4, 512, 768, 3, max_steps=30, **kw).steps == 30    # bounded by the prior's T
