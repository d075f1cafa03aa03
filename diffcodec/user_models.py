"""Models the user added (`diffcodec models add NAME --diffusers DIR`): a registry in the user's config folder.

Each registration is ``NAME.json`` in :func:`models_dir` (``$DIFFCODEC_MODELS_DIR``, else
``$XDG_CONFIG_HOME/diffcodec/models``, else ``~/.config/diffcodec/models``), with, for a latent model, the cached
empty-prompt embedding ``NAME.empty-prompt.safetensors`` beside it. A registration points at the model's folder
(nothing is copied unless ``--copy`` asks: then the files decoding reads go to ``NAME/`` beside it) and records the
sha256 of every file decoding reads (configs and weights) and of the files only registration read (text encoder,
tokenizer). Its identity is one sha256 over those file hashes, the embedding's and the process parameters
(:func:`identity`): a .ddc file names its prior by NAME and the first 4 bytes of it, and every load re-hashes the
files, so a model that is missing, changed on disk or registered anew under the same name is a *model* error
(exit 5), never a silently different image.

Nothing here imports diffusers; registering a folder asks :mod:`diffcodec.diffusion.diffusers_adapter`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from diffcodec import artifacts, atomic
from diffcodec.errors import ModelError, UsageError

ENV = "DIFFCODEC_MODELS_DIR"
RECORD_FORMAT = "diffcodec-user-model-v1"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# ids of the shipped models (and what the ddcm header names them): a user model may not take them
RESERVED = ("pixel-ddpm", "latent-ddpm", "opq-refiner", "codec-refiner", "opq-clip-refiner", "codec-refiner-2",
            "codec-refiner-3", "h264-refiner", "latent-ae", "diffae", "diffae-pixel")
EMBEDDING_SUFFIX = ".empty-prompt.safetensors"


def models_dir() -> Path:
    """The registry folder: $DIFFCODEC_MODELS_DIR, else $XDG_CONFIG_HOME/diffcodec/models, else
    ~/.config/diffcodec/models."""
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "diffcodec" / "models"


def check_name(name: Any, err=UsageError) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise err(f"model name must be 1-64 characters of letters, digits, '.', '_' and '-' (starting with a letter "
                  f"or digit), got {name!r}")
    if name in RESERVED:
        raise err(f"{name!r} is the name of a shipped model; choose another name")
    return name


def record_path(name: str) -> Path:
    return models_dir() / f"{check_name(name)}.json"


def embedding_path(name: str) -> Path:
    return models_dir() / f"{check_name(name)}{EMBEDDING_SUFFIX}"


def _not_registered(name: str, sha_prefix: int | None = None) -> ModelError:
    which = f" (sha256 prefix {sha_prefix:08x})" if sha_prefix is not None else ""
    return ModelError(f"no model {name!r}{which} is registered in {models_dir()}; add it with `diffcodec models add "
                      f"{name} --diffusers DIR` (set {ENV} to use another registry)")


def get(name: str) -> dict[str, Any]:
    """The registration of ``name`` (ModelError when there is none or it is unreadable)."""
    path = record_path(check_name(name, ModelError))
    if not path.is_file():
        raise _not_registered(name)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"unreadable model registration {path}: {e}") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or record.get("name") != name:
        raise ModelError(f"{path} is not a diffcodec model registration for {name!r}")
    return record


def list_models() -> list[dict[str, Any]]:
    """Every registration (unreadable ones as {'name', 'problem'})."""
    root = models_dir()
    out = []
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            out.append(get(path.stem))
        except (ModelError, UsageError) as e:
            out.append({"name": path.stem, "problem": str(e)})
    return out


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return artifacts.sha256_file(Path(path))


def file_sha256(path: Path) -> str:
    """sha256 of a file (remembered for the process while its size, mtime and inode stay the same)."""
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns, st.st_ino)


def identity(record: dict[str, Any]) -> str:
    """The model's sha256: over the file hashes decoding reads, the embedding's, the space, how each component is
    loaded and the process parameters (what the coded process depends on)."""
    core = {"files": record["files"], "embedding": record.get("embedding"), "space": record["space"],
            "load": record["load"], "process": record["process"]}
    return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def folder_of(record: dict[str, Any]) -> Path:
    return Path(record["path"])


def problems(record: dict[str, Any], rehash: bool = True) -> list[str]:
    """What is wrong with a registration: files missing or (``rehash``) changed since it was made, a registration
    edited by hand. Empty: the model is what was registered."""
    out = []
    if "problem" in record:
        return [record["problem"]]
    try:
        folder = folder_of(record)
        files = {folder / rel: sha for rel, sha in record["files"].items()}
        identity(record)
    except (KeyError, TypeError, AttributeError, ValueError):
        return [f"the registration {record_path(record['name'])} is malformed"]
    if record.get("embedding") is not None:
        files[embedding_path(record["name"])] = record["embedding"]
    for path, sha in files.items():
        if not path.is_file():
            out.append(f"{path} is missing")
        elif rehash and file_sha256(path) != sha:
            out.append(f"{path} changed since it was registered (sha256 {file_sha256(path)[:12]}..., registered "
                       f"{sha[:12]}...)")
    if identity(record) != record.get("sha256"):
        out.append(f"the registration {record_path(record['name'])} was edited")
    return out


def load_verified(name: str) -> dict[str, Any]:
    """The registration of ``name`` with every file it names re-hashed (ModelError naming what is wrong)."""
    record = get(name)
    wrong = problems(record)
    if wrong:
        raise ModelError(f"model {name!r} is not as registered: {wrong[0]}"
                         + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else "")
                         + f"; register it again with `diffcodec models add {name} --diffusers DIR --force`")
    return record


def check_header(name: str, model_sha: int) -> dict[str, Any]:
    """The registration a file names by ``name`` and sha256 prefix ``model_sha`` (before any weight is loaded):
    ModelError when it is not registered or is another model under that name."""
    try:
        record = get(name)
    except ModelError:
        raise _not_registered(name, model_sha) from None
    if artifacts.sha_prefix32(record["sha256"]) != model_sha:
        raise ModelError(f"file was coded with model {name!r} of sha256 prefix {model_sha:08x}, but the model "
                         f"registered as {name!r} is {record['sha256'][:8]} ({record['path']}); register the model "
                         f"that wrote it")
    return record


def load_embedding(record: dict[str, Any]):
    """The cached empty-prompt embedding (float32 torch tensor (1, L, D)), or None (pixel models)."""
    if record.get("embedding") is None:
        return None
    import torch
    from safetensors.numpy import load_file

    try:
        return torch.from_numpy(load_file(str(embedding_path(record["name"])))["embedding"])
    except Exception as e:  # safetensors raises several types for malformed files
        raise ModelError(f"cannot read {embedding_path(record['name'])}: {e}") from None


def add_diffusers(name: str, folder: str | Path, copy: bool = False, force: bool = False) -> dict[str, Any]:
    """Register the diffusers model in ``folder`` as ``name`` (``copy``: copy the files decoding reads into the
    registry; ``force``: replace a registration of that name). Returns the registration."""
    from diffcodec.diffusion.diffusers_adapter import FORMAT, inspect_folder, require_diffusers

    check_name(name)
    if record_path(name).is_file() and not force:
        raise UsageError(f"a model {name!r} is registered already ({record_path(name)}); --force replaces it")
    source = Path(folder).expanduser().resolve()
    found = inspect_folder(source)
    hashes = {rel: file_sha256(source / rel) for rel in found.files}
    registration = {rel: file_sha256(source / rel) for rel in found.registration_files}
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = source
    if copy:
        target = root / name
        if target == source:
            raise UsageError(f"{source} is the registry's own copy of {name!r}: add it without --copy")
        if target.exists():
            shutil.rmtree(target)
        for rel in found.files:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, target / rel)
        hashes = {rel: file_sha256(target / rel) for rel in found.files}
        if hashes != {rel: file_sha256(source / rel) for rel in found.files}:
            raise ModelError(f"copying {source} to {target} changed a file")
    embedding_sha = None
    if found.embedding is not None:
        atomic.save_safetensors({"embedding": found.embedding.numpy()}, embedding_path(name),
                                metadata={"prompt": "", "model": name})
        embedding_sha = file_sha256(embedding_path(name))
    else:
        atomic.remove_quietly(str(embedding_path(name)))
    record: dict[str, Any] = {
        "format": RECORD_FORMAT, "name": name, "kind": FORMAT, "space": found.space, "path": str(target),
        "source": str(source), "copied": copy, "files": hashes, "embedding": embedding_sha, "load": found.load,
        "process": found.process, "registration_files": registration, "notes": found.notes,
        "bytes": sum((target / rel).stat().st_size for rel in found.files),
        "registered_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "diffusers_version": require_diffusers().__version__,
    }
    record["sha256"] = identity(record)
    atomic.write_text(record_path(name), json.dumps(record, indent=2) + "\n")
    return record


def remove(name: str) -> dict[str, Any]:
    """Forget ``name``: its registration, its embedding and, if ``--copy`` made one, its copy (never the folder it
    was added from). Returns the registration that was removed."""
    path = record_path(check_name(name))
    if not path.is_file():
        raise UsageError(f"no model {name!r} is registered in {models_dir()}")
    try:
        record = get(name)
    except ModelError:
        record = {"name": name}
    if record.get("copied") and Path(record["path"]) == models_dir() / name:
        shutil.rmtree(models_dir() / name, ignore_errors=True)
    atomic.remove_quietly(str(embedding_path(name)))
    path.unlink()
    return record
