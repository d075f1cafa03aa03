"""Every `diffcodec ...` command in the code blocks of README.md and docs/guide.md runs (issue 22 item 5), on tiny
inputs put where the commands expect their files, so that the documentation cannot drift from the code again.

How: each document's bash blocks are read in order; a line (with its continuation lines) that runs `diffcodec`
is run by bash in one working folder per document, with `diffcodec` on PATH as this checkout's `python -m
diffcodec`. The folder holds tiny stand-ins for the files the commands name (photo.png, clip.y4m, clip.mp4,
raw.yuv, photos/, and kodak/ for `../shared/data/kodak`). Commands run in the documents' order, so one can use
what an earlier one wrote (decode after encode); because each line is an example on its own and several write
the same name, a command's `-o` target left by an earlier line is removed first. README's python blocks run too.
Only the commands in SKIP are not run, each for the reason given there.
"""

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/guide.md")

# substring of a command -> why it is not run (keep this short: everything else must run)
SKIP = {
    "diffcodec train ": "trains a model on the BSDS500 / McMaster folders (minutes to an hour); the trainers run on "
                        "tiny data in test_autoencoder.py, test_diffae.py, test_diffusion.py and test_opq.py",
    "ssh host": "needs a remote host",
    "ffplay": "needs ffmpeg and ffplay on PATH and a display",
    "--engine ray": "starts a Ray cluster or needs one (--address); the Ray engine runs in tests/test_batch.py",
}
# substring -> model it needs: skipped, naming it, only where the model is not installed
NEEDS_MODEL = {"--method diffae --bpp 0.1 --space pixel": "models/diffae-pixel"}
# substring -> optional package it needs: skipped, naming it, only where the package is not installed
NEEDS_PACKAGE = {"--diffusers ": "diffusers", "--prior ": "diffusers", "--base x264": "av"}
# the guide's pretrained model folders -> tiny random models of the same layout (tests/tiny_diffusers.py)
DIFFUSERS_FOLDERS = {"/data/stable-diffusion-2-1-base": "sd21-tiny", "/data/ddpm-celebahq-256": "ddpm-tiny"}
SUBSTITUTE = {"../shared/data/kodak": "kodak", **DIFFUSERS_FOLDERS}
_RUNS_DIFFCODEC = re.compile(r"(^|[|;&(]|\bdo)\s*diffcodec\s")


def doc_commands(path: Path) -> list[str]:
    """The shell commands of a markdown file's bash / sh / unlabelled code blocks that run diffcodec, in order."""
    out = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(), flags=re.M | re.S):
        if lang not in ("", "bash", "sh", "shell"):
            continue
        for command in re.sub(r"\\\n\s*", " ", body).splitlines():
            if _RUNS_DIFFCODEC.search(command) and not command.lstrip().startswith("#"):
                out.append(command.strip())
    return out


def doc_python(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.M | re.S)


def skip_reason(command: str) -> str | None:
    from diffcodec import artifacts

    for words, why in SKIP.items():
        if words in command:
            return why
    for words, model in NEEDS_MODEL.items():
        if words in command and not artifacts.artifact_paths(model)[0].is_file():
            return f"needs {model}, which is not installed"
    for words, package in NEEDS_PACKAGE.items():
        if words in command and importlib.util.find_spec(package) is None:
            return f"needs the optional {package} package, which is not installed"
    return None


def test_the_documents_have_commands_and_the_skips_are_few():
    commands = {doc: doc_commands(ROOT / doc) for doc in DOCS}
    assert len(commands["README.md"]) >= 15 and len(commands["docs/guide.md"]) >= 20
    every = [c for cs in commands.values() for c in cs]
    skipped = [c for c in every if any(w in c for w in SKIP)]
    assert len(skipped) <= 12 and len(every) - len(skipped) >= 30, skipped
    for words in SKIP:                  # a skip that matches nothing any more is stale
        assert any(words in c for c in every), words


# ----------------------------------------------------------------------------------------------- the inputs

def _photo(h: int, w: int) -> np.ndarray:
    """A real photograph bundled with scikit-image (offline), resized: at 192x288 its opq-16-8-8 file is 0.23 bpp
    and its smallest AVIF 0.11 bpp, so that the documented --base ... --bpp targets fit."""
    from skimage import data

    return np.asarray(Image.fromarray(data.rocket()).resize((w, h), Image.Resampling.BICUBIC))


def _write_clip(path: Path, frames: int, w: int, h: int) -> None:
    from diffcodec import video, yuv
    from diffcodec.video import VideoInfo

    info = VideoInfo(w, h, (25, 1), "420", frames=frames)
    base = _photo(h * 2, w * 2)
    with video.open_writer(str(path), info, force=True) as writer:
        for i in range(frames):        # a pan across the photo
            rgb = np.ascontiguousarray(base[i % h: i % h + h, (2 * i) % w: (2 * i) % w + w])
            writer.write(yuv.rgb_to_planes(rgb, "420"))


def _workdir(folder: Path) -> Path:
    folder.mkdir()
    Image.fromarray(_photo(192, 288)).save(folder / "photo.png")
    (folder / "photos").mkdir()
    Image.fromarray(_photo(40, 56)).save(folder / "photos" / "a.png")
    (folder / "out").mkdir()
    (folder / "kodak").mkdir()
    Image.fromarray(_photo(48, 64)).save(folder / "kodak" / "k1.png")
    Image.fromarray(_photo(64, 48)).save(folder / "kodak" / "k2.png")
    _write_clip(folder / "clip.y4m", 12, 48, 32)
    _write_clip(folder / "clip.mp4", 12, 48, 32)
    _write_clip(folder / "raw.yuv", 12, 352, 288)
    bin_dir = folder / ".bin"
    bin_dir.mkdir()
    for name, target in (("diffcodec", f'"{sys.executable}" -m diffcodec'), ("python", f'"{sys.executable}"')):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        shim.chmod(0o755)
    return folder


def _diffusers_folders(folder: Path, commands: list[str]) -> None:
    """Tiny models where the commands name the guide's pretrained model folders (when diffusers is installed)."""
    if importlib.util.find_spec("diffusers") is None:
        return
    from tiny_diffusers import save_latent_sd, save_pixel_ddpm

    for path, save in ((DIFFUSERS_FOLDERS["/data/stable-diffusion-2-1-base"], save_latent_sd),
                       (DIFFUSERS_FOLDERS["/data/ddpm-celebahq-256"], save_pixel_ddpm)):
        if any(original in c for original, tiny in DIFFUSERS_FOLDERS.items() if tiny == path for c in commands):
            save(folder / path)


def _env(folder: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{folder / '.bin'}{os.pathsep}{os.environ['PATH']}")
    env["DIFFCODEC_MODELS_DIR"] = str(folder / ".models")     # `models add` registers here, not in ~/.config
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _clear_outputs(command: str, folder: Path) -> None:
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return
    for flag, value in zip(words, words[1:]):
        if flag in ("-o", "--output", "--outdir", "--bitstream") and value != "-" and "$" not in value:
            target = folder / value
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()


@pytest.mark.slow          # about two minutes on one CPU thread: every documented command, ddcm's included
@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_command_runs(doc, tmp_path):
    folder = _workdir(tmp_path / "work")
    _diffusers_folders(folder, doc_commands(ROOT / doc))
    env = _env(folder)
    ran, failed, skipped = 0, [], []
    for command in doc_commands(ROOT / doc):
        why = skip_reason(command)
        if why:
            skipped.append((command, why))
            continue
        for old, new in SUBSTITUTE.items():
            command = command.replace(old, new)
        _clear_outputs(command, folder)
        p = subprocess.run(["bash", "-c", "set -o pipefail\n" + command], cwd=folder, env=env, capture_output=True,
                           timeout=600)
        ran += 1
        if p.returncode != 0:
            failed.append(f"{command}\n    -> exit {p.returncode}: {p.stderr.decode(errors='replace').strip()[-600:]}")
    if doc == "README.md":
        for code in doc_python(ROOT / doc):
            p = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, timeout=600)
            ran += 1
            if p.returncode != 0:
                failed.append(f"python block:\n{code}    -> {p.stderr.decode(errors='replace').strip()[-600:]}")
    print(f"{doc}: {ran} ran, {len(skipped)} skipped: " + "; ".join(f"{c[:60]}... ({w})" for c, w in skipped))
    assert not failed, "\n".join(failed)
    assert ran >= 15
