"""Input image handling: formats, modes (alpha, 16-bit, palette, CMYK), EXIF orientation, output writing."""

import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from diffcodec import atomic, images
from diffcodec.errors import CorruptInputError, UsageError

from conftest import synthetic_image


def encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


RGB = Image.fromarray(synthetic_image(21, 34))


@pytest.mark.parametrize("fmt,kw", [("PNG", {}), ("JPEG", {"quality": 95}), ("TIFF", {}), ("BMP", {}),
                                    ("WEBP", {"lossless": True}), ("PPM", {})])
def test_formats_decode_to_rgb(fmt, kw):
    arr = images.image_from_bytes(encoded(RGB, fmt, **kw))
    assert arr.shape == (21, 34, 3) and arr.dtype == np.uint8
    if fmt != "JPEG":
        assert np.array_equal(arr, np.asarray(RGB))


def test_modes():
    gray = RGB.convert("L")
    assert images.image_from_bytes(encoded(gray, "PNG")).shape == (21, 34, 1)
    assert images.image_from_bytes(encoded(RGB.convert("1"), "PNG")).shape == (21, 34, 1)
    assert images.image_from_bytes(encoded(RGB.convert("CMYK"), "TIFF")).shape == (21, 34, 3)
    pal = RGB.convert("P", palette=Image.ADAPTIVE, colors=16)
    assert images.image_from_bytes(encoded(pal, "PNG")).shape == (21, 34, 3)


def test_alpha_is_dropped_with_a_warning():
    rgba = RGB.convert("RGBA")
    with pytest.warns(images.ImageWarning, match="alpha"):
        arr = images.image_from_bytes(encoded(rgba, "PNG"))
    assert np.array_equal(arr, np.asarray(RGB))
    with pytest.warns(images.ImageWarning, match="alpha"):
        assert images.image_from_bytes(encoded(RGB.convert("LA"), "PNG")).shape == (21, 34, 1)
    with pytest.warns(images.ImageWarning, match="alpha"):
        assert images.as_image_array(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)


def test_16_bit_is_reduced_to_8_bits():
    a = (np.arange(21 * 34, dtype=np.uint16).reshape(21, 34) * 80)
    with pytest.warns(images.ImageWarning, match="16-bit"):
        arr = images.image_from_bytes(encoded(Image.fromarray(a), "PNG"))
    assert arr.shape == (21, 34, 1)
    assert np.array_equal(arr[..., 0], (a >> 8).astype(np.uint8))


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    arr = images.image_from_bytes(encoded(RGB, "JPEG", exif=exif, quality=95))
    assert arr.shape == (34, 21, 3)


def test_only_first_frame_of_animations():
    frames = [RGB, RGB.transpose(Image.FLIP_LEFT_RIGHT)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.warns(images.ImageWarning, match="2 frames"):
        assert images.image_from_bytes(buf.getvalue()).shape == (21, 34, 3)


def test_bad_inputs():
    with pytest.raises(UsageError, match="empty"):
        images.image_from_bytes(b"")
    with pytest.raises(UsageError, match="not a supported image"):
        images.image_from_bytes(b"hello world")
    with pytest.raises(UsageError, match="already a .ddc"):
        images.image_from_bytes(b"DDC\x01\x00rest")
    png = encoded(RGB, "PNG")
    with pytest.raises((CorruptInputError, UsageError)):
        images.image_from_bytes(png[: len(png) // 2])
    with pytest.raises(UsageError, match="uint8"):
        images.as_image_array(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(UsageError):
        images.as_image_array(np.zeros((4, 4, 2), np.uint8))


def test_decompression_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(UsageError, match="too large"):
        images.image_from_bytes(encoded(RGB, "PNG"))


def test_output_paths_and_atomic_write(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(b"x")
    with pytest.raises(UsageError, match="overwrite the input"):
        images.check_output_path(str(src), [str(src)], force=True)
    with pytest.raises(UsageError, match="already exists"):
        images.check_output_path(str(src), [], force=False)
    images.check_output_path(str(src), [], force=True)
    with pytest.raises(UsageError, match="does not exist"):
        images.check_output_path(str(tmp_path / "no" / "x.png"), [], force=False)
    with pytest.raises(UsageError, match="unknown output image type"):
        images.output_format("x.jpg")
    out = tmp_path / "o.bin"
    atomic.write_bytes(str(out), b"abc")
    assert out.read_bytes() == b"abc"
    assert [p for p in os.listdir(tmp_path) if p.startswith(".diffcodec-")] == []


def test_png_output_round_trips():
    arr = synthetic_image(9, 11)
    for a in (arr, arr[..., :1]):
        back = np.asarray(Image.open(io.BytesIO(images.image_to_bytes(a))))
        assert np.array_equal(back.reshape(a.shape), a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images.image_to_bytes(arr, "WEBP")


def test_a_cut_image_is_corrupt_input_wherever_it_is_cut():
    """A file with a known image signature that does not decode is damaged (exit 3), not a usage mistake."""
    import io

    buf = io.BytesIO()
    Image.fromarray(synthetic_image(32, 32)).save(buf, "PNG")
    data = buf.getvalue()
    for cut in (12, 40, len(data) // 2):          # inside the header, inside the first chunk, mid-stream
        with pytest.raises(CorruptInputError):
            images.image_from_bytes(data[:cut], "cut.png")
    with pytest.raises(UsageError, match="not a supported image"):
        images.image_from_bytes(b"hello, not an image at all", "x.txt")


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_pil_pixels_in_stripes_is_np_asarray(monkeypatch, mode):
    im = Image.fromarray(synthetic_image(37, 23, seed=5)).convert(mode)
    monkeypatch.setattr(images, "STRIPE_PIXELS", 50)         # stripes of 2 rows, the last one short
    arr = images.pil_pixels(im)
    assert arr.flags.writeable and arr.flags.c_contiguous and np.array_equal(arr, np.asarray(im))
    with pytest.raises(ValueError):
        images.pil_pixels(im.convert("RGBA"))


def test_read_image_is_image_from_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "STRIPE_PIXELS", 64)
    for im, fmt, kw in ((RGB, "PNG", {}), (RGB.convert("L"), "PNG", {}), (RGB.convert("P"), "PNG", {}),
                        (RGB.convert("RGBA"), "PNG", {}), (RGB.convert("CMYK"), "TIFF", {})):
        data = encoded(im, fmt, **kw)
        path = tmp_path / f"x.{fmt.lower()}"
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", images.ImageWarning)
            got = images.read_image(str(path))
            want = images.image_from_bytes(data)
        ref = np.asarray(im.convert("L" if im.mode == "L" else "RGB"))
        assert np.array_equal(got, want) and np.array_equal(got.reshape(ref.shape), ref), im.mode
