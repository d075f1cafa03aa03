"""ddcm's latent (`--space latent`) and conditional (`--base PRESET`) modes, with tiny random models.

A module fixture builds, in a temporary DIFFCODEC_CODEBOOKS: a tiny `models/latent-ae` (factor 8), a tiny
`models/latent-ddpm` whose manifest pins that autoencoder, a tiny conditional `models/opq-refiner`, and copies of
the real shipped opq codebooks used by the base layer.
"""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffcodec import api, artifacts, codebooks_rng, container, metrics
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
SHIPPED = artifacts.artifacts_dir()          # resolved before any fixture points DIFFCODEC_CODEBOOKS elsewhere
BASE_PRESETS = ddcm.AUTO_BASES               # every base the automatic mode may pick


pytestmark = pytest.mark.usefixtures("one_thread")


def _perturb_out(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():  # the zero-initialised output conv would predict nothing: give the model some opinion
        for p in model.conv_out.parameters():
            p.normal_(0, 0.05)


def _export_autoencoder(seed: int = 0) -> str:
    from diffcodec.autoencoder import Autoencoder, export_autoencoder
    from diffcodec.data import to_tensor

    torch.manual_seed(seed)
    ae = Autoencoder(factor=8, latent_channels=4, channels=(8, 8, 8))
    ae.calibrate(to_tensor(np.stack([synthetic_image(32, 32, seed=s) for s in range(4)])))
    export_autoencoder("models/latent-ae", ae, {"command": "test"})
    return artifacts.read_manifest("models/latent-ae")["sha256"]


def _export_latent_prior(ae_sha: str, seed: int = 0, parameterization: str = "v") -> None:
    from diffcodec.diffusion import NoiseSchedule, UNet
    from diffcodec.diffusion.models import export_denoiser

    torch.manual_seed(seed)
    # base 12: GroupNorm keeps 3 channels per group, so even a 1x1 latent level normalises
    model = UNet(in_channels=4, out_channels=4, base_channels=12, channel_mult=(1, 2), attn_levels=())
    _perturb_out(model, seed)
    export_denoiser("models/latent-ddpm", model, NoiseSchedule("cosine"), parameterization,
                    {"command": "test", "autoencoder": "models/latent-ae", "autoencoder_sha256": ae_sha})


def _export_refiner(seed: int = 0) -> None:
    from diffcodec.diffusion import NoiseSchedule, UNet
    from diffcodec.diffusion.models import export_denoiser

    torch.manual_seed(seed)
    model = UNet(cond_channels=3, cond_residual=True, base_channels=8, channel_mult=(1, 2), attn_levels=())
    _perturb_out(model, seed)
    export_denoiser("models/opq-refiner", model, NoiseSchedule("cosine"), "x0", {"command": "test"})


def _copy_opq(folder: Path) -> None:
    (folder / "opq").mkdir(parents=True, exist_ok=True)
    for preset in BASE_PRESETS:
        for ext in (".safetensors", ".json"):
            shutil.copy(SHIPPED / "opq" / (preset + ext), folder / "opq" / (preset + ext))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codebooks")
    old = os.environ.get("DIFFCODEC_CODEBOOKS")
    os.environ["DIFFCODEC_CODEBOOKS"] = str(folder)
    try:
        _copy_opq(folder)
        _export_latent_prior(_export_autoencoder())
        _export_refiner()
        _export_codec_refiner()
        yield folder
    finally:
        if old is None:
            os.environ.pop("DIFFCODEC_CODEBOOKS", None)
        else:
            os.environ["DIFFCODEC_CODEBOOKS"] = old


@pytest.fixture
def own_models(tmp_path, monkeypatch):
    """A private copy of the models, for tests that replace one."""
    folder = tmp_path / "codebooks"
    _copy_opq(folder)
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(folder))
    _export_latent_prior(_export_autoencoder())
    _export_refiner()
    return folder


def _encode(img, **params):
    """The tiny random refiner of these tests never beats its base, so the encoder's automatic choice would ship
    the base alone (its own test: test_base_alone_when_the_refinement_loses); these tests check refined files."""
    params.setdefault("refine", True)
    return ddcm_encode_file(img, **params)




def _base_file(img, **params):
    """api.encode of a conditional ddcm file on the CPU, refined (see _encode)."""
    return api.encode(img, method="ddcm", device="cpu", refine=True, **params)


def _user(img):
    return img[..., 0] if img.shape[2] == 1 else img


def _sha32(name):
    return artifacts.sha_prefix32(artifacts.read_manifest(name)["sha256"])


# ------------------------------------------------------------------------------------------------ pure parts


def test_layer_framing_round_trip_and_damage():
    for base, idx in [(b"", b""), (b"\x01\x02\x03", b"abcd" * 3), (bytes(200), b"")]:
        data = ddcm.join_layers(base, idx)
        assert data[:len(container.encode_varint(len(base)))] == container.encode_varint(len(base))
        assert ddcm.split_layers(data) == (base, idx)
    varint = container.encode_varint
    assert varint(127) == b"\x7f" and varint(128) == b"\x80\x01" and varint(300) == b"\xac\x02"
    for bad in (b"", b"\x80", b"\x05abc", b"\x80\x00", b"\xff\xff\xff\xff\xff\x01"):
        with pytest.raises(CorruptInputError):
            ddcm.split_layers(bad)


def test_header_params_with_base():
    p = ddcm.DDCMParams(4, 32, 2, "mshift", "pixel", 3, "opq-16-8-8", 0xDEADBEEF).check()
    assert p.header() == {"n": 4, "k": 32, "m": 2, "cb": "mshift", "sp": "pixel", "b": "opq-16-8-8", "bs": 0xDEADBEEF}
    assert p.model_id == "opq-refiner"
    assert ddcm.DDCMParams.from_header(p.header(), p.rng_spec()) == p
    # without a base the map is the pixel-mode one, unchanged
    assert ddcm.DDCMParams(4, 32, 2, space="pixel").header() == {"n": 4, "k": 32, "m": 2, "cb": "mshift", "sp": "pixel"}
    assert ddcm.DDCMParams(space="latent").model_id == "latent-ddpm"
    with pytest.raises(UsageError):
        ddcm.DDCMParams(base="opq-8-8-8").check()
    with pytest.raises(UsageError):
        ddcm.DDCMParams(space="latent", base="opq-16-8-8").check()
    for bad in ({**p.header(), "b": "jpeg"}, {**p.header(), "bs": -1}, {**p.header(), "sp": "latent"},
                {k: v for k, v in p.header().items() if k != "bs"},
                {k: v for k, v in p.header().items() if k != "b"}):
        with pytest.raises(CorruptInputError):
            ddcm.DDCMParams.from_header(bad, p.rng_spec())


def test_bpp_rule_counts_the_base_layer():
    kw = {"n_coded": lambda n: n - 1, "model_id": "opq-refiner", "model_sha": 1,
          "template": ddcm.DDCMParams(space="pixel", base="opq-16-8-8", base_sha=7)}
    h = w = 64
    for base_bytes in (0, 100, 300):
        for bpp in (1.0, 2.0, 4.0):
            p = ddcm.choose_params(bpp, h, w, 3, base_bytes=base_bytes, **kw)
            assert p.base == "opq-16-8-8" and p.base_sha == 7
            size = ddcm.file_bytes(p, p.steps - 1, h, w, 3, "opq-refiner", 1, base_bytes)
            assert size * 8 <= bpp * h * w
    # a bigger base leaves fewer index bits
    small = ddcm.choose_params(1.0, h, w, 3, base_bytes=0, **kw)
    big = ddcm.choose_params(1.0, h, w, 3, base_bytes=300, **kw)
    bits = lambda p: ddcm.payload_bits([ddcm.alphabet(p.k, p.atoms)] * (p.steps - 1))
    assert bits(big) < bits(small)
    # the base alone fits but no coded step does: one refiner step, no index bits (smallest header: K = 2)
    alone = ddcm.file_bytes(ddcm.DDCMParams(1, 2, 1, space="pixel", base="opq-16-8-8", base_sha=7), 0, h, w, 3,
                            "opq-refiner", 1, 300)
    p = ddcm.choose_params(alone * 8 / (h * w), h, w, 3, base_bytes=300, **kw)
    assert p.steps == 1 and ddcm.file_bytes(p, 0, h, w, 3, "opq-refiner", 1, 300) == alone
    with pytest.raises(UsageError, match="base layer alone"):
        ddcm.choose_params((alone - 1) * 8 / (h * w), h, w, 3, base_bytes=300, **kw)


# ------------------------------------------------------------------------------------------------ latent space


@pytest.mark.parametrize("shape,codebook,atoms", [((37, 53, 3), "mshift", 2), ((24, 16, 1), "iid", 1),
                                                  ((9, 13, 3), "shift", 3)])
def test_latent_round_trip(models, shape, codebook, atoms):
    h, w, c = shape
    img = synthetic_image(h, w, c)
    data, recon, stats = _encode(img, space="latent", k=32, steps=4, atoms=atoms, codebook=codebook, seed=5)
    assert stats.coded_steps == 3
    assert recon.shape == (h, w, c) and recon.dtype == np.uint8
    assert np.array_equal(api.decode(data, device="cpu"), _user(recon))
    meta = api.info(data)
    assert meta["model"] == "latent-ddpm"
    assert meta["model_sha256_prefix"] == f"{_sha32('models/latent-ddpm'):08x}"
    assert meta["params"] == {"n": 4, "k": 32, "m": atoms, "cb": codebook, "sp": "latent"}
    assert meta["channels"] == c
    assert meta["ddcm"] == {"space": "latent", "base": None, "base_bytes": 0, "index_bytes": meta["payload_bytes"],
                            "summary": "space latent, no base layer"}
    a = ddcm.alphabet(32, atoms)
    assert meta["payload_bytes"] == ddcm.payload_bytes([a] * 3)
    p = ddcm.DDCMParams.from_header(meta["params"], meta["rng"])
    assert meta["file_bytes"] == ddcm.file_bytes(p, 3, h, w, c, "latent-ddpm", _sha32("models/latent-ddpm"))


def test_latent_codebooks_have_the_latent_shape(models, monkeypatch):
    shapes = []
    real = codebooks_rng.make_codebook
    monkeypatch.setattr(codebooks_rng, "make_codebook",
                        lambda kind, seed, step, k, shape: shapes.append(shape) or real(kind, seed, step, k, shape))
    _encode(synthetic_image(37, 53), space="latent", k=16, steps=3)
    assert set(shapes) == {(4, 5, 7)}                          # (c, ceil(37/8), ceil(53/8))


def test_latent_coding_steers_toward_the_target(models):
    """More bits bring the final latent closer to the encoded target latent (the autoencoder is random, so
    compare in the latent space)."""
    from diffcodec.latent import load_latent_space

    space = load_latent_space(device="cpu")
    img = synthetic_image(32, 32)
    target = space.encode_image(img)
    prior = ddcm.load_prior("latent", "cpu")
    errs = []
    for atoms in (1, 8):
        p = ddcm.DDCMParams(6, 64, atoms, space="latent")

        def choose(i, cb, x0_hat, atoms=atoms):
            r = (target - x0_hat)[0].double().numpy()
            return ddcm.atoms_to_symbol(*ddcm.select_atoms(cb.scores(r), atoms), 64, atoms)

        x, _ = ddcm.run_process(prior, p, tuple(target.shape[1:]), choose)
        errs.append(float((x - target).pow(2).mean()))
    assert errs[1] < errs[0]


def test_latent_bpp(models):
    img = synthetic_image(32, 40)
    data = api.encode(img, method="ddcm", space="latent", bpp=1.5, k=64, device="cpu")
    meta = api.info(data)
    assert meta["bpp"] <= 1.5 and meta["bpp"] > 0.5 and meta["params"]["sp"] == "latent"


def test_latent_generate_round_trip(models):
    data, sample = ddcm.generate(21, 30, k=16, steps=3, atoms=2, space="latent", seed=2, device="cpu")
    assert sample.shape == (21, 30, 3)
    assert api.info(data)["model"] == "latent-ddpm"
    assert np.array_equal(api.decode(data, device="cpu"), sample)


def test_mismatched_autoencoder_is_a_model_error(own_models):
    img = synthetic_image(16, 16)
    data, _, _ = _encode(img, space="latent", k=16, steps=3)
    _export_autoencoder(seed=1)                  # another autoencoder: latent-ddpm's manifest no longer matches
    with pytest.raises(ModelError, match="latent-ae"):
        api.decode(data)
    with pytest.raises(ModelError, match="latent-ae"):
        api.encode(img, method="ddcm", space="latent", device="cpu")


def test_retrained_latent_prior_is_a_model_error(own_models):
    data, _, _ = _encode(synthetic_image(16, 16), space="latent", k=16, steps=3)
    _export_latent_prior(artifacts.read_manifest("models/latent-ae")["sha256"], seed=1)
    with pytest.raises(ModelError, match="different latent-ddpm"):
        api.decode(data)


def test_missing_latent_models_are_named(tmp_path, monkeypatch, models):
    data, _, _ = _encode(synthetic_image(16, 16), space="latent", k=16, steps=3)
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(tmp_path))
    img = synthetic_image(16, 16)
    with pytest.raises(UsageError, match="models/latent-ae and models/latent-ddpm"):
        api.encode(img, method="ddcm", space="latent", device="cpu")
    with pytest.raises(UsageError, match="models/latent-ae"):
        ddcm.generate(16, 16, space="latent", device="cpu")
    with pytest.raises(UnsupportedError, match="models/latent-ddpm"):
        api.decode(data)
    _copy_opq(tmp_path)                                              # a base layer needs the refiner
    with pytest.raises(ModelError, match="opq-refiner"):
        _base_file(img, base="opq-16-8-8")


@pytest.mark.parametrize("mode", [{"space": "latent"}, {"base": "opq-16-8-8"},
                                  {"base": "opq-32-8-8", "precision": "bf16"}])
@pytest.mark.slow
def test_decode_in_other_processes_and_thread_counts(models, tmp_path, mode):
    """The default modes (latent, conditional) in fresh processes: exact with the encoder's thread count, within
    a level or two with another (the cross-machine check a CPU-only CI can make)."""
    img = synthetic_image(27, 45)
    data, recon, _ = _encode(img, k=64, steps=4, atoms=3, seed=5, **mode)
    check_decode_in_fresh_processes(data, recon, models, tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", [{"space": "latent"}, {"base": "opq-16-8-8"}])
def test_gpu_encoded_file_decodes_on_the_cpu(models, mode):
    """Cross-device: a file encoded on the GPU decodes on the CPU (and back) to nearly the same image; the
    indices are explicit, so only float rounding of the networks differs, never the codebooks."""
    img = synthetic_image(32, 48)
    data, recon, _ = _encode(img, k=64, steps=4, atoms=3, device="cuda", **mode)
    on_cpu = api.decode(data, device="cpu").astype(np.float64)
    assert np.abs(on_cpu - _user(recon)).mean() < 1.0
    data_cpu, recon_cpu, _ = _encode(img, k=64, steps=4, atoms=3, **mode)
    on_gpu = api.decode(data_cpu, device="cuda").astype(np.float64)
    assert np.abs(on_gpu - _user(recon_cpu)).mean() < 1.0


def test_latent_corrupt_streams(models):
    data, _, _ = _encode(synthetic_image(16, 24), space="latent", k=64, steps=4, atoms=2)
    payload = container.read_container(data).payloads[0]
    good = container.read_container(data).header.params
    for bad in (rewrite_container(data, payload=payload[:-4]), rewrite_container(data, payload=payload + bytes(4)),
                rewrite_container(data, payload=b"\xff" * len(payload)), rewrite_container(data, model="pixel-ddpm"),
                rewrite_container(data, params={**good, "n": 7}),
                rewrite_container(data, params={**good, "b": "opq-16-8-8", "bs": 1})):
        with pytest.raises(CorruptInputError):
            api.decode(bad)
    with pytest.raises(CorruptInputError):
        api.decode(data[:-3])


# ------------------------------------------------------------------------------------------------ conditional


@pytest.mark.parametrize("shape,base,atoms", [((37, 53, 3), "opq-16-8-8", 2), ((20, 27, 1), "opq-32-8-8", 1)])
def test_base_round_trip_and_exact_layout(models, shape, base, atoms):
    h, w, c = shape
    img = synthetic_image(h, w, c)
    data, recon, stats = _encode(img, base=base, k=32, steps=4, atoms=atoms, seed=9)
    assert stats.coded_steps == 3
    assert recon.shape == (h, w, c)
    assert np.array_equal(api.decode(data, device="cpu"), _user(recon))

    # the base layer is exactly opq's own bitstream of the image
    opq_data = api.encode(img, method="opq", preset=base)
    opq_payload = container.read_container(opq_data).payloads[0]
    payload = container.read_container(data).payloads[0]
    a = ddcm.alphabet(32, atoms)
    n_index = ddcm.payload_bytes([a] * 3)
    prefix = container.encode_varint(len(opq_payload))
    assert payload[:len(prefix)] == prefix
    assert payload[len(prefix):len(prefix) + len(opq_payload)] == opq_payload
    assert len(payload) == len(prefix) + len(opq_payload) + n_index
    idx = payload[len(prefix) + len(opq_payload):]
    assert ddcm.decode_payload(idx, [a] * 3) == stats.symbols

    meta = api.info(data)
    opq_sha = container.read_container(opq_data).header.model_sha
    assert meta["model"] == "opq-refiner"
    assert meta["model_sha256_prefix"] == f"{_sha32('models/opq-refiner'):08x}"
    assert meta["params"] == {"n": 4, "k": 32, "m": atoms, "cb": "mshift", "sp": "pixel", "b": base, "bs": opq_sha}
    assert meta["ddcm"] == {"space": "pixel", "base": base, "base_bytes": len(opq_payload), "index_bytes": n_index,
                            "summary": f"space pixel, base layer {base} ({len(opq_payload):,} base + {n_index:,} "
                                       f"index bytes)"}
    p = ddcm.DDCMParams.from_header(meta["params"], meta["rng"])
    assert meta["file_bytes"] == ddcm.file_bytes(p, 3, h, w, c, "opq-refiner", _sha32("models/opq-refiner"),
                                                 len(opq_payload))


def test_base_condition_is_the_opq_decode(models, monkeypatch):
    """The refiner is conditioned on exactly what `diffcodec decode` makes of the opq file."""
    img = synthetic_image(19, 26)
    seen = []
    real = ddcm.RefinerPrior.condition
    monkeypatch.setattr(ddcm.RefinerPrior, "condition",
                        lambda self, rgb, spec=None: seen.append(rgb.copy()) or real(self, rgb, spec))
    data, _, _ = _encode(img, base="opq-16-8-8", k=16, steps=3)
    api.decode(data, device="cpu")
    expected = api.decode(api.encode(img, method="opq", preset="opq-16-8-8"))
    assert len(seen) == 2 and np.array_equal(seen[0], expected) and np.array_equal(seen[1], expected)


def test_base_steers_toward_the_target(models):
    img = synthetic_image(16, 16)
    errs = [np.abs(_encode(img, base="opq-16-8-8", k=64, steps=6, atoms=m)[1].astype(float) - img).mean()
            for m in (1, 8)]
    assert errs[1] < errs[0]


def test_base_options_are_checked(models):
    img = synthetic_image(16, 16)
    with pytest.raises(UsageError, match="opq-16-8-8"):            # lists the valid presets
        _base_file(img, base="opq-8-4-4")
    with pytest.raises(UsageError, match="unknown --base"):
        _base_file(img, base=16)
    with pytest.raises(UsageError, match="pixel"):
        _base_file(img, base="opq-16-8-8", space="latent")


def test_base_bpp_accounting(models):
    img = synthetic_image(32, 32)
    base_bytes = len(container.read_container(api.encode(img, method="opq", preset="opq-16-8-8")).payloads[0])
    for target in (1.5, 3.0):
        data = _base_file(img, base="opq-16-8-8", bpp=target, k=64)
        meta = api.info(data)
        assert meta["bpp"] <= target
        assert meta["ddcm"]["base_bytes"] == base_bytes
        p = ddcm.DDCMParams.from_header(meta["params"], meta["rng"])
        # nothing bigger from the same grid would have fit (index bits fill the budget left by the base)
        assert meta["file_bytes"] == ddcm.file_bytes(p, p.steps - 1, 32, 32, 3, "opq-refiner",
                                                     _sha32("models/opq-refiner"), base_bytes)
    low = (base_bytes + 20) * 8 / (32 * 32)                      # under header + base: refused, naming the base
    with pytest.raises(UsageError, match="base layer alone"):
        _base_file(img, base="opq-16-8-8", bpp=low)


def test_base_mode_defaults_to_few_steps(models):
    # measured: the conditional refiner does best with N = 3-5 steps at equal bits (benchmarks/ddcm_steps.py)
    img = synthetic_image(32, 32)
    p = api.info(_base_file(img, base="opq-16-8-8"))["params"]
    assert (p["n"], p["k"], p["m"]) == ddcm.PRESETS[ddcm.BASE_DEFAULT_PRESET]
    alone = len(_base_file(img, base="opq-16-8-8", steps=1))    # no index bits
    bpp = lambda extra_bytes: (alone + extra_bytes) * 8 / (32 * 32)
    p = api.info(_base_file(img, base="opq-16-8-8", bpp=bpp(14), k=64))["params"]
    assert p["n"] == ddcm.BASE_DEFAULT_STEPS and p["m"] < 32                  # atoms fill first
    p = api.info(_base_file(img, base="opq-16-8-8", bpp=bpp(200), k=64))["params"]
    assert p["n"] > ddcm.BASE_DEFAULT_STEPS and p["m"] == 32                 # then steps grow
    big = api.info(_base_file(img, base="opq-16-8-8", bpp=bpp(2000), k=64))
    assert big["params"]["n"] == ddcm.BASE_MAX_AUTO_STEPS and big["params"]["m"] == 32   # up to a cap (CPU time)
    assert big["bpp"] < bpp(2000)


def test_base_bpp_takes_the_free_step_over_a_few_atoms(models):
    # measured: with K = 4096, N = 3 needs more than 64 atoms to beat one free refiner step (N = 1, no bits)
    img = synthetic_image(32, 32)
    alone = len(_base_file(img, base="opq-16-8-8", steps=1))
    bpp = lambda extra_bytes: (alone + extra_bytes) * 8 / (32 * 32)
    step = lambda m: ddcm.payload_bytes([ddcm.alphabet(4096, m)] * 2)       # N = 3: two coded steps
    few = api.info(_base_file(img, base="opq-16-8-8", bpp=bpp(step(48))))
    assert (few["params"]["n"], few["params"]["m"]) == (1, 1) and few["file_bytes"] <= alone   # no index bits
    more = api.info(_base_file(img, base="opq-16-8-8", bpp=bpp(step(80))))
    assert more["params"]["n"] == ddcm.BASE_DEFAULT_STEPS and more["params"]["m"] > 64
    pinned = api.info(_base_file(img, base="opq-16-8-8", bpp=bpp(step(48)), k=4096))
    assert pinned["params"]["n"] == ddcm.BASE_DEFAULT_STEPS                # a given K (or N, M) keeps the rule out


def test_bpp_alone_picks_the_best_standard_codec_base(models):
    # --bpp with neither --space nor --base: the AUTO_CODEC_BASES layer with the highest PSNR under the target
    from diffcodec import metrics
    from diffcodec.methods.ddcm.codec import DDCMCodec

    img = synthetic_image(48, 64, seed=5)
    bpp = 3.0
    got = api.info(api.encode(img, method="ddcm", bpp=bpp, device="cpu"))
    chosen = got["params"]["b"].split(":")[0]
    assert chosen in ddcm.AUTO_CODEC_BASES and got["model"] == "codec-refiner" and got["bpp"] <= bpp
    psnr = {}
    for base in ddcm.AUTO_CODEC_BASES:
        layer = DDCMCodec()._mode_params(img, None, {"bpp": bpp, "base": base, "device": "cpu"})[2]
        psnr[base] = metrics.psnr(img, layer.image)
    assert psnr[chosen] == max(psnr.values()), psnr


def test_bpp_alone_below_every_standard_codec_picks_an_opq_base_or_latent(models, monkeypatch):
    # where no standard-codec base fits: conditional on the largest AUTO_BASES layer that fits, else latent
    # (AUTO_CODEC_BASES emptied: at 32x32 their smallest files would fit at some of these rates)
    from diffcodec.methods.ddcm import codec as ddcm_codec

    monkeypatch.setattr(ddcm_codec, "AUTO_CODEC_BASES", ())
    img = synthetic_image(32, 32)
    alone = {b: len(_base_file(img, base=b, steps=1, ensemble=1)) for b in ddcm.AUTO_BASES}
    by_size = sorted(ddcm.AUTO_BASES, key=alone.get)
    assert by_size == list(reversed(ddcm.AUTO_BASES))                      # listed largest first
    for small, big in zip(by_size, by_size[1:]):
        assert alone[big] > alone[small] + 8
        between = (alone[small] + alone[big]) // 2 * 8 / 1024
        got = api.info(api.encode(img, method="ddcm", bpp=between, k=64, device="cpu"))
        assert got["params"]["b"] == small and got["params"]["sp"] == "pixel" and got["model"] == "opq-refiner"
    top = api.info(api.encode(img, method="ddcm", bpp=(alone[by_size[-1]] + 40) * 8 / 1024, k=64, device="cpu"))
    assert top["params"]["b"] == by_size[-1]
    floor = alone[by_size[0]]
    low = api.info(api.encode(img, method="ddcm", bpp=(floor - 8) * 8 / 1024, k=64, device="cpu"))
    assert "b" not in low["params"] and low["params"]["sp"] == "latent" and low["bpp"] <= (floor - 8) * 8 / 1024
    explicit = api.info(api.encode(img, method="ddcm", space="latent", bpp=(floor + 40) * 8 / 1024, k=64,
                                   device="cpu"))
    assert "b" not in explicit["params"]                                    # a given --space is kept
    no_bpp = api.info(api.encode(img, method="ddcm", k=64, steps=3, device="cpu"))
    assert no_bpp["params"]["sp"] == "latent" and "b" not in no_bpp["params"]


def test_no_rate_given_is_the_default_rate(models):
    # with no --bpp, preset, base or full steps/K/atoms, ddcm codes at DEFAULT_BPP (a rate per pixel, not a preset's
    # fixed bits per file); an image too small for it gets its smallest file instead of an error
    img = synthetic_image(96, 128, seed=3)
    default = api.encode(img, method="ddcm", k=4096, device="cpu")
    assert default == api.encode(img, method="ddcm", k=4096, bpp=ddcm.codec.DEFAULT_BPP, device="cpu")
    assert api.info(default)["bpp"] <= ddcm.codec.DEFAULT_BPP
    preset = api.info(api.encode(img, method="ddcm", preset="n20-k4096-m1", device="cpu"))
    assert (preset["params"]["n"], preset["params"]["m"]) == (20, 1)           # a preset keeps its own rate
    tiny = synthetic_image(16, 16)
    with pytest.raises(UsageError, match="below what ddcm can reach"):
        api.encode(tiny, method="ddcm", bpp=ddcm.codec.DEFAULT_BPP, device="cpu")
    small = api.info(api.encode(tiny, method="ddcm", device="cpu"))
    assert small["params"]["sp"] == "latent" and small["bpp"] > ddcm.codec.DEFAULT_BPP


def test_base_corrupt_and_mismatched_streams(own_models):
    img = synthetic_image(16, 24)
    data, _, _ = _encode(img, base="opq-16-8-8", k=64, steps=4, atoms=2)
    payload = container.read_container(data).payloads[0]
    good = container.read_container(data).header.params
    base, idx = ddcm.split_layers(payload)
    for bad in (rewrite_container(data, payload=payload[:-4]),                          # truncated indices
                rewrite_container(data, payload=payload[:len(payload) - len(idx) - 1]),    # truncated base
                rewrite_container(data, payload=b""),
                rewrite_container(data, payload=ddcm.join_layers(base + b"\0", idx)),    # not whole 32-bit words
                rewrite_container(data, payload=ddcm.join_layers(base, idx + bytes(4))),
                rewrite_container(data, payload=b"\xff" + payload[1:]),
                rewrite_container(data, model="pixel-ddpm"),
                rewrite_container(data, params={k: v for k, v in good.items() if k != "b"}),
                rewrite_container(data, params={**good, "b": "opq-99-8-8"}),
                rewrite_container(data, params={**good, "sp": "latent"})):
        with pytest.raises(CorruptInputError):
            api.decode(bad)
    with pytest.raises(ModelError, match="opq-16-8-8"):                       # other opq codebook
        api.decode(rewrite_container(data, params={**good, "bs": (good["bs"] + 1) % 2**32}))
    _export_refiner(seed=1)                                                   # retrained refiner
    with pytest.raises(ModelError, match="different opq-refiner"):
        api.decode(data)


# ------------------------------------------------------------------------------------------------ CLI


@pytest.mark.slow
def test_cli_modes(models, tmp_path):
    from PIL import Image

    env = subprocess_env(models, threads=1)
    run = lambda *a: subprocess.run([sys.executable, "-m", "diffcodec", *a], capture_output=True, env=env,
                                    cwd=ROOT, check=False)
    src = tmp_path / "in.png"
    Image.fromarray(synthetic_image(21, 30)).save(src)
    for name, opts in (("l", ["--space", "latent"]), ("b", ["--base", "opq-16-8-8"])):
        p = run("encode", str(src), "-o", str(tmp_path / f"{name}.ddc"), "--method", "ddcm", "--k", "16",
                "--steps", "3", "--device", "cpu", *opts)
        assert p.returncode == 0, p.stderr.decode()
        p = run("decode", str(tmp_path / f"{name}.ddc"), "-o", str(tmp_path / f"{name}.png"))
        assert p.returncode == 0, p.stderr.decode()
        assert np.asarray(Image.open(tmp_path / f"{name}.png")).shape == (21, 30, 3)
    out = run("info", str(tmp_path / "b.ddc")).stdout.decode()
    assert "ddcm mode" in out and "base layer opq-16-8-8" in out
    assert "space latent" in run("info", str(tmp_path / "l.ddc")).stdout.decode()
    p = run("encode", str(src), "-o", str(tmp_path / "far.ddc"), "--method", "ddcm", "--base", "opq-16-8-8",
            "--k", "64", "--bpp", "40", "--device", "cpu")      # base-layer files stop at N = BASE_MAX_AUTO_STEPS
    assert p.returncode == 0 and b"well under --bpp 40" in p.stderr, p.stderr.decode()
    p = run("encode", str(src), "-o", str(tmp_path / "near.ddc"), "--method", "ddcm", "--space", "latent", "--k", "64",
            "--bpp", "4", "--device", "cpu")
    assert p.returncode == 0 and b"well under" not in p.stderr, p.stderr.decode()
    p = run("encode", str(src), "-o", str(tmp_path / "x.ddc"), "--method", "ddcm", "--base", "opq-1-2-3")
    assert p.returncode == 2 and b"opq-16-8-8" in p.stderr and b"Traceback" not in p.stderr
    p = run("generate", "--method", "ddcm", "--space", "latent", "--k", "8", "--steps", "2", "--size", "16",
            "-o", str(tmp_path / "g.png"), "--bitstream", str(tmp_path / "g.ddc"), "--device", "cpu")
    assert p.returncode == 0, p.stderr.decode()
    assert api.info((tmp_path / "g.ddc").read_bytes())["params"]["sp"] == "latent"


def _export_codec_refiner(seed: int = 0) -> None:
    from diffcodec.diffusion import NoiseSchedule, UNet
    from diffcodec.diffusion.models import export_denoiser
    from diffcodec.methods.codec_refiner import CONDITION_CHANNELS

    torch.manual_seed(seed)
    model = UNet(cond_channels=CONDITION_CHANNELS, cond_residual=True, base_channels=8, channel_mult=(1, 2),
                 attn_levels=())
    _perturb_out(model, seed)
    export_denoiser("models/codec-refiner", model, NoiseSchedule("cosine"), "x0", {"command": "test"})


def test_base_alone_when_the_refinement_loses(models, monkeypatch):
    """The encoder compares its refined image with the plain base and ships the base alone (n = 0, no index
    bits) when the base is better: the decoded image is never worse than the base it carries. The tiny random
    refiner here always loses."""
    img = synthetic_image(32, 40)
    refined, _, _ = ddcm_encode_file(img, base="opq-16-8-8", k=64, steps=3, refine=True)
    data, recon, _ = ddcm_encode_file(img, base="opq-16-8-8", k=64, steps=3)
    meta = api.info(data)
    base = api.decode(api.encode(img, method="opq", preset="opq-16-8-8"))
    assert meta["params"]["n"] == 0 and meta["ddcm"]["index_bytes"] == 0 and "base layer alone" in \
        meta["ddcm"]["summary"]
    assert len(data) < len(refined) and np.array_equal(recon, base)
    assert metrics.psnr(img, base) >= metrics.psnr(img, api.decode(refined, device="cpu"))
    monkeypatch.setattr(ddcm.codec, "load_prior", lambda *a, **k: pytest.fail("no network for a plain base"))
    assert np.array_equal(api.decode(data, device="cpu"), base)


@pytest.mark.parametrize("base", ["jpeg:q30", "webp:q20", "avif:q40"])
def test_standard_codec_base_is_stored_verbatim(own_models, base):
    from diffcodec import baselines

    _export_codec_refiner()
    img = synthetic_image(24, 40)
    data, recon, stats = ddcm_encode_file(img, base=base, k=32, steps=3, atoms=2, refine=True)
    assert stats.coded_steps == 2 and np.array_equal(api.decode(data, device="cpu"), recon)
    meta = api.info(data)
    assert meta["model"] == "codec-refiner" and meta["params"]["b"] == base and meta["params"]["bs"] == 0
    kind, q = base.split(":q")
    suffix, stored = api.extract_base(data)
    assert stored == baselines.get_baseline(kind).encode(img, int(q)) and suffix == {"jpeg": ".jpg"}.get(kind,
                                                                                                      "." + kind)
    # the extracted file decodes to exactly the condition the refinement started from
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored)).convert("RGB")),
                          baselines.get_baseline(kind).decode(stored, channels=3))


def test_standard_codec_base_quality_from_bpp_and_corruption(own_models):
    _export_codec_refiner()
    img = synthetic_image(32, 48)
    for target in (2.5, 4.0, 8.0):        # the smallest JPEG of this 48x32 image is ~1.6 bpp
        data = _base_file(img, base="jpeg", bpp=target)
        meta = api.info(data)
        assert meta["bpp"] <= target and meta["params"]["b"].startswith("jpeg:q")
    with pytest.raises(UsageError, match="smallest jpeg"):
        api.encode(img, method="ddcm", base="jpeg", bpp=0.01, device="cpu")
    data = _base_file(img, base="jpeg:q50", steps=1)
    with pytest.raises(CorruptInputError, match="quality"):
        api.decode(rewrite_container(data, params={**api.info(data)["params"], "b": "jpeg"}), device="cpu")
    layered = container.read_container(data).payloads[0]
    stored, index = ddcm.split_layers(layered)
    garbage = container.encode_varint(len(stored)) + bytes(len(stored)) + index
    with pytest.raises(CorruptInputError, match="base layer"):
        api.decode(rewrite_container(data, payload=garbage), device="cpu")
    with pytest.raises(UsageError, match="no base layer"):
        api.extract_base(api.encode(img, method="ddcm", steps=2, k=16, device="cpu"))


def test_texture_option_codes_stochastic_steps_within_the_budget(own_models):
    """--texture: TEXTURE_STEPS coded steps of K = TEXTURE_K, one atom, always kept (never the base alone), its
    index bits counted when the base quality is chosen under --bpp; options it sets are refused beside it."""
    _export_codec_refiner()
    img = synthetic_image(32, 48)
    for target in (2.5, 4.0):
        data = api.encode(img, method="ddcm", base="jpeg", bpp=target, texture=True, device="cpu")
        meta = api.info(data)
        assert meta["bpp"] <= target and meta["ddcm"]["index_bytes"] > 0
        assert (meta["params"]["n"], meta["params"]["k"], meta["params"]["m"]) == (ddcm.codec.TEXTURE_STEPS,
                                                                                     ddcm.codec.TEXTURE_K, 1)
        assert api.decode(data, device="cpu").shape == img.shape
    for bad, match in (({"base": "jpeg", "bpp": 4.0, "steps": 3}, "drop --steps"),
                       ({"base": "jpeg", "bpp": 4.0, "refine": False}, "--no-refine"),
                       ({}, "none fits under --bpp 0.3"), ({"bpp": 4.0, "space": "latent"}, "no --space latent")):
        with pytest.raises(UsageError, match=match):
            api.encode(img, method="ddcm", texture=True, device="cpu", **bad)


def test_initial_noise_rows_are_the_whole_draw(monkeypatch):
    whole = codebooks_rng.initial_noise(5, (3, 37, 29))
    monkeypatch.setattr(codebooks_rng.InitialNoiseRows, "CHUNK", 7)   # discarding in odd chunks: the same stream
    rows = codebooks_rng.InitialNoiseRows(5, (3, 37, 29))
    for a, b in ((0, 4), (2, 10), (9, 9), (9, 37)):
        assert np.array_equal(rows.rows(a, b), whole[:, a:b]), (a, b)
    with pytest.raises(ValueError):
        rows.rows(3, 5)                                 # rows before ones already handed out are gone


def _tiled(monkeypatch, tile):
    from diffcodec.methods.ddcm import codec as ddcm_codec

    monkeypatch.setattr(ddcm_codec, "TILE_ABOVE_PIXELS", 0)
    monkeypatch.setattr(ddcm_codec, "TILE", tile)


def test_big_free_step_files_refine_in_tiles(models, monkeypatch):
    # above TILE_ABOVE_PIXELS a free-step file (N = 1 on a base) runs the refiner tile by tile, header tl; one tile
    # covering the image is the untiled computation exactly; with several, decode = the encoder's reconstruction
    from diffcodec.methods.ddcm.codec import DDCMCodec

    img = synthetic_image(96, 160, seed=2)
    params = {"base": "jpeg", "bpp": 3.0, "refine": True, "device": "cpu"}
    plain = api.encode(img, method="ddcm", **params, ensemble=1)       # one view, as every tile's step
    assert "tl" not in api.info(plain)["params"] and api.info(plain)["params"]["n"] == 1
    _tiled(monkeypatch, 192)
    one = api.encode(img, method="ddcm", **params)
    assert api.info(one)["params"]["tl"] == 192
    assert np.array_equal(api.decode(one, device="cpu"), api.decode(plain, device="cpu"))
    _tiled(monkeypatch, 64)
    encoded, recon = DDCMCodec().compress_with_reconstruction(img, None, **params)
    assert encoded.params["tl"] == 64 and encoded.params["n"] == 1
    data = container.frame("ddcm", encoded, 160, 96, 3)
    assert api.info(data)["bpp"] <= 3.0
    assert np.array_equal(api.decode(data, device="cpu"), recon)
    assert not np.array_equal(recon, api.decode(plain, device="cpu"))   # per-tile statistics: other pixels
    grey = api.encode(img[..., :1], method="ddcm", **params)
    assert api.decode(grey, device="cpu").shape[:2] == (96, 160) and "tl" in api.info(grey)["params"]
    # coded steps and the base alone are never tiled
    steps = api.info(api.encode(img, method="ddcm", base="jpeg", bpp=3.0, steps=3, refine=True, device="cpu"))
    assert "tl" not in steps["params"]
    alone = api.info(api.encode(img, method="ddcm", base="jpeg", bpp=3.0, refine=False, device="cpu"))
    assert "tl" not in alone["params"] and alone["params"]["n"] == 0
    good = api.info(data)["params"]
    for bad in ({**good, "tl": 96}, {**good, "tl": 0.5}, {**good, "n": 3}, {**good, "tl": 1 << 20}):
        with pytest.raises(CorruptInputError):
            api.decode(rewrite_container(data, params=bad), device="cpu")


def _striped(monkeypatch):
    from diffcodec.methods.ddcm import base_layer

    monkeypatch.setattr(base_layer, "STRIPE_ABOVE_PIXELS", 0)
    monkeypatch.setattr(base_layer, "STRIPE_PIXELS", 64 * 40)    # 64 rows of a 40-pixel-wide image


@pytest.mark.parametrize("base", ["jpeg:q30", "avif"])
def test_big_standard_codec_bases_are_coded_in_stripes(models, monkeypatch, tmp_path, base):
    # above STRIPE_ABOVE_PIXELS a standard-codec base is one file per stripe of bh rows at one quality (--bpp
    # chooses it over their total), each file the codec's own encoding of its rows; decode = the encoder's output
    from diffcodec import baselines
    from diffcodec.methods.ddcm import base_layer

    img = synthetic_image(200, 40, seed=4)           # stripes of rows 0-64, 64-128, 128-192 and 192-200
    whole = api.encode(img, method="ddcm", base=base, bpp=4.0, device="cpu", refine=True)
    assert "bh" not in api.info(whole)["params"]
    _striped(monkeypatch)
    assert base_layer.stripe_rows(200, 40) == 64 and base_layer.stripe_rows(64, 40) == 0
    data, recon, _ = ddcm_encode_file(img, base=base, bpp=4.0, refine=True)
    meta = api.info(data)
    params = meta["params"]
    assert params["bh"] == 64 and meta["bpp"] <= 4.0 and "stripes of 64 rows" in meta["ddcm"]["summary"]
    assert np.array_equal(api.decode(data, device="cpu"), recon)
    kind, q = params["b"].split(":q")
    suffix, files = api.extract_base_stripes(data)
    assert len(files) == 4 and suffix == {"jpeg": ".jpg"}.get(kind, "." + kind)
    codec = baselines.get_baseline(kind)
    assert [codec.encode(img[r0:r1], int(q)) for r0, r1 in ((0, 64), (64, 128), (128, 192), (192, 200))] == files
    stacked = np.concatenate([codec.decode(f, channels=3) for f in files])
    alone = api.encode(img, method="ddcm", base=base, bpp=4.0, device="cpu", refine=False)
    assert api.info(alone)["params"]["bh"] == 64 and np.array_equal(api.decode(alone), stacked)
    with pytest.raises(UsageError, match="4 files, one per stripe"):
        api.extract_base(data)
    # the CLI writes the stripes as OUT's name with .0 .. .3, refuses stdout, and leaves nothing on a refusal
    src = tmp_path / "big.ddc"
    src.write_bytes(data)
    run = lambda *a: subprocess.run([sys.executable, "-m", "diffcodec", *a], capture_output=True,  # noqa: E731
                                    env=subprocess_env(models))
    p = run("extract-base", str(src), "-o", str(tmp_path / "b" / "base.x"))
    assert p.returncode == 2 and b"does not exist" in p.stderr
    (tmp_path / "taken.2.jpg").write_bytes(b"x")
    p = run("extract-base", str(src), "-o", str(tmp_path / "taken.jpg"))
    assert p.returncode == 2 and b"already exists" in p.stderr and not (tmp_path / "taken.0.jpg").exists()
    p = run("extract-base", str(src), "-o", "-")
    assert p.returncode == 2 and b"4 files" in p.stderr and not p.stdout
    p = run("extract-base", str(src))
    assert p.returncode == 0, p.stderr.decode()
    assert [(tmp_path / f"big.{i}{suffix}").read_bytes() for i in range(4)] == files
    # damaged stripes, a wrong count and bh where it does not belong are corrupt files
    stored, index = ddcm.split_layers(container.read_container(data).payloads[0])
    parts = ddcm.payload.split_stripes(stored, 4)
    lay = lambda files, extra=b"": container.encode_varint(len(ddcm.payload.join_stripes(files)) + len(extra)) \
        + ddcm.payload.join_stripes(files) + extra + index  # noqa: E731
    for payload in (lay(parts[:3]), lay(parts + [parts[0]]), lay(parts, b"\0"), lay([parts[3]] + parts[1:]),
                    lay(parts[:3] + [parts[3][: len(parts[3]) // 2]]), lay([parts[0] + parts[1]] + parts[2:])):
        with pytest.raises(CorruptInputError, match="base.layer"):
            api.decode(rewrite_container(data, payload=payload), device="cpu")
    for bad in ({**params, "bh": 96}, {**params, "bh": 0.5}, {**params, "bh": 256}, {**params, "bh": 200},
                {**params, "bh": 1 << 16}, {**params, "bh": 0}, {**params, "bh": True}, {**params, "bh": []},
                {**params, "bh": "64"}, {**params, "b": ["jpeg:q30"]}, {**params, "b": {"x": 1}}):
        with pytest.raises(CorruptInputError):
            api.decode(rewrite_container(data, params=bad), device="cpu")
    opq = api.encode(img, method="ddcm", base="opq-16-8-8", steps=1, device="cpu", refine=True)
    assert "bh" not in api.info(opq)["params"]
    with pytest.raises(CorruptInputError, match="stripe"):
        api.decode(rewrite_container(opq, params={**api.info(opq)["params"], "bh": 64}), device="cpu")


def test_tiled_free_step_in_place_gives_the_same_pixels(models, monkeypatch):
    # the decoder's tiled step over its own base array (row of tiles by row of tiles, the halo rows above kept
    # aside) is the step into a new array; a base that is not writable is left alone
    from diffcodec.methods.ddcm import process
    from diffcodec.methods.ddcm.base_layer import parse_base
    from diffcodec.methods.ddcm.codec import DDCMCodec
    from diffcodec.methods.ddcm.params import DDCMParams

    _tiled(monkeypatch, 64)
    h, w = 200, 136                     # rows of tiles 0-64, 64-128, 128-192 and a short one
    img = synthetic_image(h, w, seed=3)
    encoded, recon = DDCMCodec().compress_with_reconstruction(img, None, base="jpeg", bpp=3.0, refine=True,
                                                              device="cpu")
    p = DDCMParams.from_header(encoded.params, encoded.rng, encoded.model)
    assert p.tile == 64
    prior = ddcm.load_prior("pixel", "cpu", base=p.base, refiner=p.refiner)
    base = ddcm.decode_base(ddcm.split_layers(encoded.chunks[0])[0], p.base, p.base_sha, h, w, 3)
    spec = parse_base(p.base)
    fresh = process.run_free_step_tiled(prior, p, base, spec, 64)
    assert np.array_equal(fresh, recon)
    mine = base.copy()
    assert process.run_free_step_tiled(prior, p, mine, spec, 64, in_place=True) is mine
    assert np.array_equal(mine, fresh)
    frozen = base.copy()
    frozen.flags.writeable = False
    out = process.run_free_step_tiled(prior, p, frozen, spec, 64, in_place=True)
    assert out is not frozen and np.array_equal(out, fresh) and np.array_equal(frozen, base)


def test_free_step_ensemble_is_chosen_by_the_encoder_and_replayed(models):
    # the free step on E views of the base (header en): each forced E decodes to its encoder's reconstruction; the
    # automatic choice is the best of them; en 1 is the one-view file
    from diffcodec.methods.ddcm.codec import DDCMCodec

    img = synthetic_image(48, 64, seed=4)               # not square: the transposed view runs on a 64 x 48 image
    params = {"base": "jpeg:q30", "steps": 1, "refine": True, "device": "cpu"}
    forced = {}
    for n in ddcm.ENSEMBLES:
        encoded, recon = DDCMCodec().compress_with_reconstruction(img, None, **params, ensemble=n)
        assert encoded.params.get("en", 1) == n and ("en" in encoded.params) == (n != 1)
        data = container.frame("ddcm", encoded, 64, 48, 3)
        assert np.array_equal(api.decode(data, device="cpu"), recon)
        forced[n] = (data, recon, metrics.mse(recon, img))
    assert len({forced[n][1].tobytes() for n in forced}) == len(forced)    # the views change the output
    encoded, recon = DDCMCodec().compress_with_reconstruction(img, None, **params)
    chosen = encoded.params.get("en", 1)
    assert forced[chosen][2] == min(e for _, _, e in forced.values())
    assert np.array_equal(recon, forced[chosen][1])
    good = api.info(forced[2][0])["params"]
    one = rewrite_container(forced[2][0], params={**good, "en": 1})
    assert np.array_equal(api.decode(one, device="cpu"), forced[1][1])
    for bad in ({**good, "en": 3}, {**good, "en": 0}, {**good, "en": 2.0}, {**good, "en": "2"},
                {**good, "en": 4, "n": 3}, {**good, "en": 2, "tl": 64}):
        with pytest.raises(CorruptInputError):
            api.decode(rewrite_container(forced[2][0], params=bad), device="cpu")
    with pytest.raises(UsageError, match="ensemble must be one of"):
        api.encode(img, method="ddcm", **params, ensemble=3)
    with pytest.raises(UsageError, match="one free refiner step"):
        api.encode(img, method="ddcm", **{**params, "steps": 3}, ensemble=2)
    # --bpp alone may write en (and stays under the rate with it); a clip's frames take one view unless asked
    auto = api.info(api.encode(img, method="ddcm", bpp=3.0, refine=True, device="cpu"))
    assert auto["params"]["n"] == 1 and auto["bpp"] <= 3.0
    key, _, _ = DDCMCodec().compress_keyframe(img, None, **params)
    assert "en" not in key.params


def test_free_step_ensemble_is_not_tiled(models, monkeypatch):
    img = synthetic_image(96, 160, seed=2)
    _tiled(monkeypatch, 64)
    tiled = api.info(api.encode(img, method="ddcm", base="jpeg", bpp=3.0, refine=True, device="cpu"))["params"]
    assert tiled["tl"] == 64 and "en" not in tiled
    with pytest.raises(UsageError, match="tiled"):
        api.encode(img, method="ddcm", base="jpeg", bpp=3.0, refine=True, ensemble=2, device="cpu")
