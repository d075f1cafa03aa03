"""Hardening (issue 17): decode limits checked from the header before anything is allocated (items 1), one-line
errors with their own exit code for every failed read or write (2), no overwrite without --force even when
another writer races us to the name (5)."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffcodec import api, atomic, clips, container, methods
from diffcodec.errors import DiffcodecError, FileAccessError, LimitError, UsageError

from conftest import run_main, subprocess_env, synthetic_image

GOLDEN = Path(__file__).resolve().parent.parent / "formats" / "golden"
CLI = [sys.executable, "-m", "diffcodec"]
UHD = (2160, 3840)                     # 4K: every preset must fit the default limits
BOMB = (32768, 32768)                  # the format's largest square image: must be refused at once


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def resized(data: bytes, height: int, width: int, **params) -> bytes:
    """``data`` with the header declaring ``width`` x ``height`` (and ``params`` changed); payload unchanged."""
    c = container.read_container(data)
    h = c.header
    h.width, h.height = width, height
    h.params = {**h.params, **params}
    return container.write_container(h, c.payloads)


def with_header(data: bytes, **fields) -> bytes:
    """``data`` (any file, clips included) with header elements replaced, by index name: the H chunk re-framed
    and every other byte kept (a clip's index counts from the first frame chunk)."""
    import struct
    import zlib

    import msgpack

    sig, rest = data[:5], data[5:]
    assert rest[:1] == b"H"
    n, shift, i = 0, 0, 1
    while True:
        byte = rest[i]
        n |= (byte & 0x7F) << shift
        shift, i = shift + 7, i + 1
        if not byte & 0x80:
            break
    header = msgpack.unpackb(rest[i:i + n], raw=False, strict_map_key=False)
    tail = rest[i + n + 4:]
    for name, value in fields.items():
        header[container.HEADER_FIELDS.index(name)] = value
    body = msgpack.packb(header, use_bin_type=True)
    return (sig + b"H" + container.encode_varint(len(body)) + body
            + struct.pack(">I", zlib.crc32(b"H" + body)) + tail)


class Decompressed(Exception):
    """Raised instead of decoding: proves a file got past the limits (and that nothing was allocated before)."""


@pytest.fixture
def no_decode(monkeypatch):
    """Every codec's decompress (and ddcm's sampler) replaced by one that raises Decompressed."""
    def refuse(self, *args, **kwargs):
        raise Decompressed(self.name)

    for cls in methods.available().values():
        monkeypatch.setattr(cls, "decompress", refuse)
        monkeypatch.setattr(cls, "generate", refuse)
        for name in ("decompress_keyframe", "decompress_predicted"):
            if hasattr(cls, name):
                monkeypatch.setattr(cls, name, refuse)
    for var in (methods.MAX_PIXELS_ENV, methods.MAX_WORK_ENV):
        monkeypatch.delenv(var, raising=False)


IMAGE_VECTORS = sorted(p.name for p in GOLDEN.glob("*.ddc") if not p.name.startswith("clip-"))
CLIP_VECTORS = sorted(p.name for p in GOLDEN.glob("clip-*.ddc"))


# ------------------------------------------------------------------------------------------ item 1: limits
@pytest.mark.parametrize("name", IMAGE_VECTORS)
def test_a_huge_declared_size_is_refused_fast_without_allocating(name, no_decode):
    data = resized(golden(name), *BOMB)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(LimitError, match=r"32768x32768 = 1,073,741,824 pixels, over the limit of 89,478,485 "
                                         r"\(raise it with --max-pixels or DIFFCODEC_MAX_PIXELS"):
        api.decode(data)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 4 << 20, (elapsed, peak)
    with pytest.raises(Decompressed):        # the limit, not something else, refused it
        api.decode(data, max_pixels=0, max_work=0)


@pytest.mark.parametrize("name", IMAGE_VECTORS)
def test_every_file_at_4k_fits_the_default_limits(name, no_decode):
    with pytest.raises(Decompressed):
        api.decode(resized(golden(name), *UHD))


@pytest.mark.parametrize("preset", ["n20-k4096-m1", "n20-k4096-m16", "n20-k4096-m64", "n20-k4096-m256",
                                    "n3-k4096-m512"])
def test_every_ddcm_preset_and_the_bpp_step_cap_fit_at_4k(preset, no_decode):
    from diffcodec.methods.ddcm.codec import PRESETS
    from diffcodec.methods.ddcm.params import MAX_AUTO_STEPS

    codec = methods.get_codec("ddcm")
    for steps in (PRESETS[preset][0], MAX_AUTO_STEPS):
        enc = container.read_container(resized(golden("ddcm-latent_n20-k4096-m16_rgb_32x48.ddc"), *UHD, n=steps))
        methods.check_decode_cost(codec, enc.encoded, *UHD, {})


def test_the_work_limit_counts_each_methods_diffusion_steps(no_decode):
    ddcm = resized(golden("ddcm-pixel_n5-k4096-m16_rgb_29x37.ddc"), *UHD, n=1000)
    with pytest.raises(LimitError, match=r"runs 1000 diffusion steps over 8,294,400 pixels = 8,294,400,000 "
                                         r"pixel-steps, over the limit of 1,789,569,700 \(raise it with --max-work"):
        api.decode(ddcm)
    with pytest.raises(Decompressed):
        api.decode(ddcm, max_work=8_294_400_000)
    # diffae: the file's steps, or the decode option's
    diffae = resized(golden("diffae_medium_rgb_32x48.ddc"), *UHD)
    with pytest.raises(Decompressed):
        api.decode(diffae, steps=50)
    with pytest.raises(LimitError, match="runs 50 diffusion steps"):
        api.decode(diffae, steps=50, max_work=50 * 8_294_400 - 1)
    with pytest.raises(LimitError, match="runs 2 diffusion steps"):
        api.decode(resized(golden("diffae_medium_rgb_32x48.ddc"), *UHD, n=2), max_work=8_294_400)
    # opq: no network unless --refine, then the refiner's steps
    opq = resized(golden("opq-16-8-8_rgb_48x64.ddc"), *UHD)
    with pytest.raises(Decompressed):
        api.decode(opq, max_work=8_294_400)
    with pytest.raises(LimitError, match="runs 3 diffusion steps"):
        api.decode(opq, refine=True, steps=3, max_work=8_294_400 * 2)
    # ddcm with a base layer decoded as is runs no step
    cond = container.read_container(golden("ddcm-cond_jpeg-q30_n1_rgb_32x48.ddc"))
    assert methods.get_codec("ddcm").decode_steps(cond.encoded) == 1
    cond.header.params = {**cond.header.params, "n": 0}
    assert methods.get_codec("ddcm").decode_steps(cond.encoded) == 0


def test_a_malformed_header_is_still_corrupt_not_over_a_limit(no_decode):
    from diffcodec.errors import CorruptInputError

    with pytest.raises(CorruptInputError):
        api.decode(resized(golden("ddcm-latent_n20-k4096-m16_rgb_32x48.ddc"), *BOMB, n="many"), max_pixels=0)


def test_limits_from_the_environment(no_decode, monkeypatch):
    data = golden("opq-16-8-8_rgb_48x64.ddc")          # 64x48 = 3072 pixels
    monkeypatch.setenv(methods.MAX_PIXELS_ENV, "3071")
    with pytest.raises(LimitError, match="over the limit of 3,071"):
        api.decode(data)
    with pytest.raises(Decompressed):                   # an argument beats the environment
        api.decode(data, max_pixels=3072)
    monkeypatch.setenv(methods.MAX_PIXELS_ENV, "0")     # 0: no limit
    with pytest.raises(Decompressed):
        api.decode(resized(data, *BOMB))
    monkeypatch.setenv(methods.MAX_WORK_ENV, "3071")
    with pytest.raises(LimitError, match="pixel-steps, over the limit of 3,071"):
        api.decode(data)
    for bad in ("lots", "-1", "1e9"):
        monkeypatch.setenv(methods.MAX_WORK_ENV, bad)
        with pytest.raises(UsageError, match="DIFFCODEC_MAX_WORK must be a whole number"):
            api.decode(data)
    with pytest.raises(UsageError, match="--max-pixels must be a whole number"):
        methods.decode_limits(max_pixels=-5)


@pytest.mark.parametrize("name", CLIP_VECTORS)
def test_the_limits_apply_to_every_frame_of_a_clip(name, no_decode):
    data = with_header(golden(name), width=10000, height=10000)
    stream = container.StreamReader(io.BytesIO(data))
    with pytest.raises(LimitError, match="10000x10000 = 100,000,000 pixels"):
        next(clips.decode_frames(stream))
    stream = container.StreamReader(io.BytesIO(golden(name)))
    with pytest.raises(LimitError, match="over the limit of 100"):
        next(clips.decode_frames(stream, max_pixels=100))


def test_generate_applies_the_limits(no_decode):
    with pytest.raises(LimitError, match="generating this ddcm sample is 32768x32768"):
        api.generate("ddcm", *BOMB)
    with pytest.raises(LimitError, match="runs 1000 diffusion steps"):
        api.generate("ddcm", *UHD, steps=1000)
    with pytest.raises(Decompressed):
        api.generate("ddcm", *UHD)                      # the default 20 steps at 4K


def test_encode_warns_when_its_file_is_over_the_default_decode_limits(monkeypatch):
    monkeypatch.setattr(api, "DecodeLimits", lambda: methods.DecodeLimits(max_pixels=100))
    with pytest.warns(UserWarning, match="over the default decode limits.*over the limit of 100"):
        api.encode(synthetic_image(16, 16), method="opq", preset="opq-16-8-8")




def assert_one_line(code: int, err: str, expected: int) -> None:
    assert code == expected, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_cli_decode_refuses_a_bomb_with_exit_6_and_the_flags_raise_the_limit(tmp_path, capsys):
    bomb = tmp_path / "bomb.ddc"
    bomb.write_bytes(resized(golden("ddcm-latent_n20-k4096-m16_rgb_32x48.ddc"), *BOMB))
    out = tmp_path / "out.png"
    code, err = run_main(["decode", str(bomb), "-o", str(out)], capsys)
    assert_one_line(code, err, LimitError.exit_code)
    assert "--max-pixels" in err and not out.exists()
    small = tmp_path / "small.ddc"
    small.write_bytes(golden("opq-16-8-8_rgb_48x64.ddc"))
    code, err = run_main(["decode", str(small), "-o", str(out), "--max-pixels", "3000"], capsys)
    assert_one_line(code, err, 6)
    code, err = run_main(["decode", str(small), "-o", str(out), "--max-pixels", "3072", "--quiet"], capsys)
    assert code == 0 and Image.open(out).size == (64, 48)
    code, err = run_main(["decode", str(small), "-o", str(out), "-f", "--max-work", "3000"], capsys)
    assert_one_line(code, err, 6)
    assert "--max-work" in err
    clip = tmp_path / "clip.ddc"
    clip.write_bytes(golden(CLIP_VECTORS[0]))
    code, err = run_main(["decode", str(clip), "-o", str(tmp_path / "c.y4m"), "--max-pixels", "10"], capsys)
    assert_one_line(code, err, 6)
    assert not (tmp_path / "c.y4m").exists() and not list(tmp_path.glob(".diffcodec-*"))
    code, err = run_main(["generate", "-o", str(tmp_path / "g.png"), "--size", "1000", "--max-pixels", "999999"],
                         capsys)
    assert_one_line(code, err, 6)


# ------------------------------------------------------------------------------------------ item 2: I/O errors
@pytest.fixture
def files(tmp_path, capsys):
    png = tmp_path / "in.png"
    Image.fromarray(synthetic_image(24, 40)).save(png)
    ddc = tmp_path / "in.ddc"
    ddc.write_bytes(api.encode(synthetic_image(24, 40), method="opq", preset="opq-16-8-8"))
    clip = tmp_path / "clip.ddc"
    clip.write_bytes(golden(CLIP_VECTORS[0]))
    base = tmp_path / "base.ddc"
    base.write_bytes(golden("ddcm-cond_jpeg-q30_n1_rgb_32x48.ddc"))
    y4m = tmp_path / "clip.y4m"
    assert run_main(["decode", str(clip), "-o", str(y4m), "--quiet"], capsys)[0] == 0
    return {"png": png, "ddc": ddc, "clip": clip, "base": base, "y4m": y4m}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".diffcodec-"))


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
@pytest.mark.parametrize("command", [
    ["encode", "{png}", "-o", "/proc/x.ddc"],
    ["decode", "{ddc}", "-o", "/proc/x.png"],
    ["extract-base", "{base}", "-o", "/proc/x.jpg"],
    ["decode", "{clip}", "-o", "/proc/x.y4m"],
    ["decode", "{clip}", "-o", "/proc/x_%04d.png"],
    ["encode", "{y4m}", "-o", "/proc/x.ddc"],
    ["bench", "{png}", "-p", "opq-16-8-8", "--vs", "jpeg", "-o", "/proc/bench-out"],
])
def test_an_output_the_os_refuses_is_one_line_exit_7_naming_it(command, files, capsys):
    argv = [a.format(**files) for a in command] + ["--quiet"]
    code, err = run_main(argv, capsys)
    assert_one_line(code, err, FileAccessError.exit_code)
    assert "/proc/x" in err or "/proc/bench-out" in err


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc")
@pytest.mark.parametrize("command", [["encode", "/proc/self/mem", "-o", "{out}.ddc"],
                                     ["decode", "/proc/self/mem", "-o", "{out}.png"],
                                     ["info", "/proc/self/mem"]])
def test_an_input_the_os_fails_to_read_is_one_line_exit_7(command, tmp_path, capsys):
    code, err = run_main([a.format(out=tmp_path / "o") for a in command], capsys)
    assert_one_line(code, err, 7)
    assert "/proc/self/mem: cannot read" in err


def test_a_missing_folder_or_a_folder_as_output_is_a_usage_error(files, tmp_path, capsys):
    for out in (tmp_path / "nowhere" / "x.ddc", tmp_path):
        code, err = run_main(["encode", str(files["png"]), "-o", str(out)], capsys)
        assert_one_line(code, err, 2)
    code, err = run_main(["decode", str(files["ddc"]), "-o", str(tmp_path / "nowhere" / "x.png")], capsys)
    assert_one_line(code, err, 2)


_FSIZE = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from diffcodec.cli import main
main(sys.argv[2:])
"""


def _fsize_run(limit: int, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # -B: a module compiled under the size limit would leave a truncated .pyc behind for every later import
    return subprocess.run([sys.executable, "-B", "-c", _FSIZE, str(limit), *argv], capture_output=True, cwd=cwd,
                          env=subprocess_env(Path(__file__).resolve().parent.parent / "codebooks", threads=1))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE / SIGXFSZ semantics")
def test_a_disk_that_fills_up_mid_write_is_exit_7_and_leaves_nothing(files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for argv, target in ((["encode", str(files["png"]), "-o", "x.ddc"], "x.ddc"),
                         (["decode", str(files["ddc"]), "-o", "x.png"], "x.png"),
                         (["decode", str(files["clip"]), "-o", "x.y4m"], "x.y4m"),
                         (["encode", str(files["y4m"]), "-o", "c.ddc"], "c.ddc")):
        p = _fsize_run(100, argv, out)
        err = p.stderr.decode()
        assert p.returncode == 7 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert f"{target}: cannot write (File too large)" in err
        assert list(out.iterdir()) == [], list(out.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["encode", "{png}", "-o", "-"], ["decode", "{ddc}", "-o", "-"],
                                     ["decode", "{clip}", "-o", "-"], ["encode", "{y4m}", "-o", "-"],
                                     ["info", "{ddc}", "--json"], ["info", "{ddc}"],
                                     ["encode", "{png}", "-o", "{png}.ddc", "--json"]])
def test_standard_output_on_a_full_device_is_one_line_exit_7(command, files):
    with open("/dev/full", "wb") as full:
        p = subprocess.run(CLI + [a.format(**{k: str(v) for k, v in files.items()}) for a in command], stdout=full,
                           stderr=subprocess.PIPE)
    err = p.stderr.decode()
    assert p.returncode == 7 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "standard output: cannot write (No space left on device)" in err


def test_atomic_write_failures_name_the_target_and_leave_nothing(tmp_path, monkeypatch):
    target = tmp_path / "t.bin"

    def fail(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(FileAccessError, match=r"t.bin: cannot write \(No space left on device\)"):
        atomic.write_with(target, fail)
    assert list(tmp_path.iterdir()) == []

    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")))
    with pytest.raises(FileAccessError, match=r"t.bin: cannot write \(Input/output error\)"):
        atomic.write_bytes(target, b"data")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileAccessError, match="cannot write"):
        atomic.write_bytes(tmp_path / "missing" / "t.bin", b"data")


# ------------------------------------------------------------------------------------------ item 5: no-overwrite races
def _race(path: Path, n: int, overwrite: bool) -> list[object]:
    """n writers that all start (temporary files written) before any finishes, then commit at once."""
    files = [atomic.AtomicFile(path, overwrite) for _ in range(n)]
    for i, f in enumerate(files):
        f.file.write(f"writer {i}".encode())
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def commit(i):
        barrier.wait()
        try:
            files[i].commit()
            results[i] = "ok"
        except DiffcodecError as e:
            results[i] = e

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("links", [True, False], ids=["hard-link", "no-hard-links"])
def test_concurrent_writers_without_force_exactly_one_wins(tmp_path, monkeypatch, links):
    if not links:       # a file system without hard links: the exclusive-create fallback
        def no_link(src, dst):
            raise OSError(errno.EPERM, "Operation not permitted")
        monkeypatch.setattr(os, "link", no_link)
    for round_ in range(5):
        path = tmp_path / f"same-{round_}.ddc"
        results = _race(path, 8, overwrite=False)
        winners = [i for i, r in enumerate(results) if r == "ok"]
        assert len(winners) == 1, results
        assert all(isinstance(r, UsageError) and "already exists (use --force" in str(r)
                   for r in results if r != "ok")
        assert path.read_bytes() == f"writer {winners[0]}".encode()
    assert leftovers(tmp_path) == []


def test_concurrent_writers_with_force_all_succeed_and_one_file_remains(tmp_path):
    path = tmp_path / "same.ddc"
    results = _race(path, 8, overwrite=True)
    assert results == ["ok"] * 8
    assert path.read_bytes().startswith(b"writer ") and leftovers(tmp_path) == []


_WRITER = """
import os, sys, time
from diffcodec import atomic
from diffcodec.errors import UsageError
f = atomic.AtomicFile(sys.argv[1], overwrite=False)
f.file.write(sys.argv[2].encode())
open(sys.argv[2] + ".ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.001)
try:
    f.commit()
    print("ok")
except UsageError as e:
    print("refused", e)
"""


def test_concurrent_processes_without_force_exactly_one_wins(tmp_path):
    env = subprocess_env(Path(__file__).resolve().parent.parent / "codebooks", threads=1)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, "out.ddc", f"w{i}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(4)]
    deadline = time.time() + 60
    while len(list(tmp_path.glob("*.ready"))) < 4 and time.time() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outs = [p.communicate(timeout=60) for p in procs]
    said = [o.decode().strip() for o, _ in outs]
    assert sorted(s.split()[0] for s in said) == ["ok", "refused", "refused", "refused"], (said, outs)
    winner = [i for i, s in enumerate(said) if s == "ok"][0]
    assert (tmp_path / "out.ddc").read_text() == f"w{winner}"
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_four_concurrent_cli_encodes_to_one_name_one_wins(files, tmp_path):
    out = tmp_path / "same.ddc"
    procs = [subprocess.Popen(CLI + ["encode", str(files["png"]), "-o", str(out), "-p", p, "--quiet"],
                              stderr=subprocess.PIPE)
             for p in ("opq-16-8-8", "opq-32-8-8", "opq-64-16-16", "opq-128-32-32")]
    codes = [p.wait(timeout=120) for p in procs]
    errs = [p.stderr.read().decode() for p in procs]
    assert sorted(codes) == [0, 2, 2, 2], errs
    assert all("already exists (use --force" in e for c, e in zip(codes, errs) if c)
    assert container.read_container(out.read_bytes()).header.method == "opq" and leftovers(tmp_path) == []


def test_png_sequences_and_planar_clips_refuse_a_name_taken_meanwhile(tmp_path):
    from diffcodec import video

    info = video.VideoInfo(16, 8, (25, 1), "420", frames=2)
    planes = (np.zeros((8, 16), np.uint8), np.zeros((4, 8), np.uint8), np.zeros((4, 8), np.uint8))
    for name in ("c.y4m", "f_%02d.png"):
        w = video.open_writer(str(tmp_path / name), info)
        w.write(planes)
        w.write(planes)
        taken = tmp_path / (name.replace("%02d", "02"))
        taken.write_bytes(b"theirs")        # another process takes the name after our check
        with pytest.raises(UsageError, match="already exists"):
            w.close()
        assert taken.read_bytes() == b"theirs"
        assert not (tmp_path / "f_01.png").exists()          # the sequence appears whole or not at all
        taken.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_temporary_file_is_never_left_behind_in_a_race_loss(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"first")
    with pytest.raises(UsageError):
        atomic.write_bytes(path, b"second", overwrite=False)
    assert path.read_bytes() == b"first" and leftovers(tmp_path) == []
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        atomic.write_bytes(Path(d) / "y", b"new", overwrite=False)
        assert (Path(d) / "y").read_bytes() == b"new"


# ------------------------------------------------------------------------------------------ found by the fuzzer
@pytest.mark.parametrize("name", IMAGE_VECTORS)
def test_a_header_value_of_the_wrong_type_is_corrupt_input(name):
    """benchmarks/fuzz.py found `cb: {}` in a ddcm header raising TypeError (unhashable) instead of a one-line
    corrupt-input error; every parameter of every vector, with values of the wrong type."""
    c = container.read_container(golden(name))
    for key in [*c.header.params, *(c.header.rng or {})]:
        for bad in ({}, [], [1], b"x", None, 1.5, True):
            h = container.read_container(golden(name)).header
            (h.params if key in h.params else h.rng)[key] = bad
            data = container.write_container(h, c.payloads)
            with pytest.raises(DiffcodecError) as e:
                api.decode(data, **({"device": "cpu"} if "device" in api.codec_of(data).decode_options else {}))
            assert e.value.exit_code in (3, 4), (key, bad, e.value)      # corrupt, or an unknown generator id


def test_onednn_primitive_cache_is_bounded_unless_the_user_sets_it():
    """oneDNN's default cache of 1024 compiled primitives (one per layer and input shape) grew a long-lived worker
    by gigabytes over inputs of many sizes (benchmarks/RESULTS.md, 'Hardening'); importing diffcodec bounds it."""
    import subprocess
    import sys

    code = "import os, diffcodec; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "128"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "7"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "7"


def test_a_standard_codec_base_of_another_size_is_corrupt_before_its_pixels_are_decoded(monkeypatch):
    """Fuzz finding (seed 14, input 5936): a WebP base layer declaring 265 MP inside a 32x48 ddcm file escaped as
    Pillow's DecompressionBombError. The base must declare the header's size, checked before decoding."""
    from diffcodec import baselines
    from diffcodec.errors import CorruptInputError
    from diffcodec.methods.ddcm.base_layer import decode_base

    webp = baselines.get_baseline("webp")
    other = webp.encode(synthetic_image(40, 24), 40)                     # 24x40, not 48x32
    with pytest.raises(CorruptInputError, match="not 48x32"):
        decode_base(other, "webp:q40", 0, 32, 48, 3)
    ok = webp.encode(synthetic_image(32, 48), 40)
    assert decode_base(ok, "webp:q40", 0, 32, 48, 3).shape == (32, 48, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)                 # Pillow's bomb error at 2x: 32x48 > 200
    with pytest.raises(CorruptInputError, match="does not decode"):
        decode_base(ok, "webp:q40", 0, 32, 48, 3)
