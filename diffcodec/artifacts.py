"""Shipped trained artifacts (OPQ codebooks, model weights) and their manifests.

Every artifact is a safetensors file `NAME.safetensors` with a manifest `NAME.json` beside it that records
its sha256, the exact `diffcodec train ...` command that made it, the data, steps, wall time, device and
validation figures. The sha256 is verified on load, so a damaged file fails loudly instead of decoding
garbage.

Search order for the artifact folder: $DIFFCODEC_CODEBOOKS, the `codebooks/` folder of a source checkout,
then the copy a wheel carries inside the package (`diffcodec/_codebooks`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from diffcodec import atomic
from diffcodec.errors import ModelError


def artifacts_dir() -> Path:
    """The folder of shipped artifacts (codebooks and networks alike; on disk it keeps the name `codebooks/`)."""
    env = os.environ.get("DIFFCODEC_CODEBOOKS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "codebooks", here / "_codebooks"):
        if candidate.is_dir():
            return candidate
    return here.parent / "codebooks"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha_prefix32(sha_hex: str) -> int:
    """First 4 bytes of a sha256 as an int: what a .ddc header records to pin the model it needs."""
    return int(sha_hex[:8], 16)


def artifact_paths(name: str) -> tuple[Path, Path]:
    """`name` is relative to the codebooks folder, without extension, e.g. 'opq/opq-32-8-8'."""
    base = artifacts_dir() / name
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def read_manifest(name: str) -> dict[str, Any]:
    _, manifest_path = artifact_paths(name)
    if not manifest_path.is_file():
        raise ModelError(f"missing manifest {manifest_path}")
    try:
        return json.loads(manifest_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"unreadable manifest {manifest_path}: {e}") from None


@functools.lru_cache(maxsize=32)
def _load_verified(name: str, identity: tuple) -> tuple[dict, dict, str]:
    from safetensors.numpy import load_file

    weights_path, _ = artifact_paths(name)
    manifest = read_manifest(name)
    actual = sha256_file(weights_path)
    expected = manifest.get("sha256")
    if actual != expected:
        raise ModelError(
            f"{weights_path} is corrupt or was replaced: sha256 {actual[:16]}... does not match its "
            f"manifest ({str(expected)[:16]}...); re-create it with: {manifest.get('command', '?')}"
        )
    try:
        tensors = load_file(str(weights_path))
    except Exception as e:  # safetensors raises several types for malformed files
        raise ModelError(f"cannot read {weights_path}: {e}") from None
    return tensors, manifest, actual


def load_artifact(name: str) -> tuple[dict, dict, str]:
    """Load a shipped artifact as numpy arrays, verifying its sha256: (tensors, manifest, sha256 hex)."""
    weights_path, _ = artifact_paths(name)
    if not weights_path.is_file():
        raise ModelError(
            f"missing model file {weights_path} (set DIFFCODEC_CODEBOOKS or re-create it with `diffcodec train`)"
        )
    # keyed on the files themselves (weights and manifest), not only the name: another DIFFCODEC_CODEBOOKS
    # folder, or a file replaced within the file system's timestamp granularity (a few ms), is another file
    # (an atomic replace gets a new inode)
    return _load_verified(name, tuple(_file_identity(path) for path in artifact_paths(name)))


def _file_identity(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None             # a missing manifest is read_manifest's error to report
    return str(path.resolve()), st.st_ino, st.st_mtime_ns, st.st_size


def artifact_key(name: str) -> tuple[str, str]:
    """What a cache of models built from artifact ``name`` keys on: its weights' sha256 and its whole manifest.
    The weights alone are not enough: the same weights exported again with another manifest (a denoiser
    re-exported for another autoencoder, another schedule) must not get the first manifest back."""
    _, manifest, sha = load_artifact(name)
    return sha, json.dumps(manifest, sort_keys=True)


def save_artifact(name: str, tensors: dict, manifest: dict[str, Any], metadata: dict[str, str] | None = None) -> Path:
    """Write NAME.safetensors and NAME.json (with the sha256 filled in), each atomically; returns the weights
    path."""
    weights_path, manifest_path = artifact_paths(name)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    atomic.save_safetensors(tensors, weights_path, metadata=metadata)
    manifest = dict(manifest)
    manifest["file"] = weights_path.name
    manifest["bytes"] = weights_path.stat().st_size
    manifest["sha256"] = sha256_file(weights_path)
    atomic.write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return weights_path


def list_artifacts() -> list[dict[str, Any]]:
    """Every manifest under the codebooks folder, with its name ('opq/opq-32-8-8')."""
    root = artifacts_dir()
    out = []
    for manifest_path in sorted(root.rglob("*.json")):
        name = str(manifest_path.relative_to(root).with_suffix(""))
        try:
            m = json.loads(manifest_path.read_text())
        except ValueError:
            continue
        if "sha256" in m:
            out.append({"name": name, **m})
    return out
