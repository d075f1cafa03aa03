"""`diffcodec batch` (issue 19): a mirrored output tree, the manifest, resuming, bad files, the local worker pool and
the Ray engine (an embedded 2-CPU local Ray; skipped where Ray is not installed)."""

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffcodec import api, batch
from diffcodec.cli import main

from conftest import synthetic_image

ROOT = Path(__file__).resolve().parent.parent
PRESET = "opq-16-8-8"


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cli(args) -> int:
    """Run `diffcodec ARGS` in this process: the exit code."""
    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def make_tree(root: Path, n: int = 3, sub: bool = True) -> list[Path]:
    """n PNGs in root, a JPEG in root/sub/deeper; the files, sorted as the batch sorts them."""
    files = []
    for i in range(n):
        p = root / f"img{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(synthetic_image(24 + 8 * i, 32, seed=i)).save(p)
        files.append(p)
    if sub:
        p = root / "sub" / "deeper" / "x.jpg"
        p.parent.mkdir(parents=True)
        Image.fromarray(synthetic_image(40, 24, seed=7)).save(p, quality=90)
        files.append(p)
    return files


def read_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / batch.MANIFEST).read_text().splitlines()]


def check_manifest(out: Path) -> dict[str, dict]:
    """The manifest is whole and agrees with the files: a header, then one record per file; every ok record's
    input and output have the recorded sha256 and size. Returns the records by rel."""
    lines = read_lines(out)
    assert lines[0]["kind"] == "batch" and lines[0]["format"] == batch.MANIFEST_FORMAT
    records = {r["rel"]: r for r in lines[1:]}
    assert len(records) == len(lines) - 1 and all(r["kind"] == "file" for r in lines[1:])
    for r in records.values():
        assert r["status"] in ("ok", "failed")
        if r["status"] == "ok":
            output = out / r["output"]
            assert sha(output) == r["output_sha256"] and output.stat().st_size == r["output_bytes"]
            assert sha(r["input"]) == r["input_sha256"]
            assert r["error"] is None and r["exit_code"] == 0
        else:
            assert r["error"] and "\n" not in r["error"] and r["exit_code"] > 0
    assert not list(out.rglob(".diffcodec-*.tmp")), "a temporary file was left behind"
    return records


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return make_tree(Path("photos"))


def test_encode_mirrors_the_tree_and_the_manifest_matches_the_files(tree, capsys):
    assert cli(["batch", "photos", "-o", "out", "-p", PRESET, "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    records = check_manifest(Path("out"))
    assert sorted(records) == ["img0.png", "img1.png", "img2.png", "sub/deeper/x.jpg"]
    assert summary["files"] == summary["coded"] == summary["ok"] == 4 and summary["failed"] == 0
    for src in tree:
        rel = src.relative_to("photos")
        out = Path("out") / rel.with_suffix(".ddc")
        assert out.read_bytes() == api.encode(str(src), method="opq", preset=PRESET)   # the same as `encode`
        r = records[rel.as_posix()]
        meta = api.info(out.read_bytes())
        assert r["bpp"] == pytest.approx(meta["bpp"], abs=1e-6) and r["output"] == str(rel.with_suffix(".ddc"))
        assert (r["width"], r["height"]) == (meta["width"], meta["height"]) and r["psnr"] > 20
    assert summary["input_bytes"] == sum(p.stat().st_size for p in tree)
    assert summary["output_bytes"] == sum((Path("out") / r["output"]).stat().st_size for r in records.values())
    assert summary["mean_bpp"] == pytest.approx(np.mean([r["bpp"] for r in records.values()]), abs=1e-4)


def test_bad_files_in_the_middle_are_recorded_and_the_rest_is_coded(tree, capsys, monkeypatch):
    from diffcodec import images

    Path("photos/img1.png").write_bytes(tree[1].read_bytes()[:80])        # corrupt: a truncated PNG
    Path("photos/notes.png").write_text("not an image")                    # unsupported
    Image.fromarray(synthetic_image(64, 64)).save("photos/big.png")      # too large (limit lowered below)
    monkeypatch.setattr(images, "MAX_PIXELS", 60 * 60)
    assert cli(["batch", "photos", "-o", "out", "-p", PRESET]) == 8
    err = capsys.readouterr().err
    assert "Traceback" not in err and "3 of 6 file(s) failed" in err.splitlines()[-1]
    records = check_manifest(Path("out"))
    failed = {rel: (r["exit_code"], r["error"]) for rel, r in records.items() if r["status"] == "failed"}
    assert {rel: code for rel, (code, _) in failed.items()} == {"img1.png": 3, "notes.png": 2, "big.png": 2}
    assert "truncated" in failed["img1.png"][1] and "too large" in failed["big.png"][1]
    assert [rel for rel, r in records.items() if r["status"] == "ok"] == ["img0.png", "img2.png", "sub/deeper/x.jpg"]
    assert not Path("out/img1.ddc").exists() and Path("out/img2.ddc").exists()

    # the same command again: what is done is skipped (its output untouched), what failed is tried again
    Path("photos/img1.png").write_bytes(tree[0].read_bytes())
    Path("photos/notes.png").unlink()
    monkeypatch.setattr(images, "MAX_PIXELS", 1 << 28)
    before = Path("out/img2.ddc").stat()
    assert cli(["batch", "photos", "-o", "out", "-p", PRESET, "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["files"], summary["coded"], summary["skipped"], summary["failed"]) == (5, 2, 3, 0)
    assert Path("out/img2.ddc").stat().st_mtime_ns == before.st_mtime_ns
    records = check_manifest(Path("out"))
    assert records["img1.png"]["status"] == records["big.png"]["status"] == "ok"
    assert records["notes.png"]["status"] == "failed"       # no longer an input: its record stays as it was


def test_an_interrupted_run_leaves_a_consistent_manifest_and_resumes(tree, monkeypatch, capsys):
    real = batch.Worker.code
    calls = []

    def interrupted(self, job):
        calls.append(job.rel)
        if len(calls) == 3:
            raise KeyboardInterrupt        # Ctrl-C while coding the third file
        return real(self, job)

    monkeypatch.setattr(batch.Worker, "code", interrupted)
    assert cli(["batch", "photos", "-o", "out", "-p", PRESET]) == 130
    records = check_manifest(Path("out"))
    assert sorted(records) == ["img0.png", "img1.png"]
    assert sorted(p.name for p in Path("out").glob("*.ddc")) == ["img0.ddc", "img1.ddc"]
    monkeypatch.setattr(batch.Worker, "code", real)
    assert cli(["batch", "photos", "-o", "out", "-p", PRESET, "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["coded"], summary["skipped"]) == (2, 2)
    assert len(check_manifest(Path("out"))) == 4


def test_a_torn_last_line_is_dropped_and_the_run_goes_on(tree, capsys):
    assert cli(["batch", "photos", "-o", "out", "-p", PRESET, "--quiet"]) == 0
    manifest = Path("out") / batch.MANIFEST
    lines = manifest.read_text().splitlines()
    torn = next(i for i, line in enumerate(lines) if '"rel": "img2.png"' in line)
    manifest.write_text("\n".join(lines[:torn] + lines[torn + 1:]) + "\n" + lines[torn][:50])   # a crash mid-line
    assert cli(["batch", "photos", "-o", "out", "-p", PRESET, "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # img2's output is there but its record is not: recoded, found byte-identical, adopted
    assert (summary["coded"], summary["skipped"], summary["adopted"]) == (1, 3, 1)
    assert check_manifest(Path("out"))["img2.png"]["adopted"] is True


def test_done_is_checked_not_assumed(tree, capsys):
    args = ["batch", "photos", "-o", "out", "-p", PRESET, "--json", "--quiet"]
    assert cli(args) == 0
    capsys.readouterr()
    Path("out/img0.ddc").unlink()                                                 # an output deleted
    Image.fromarray(synthetic_image(24, 32, seed=99)).save("photos/img1.png")   # an input changed
    assert cli(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["coded"], summary["skipped"]) == (2, 2)
    assert Path("out/img1.ddc").read_bytes() == api.encode("photos/img1.png", method="opq", preset=PRESET)
    Path("out/img2.ddc").write_bytes(b"edited by someone")                       # an output changed by hand
    assert cli(args) == 8
    captured = capsys.readouterr()
    failures = json.loads(captured.out)["failures"]
    assert len(failures) == 1 and "not what this batch wrote" in failures[0]["error"]
    assert captured.err.count("\n") == 1 and "1 of 4 file(s) failed" in captured.err      # --quiet: the error only
    assert Path("out/img2.ddc").read_bytes() == b"edited by someone"              # not replaced without --force
    assert cli(args + ["--force"]) == 0
    assert json.loads(capsys.readouterr().out)["coded"] == 4
    assert len(check_manifest(Path("out"))) == 4


def test_file_list_on_stdin_globs_and_name_collisions(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_tree(Path("a"), n=2)
    make_tree(Path("b"), n=1, sub=False)
    listing = "# the list\na/img0.png\n\nb/img0.png\na/sub/deeper/x.jpg\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(listing))
    assert cli(["batch", "-", "-o", "out", "-p", PRESET, "--quiet"]) == 0
    # files named one by one mirror under the folder they share (here the working folder)
    assert sorted(check_manifest(Path("out"))) == ["a/img0.png", "a/sub/deeper/x.jpg", "b/img0.png"]
    assert cli(["batch", "a/**/*.jpg", "a/img1*", "-o", "out2", "-p", PRESET, "--quiet"]) == 0
    assert sorted(check_manifest(Path("out2"))) == ["img1.png", "sub/deeper/x.jpg"]      # under the glob's folder
    Image.fromarray(synthetic_image(16, 16)).save("a/img0.jpg")
    assert cli(["batch", "a", "-o", "out3", "-p", PRESET]) == 2
    assert "--keep-suffix" in capsys.readouterr().err and not Path("out3").exists()
    assert cli(["batch", "a", "-o", "out3", "-p", PRESET, "--keep-suffix", "--quiet"]) == 0
    assert Path("out3/img0.png.ddc").exists() and Path("out3/img0.jpg.ddc").exists()
    # decoding: img0.png.ddc and img0.jpg.ddc would both be img0.png
    assert cli(["batch", "out3", "-o", "out3/decoded", "--decode"]) == 2
    assert "--keep-suffix" in capsys.readouterr().err
    assert cli(["batch", "out3", "-o", "out3/decoded", "--decode", "--keep-suffix", "--quiet"]) == 0
    assert sorted(p.relative_to("out3/decoded").as_posix() for p in Path("out3/decoded").rglob("*.png")) == [
        "img0.jpg.ddc.png", "img0.png.ddc.png", "img1.png.ddc.png", "sub/deeper/x.jpg.ddc.png"]
    # an output folder inside the input folder is not searched for inputs
    Path("a/coded").mkdir()
    Image.fromarray(synthetic_image(16, 16)).save("a/coded/y.png")
    assert cli(["batch", "a", "-o", "a/coded", "-p", PRESET, "--keep-suffix", "--quiet"]) == 0
    assert sorted(check_manifest(Path("a/coded"))) == ["img0.jpg", "img0.png", "img1.png", "sub/deeper/x.jpg"]


def test_decode_with_metrics_against_the_originals(tree, capsys):
    from diffcodec import metrics

    assert cli(["batch", "photos", "-o", "coded", "-p", PRESET, "--quiet"]) == 0
    assert cli(["batch", "coded", "-o", "decoded", "--decode", "--metrics-against", "photos", "--json",
                "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    records = check_manifest(Path("decoded"))
    assert summary["coded"] == 4
    assert summary["mean_ms_ssim"] is None      # MS-SSIM needs sides over 160 pixels: not defined on these
    for src in tree:
        rel = src.relative_to("photos")
        decoded = np.asarray(Image.open(Path("decoded") / rel.with_suffix(".png")))
        expected = api.decode((Path("coded") / rel.with_suffix(".ddc")).read_bytes())
        assert np.array_equal(decoded, expected)
        r = records[rel.with_suffix(".ddc").as_posix()]
        original = np.asarray(Image.open(src).convert("RGB"))
        assert r["psnr"] == pytest.approx(metrics.psnr(original, decoded), abs=1e-3)
        assert r["reference"] == os.path.abspath(src) and r["metrics"] is True
    assert summary["mean_psnr"] == pytest.approx(np.mean([r["psnr"] for r in records.values()]), abs=1e-3)


def test_usage_errors_come_before_any_work(tree, capsys):
    for args, words in ((["-p", "opq-1-2-3"], "unknown opq preset"), (["--param", "k=4"], "takes no parameter"),
                        (["-q", "50", "-p", PRESET], "not both"), (["--decode", "--bpp", "0.1"], "encoding"),
                        (["--address", "auto"], "--engine ray"), (["--metrics-against", "photos"], "--decode")):
        assert cli(["batch", "photos", "-o", "out", *args]) == 2, args
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, (args, err)
        assert not Path("out").exists()
    assert cli(["batch", "nothing-here", "-o", "out"]) == 2
    assert cli(["batch", "photos", "-o", "out", "-p", PRESET, "--quiet"]) == 0
    assert cli(["batch", "photos", "-o", "out", "-p", "opq-32-8-8"]) == 2          # other settings: not resumed
    assert "preset" in capsys.readouterr().err
    lock = batch.atomic.lock_exclusive(Path("out") / batch.LOCK, "busy")          # another batch is running
    try:
        assert cli(["batch", "photos", "-o", "out", "-p", PRESET]) == 2
        assert "in use by another diffcodec batch" in capsys.readouterr().err
    finally:
        batch.atomic.unlock(lock)


@pytest.mark.slow
def test_a_pool_of_two_workers_codes_what_one_does(tree, capsys):
    """Spawned worker processes, metrics asked for: the outputs are the bytes one process writes."""
    assert cli(["batch", "photos", "-o", "one", "-p", PRESET, "--metrics", "--quiet"]) == 0
    assert cli(["batch", "photos", "-o", "two", "-p", PRESET, "--metrics", "--jobs", "2", "--threads", "1",
                "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    one, two = check_manifest(Path("one")), check_manifest(Path("two"))
    assert summary["workers"] == 2 and summary["coded"] == 4
    assert len({r["worker"] for r in two.values()}) >= 1 and all(r["worker"] != one["img0.png"]["worker"]
                                                                  for r in two.values())
    for rel, r in one.items():
        assert two[rel]["output_sha256"] == r["output_sha256"] and two[rel]["ms_ssim"] == r["ms_ssim"]


def _subprocess_env(extra_path: Path | None = None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    paths = [str(ROOT)] + ([str(extra_path)] if extra_path else []) + [env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def _wait_for_records(out: Path, n: int, p: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert p.poll() is None, p.communicate()[1].decode()[-2000:]
        try:
            if len(read_lines(out)) - 1 >= n:
                return
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no {n} records in {timeout} s")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_sigint_stops_a_worker_pool_cleanly_and_the_run_resumes(tmp_path):
    """A real SIGINT to the parent while a worker is stuck on an input (a named pipe nobody writes): exit 130,
    the finished files recorded, nothing half-written; the same command then codes only what is left."""
    photos = tmp_path / "photos"
    make_tree(photos, n=4, sub=False)
    stuck = photos / "img1.png"
    saved = stuck.read_bytes()
    stuck.unlink()
    os.mkfifo(stuck)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "diffcodec", "batch", *(str(photos / f"img{i}.png") for i in range(4)),
            "-o", str(out), "-p", PRESET, "--jobs", "2", "--threads", "1"]
    # SIGINT back to its default in the child: a test run started in the background by a non-interactive shell
    # inherits SIGINT ignored, and Python then keeps ignoring it (as a `nohup diffcodec batch ... &` should)
    p = subprocess.Popen(args, env=_subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for_records(out, 3, p)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        stopped_in = time.monotonic() - t0
    finally:
        p.kill()
    assert p.returncode == 130, err.decode()[-2000:]
    assert stopped_in < 5, stopped_in      # the stuck worker was stopped (SIGTERM), not waited for (10 s, then killed)
    assert "interrupted" in err.decode() and "Traceback" not in err.decode()
    records = check_manifest(out)
    assert sorted(records) == ["img0.png", "img2.png", "img3.png"] and not (out / "img1.ddc").exists()
    stuck.unlink()
    stuck.write_bytes(saved)
    p = subprocess.run(args + ["--json", "--quiet"], env=_subprocess_env(), capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    summary = json.loads(p.stdout)
    assert (summary["coded"], summary["skipped"]) == (1, 3)
    assert len(check_manifest(out)) == 4


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc to find the workers")
def test_workers_stop_when_the_parent_is_killed(tmp_path):
    """SIGKILL to the parent (it cannot stop its pool): the workers, one stuck on an input nobody writes and one
    idle, notice within seconds and exit, leaving no temporary file."""
    photos = tmp_path / "photos"
    make_tree(photos, n=3, sub=False)
    stuck = photos / "img1.png"
    stuck.unlink()
    os.mkfifo(stuck)
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "diffcodec", "batch", *(str(photos / f"img{i}.png") for i in range(3)),
                          "-o", str(out), "-p", PRESET, "--jobs", "2", "--threads", "1"],
                         env=_subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_records(out, 2, p)
        workers = [c for c in _children(p.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
        assert len(workers) == 2, workers
        p.kill()
        p.wait(timeout=10)
        deadline = time.monotonic() + 15
        alive = workers
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [w for w in alive if Path(f"/proc/{w}").exists()
                     and Path(f"/proc/{w}/stat").read_text().split(") ")[1][0] != "Z"]
        assert not alive, f"workers still running 15 s after the parent was killed: {alive}"
    finally:
        p.kill()
    assert not list(out.rglob(".diffcodec-*.tmp"))


_DIE = """
import os
from diffcodec import batch
_code = batch.Worker.code
def code(self, job):
    if job.rel == "img1.png":
        os._exit(9)             # the worker dies on this file, as an out-of-memory kill would end it
    return _code(self, job)
batch.Worker.code = code
"""


@pytest.mark.slow
def test_a_file_that_kills_its_worker_is_recorded_and_the_pool_goes_on(tmp_path):
    make_tree(tmp_path / "photos", n=4, sub=False)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_DIE)      # loaded by the spawned workers (and by this child CLI)
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-c", "from diffcodec.cli import main; main()", "batch",
                        str(tmp_path / "photos"), "-o", str(out), "-p", PRESET, "--jobs", "2", "--threads", "1",
                        "--json", "--quiet"], env=_subprocess_env(hook), capture_output=True, timeout=300)
    assert p.returncode == 8, p.stderr.decode()[-2000:]
    summary = json.loads(p.stdout)
    assert (summary["coded"], summary["failed"]) == (3, 1)
    records = check_manifest(out)
    assert records["img1.png"]["status"] == "failed" and "worker process died" in records["img1.png"]["error"]


# ----------------------------------------------------------------------------------------------- Ray

def test_the_ray_engine_says_how_to_install_ray(tree, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    for mod in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, mod)
    assert cli(["batch", "photos", "-o", "out", "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "diffcodec[ray]"' in err and len(err.strip().splitlines()) == 1


# The embedded Ray runs in a process of its own, as it does under the CLI: a Ray driver whose local raylet goes away
# exits its process at once (status 1, no traceback), which here would take the whole pytest run with it (issue 19).
INTERRUPTED_RAY_RUN = """
import sys
import ray
from diffcodec import batch
from diffcodec.cli import main
real, added = batch.Manifest.add, []

def interrupted(self, record):
    real(self, record)
    added.append(record["rel"])
    if len(added) == 2:
        raise KeyboardInterrupt

batch.Manifest.add = interrupted
try:
    main(sys.argv[1:])
except SystemExit as e:
    print(f"exit {e.code} added {','.join(added)} ray_initialized {ray.is_initialized()}")
"""


def run_own_process(args: list[str], timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python ARGS`` with one OpenMP thread; ``env``: variables to set (None: to remove)."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in full.items() if v is not None})


@pytest.mark.slow
def test_ray_engine_resumes_after_an_interruption_with_a_corrupt_input_in_the_middle(tree):
    """Embedded local Ray (2 CPUs, 2 actors) twice, each in its own process: interrupted after two files, then the
    same command."""
    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    Path("photos/img1.png").write_bytes(tree[1].read_bytes()[:80])
    args = ["batch", "photos", "-o", "out", "-p", PRESET, "--engine", "ray", "--jobs", "2", "--threads", "1"]
    for _ in range(2):      # a Ray driver whose core worker is torn down under it may quick-exit(1): once more
        shutil.rmtree("out", ignore_errors=True)
        run = run_own_process(["-c", INTERRUPTED_RAY_RUN, *args])
        last = (run.stdout.strip().splitlines() or [""])[-1]
        if run.returncode == 0:
            break
    assert last.startswith("exit 130 added "), f"status {run.returncode}: {run.stdout[-2000:]}{run.stderr[-2000:]}"
    added = last.split(" added ")[1].split(" ray_initialized ")[0].split(",")
    assert last.endswith("ray_initialized False")          # the embedded Ray was stopped
    records = check_manifest(Path("out"))
    assert sorted(records) == sorted(added) and len(added) == 2
    run = run_own_process(["-m", "diffcodec", *args, "--json", "--quiet"])
    assert run.returncode == 8, f"status {run.returncode}: {run.stderr[-2000:]}"
    summary = json.loads(run.stdout)
    done_before = sum(records[rel]["status"] == "ok" for rel in added)
    assert summary["skipped"] == done_before and summary["coded"] == 3 - done_before and summary["failed"] == 1
    assert summary["engine"] == "ray" and summary["workers"] == 2 and summary["ray"] == "embedded"
    records = check_manifest(Path("out"))
    assert records["img1.png"]["status"] == "failed" and records["img1.png"]["exit_code"] == 3
    assert len({r["worker"] for r in records.values()}) >= 1
    for src in (tree[0], tree[2], tree[3]):
        rel = src.relative_to("photos")
        assert (Path("out") / rel.with_suffix(".ddc")).read_bytes() == api.encode(str(src), method="opq",
                                                                                 preset=PRESET)


def _processes_mentioning(text: str) -> list[int]:
    """Pids of this machine's processes whose command line contains ``text`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the cluster's processes through /proc")
def test_ray_engine_runs_on_an_existing_cluster_given_by_address_and_asks_it_for_gpus(tree, one_thread):
    """A Ray head started apart from the batch (`ray start --head`, 2 CPUs and 1 GPU resource: the scheduling of
    GPU actors, with no GPU needed) is reached by --address; the batch leaves it running. A method with networks
    (ddcm, --device auto) gets one actor per GPU with num_gpus 1 (which, with no CUDA there, runs on the CPU); its
    files are those of `encode`."""
    import socket
    import tempfile

    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="/tmp/dcray")          # short: Ray's socket paths live under it
    head = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}", "--num-cpus=2",
            "--num-gpus=1", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    # token authentication, as Ray's own clusters have it by default (the token in the environment, not ~/.ray)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": hashlib.sha256(temp.encode()).hexdigest()}
    try:
        started = run_own_process(head[1:], timeout=180, env=auth)
        assert started.returncode == 0, started.stderr[-2000:]
        args = ["-m", "diffcodec", "batch", "photos", "-o", "out", "--method", "ddcm", "--bpp", "3", "--engine", "ray",
                "--address", f"127.0.0.1:{port}", "--threads", "1", "--json", "--quiet"]     # --device auto
        refused = run_own_process(args, env={"RAY_AUTH_MODE": None})       # no token sent: one line that says why
        assert refused.returncode == 2 and "RAY_AUTH_MODE=token" in refused.stderr.strip().splitlines()[-1]
        assert not Path("out").exists() or not list(Path("out").rglob("*.ddc"))
        run = run_own_process(args, env=auth)
        assert run.returncode == 0, f"status {run.returncode}: {run.stderr[-2000:]}"
        summary = json.loads(run.stdout)
        assert summary["ray"] == f"127.0.0.1:{port}" and summary["gpus_per_worker"] == 1.0
        assert summary["workers"] == 1 and summary["coded"] == len(tree)
        assert _processes_mentioning(temp), "the cluster stopped with the batch"
        for src in tree:
            out = Path("out") / src.relative_to("photos").with_suffix(".ddc")
            assert out.read_bytes() == api.encode(str(src), method="ddcm", bpp=3.0, device="cpu")
    finally:
        for pid in _processes_mentioning(temp):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
