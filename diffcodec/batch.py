"""Dataset-scale coding (`diffcodec batch`): many files, one worker pool, a manifest, resumable.

Engine-independent parts live here: finding the inputs and mirroring their tree into the output folder
(:func:`plan`), the manifest (:class:`Manifest`: JSONL beside the outputs, one record per file), the rules for
what a re-run skips and what it codes again, and :class:`Worker`, which codes one file at a time with the codec
settings of a batch. A worker lives as long as its process (or Ray actor), so the model files its codec loads are
read and sha256-checked once, not once per file (the artifact caches are per process; ddcm still builds its networks
from the cached weights for each file). The engines only move jobs to workers and
records back: :func:`run_local` (this process, or a pool of processes) and :mod:`diffcodec.batch_ray` (Ray Data,
imported only when asked for).

Rules (docs/guide.md, "Many files: batch"):

- A file is skipped when the manifest's last record for it says ``ok``, its input still has the recorded
  sha256, and its output exists with the recorded sha256 (and metrics are there when asked for): checked, not
  assumed. Everything else (failed, missing, changed) is coded again.
- An output the batch did not write (no record, or a file changed since) is never replaced without ``--force``;
  when the new output is byte-identical to it (an output written just before an interruption, whose record was
  lost) it is adopted.
- One bad file is recorded (status ``failed``, its one-line error and that error's exit code) and the batch goes
  on; :class:`diffcodec.errors.BatchIncomplete` (exit 8) says at the end that not every file succeeded.
- Outputs are written by :mod:`diffcodec.atomic`; the manifest grows by whole, fsynced lines and is compacted
  (one line per file) atomically, so an interruption leaves complete outputs and a readable manifest.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import socket
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Any

from diffcodec import atomic
from diffcodec.errors import DiffcodecError, UnsupportedError, UsageError, read_failure, write_failure

MANIFEST = "manifest.jsonl"
LOCK = ".manifest.lock"
MANIFEST_FORMAT = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm")
CODED_SUFFIX = ".ddc"
IMAGE_FORMATS = {"png": "PNG", "webp": "WEBP", "tif": "TIFF", "bmp": "BMP", "ppm": "PPM"}   # lossless outputs
ENGINES = ("local", "ray")
_GLOB_CHARS = set("*?[")


# ----------------------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class BatchConfig:
    """What every file of a batch is coded with. ``params``: the method's encode options (without ``device``),
    or with ``decode`` the decode options. Only :meth:`settings` must match for a re-run to resume."""

    outdir: str
    decode: bool = False
    method: str = "opq"
    preset: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    quality: int | None = None
    max_bytes: int | None = None
    image_format: str = "png"
    keep_suffix: bool = False
    metrics: bool = False
    metrics_against: str | None = None
    max_pixels: int | None = None
    max_work: int | None = None
    device: str = "auto"
    force: bool = False

    def settings(self) -> dict[str, Any]:
        """The part of the configuration that decides the outputs: a manifest written with other settings is not
        resumed (the device, metrics and limits are left out: they do not change what a file is coded to)."""
        if self.decode:
            return {"mode": "decode", "options": _jsonable(self.params), "format": self.image_format,
                    "keep_suffix": self.keep_suffix}
        return {"mode": "encode", "method": self.method, "preset": self.preset, "params": _jsonable(self.params),
                "quality": self.quality, "max_bytes": self.max_bytes, "keep_suffix": self.keep_suffix}

    @property
    def wants_metrics(self) -> bool:
        return self.metrics or self.metrics_against is not None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> BatchConfig:
        return cls(**json.loads(text))

    def check(self) -> None:
        """Usage errors found before any file is touched: unknown method, preset or options, rate knobs that
        exclude each other, an unknown output format, a missing reference folder."""
        from diffcodec import api

        if self.image_format not in IMAGE_FORMATS:
            raise UsageError(f"--format {self.image_format}: use one of {', '.join(IMAGE_FORMATS)}")
        if self.decode:
            if self.preset or self.quality is not None or self.max_bytes is not None:
                raise UsageError("--decode takes no rate options (--preset, --quality, --size): the files say")
            if self.metrics_against is not None and not os.path.isdir(self.metrics_against):
                raise UsageError(f"--metrics-against {self.metrics_against}: no such folder")
            known = {name for cls in api.available().values() for name in cls.decode_options} - {"device"}
            unknown = sorted(set(self.params) - known)
            if unknown:
                raise UsageError(f"no method decodes with option(s) {', '.join(unknown)} (known: "
                                 f"{', '.join(sorted(known))})")
            return
        if self.metrics_against is not None:
            raise UsageError("--metrics-against applies to --decode (encoding compares with its input: --metrics)")
        codec = api.get_codec(self.method)
        if self.preset is not None and self.preset not in codec.presets:
            raise UsageError(f"unknown {self.method} preset {self.preset!r} (available: {', '.join(codec.presets)})")
        codec.check_encode_options(self.params)
        if self.quality is not None or self.max_bytes is not None:
            api.rate_request(self.method, self.preset, dict(self.params), quality=self.quality,
                             max_bytes=self.max_bytes, shape=(64, 64, 3))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


# ----------------------------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class Job:
    """One file: ``source`` (absolute path read), ``input`` (the path as found, for people), ``rel`` (its path
    under its root: the output tree mirrors it), ``output`` and ``reference`` (absolute; the reference is the
    original image a decoded file is compared with), ``prev`` (the manifest's last record of ``rel``, or None)."""

    source: str
    input: str
    rel: str
    output: str
    reference: str | None = None
    prev: dict[str, Any] | None = None


def read_list(stream: IO[str], name: str = "standard input") -> list[str]:
    """Paths of a file list, one a line (blank lines and lines starting with # are skipped)."""
    try:
        lines = stream.read().splitlines()
    except OSError as e:
        raise read_failure(name, e) from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _has_glob(path: str) -> bool:
    return any(c in _GLOB_CHARS for c in path)


def _glob_root(pattern: str) -> str:
    """The folder of a pattern's literal part: ``photos/*/a?.png`` -> ``photos``."""
    parts = Path(pattern).parts
    literal: list[str] = []
    for part in parts:
        if _has_glob(part):
            break
        literal.append(part)
    return str(Path(*literal)) if literal else "."


def _walk(folder: str, suffixes: tuple[str, ...], prune: set[str]) -> list[str]:
    """Files under ``folder`` with one of ``suffixes`` (any case), recursively; hidden files and folders and the
    folders in ``prune`` (real paths: the output folder) are left out."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.realpath(os.path.join(top, d)) not in prune)
        found += [os.path.join(top, f) for f in sorted(files)
                  if not f.startswith(".") and f.lower().endswith(suffixes) and os.path.isfile(os.path.join(top, f))]
    return found


def discover(inputs: Sequence[str], *, decode: bool, outdir: str,
             stdin: IO[str] | None = None) -> list[tuple[str, str]]:
    """(file, root) of every input, sorted by path under its root. Inputs: files, folders (recursive: images, or
    ``.ddc`` files with ``decode``), glob patterns (``**`` recurses) and ``-`` (a list of such paths on
    ``stdin``). A folder's files mirror under it; a pattern's under its literal folder; files named one by one
    (or in a list) under the deepest folder they share."""
    suffixes = (CODED_SUFFIX,) if decode else IMAGE_SUFFIXES
    prune = {os.path.realpath(outdir)}
    entries: list[str] = []
    for item in inputs:
        if item == "-":
            entries += read_list(stdin if stdin is not None else sys.stdin)
        else:
            entries.append(item)
    rooted: list[tuple[str, str]] = []
    loose: list[str] = []
    for item in entries:
        if os.path.isdir(item):
            rooted += [(f, item) for f in _walk(item, suffixes, prune)]
        elif os.path.lexists(item):
            loose.append(item)
        elif _has_glob(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise UsageError(f"{item}: no file matches")
            root = _glob_root(item)
            for m in matches:
                if os.path.isdir(m):
                    rooted += [(f, root) for f in _walk(m, suffixes, prune)]
                elif not os.path.realpath(m).startswith(tuple(p + os.sep for p in prune)):
                    rooted.append((m, root))
        else:
            raise UsageError(f"{item}: no such file or folder")
    if loose:
        parents = [os.path.dirname(os.path.abspath(f)) for f in loose]
        common = os.path.commonpath(parents)
        rooted += [(f, common) for f in loose]
    seen: dict[str, str] = {}
    out = []
    for f, root in rooted:
        real = os.path.realpath(f)
        if real not in seen:          # a file named twice (a folder and a pattern) is coded once
            seen[real] = f
            out.append((f, root))
    if not out:
        what = "'.ddc' files" if decode else f"images ({' '.join(IMAGE_SUFFIXES)})"
        raise UsageError(f"no {what} found in {', '.join(inputs)}")
    return out


def output_rel(rel: str, config: BatchConfig) -> str:
    """Where the output of ``rel`` goes under the output folder: ``a/b.png`` -> ``a/b.ddc`` (``--keep-suffix``:
    ``a/b.png.ddc``); decoding ``a/b.ddc`` (or ``a/b.png.ddc``) -> ``a/b.png`` (``--keep-suffix``:
    ``a/b.ddc.png``)."""
    p = PurePosixPath(rel)
    if not config.decode:
        return str(p.with_name(p.name + CODED_SUFFIX) if config.keep_suffix else p.with_suffix(CODED_SUFFIX))
    suffix = "." + config.image_format
    if config.keep_suffix:
        return str(p.with_name(p.name + suffix))
    if p.suffix.lower() == CODED_SUFFIX:
        p = p.with_suffix("")
    return str(p.with_suffix(suffix) if p.suffix.lower() in IMAGE_SUFFIXES else p.with_name(p.name + suffix))


def _reference(rel: str, folder: str) -> str | None:
    """The original of decoded ``rel`` in ``folder``: the same path without ``.ddc`` (``b.png.ddc`` -> ``b.png``),
    or that stem with any image suffix (``b.ddc`` -> ``b.png``, ``b.jpg``, ...)."""
    p = PurePosixPath(rel)
    if p.suffix.lower() == CODED_SUFFIX:
        p = p.with_suffix("")
    candidates = [p] + [p.with_name(p.name + s) for s in IMAGE_SUFFIXES] + [
        p.with_name(p.name + s.upper()) for s in IMAGE_SUFFIXES]
    for c in candidates:
        path = os.path.join(folder, *c.parts)
        if os.path.isfile(path):
            return os.path.abspath(path)
    return None


def plan(inputs: Sequence[str], config: BatchConfig, stdin: IO[str] | None = None) -> list[Job]:
    """The jobs of a batch, sorted by output path; two inputs that would write one output are a usage error."""
    jobs: dict[str, Job] = {}
    for f, root in discover(inputs, decode=config.decode, outdir=config.outdir, stdin=stdin):
        rel = Path(os.path.relpath(os.path.abspath(f), os.path.abspath(root))).as_posix()
        out_rel = output_rel(rel, config)
        job = Job(source=os.path.abspath(f), input=os.path.normpath(f), rel=rel,
                  output=os.path.abspath(os.path.join(config.outdir, *PurePosixPath(out_rel).parts)),
                  reference=None if config.metrics_against is None else _reference(rel, config.metrics_against))
        if out_rel in jobs:
            raise UsageError(f"{jobs[out_rel].input} and {job.input} would both be written to {out_rel} (rename one, "
                             f"or give --keep-suffix)")
        jobs[out_rel] = job
    return [jobs[k] for k in sorted(jobs)]


# ----------------------------------------------------------------------------------------------- the manifest

def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_manifest(path: str) -> tuple[dict | None, dict[str, dict], int]:
    """(header, last record per ``rel``, unreadable lines) of a manifest; (None, {}, 0) when there is none. A line
    cut short by a crash (or any line that is not a JSON object) is counted and left out."""
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return None, {}, 0
    except OSError as e:
        raise read_failure(path, e) from None
    header, records, bad = None, {}, 0
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if not isinstance(rec, dict):
            bad += 1
        elif rec.get("kind") == "batch" and header is None:
            header = rec
        elif rec.get("kind") == "file" and isinstance(rec.get("rel"), str):
            records[rec["rel"]] = rec
        else:
            bad += 1
    if header is None and (records or bad):
        raise UsageError(f"{path}: not a diffcodec batch manifest (move it away, or use another -o)")
    if header is not None and header.get("format") != MANIFEST_FORMAT:
        raise UnsupportedError(f"{path}: manifest format {header.get('format')!r}, this diffcodec writes "
                               f"{MANIFEST_FORMAT}")
    return header, records, bad


class Manifest:
    """The manifest of an output folder (``OUT/manifest.jsonl``): a header line (the settings, the command) and one
    line per file, appended (whole, fsynced) as files finish and compacted atomically to one line per file at the
    start and the end of a run. ``OUT/.manifest.lock`` keeps a second batch out of the folder while one runs."""

    def __init__(self, outdir: str, settings: dict[str, Any], *, force: bool = False, command: str = ""):
        self.path = os.path.join(outdir, MANIFEST)
        self._lock = atomic.lock_exclusive(os.path.join(outdir, LOCK),
                                           f"{outdir} is in use by another diffcodec batch")
        self._log: atomic.AppendLog | None = None
        try:
            header, records, self.unreadable = read_manifest(self.path)
            if header is not None and not force and _jsonable(header.get("settings")) != _jsonable(settings):
                raise UsageError(f"{self.path} was written with other settings "
                                 f"({_settings_diff(header.get('settings') or {}, _jsonable(settings))}): use another "
                                 f"-o, or --force to code every file again")
            self.records: dict[str, dict] = {} if force else records
            self.header = {"kind": "batch", "format": MANIFEST_FORMAT, "settings": _jsonable(settings),
                           "command": command, "created_utc": utc_now() if header is None or force else
                           header.get("created_utc"), "updated_utc": utc_now()}
            self.compact()
            self._log = atomic.AppendLog(self.path)
        except BaseException:
            atomic.unlock(self._lock)
            raise

    def add(self, record: dict[str, Any]) -> None:
        assert self._log is not None
        self.records[record["rel"]] = record
        self._log.append(json.dumps(record, sort_keys=True, allow_nan=False))

    def compact(self) -> None:
        lines = [json.dumps(self.header, sort_keys=True)]
        lines += [json.dumps(self.records[rel], sort_keys=True, allow_nan=False) for rel in sorted(self.records)]
        atomic.write_text(self.path, "\n".join(lines) + "\n")

    def close(self, compact: bool = True) -> None:
        try:
            if self._log is not None:
                self._log.close()
                self._log = None
                if compact:
                    self.header["updated_utc"] = utc_now()
                    self.compact()
        finally:
            atomic.unlock(self._lock)


def _settings_diff(before: dict, now: dict) -> str:
    keys = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    return "; ".join(f"{k} {json.dumps(before.get(k), sort_keys=True)} then, {json.dumps(now.get(k), sort_keys=True)} "
                     f"now" for k in keys)


# ----------------------------------------------------------------------------------------------- one file

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_path(path: str) -> str | None:
    """sha256 of a file, None when it is absent or unreadable."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def _finite(x: float | None) -> float | None:
    return None if x is None or x != x or x in (float("inf"), float("-inf")) else round(float(x), 4)


class Worker:
    """Codes the files of one batch, one at a time (:meth:`code`), with one codec constructed once: keep one per
    worker process or actor, so that the model files it reads stay cached for every later file."""

    def __init__(self, config: BatchConfig):
        from diffcodec import api

        self.config = config
        self.codec = None if config.decode else api.get_codec(config.method)
        self.where = f"{socket.gethostname()}:{os.getpid()}"

    def code(self, job: Job) -> dict[str, Any]:
        """The manifest record of ``job`` (``status`` ok or failed; ``skipped`` True when its earlier record was
        checked and still holds). Never raises for a bad file; interruptions (KeyboardInterrupt) pass through."""
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"kind": "file", "rel": job.rel, "input": job.input,
                               "output": os.path.relpath(job.output, self.config.outdir), "worker": self.where}
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                data = _read(job.source)
                rec["input_bytes"] = len(data)
                rec["input_sha256"] = sha256_bytes(data)
                if self._still_valid(job, rec["input_sha256"]):
                    assert job.prev is not None
                    return {**job.prev, "skipped": True}
                if os.path.lexists(job.output) and os.path.exists(job.output) and \
                        os.path.samefile(job.source, job.output):
                    raise UsageError(f"{job.output}: output would overwrite the input")
                out = self._decode(data, job, rec) if self.config.decode else self._encode(data, job, rec)
                rec["output_bytes"] = len(out)
                rec["output_sha256"] = sha256_bytes(out)
                if _publish(job.output, out, job.prev, self.config.force):
                    rec["adopted"] = True
            if caught:
                rec["warnings"] = sorted({str(w.message) for w in caught})
            rec.update(status="ok", error=None, exit_code=0)
        except DiffcodecError as e:
            rec.update(status="failed", error=str(e).splitlines()[0] if str(e) else type(e).__name__,
                       exit_code=e.exit_code)
        except Exception as e:          # a bug on one file must not stop a million-file batch: recorded, as exit 1
            rec.update(status="failed", error=f"internal error: {type(e).__name__}: {e}".splitlines()[0],
                       exit_code=1)
        rec["seconds"] = round(time.perf_counter() - t0, 4)
        rec["finished_utc"] = utc_now()
        return rec

    def _still_valid(self, job: Job, input_sha: str) -> bool:
        prev = job.prev
        if self.config.force or not prev or prev.get("status") != "ok":
            return False
        if prev.get("input_sha256") != input_sha or not prev.get("output_sha256"):
            return False
        if self.config.wants_metrics and not prev.get("metrics"):
            return False
        return sha256_path(job.output) == prev["output_sha256"]

    def _encode(self, data: bytes, job: Job, rec: dict) -> bytes:
        from diffcodec import api, images, metrics

        assert self.codec is not None
        cfg = self.config
        arr = images.image_from_bytes(data, job.input)
        params = dict(cfg.params)
        if self.codec.takes_device():
            params["device"] = cfg.device
        coded, recon = api.encode_with_reconstruction(arr, method=cfg.method, preset=cfg.preset, quality=cfg.quality,
                                                      max_bytes=cfg.max_bytes, **params)
        meta = api.info(coded)
        rec.update(width=meta["width"], height=meta["height"], bpp=round(meta["bpp"], 6),
                   setting=self.codec.coded_setting(meta["model"], meta["params"]))
        if cfg.metrics and recon is None:          # the method does not know its decoder's output: decode
            options: dict[str, Any] = {"device": cfg.device} if "device" in self.codec.decode_options else {}
            recon = api.decode(coded, **options)
        if recon is not None:
            original = arr.reshape(recon.shape)
            rec["psnr"] = _finite(metrics.psnr(original, recon))
            if cfg.metrics:
                rec["ms_ssim"] = _finite(metrics.ms_ssim(original, recon))
                rec["metrics"] = True
        return coded

    def _decode(self, data: bytes, job: Job, rec: dict) -> bytes:
        from diffcodec import api, images, metrics

        cfg = self.config
        c = api.read(data)
        if c.video is not None or c.header.frames > 1:
            raise UnsupportedError(f"{job.input}: a clip of {c.header.frames} frames; batch decodes images (decode "
                                   f"clips with `diffcodec decode`)")
        codec = api.codec_of(data)
        options = dict(cfg.params)
        if "device" in codec.decode_options:
            options["device"] = cfg.device
        pixels = api.decode(data, max_pixels=cfg.max_pixels, max_work=cfg.max_work, **options)
        h, w = pixels.shape[:2]
        meta = api.info(data)
        rec.update(width=w, height=h, bpp=round(len(data) * 8 / (h * w), 6), method=meta["method"],
                   setting=codec.coded_setting(meta["model"], meta["params"]))
        if cfg.metrics_against is not None:
            rec["reference"] = job.reference
            if job.reference is None:
                rec["metrics_note"] = f"no original of {job.rel} in {cfg.metrics_against}"
            else:
                original = images.image_from_bytes(_read(job.reference), job.reference)
                decoded = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
                if original.shape != decoded.shape:
                    rec["metrics_note"] = (f"original {job.reference} is {original.shape[1]}x{original.shape[0]}x"
                                           f"{original.shape[2]}, decoded {w}x{h}x{decoded.shape[2]}")
                else:
                    rec["psnr"] = _finite(metrics.psnr(original, decoded))
                    rec["ms_ssim"] = _finite(metrics.ms_ssim(original, decoded))
            rec["metrics"] = True
        return images.image_to_bytes(pixels, IMAGE_FORMATS[cfg.image_format])


def _read(path: str) -> bytes:
    from diffcodec import images

    return images.read_bytes(path)


def _publish(path: str, data: bytes, prev: dict | None, force: bool) -> bool:
    """Write ``data`` to ``path`` atomically. Without ``force`` an existing file is replaced only when it is this
    batch's (its sha256 is the one the manifest recorded); a file equal to ``data`` is kept (True: adopted)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    overwrite = force
    if not force and os.path.lexists(path):
        current = sha256_path(path)
        if current == sha256_bytes(data):
            return True
        if current is None or not prev or current != prev.get("output_sha256"):
            raise UsageError(f"{path}: already exists and is not what this batch wrote (use --force to replace it)")
        overwrite = True
    atomic.write_bytes(path, data, overwrite=overwrite)
    return False


# ----------------------------------------------------------------------------------------------- the local engine

Emit = Callable[[dict[str, Any]], None]
_WORKER: Worker | None = None
_BUSY = False
_STOPPING = False


def default_threads(workers: int) -> int:
    """torch threads per worker: OMP_NUM_THREADS when set, else this machine's CPUs shared among the workers."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def set_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _on_sigterm(signum, frame):
    global _STOPPING
    _STOPPING = True
    if not _BUSY:
        os._exit(128 + signum)
    raise KeyboardInterrupt     # inside a file: the atomic writer removes its temporary file on the way out


def _watch_parent(parent: int, every_s: float = 1.0) -> None:
    """SIGTERM this worker once its parent is gone (killed with SIGKILL, it could not stop the pool): the worker
    would otherwise wait on its job queue, or its stuck input, for ever. Polling the parent pid works on every
    POSIX system, where prctl(PR_SET_PDEATHSIG) is Linux's and tied to the thread that spawned the worker."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os.kill(os.getpid(), signal.SIGTERM)


def _init_pool_worker(config_json: str, threads: int) -> None:
    global _WORKER
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the parent's to handle: it stops the pool
    signal.signal(signal.SIGTERM, _on_sigterm)
    if os.name == "posix":
        threading.Thread(target=_watch_parent, args=(os.getppid(),), name="watch-parent", daemon=True).start()
    set_threads(threads)
    _WORKER = Worker(BatchConfig.from_json(config_json))


def _pool_code(job: dict[str, Any]) -> dict[str, Any]:
    global _BUSY
    assert _WORKER is not None
    if _STOPPING:
        os._exit(143)
    _BUSY = True
    try:
        return _WORKER.code(Job(**job))
    except KeyboardInterrupt:
        os._exit(143)
    finally:
        _BUSY = False


def _stop_pool(pool) -> None:
    """Stop a process pool now: pending files are dropped, running ones stopped (SIGTERM: their temporary
    files are removed), and the processes waited for."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        try:
            p.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    for p in processes:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()


def _died(job: Job, config: BatchConfig) -> dict[str, Any]:
    return {"kind": "file", "rel": job.rel, "input": job.input, "output": os.path.relpath(job.output, config.outdir),
            "worker": "local pool", "status": "failed",
            "error": "the worker process died while coding this file (killed, or out of memory?)",
            "exit_code": 1, "seconds": None, "finished_utc": utc_now()}


def _run_pool(todo: deque[Job], config: BatchConfig, emit: Emit, workers: int, threads: int) -> list[Job]:
    """Code the jobs of ``todo`` (taking them from its left) in a new pool of ``workers`` processes; [] when all
    are done, else (a worker died) the jobs that were running then, with the rest still in ``todo``."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")    # fork would copy torch's thread pools into the children
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_pool_worker,
                               initargs=(config.to_json(), threads))
    running: dict[Any, Job] = {}
    try:
        while todo or running:
            while todo and len(running) < 2 * workers:    # a few queued per worker, not the whole dataset
                job = todo.popleft()
                running[pool.submit(_pool_code, asdict(job))] = job
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    record = fut.result()
                except BrokenProcessPool:
                    lost = list(running.values())
                    pool.shutdown(wait=True, cancel_futures=True)
                    return lost
                del running[fut]
                emit(record)
        pool.shutdown(wait=True)
        return []
    except BaseException:
        _stop_pool(pool)
        raise


def run_local(jobs: Sequence[Job], config: BatchConfig, emit: Emit, workers: int = 1,
              threads: int | None = None) -> None:
    """Code ``jobs`` here: in this process (``workers`` = 1) or in a pool of ``workers`` processes (spawned, each
    with its own :class:`Worker`), calling ``emit(record)`` in this process as each file finishes. When a worker
    dies (killed, out of memory) the files it may have been coding are tried again one at a time, each alone in
    a new process; one that kills that too is recorded as failed, and the batch goes on."""
    if workers <= 1 or len(jobs) <= 1:
        if threads is not None:
            set_threads(threads)
        worker = Worker(config)
        for job in jobs:
            emit(worker.code(job))
        return
    workers = min(workers, len(jobs))
    threads = threads or default_threads(workers)
    todo = deque(jobs)
    while todo:
        for suspect in _run_pool(todo, config, emit, workers, threads):
            if _run_pool(deque([suspect]), config, emit, 1, threads):
                emit(_died(suspect, config))


# ----------------------------------------------------------------------------------------------- a whole batch

@dataclass
class Summary:
    """What a batch did; :meth:`as_dict` is the ``--json`` summary."""

    files: int = 0
    coded: int = 0
    skipped: int = 0
    failed: int = 0
    adopted: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    seconds: float = 0.0
    bpp: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ms_ssim: list[float] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    arrivals: list[float] = field(default_factory=list)     # seconds from the start at which coded files came back

    def add(self, record: dict[str, Any]) -> None:
        if record.get("status") != "ok":
            self.failed += 1
            if len(self.failures) < 100:
                self.failures.append({k: record.get(k) for k in ("input", "error", "exit_code")})
            return
        if record.get("skipped"):
            self.skipped += 1
        else:
            self.coded += 1
        self.adopted += bool(record.get("adopted"))
        self.input_bytes += record.get("input_bytes") or 0
        self.output_bytes += record.get("output_bytes") or 0
        for key in ("bpp", "psnr", "ms_ssim"):
            if record.get(key) is not None:
                getattr(self, key).append(record[key])

    def as_dict(self) -> dict[str, Any]:
        def mean(xs):
            return round(sum(xs) / len(xs), 4) if xs else None

        a = self.arrivals
        steady = (len(a) - 1) / (a[-1] - a[0]) if len(a) >= 2 and a[-1] > a[0] else None
        return {"files": self.files, "ok": self.coded + self.skipped, "coded": self.coded, "skipped": self.skipped,
                "adopted": self.adopted, "failed": self.failed, "input_bytes": self.input_bytes,
                "output_bytes": self.output_bytes, "mean_bpp": mean(self.bpp), "mean_psnr": mean(self.psnr),
                "mean_ms_ssim": mean(self.ms_ssim),
                "seconds": round(self.seconds, 3),
                "files_per_s": round(self.coded / self.seconds, 4) if self.seconds > 0 and self.coded else None,
                "first_file_s": round(a[0], 3) if a else None,
                "steady_files_per_s": None if steady is None else round(steady, 4),
                **self.info, "failures": self.failures}


def run(inputs: Sequence[str], config: BatchConfig, *, engine: str = "local", workers: int | None = None,
        threads: int | None = None, address: str | None = None, gpus_per_worker: float | None = None,
        command: str = "", stdin: IO[str] | None = None, show_progress: bool | None = None) -> dict[str, Any]:
    """Run a batch and return its summary (:meth:`Summary.as_dict`); usage errors come before any file is touched.
    Does not raise for failed files: the caller checks ``summary["failed"]`` (the CLI exits 8)."""
    from diffcodec import progress

    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r} (use {' or '.join(ENGINES)})")
    if address is not None and engine != "ray":
        raise UsageError("--address names a Ray cluster: give --engine ray")
    if workers is not None and workers < 1:
        raise UsageError(f"--jobs must be at least 1, got {workers}")
    config.check()
    if os.path.exists(config.outdir) and not os.path.isdir(config.outdir):
        raise UsageError(f"{config.outdir}: not a folder")
    jobs = plan(inputs, config, stdin=stdin)
    try:
        os.makedirs(config.outdir, exist_ok=True)
    except OSError as e:
        raise write_failure(config.outdir, e) from None
    manifest = Manifest(config.outdir, config.settings(), force=config.force, command=command)
    jobs = [replace(j, prev=manifest.records.get(j.rel)) for j in jobs]
    summary = Summary(files=len(jobs))
    summary.info = {"engine": engine, "outdir": config.outdir, "manifest": manifest.path}
    # workers (Ray actors on other machines too) see absolute paths only: their working folder is not ours
    against = config.metrics_against
    config = replace(config, outdir=os.path.abspath(config.outdir),
                     metrics_against=None if against is None else os.path.abspath(against))
    bar = progress.bar(total=len(jobs), unit="file", desc="batch", show=show_progress)

    def emit(record: dict[str, Any]) -> None:
        skipped = record.pop("skipped", False)
        if not skipped:
            manifest.add(record)
            summary.arrivals.append(time.perf_counter() - t0)
        summary.add({**record, "skipped": skipped})
        bar.update(1)
        if summary.failed:
            bar.set_postfix(failed=summary.failed, refresh=False)

    t0 = time.perf_counter()
    completed = False
    try:
        if engine == "local":
            n = min(workers or 1, len(jobs))
            summary.info.update(workers=n, threads=threads if n == 1 else threads or default_threads(n))
            run_local(jobs, config, emit, workers=n, threads=threads)
        else:
            from diffcodec import batch_ray

            summary.info.update(batch_ray.run(jobs, config, emit, workers=workers, threads=threads, address=address,
                                              gpus_per_worker=gpus_per_worker))
        completed = True
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t0
        manifest.close(compact=completed)
    return summary.as_dict()


def summary_line(s: dict[str, Any]) -> str:
    """One line for people: counts, bytes, means, throughput."""
    parts = [f"{s['files']} file(s): {s['coded']} coded, {s['skipped']} already done, {s['failed']} failed"]
    if s["ok"]:
        parts.append(f"{s['input_bytes']:,} -> {s['output_bytes']:,} bytes")
        means = [f"mean {s['mean_bpp']:.4f} bpp"] if s["mean_bpp"] is not None else []
        means += [f"PSNR {s['mean_psnr']:.2f} dB"] if s["mean_psnr"] is not None else []
        means += [f"MS-SSIM {s['mean_ms_ssim']:.4f}"] if s["mean_ms_ssim"] is not None else []
        if means:
            parts.append(", ".join(means))
    rate = f", {s['files_per_s']:.3f} files/s" if s["files_per_s"] else ""
    who = f"{s.get('workers')} {s['engine']} worker(s)" if s.get("workers") else s["engine"]
    parts.append(f"{s['seconds']:.1f} s{rate} ({who})")
    return "; ".join(parts) + f"; manifest {s['manifest']}"


def failed_lines(s: dict[str, Any], limit: int = 10) -> Iterable[str]:
    for f in s["failures"][:limit]:
        error = str(f["error"])
        named = f["input"] and error.startswith(str(f["input"]))
        yield f"failed: {error}" if named else f"failed: {f['input']}: {error}"
    if s["failed"] > limit:
        yield f"... and {s['failed'] - limit} more failure(s): see {s['manifest']}"
