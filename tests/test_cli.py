"""The real command line, run as a subprocess: pipelines, outputs and every user mistake."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_image

CLI = [sys.executable, "-m", "diffcodec"]
pytestmark = pytest.mark.slow       # every test here starts CLI subprocesses


def run(args, stdin=None, check=True):
    p = subprocess.run(CLI + args, input=stdin, capture_output=True)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}: {p.stderr.decode()}")
    return p


def assert_one_line_error(p, code):
    err = p.stderr.decode()
    assert p.returncode == code, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(synthetic_image(45, 61)).save(path)
    return path


def test_stdin_stdout_pipeline(png, tmp_path):
    ddc = run(["encode", "-", "-o", "-", "--method", "opq"], stdin=png.read_bytes()).stdout
    assert ddc[:3] == b"DDC"
    out = run(["decode", "-", "-o", "-"], stdin=ddc).stdout
    assert out[:8] == b"\x89PNG\r\n\x1a\n"
    img = np.asarray(Image.open(__import__("io").BytesIO(out)))
    assert img.shape == (45, 61, 3)


def test_files_info_json_and_methods(png, tmp_path):
    ddc = tmp_path / "a.ddc"
    p = run(["encode", str(png), "-o", str(ddc), "--preset", "opq-16-8-8", "--json"])
    summary = json.loads(p.stdout)
    assert summary["file_bytes"] == ddc.stat().st_size
    meta = json.loads(run(["info", str(ddc), "--json"]).stdout)
    assert meta["width"] == 61 and meta["height"] == 45 and meta["model"] == "16-8-8"
    assert meta["header_bytes"] + meta["payload_bytes"] <= meta["file_bytes"]
    assert "payload bytes" in run(["info", str(ddc)]).stdout.decode()
    out = tmp_path / "b.bmp"
    run(["decode", str(ddc), "-o", str(out)])
    assert Image.open(out).size == (61, 45)
    assert "opq-32-8-8" in run(["methods"]).stdout.decode()
    assert "opq" in json.loads(run(["methods", "--json"]).stdout)


def test_default_output_names(png):
    run(["encode", str(png)])
    assert png.with_suffix(".ddc").exists()
    p = run(["decode", str(png.with_suffix(".ddc"))], check=False)
    assert_one_line_error(p, 2)  # in.png exists: never overwritten without --force
    run(["decode", str(png.with_suffix(".ddc")), "--force"])


def test_grayscale_and_rgba_inputs(tmp_path):
    gray = tmp_path / "g.png"
    Image.fromarray(synthetic_image(20, 30, 1)[..., 0]).save(gray)
    run(["encode", str(gray), "-o", str(tmp_path / "g.ddc")])
    assert json.loads(run(["info", str(tmp_path / "g.ddc"), "--json"]).stdout)["channels"] == 1
    rgba = tmp_path / "a.png"
    Image.fromarray(np.dstack([synthetic_image(20, 30), np.full((20, 30), 128, np.uint8)])).save(rgba)
    p = run(["encode", str(rgba), "-o", str(tmp_path / "a.ddc")])
    assert "alpha channel dropped" in p.stderr.decode()


def test_user_mistakes_give_one_line_errors(png, tmp_path):
    assert_one_line_error(run(["encode", str(tmp_path / "nope.png"), "-o", str(tmp_path / "x.ddc")], check=False), 2)
    assert_one_line_error(run(["encode", str(png), "-o", str(png)], check=False), 2)
    assert_one_line_error(run(["encode", str(png), "-o", str(tmp_path / "x.ddc"), "--preset", "zzz"], check=False), 2)
    assert_one_line_error(run(["encode", str(png), "-o", str(tmp_path / "x.ddc"), "--method", "zzz"], check=False), 2)
    assert not (tmp_path / "x.ddc").exists()
    text = tmp_path / "t.png"
    text.write_text("hello")
    assert_one_line_error(run(["encode", str(text), "-o", str(tmp_path / "y.ddc")], check=False), 2)
    ddc = tmp_path / "a.ddc"
    run(["encode", str(png), "-o", str(ddc)])
    assert_one_line_error(run(["encode", str(png), "-o", str(ddc)], check=False), 2)  # exists
    assert_one_line_error(run(["decode", str(ddc), "-o", str(tmp_path / "o.xyz")], check=False), 2)
    assert_one_line_error(run(["decode", str(png), "-o", str(tmp_path / "o.png")], check=False), 3)  # a PNG, not ddc


def test_corrupt_inputs_give_exit_3_and_write_nothing(png, tmp_path):
    ddc = tmp_path / "a.ddc"
    run(["encode", str(png), "-o", str(ddc)])
    good = ddc.read_bytes()
    cases = {"empty": b"", "truncated": good[: len(good) // 2], "magic": b"XYZ" + good[3:],
             "flipped": good[:30] + bytes([good[30] ^ 4]) + good[31:],
             "huge": good[:5] + b"H\xff\xff\xff\xff\x07" + b"\0" * 20}
    for name, blob in cases.items():
        bad = tmp_path / f"{name}.ddc"
        bad.write_bytes(blob)
        out = tmp_path / f"{name}.png"
        assert_one_line_error(run(["decode", str(bad), "-o", str(out)], check=False), 3)
        assert_one_line_error(run(["info", str(bad)], check=False), 3)
        assert not out.exists()
        assert not list(tmp_path.glob(".diffcodec-*"))


def test_newer_major_version_is_unsupported(png, tmp_path):
    ddc = tmp_path / "a.ddc"
    run(["encode", str(png), "-o", str(ddc)])
    blob = bytearray(ddc.read_bytes())
    blob[3] = 3
    ddc.write_bytes(bytes(blob))
    p = run(["decode", str(ddc), "-o", str(tmp_path / "o.png")], check=False)
    assert_one_line_error(p, 4)
    assert "newer" in p.stderr.decode()


def test_models_lists_and_verifies(tmp_path):
    import os
    import shutil

    from diffcodec import artifacts

    rows = json.loads(run(["models", "--json"]).stdout)
    assert {r["name"] for r in rows} >= {"opq/opq-32-8-8"} and all(r["status"] == "ok" for r in rows)
    shutil.copytree(artifacts.artifacts_dir() / "opq", tmp_path / "opq")
    weights = tmp_path / "opq" / "opq-16-8-8.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    env = {**os.environ, "DIFFCODEC_CODEBOOKS": str(tmp_path)}
    p = subprocess.run(CLI + ["models"], capture_output=True, env=env)
    assert p.returncode == 5 and b"opq/opq-16-8-8" in p.stderr and b"Traceback" not in p.stderr
    assert b"CORRUPT" in p.stdout


def test_info_shows_binary_header_values(tmp_path):
    """The format allows bin values in params; the text view must show them (it crashed on them)."""
    from diffcodec import container

    f = tmp_path / "bin.ddc"
    f.write_bytes(container.write_container(
        container.Header("opq", "32-8-8", 0, 4, 4, 0, params={"blob": b"\x00\x01", "big": bytes(100)}), [b""]))
    p = run(["info", str(f)])
    out = p.stdout.decode()
    assert '"blob": "0x0001"' in out and "<100 bytes 0x" in out
    assert json.loads(run(["info", str(f), "--json"]).stdout)["params"]["blob"]


def test_outputs_honour_the_umask_and_keep_an_overwritten_files_mode(tmp_path):
    import os
    import stat

    src = tmp_path / "in.png"
    Image.fromarray(synthetic_image(16, 16)).save(src)
    old = os.umask(0o022)
    try:
        run(["encode", str(src), "-o", str(tmp_path / "a.ddc"), "--quiet"])
        run(["decode", str(tmp_path / "a.ddc"), "-o", str(tmp_path / "a.png"), "--quiet"])
    finally:
        os.umask(old)
    for name in ("a.ddc", "a.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    os.chmod(tmp_path / "a.ddc", 0o664)
    run(["encode", str(src), "-o", str(tmp_path / "a.ddc"), "--quiet", "--force"])
    assert stat.S_IMODE((tmp_path / "a.ddc").stat().st_mode) == 0o664


def test_compare_prints_every_metric_and_json(png, tmp_path):
    """Issue 18: `diffcodec compare A B` over api.compare; a metric that cannot run is one line, exit 4."""
    from diffcodec import perceptual

    img = np.asarray(Image.open(png).convert("RGB"))
    noisy = tmp_path / "noisy.png"
    Image.fromarray(np.clip(img.astype(int) + 9 * (np.indices(img.shape).sum(0) % 3 - 1), 0, 255)
                    .astype(np.uint8)).save(noisy)
    out = run(["compare", str(png), str(noisy), "--metric", "ssimulacra2"]).stdout.decode()
    assert "psnr" in out and "ms_ssim" in out and "ssimulacra2" in out
    js = json.loads(run(["compare", str(png), str(noisy), "--json", "--metric", "ssimulacra2"]).stdout)
    assert js["width"] == 61 and js["height"] == 45 and js["ms_ssim"] is None          # too small for MS-SSIM
    assert js["ssimulacra2"] == pytest.approx(perceptual.ssimulacra2(img, np.asarray(Image.open(noisy))), abs=1e-9)
    same = json.loads(run(["compare", str(png), str(png), "--json", "--metric", "none"]).stdout)
    assert same["psnr"] is None and same["ssim"] == 1.0 and "ssimulacra2" not in same   # inf is null in JSON
    assert_one_line_error(run(["compare", str(png), str(noisy), "--metric", "lpips"], check=False), 4)
    small = tmp_path / "small.png"
    Image.fromarray(img[:20, :20]).save(small)
    assert_one_line_error(run(["compare", str(png), str(small)], check=False), 2)


def test_bench_vs_list_names_the_optional_peers():
    out = run(["bench", "--vs", "list"]).stdout.decode()
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["jpeg", "jpeg444", "webp", "avif", "jxl", "heic"]
    assert all(("available" in ln) or ("pip install" in ln) for ln in out.splitlines())
