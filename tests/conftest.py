import numpy as np
import pytest


def synthetic_image(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth gradients + edges + mild noise: compressible like a photo, made without any data files."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = [128 + 90 * np.sin(xx / (7 + 5 * c) + yy / (11 + 3 * c) + c) for c in range(channels)]
    img = np.stack(base, axis=-1)
    img[(xx // 16 + yy // 16) % 2 == 0] += 25
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def photo():
    """A real photograph bundled with scikit-image (offline), cropped to an odd size."""
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()[100:233, 150:317].copy()


_KEEP = object()


def rewrite_container(data: bytes, params=None, model_sha=None, payload=None, model=None, rng=_KEEP) -> bytes:
    """The .ddc file ``data`` with header fields / the first payload replaced (for corrupt-stream tests)."""
    from diffcodec import container

    c = container.read_container(data)
    h = c.header
    if params is not None:
        h.params = params
    if rng is not _KEEP:
        h.rng = rng
    if model_sha is not None:
        h.model_sha = model_sha
    if model is not None:
        h.model = model
    return container.write_container(h, [c.payloads[0] if payload is None else payload])


@pytest.fixture
def one_thread():
    """Run the test with one torch thread (bit-exact comparisons, and no oversubscription in CI)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def ddcm_encode_file(img, **params):
    """ddcm-encode ``img`` on the CPU into a .ddc file: (file bytes, encoder reconstruction, encoder stats)."""
    from diffcodec import container
    from diffcodec.methods import get_codec

    params.setdefault("device", "cpu")
    params.setdefault("precision", "fp32")     # auto would depend on this machine's bf16 support
    params.setdefault("space", "pixel")        # the tiny test prior; the codec's default space is latent
    codec = get_codec("ddcm")
    enc, recon = codec.compress_with_reconstruction(img, **params)
    h, w, c = img.shape if img.ndim == 3 else (*img.shape, 1)
    return container.frame("ddcm", enc, w, h, c), recon, codec.last_stats


def subprocess_env(codebooks, threads: int = 2) -> dict:
    """The environment of a child Python process that imports this checkout's diffcodec with the models in
    ``codebooks`` and an OpenMP team of ``threads``."""
    import os
    from pathlib import Path

    env = dict(os.environ, DIFFCODEC_CODEBOOKS=str(codebooks), OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return env


_DECODE_SCRIPT = """
import sys, torch
torch.set_num_threads(int(sys.argv[2]))
from diffcodec import api
out = api.decode(open(sys.argv[1], "rb").read(), device="cpu")
sys.stdout.buffer.write(out.tobytes())
"""


def check_decode_in_fresh_processes(data: bytes, recon, codebooks, folder) -> None:
    """Decode the .ddc bytes ``data`` in new Python processes (models from ``codebooks``), standing in for
    "another machine" when no GPU is lent: with the encoder's one thread the pixels are exactly the encoder's
    reconstruction ``recon``; with two threads the networks' float sums run in another order (about 2e-7
    relative), so a few pixels may move by a level, never more than 2 (the choices are in the file: the
    rounding does not compound into other picks)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    src = Path(folder) / "cross-process.ddc"
    src.write_bytes(data)
    env = subprocess_env(codebooks)
    recon = np.asarray(recon)
    for threads in (1, 2):
        p = subprocess.run([sys.executable, "-c", _DECODE_SCRIPT, str(src), str(threads)], capture_output=True,
                           env=env, cwd=root, check=False)
        assert p.returncode == 0, p.stderr.decode()
        out = np.frombuffer(p.stdout, np.uint8)
        assert out.size == recon.size
        if threads == 1:
            assert p.stdout == recon.tobytes()
        else:
            diff = np.abs(out.astype(int) - recon.reshape(-1).astype(int))
            assert diff.max() <= 2 and diff.mean() < 0.1, (diff.max(), diff.mean())


def run_main(argv, capsys) -> tuple[int, str]:
    """The CLI in-process: (exit code, stderr)."""
    from diffcodec.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    return code, capsys.readouterr().err
