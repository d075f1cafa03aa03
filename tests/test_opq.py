import json

import numpy as np
import pytest

from diffcodec import api, artifacts, atomic, metrics
from diffcodec.errors import CorruptInputError, ModelError
from diffcodec.methods import opq

from conftest import rewrite_container, synthetic_image


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 9, 3), (8, 8, 3), (37, 53, 3), (64, 40, 1), (17, 120, 3)])
def test_round_trip_any_size_matches_encoder_reconstruction(shape):
    img = synthetic_image(*shape)
    data, recon = api.encode_with_reconstruction(img, method="opq", preset="opq-32-8-8")
    out = api.decode(data)
    expected_shape = shape if shape[2] == 3 else shape[:2]
    assert out.shape == expected_shape and out.dtype == np.uint8
    assert np.array_equal(out, recon)


@pytest.mark.parametrize("preset", list(opq.PRESETS))
def test_presets_order_rate_and_quality(photo, preset):
    data = api.encode(photo, method="opq", preset=preset)
    out = api.decode(data)
    meta = api.info(data)
    assert meta["model"] == preset.removeprefix("opq-")
    assert metrics.psnr(photo, out) > 20


def test_rate_and_quality_increase_with_preset(photo):
    sizes, psnrs = [], []
    for preset in opq.PRESETS:
        data = api.encode(photo, method="opq", preset=preset)
        sizes.append(len(data))
        psnrs.append(metrics.psnr(photo, api.decode(data)))
    assert sizes == sorted(sizes)
    assert psnrs == sorted(psnrs)


def test_context_coding_beats_fixed_length(photo):
    for preset, (y, cb, cr) in opq.PRESETS.items():
        info = api.info(api.encode(photo, method="opq", preset=preset))
        patches = -(-photo.shape[0] // 8) * -(-photo.shape[1] // 8)
        fixed_bytes = patches * (y + cb + cr) / 8
        assert info["payload_bytes"] < 0.9 * fixed_bytes, preset


def test_grayscale_uses_luma_codebook_only():
    img = synthetic_image(40, 48, 1)
    data = api.encode(img[..., 0], method="opq")
    assert api.info(data)["channels"] == 1
    assert api.decode(data).shape == (40, 48)
    assert len(data) < len(api.encode(np.repeat(img, 3, axis=2), method="opq"))


def test_wavefront_order_covers_grid_once_and_is_causal():
    gh, gw = 5, 7
    seen = np.full((gh, gw), -1)
    for step, (rows, cols) in enumerate(opq.diagonals(gh, gw)):
        assert (seen[rows, cols] == -1).all()
        seen[rows, cols] = step
        # neighbours used by the context are already decoded
        assert (seen[rows[rows > 0] - 1, cols[rows > 0]] < step).all()
        assert (seen[rows[cols > 0], cols[cols > 0] - 1] < step).all()
    assert (seen >= 0).all()


def test_codewords_are_sorted_along_first_principal_component():
    tensors, _, _ = artifacts.load_artifact("opq/opq-32-8-8")
    c = tensors["y.centroids"].astype(np.float64)[0]
    centred = c - c.mean(0)
    pc = np.linalg.svd(centred, full_matrices=False)[2][0]
    proj = centred @ pc
    assert np.all(np.diff(proj) >= -1e-2) or np.all(np.diff(proj) <= 1e-2)


def test_corrupt_codebook_file_is_named(tmp_path, monkeypatch):
    src = artifacts.artifacts_dir() / "opq"
    dst = tmp_path / "opq"
    dst.mkdir()
    for f in src.glob("opq-32-8-8.*"):
        (dst / f.name).write_bytes(f.read_bytes())
    weights = dst / "opq-32-8-8.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-10] ^= 0xFF
    weights.write_bytes(bytes(raw))
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(tmp_path))
    with pytest.raises(ModelError, match="opq-32-8-8.safetensors"):
        api.encode(synthetic_image(16, 16), method="opq", preset="opq-32-8-8")
    weights.unlink()
    with pytest.raises(ModelError, match="missing"):
        api.encode(synthetic_image(16, 16), method="opq", preset="opq-32-8-8")


def test_stream_from_other_codebook_is_refused(monkeypatch):
    data = api.encode(synthetic_image(16, 16), method="opq")
    from diffcodec import container

    c = container.read_container(data)
    c.header.model_sha ^= 1
    forged = container.write_container(c.header, c.payloads)
    with pytest.raises(ModelError, match="different"):
        api.decode(forged)


@pytest.mark.slow
def test_training_command_backend_writes_loadable_codebooks(tmp_path, monkeypatch):
    from PIL import Image

    from diffcodec.training.opq import train_opq

    data_dir = tmp_path / "train"
    data_dir.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(48, 64, seed=i)).save(data_dir / f"{i}.png")
    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(tmp_path / "cb"))
    manifests = train_opq([data_dir], ["opq-16-8-8"], val=data_dir, patches_per_image=300, niter=2,
                          command="diffcodec train opq (test)")
    m = manifests[0]
    assert m["sha256"] == artifacts.sha256_file(tmp_path / "cb" / "opq" / "opq-16-8-8.safetensors")
    assert m["validation_figures"]["val_bits_per_index"] < 8
    manifest = json.loads((tmp_path / "cb" / "opq" / "opq-16-8-8.json").read_text())
    assert manifest["command"].startswith("diffcodec train")
    img = synthetic_image(30, 30, seed=9)
    data, recon = api.encode_with_reconstruction(img, method="opq", preset="opq-16-8-8")
    assert np.array_equal(api.decode(data), recon)


@pytest.mark.parametrize("damage", ["one trailing word", "three trailing words", "last word changed",
                                    "last word dropped", "first word changed"])
def test_damaged_payload_is_corrupt(damage):
    """A range decoder reads any words as some symbols (constriction's exhaustion check misses one trailing
    word): the decoder re-encodes what it read and refuses a payload that is not exactly that coding."""
    from diffcodec import container

    data = api.encode(synthetic_image(50, 70), method="opq", preset="opq-16-8-8")
    payload = container.read_container(data).payloads[0]
    bad = {"one trailing word": payload + bytes(4),
           "three trailing words": payload + bytes.fromhex("12345678") * 3,
           "last word changed": payload[:-4] + bytes(b ^ 0x5A for b in payload[-4:]),
           "last word dropped": payload[:-4],
           "first word changed": bytes([payload[0] ^ 1]) + payload[1:]}[damage]
    with pytest.raises(CorruptInputError):
        api.decode(rewrite_container(data, payload=bad))
    assert api.decode(rewrite_container(data, payload=payload)).shape == (50, 70, 3)


def test_an_artifact_is_cached_per_file_not_per_name_and_timestamp(tmp_path, monkeypatch):
    """Two codebooks folders (or a file replaced within the timestamp granularity) with the same artifact name and
    modification time are two files: the cache must not hand one's tensors out for the other."""
    import os

    shas = []
    for i, folder in enumerate((tmp_path / "a", tmp_path / "b")):
        monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(folder))
        path = artifacts.save_artifact("models/test-cache", {"w": np.full(4, i, dtype=np.float16)}, {"kind": "t"})
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
        shas.append(artifacts.load_artifact("models/test-cache")[2])
        assert artifacts.load_artifact("models/test-cache")[0]["w"][0] == i
    assert shas[0] != shas[1]
    # replaced in place with the same size and timestamp: a new file (atomic rename, another inode)
    path = artifacts.save_artifact("models/test-cache", {"w": np.full(4, 7, dtype=np.float16)}, {"kind": "t"})
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert artifacts.load_artifact("models/test-cache")[0]["w"][0] == 7


def test_a_model_reexported_with_another_manifest_is_built_with_that_manifest(tmp_path, monkeypatch):
    """The same weights exported again with another manifest (a latent prior re-exported for another autoencoder)
    must come back with the new manifest: models built from an artifact are cached per weights and manifest."""
    import torch

    from diffcodec.diffusion import NoiseSchedule, UNet
    from diffcodec.diffusion.models import export_denoiser, load_denoiser

    monkeypatch.setenv("DIFFCODEC_CODEBOOKS", str(tmp_path))
    torch.manual_seed(0)
    model = UNet(in_channels=4, out_channels=4, base_channels=12, channel_mult=(1, 2), attn_levels=())
    for ae_sha in ("a" * 64, "b" * 64):
        export_denoiser("models/test-denoiser", model, NoiseSchedule("cosine"), "v", {"autoencoder_sha256": ae_sha})
        assert load_denoiser("models/test-denoiser")[3]["autoencoder_sha256"] == ae_sha


def test_saving_the_same_weights_twice_gives_the_same_bytes(tmp_path):
    """A re-created model must match its manifest's sha256: safetensors alone orders its metadata at random."""
    from safetensors.numpy import load_file

    tensors = {"b": np.arange(6, dtype=np.float16), "a": np.ones((2, 3), dtype=np.float32)}
    metadata = {f"key{i}": f"value {i}" for i in range(8)}
    saved = []
    for i in range(4):
        path = tmp_path / f"w{i}.safetensors"
        atomic.save_safetensors(tensors, path, metadata=metadata)
        saved.append(path.read_bytes())
    assert len(set(saved)) == 1
    loaded = load_file(str(tmp_path / "w0.safetensors"))
    assert all(np.array_equal(loaded[k], v) for k, v in tensors.items())
