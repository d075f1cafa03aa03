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
    header = container.Header(method="ddcm", model=enc.model, model_sha=enc.model_sha, width=w, height=h,
                              pixel_format=container.pixel_format_code(c), params=enc.params, rng=enc.rng)
    return container.write_container(header, enc.chunks), recon, codec.last_stats
