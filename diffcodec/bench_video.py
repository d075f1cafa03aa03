"""Video benchmark (``diffcodec bench --video``): a method's intra clips against x264, x265 and SVT-AV1 at
matched total size, with PSNR-Y / PSNR-YUV / MS-SSIM / VMAF, speed, RD curves, BD-rates and an HTML report.

:func:`run_video_bench` takes a :class:`VideoBenchConfig` and, per clip:

1. **reference**: the clip is read once (:func:`diffcodec.video.open_video`) and written as ``ref.y4m`` into a
   work folder. For a Y4M source these are its own planes; for anything ffmpeg decodes (carphone's .mp4) the
   *decoded* frames are the reference. Everything (our encoder, the baselines, every metric) reads that file.
   The RGB ceiling of :mod:`diffcodec.clips` (planes -> RGB -> planes, the round trip every method's frames go
   through) is measured on it: PSNR-Y / PSNR-YUV of the round trip alone.
2. **ours**: per rate point (a preset, or a ``--kbps`` target through ``encode_clip(kbps=)``) one ``.ddc``
   clip (:func:`diffcodec.clips.encode_clip`), decoded (:func:`diffcodec.clips.decode_frames`) to ``.y4m``.
   ``encode_fps`` = frames / wall time of ``encode_clip`` (every rate-control pass, Y4M reading, YUV -> RGB and
   the encoder's own PSNR tracking included); ``decode_fps`` = frames / time spent inside ``decode_frames``.
3. **baselines** (:data:`BASELINES`): every configuration is encoded by the ffmpeg of imageio-ffmpeg (one
   thread) at the *highest quality whose total size is not larger than ours*: a bisection over the encoder's
   CRF grid (x264 / x265: 0..51 in steps of 0.25; SVT-AV1: integer 1..63), each probe a real encode whose file
   size is compared with the ``.ddc`` file's; a probe is never reused across configurations, but is reused
   across rate points of one clip. Sizes are raw elementary streams (Annex-B ``.264`` / ``.265``, AV1 ``.obu``),
   no container. When even the lowest quality is larger the row is flagged ``over_target``. Speed is ffmpeg's
   own ``-benchmark`` real time (``rtime``) of one encode at the chosen CRF / one decode to Y4M.
4. **BD anchor**: for BD-rate the anchor (x264 medium, keyint 1) is also encoded at *matched quality*: per rate
   point the largest CRF whose PSNR-Y is still >= ours (bisection again), so that the anchor curve covers our
   quality range; the anchor curve is the union of its size-matched and quality-matched points.
5. **metrics** per decoded file: per-frame PSNR of each plane (:func:`diffcodec.metrics.psnr_planes`) and
   PSNR-YUV = (6 Y + U + V) / 8, averaged over frames; MS-SSIM (5 scales) on the **Y plane** per frame, averaged
   (NaN for frames whose smaller side is <= 160 px: QCIF); VMAF from ffmpeg's ``libvmaf`` filter with its built-in
   model (vmaf_v0.6.1) at the native resolution, mean of per-frame scores (both inputs re-timed to
   ``pts = frame number`` so that frames pair one to one).
6. **outputs** (:func:`write_outputs`): results.csv, frames.csv (per-frame PSNR-Y / PSNR-YUV / VMAF),
   summary.json, summary.md, ``rd_<clip>_psnr_y.png`` / ``rd_<clip>_vmaf.png``, ``perframe_<clip>.png`` and
   report.html with one frame per clip side by side (``frames/``).

BD-rate (:func:`bd_rate`): Bjontegaard's average rate difference at equal quality, log-rate interpolated as a
function of quality by PCHIP (:func:`pchip_integral`, Fritsch-Carlson derivatives as ``scipy.interpolate.
PchipInterpolator``), integrated over the overlap of the two quality ranges; negative = fewer bits than the anchor.

Every file goes through :mod:`diffcodec.atomic`; the progress bar is :func:`diffcodec.progress.bar`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from diffcodec import atomic, progress
from diffcodec import bdrate as _bdrate
from diffcodec import metrics as _metrics
from diffcodec.bench_report import _CSS, _num, codec_style, csv_text, json_clean, rd_plot_png
from diffcodec.errors import DiffcodecError, UsageError

OURS = "diffcodec"
# What a run writes into its output folder (deleted first by --force, so a report lists this run's files only)
OUTPUT_PATTERNS = ("results.csv", "frames.csv", "summary.json", "summary.md", "report.html", "rd_*.png",
                   "perframe_*.png")


# ----------------------------------------------------------------------------------------------- baselines

@dataclass(frozen=True)
class Baseline:
    """One ffmpeg encoder configuration. ``grid``: its quality values, best quality first (CRF ascending)."""

    name: str
    encoder: str
    args: tuple[str, ...]
    fmt: str                        # ffmpeg muxer of the raw elementary stream
    ext: str
    grid: tuple[float, ...]
    gop: str                        # GOP and scene-cut settings, for the report
    decoder: str | None = None      # ffmpeg decoder (None: ffmpeg's default for the stream)
    role: str = "size-matched"      # "informative": not GOP-matched to ours

    def encode_args(self, q: float, threads: int, gop: int = 1) -> list[str]:
        qs = f"{q:g}"
        return ["-c:v", self.encoder, *self.args_for(threads, gop), "-crf", qs]

    def args_for(self, threads: int, gop: int = 1) -> list[str]:
        return [a.replace("{threads}", str(threads)).replace("{gop}", str(gop)) for a in self.args]

    def describe(self, threads: int, gop: int = 1) -> dict[str, Any]:
        return {"encoder": self.encoder, "ffmpeg_args": shlex.join(["-c:v", self.encoder, *self.args_for(threads, gop),
                                                                     "-crf", "Q"]),
                "stream": f"raw {self.fmt} ({self.ext})", "gop": self.gop, "role": self.role,
                "quality_grid": f"CRF {self.grid[0]:g}..{self.grid[-1]:g} "
                                f"(step {self.grid[1] - self.grid[0]:g})"}


_CRF_264 = tuple(float(x) for x in np.arange(0, 51.001, 0.25))
# GOP-matched to our clip: a keyframe every {gop} frames (1: all intra), P-frames only, no scene cuts
_GOP_264 = ("-g", "{gop}", "-keyint_min", "{gop}", "-sc_threshold", "0", "-bf", "0")

BASELINES: dict[str, Baseline] = {
    "x264-medium": Baseline(
        "x264-medium", "libx264", ("-preset", "medium", *_GOP_264, "-threads", "{threads}"), "h264", ".264",
        _CRF_264, "keyint = our GOP (1: every frame an IDR), scene-cut off, no B-frames: matched to our clips"),
    "x264-veryslow-psnr": Baseline(
        "x264-veryslow-psnr", "libx264", ("-preset", "veryslow", "-tune", "psnr", *_GOP_264,
                                          "-threads", "{threads}"), "h264", ".264",
        _CRF_264, "keyint = our GOP, scene-cut off, no B-frames"),
    "x265-medium": Baseline(
        "x265-medium", "libx265", ("-preset", "medium", "-x265-params",
                                   "keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:info=0:pools={threads}:"
                                   "frame-threads=1:log-level=error"),
        "hevc", ".265", _CRF_264, "keyint = min-keyint = our GOP, scene-cut off, no B-frames; info=0 (no settings "
                                  "SEI, which x265 repeats at every keyframe)"),
    "svtav1-p8": Baseline(
        "svtav1-p8", "libsvtav1", ("-preset", "8", "-svtav1-params", "keyint={gop}:scd=0:lp={threads}"), "obu",
        ".obu", tuple(float(x) for x in range(1, 64)),
        "keyint = our GOP (1: SVT-AV1's 'all intra' prediction structure; above 1 its default random-access "
        "structure, which has B-frames), scene detection off", decoder="libdav1d"),
    "x264-medium-gop": Baseline(
        "x264-medium-gop", "libx264", ("-preset", "medium", "-threads", "{threads}"), "h264", ".264", _CRF_264,
        "x264 defaults: keyint 250, scene-cut 40, 3 B-frames (inter coding; NOT matched to our intra clips)",
        role="informative"),
}
ALIASES = {"h264": ["x264-medium", "x264-veryslow-psnr"], "h265": ["x265-medium"], "av1": ["svtav1-p8"],
           "h264-gop": ["x264-medium-gop"]}
DEFAULT_BASELINES = ("h264", "h265", "av1")
BD_ANCHOR = "x264-medium"


def resolve_baselines(names: Sequence[str]) -> list[str]:
    """Baseline configuration names for ``--vs`` values (aliases h264 / h265 / av1 / h264-gop, or a name)."""
    out: list[str] = []
    for n in names:
        key = n.lower()
        found = ALIASES.get(key, [key] if key in BASELINES else None)
        if found is None:
            raise UsageError(f"unknown video baseline {n!r} (use {', '.join(ALIASES)} or one of "
                             f"{', '.join(BASELINES)})")
        out += [f for f in found if f not in out]
    return out


# ----------------------------------------------------------------------------------------------- BD-rate

# PCHIP (monotone piecewise-cubic) interpolation and its exact integral: one implementation, diffcodec.bdrate
pchip_slopes, pchip_integral = _bdrate.pchip_slopes, _bdrate.pchip_integral


def _curve(rates: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """(quality, ln rate) sorted by quality, equal qualities merged, non-finite points dropped."""
    pts = sorted((float(q), float(r)) for r, q in zip(rates, quality)
                 if r is not None and q is not None and r > 0 and math.isfinite(r) and math.isfinite(q))
    merged: dict[float, list[float]] = {}
    for q, r in pts:
        merged.setdefault(q, []).append(math.log(r))
    if len(merged) < 2:
        return None
    qs = np.array(sorted(merged))
    return qs, np.array([float(np.mean(merged[q])) for q in qs])


def _structure(summary: dict[str, Any]) -> str:
    gop = summary.get("gop", 1)
    return "intra" if gop == 1 else f"keyframe every {gop} frames, P-frames between"


def bd_rate(anchor_rates: Sequence[float], anchor_quality: Sequence[float], test_rates: Sequence[float],
            test_quality: Sequence[float]) -> dict[str, Any] | None:
    """Bjontegaard delta rate of the test curve against the anchor, in percent (negative: the test needs fewer
    bits for the same quality): ln rate as a PCHIP function of quality, the mean difference over the overlap of
    the two quality ranges, exp(mean) - 1. None when a curve has fewer than 2 points or the ranges do not overlap."""
    a, t = _curve(anchor_rates, anchor_quality), _curve(test_rates, test_quality)
    if a is None or t is None:
        return None
    lo, hi = max(a[0][0], t[0][0]), min(a[0][-1], t[0][-1])
    if not hi > lo:
        return None
    ia = pchip_integral(a[0], a[1], lo, hi)
    it = pchip_integral(t[0], t[1], lo, hi)
    diff = (it - ia) / (hi - lo)
    return {"bd_rate_pct": float((math.exp(diff) - 1) * 100), "quality_range": [float(lo), float(hi)],
            "anchor_points": int(len(a[0])), "test_points": int(len(t[0]))}


# ----------------------------------------------------------------------------------------------- configuration

@dataclass
class VideoBenchConfig:
    """What ``diffcodec bench --video`` runs. Rate points: every preset in ``presets`` and every target in
    ``kbps`` (``presets`` empty and no ``kbps``: all the method's presets)."""

    clips: Sequence[str | os.PathLike]
    method: str
    outdir: str | os.PathLike
    presets: Sequence[str] = ()
    kbps: Sequence[float] = ()
    baselines: Sequence[str] = DEFAULT_BASELINES
    encode_params: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    threads: int = 1
    gop: int | None = None                  # our clips' keyframe interval (None: the method's default)
    max_frames: int | None = None
    vmaf: bool = True
    report_point: int | None = None        # index of the rate point for the per-frame plot and the frame strip
    keep_work: bool = False
    command: str | Sequence[str] | None = None
    quiet: bool = False
    force: bool = False                     # replace an earlier run's files in outdir (else it must be empty)

    def __post_init__(self) -> None:
        self.clips = [str(c) for c in self.clips]
        self.outdir = Path(self.outdir)
        self.presets, self.kbps = list(self.presets or ()), [float(k) for k in (self.kbps or ())]
        self.baselines = resolve_baselines(self.baselines or ())
        self.encode_params = dict(self.encode_params or {})

    def check(self) -> None:
        if not self.clips:
            raise UsageError("no clips to benchmark")
        for c in self.clips:
            if not Path(c).is_file():
                raise UsageError(f"no such clip: {c!r}")
        names = [clip_name(c) for c in self.clips]
        if len(set(names)) != len(names):
            raise UsageError(f"clips must have different names: {', '.join(names)}")
        for k in self.kbps:
            if not k > 0:
                raise UsageError(f"--kbps targets must be positive, got {k:g}")
        if self.threads < 1:
            raise UsageError("threads must be >= 1")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError("--max-frames must be >= 1")
        if self.gop is not None and self.gop < 1:
            raise UsageError("--gop must be >= 1")
        if not self.force:
            from diffcodec.bench import prepare_outdir

            prepare_outdir(Path(self.outdir), False, (), ())

    @property
    def resolved_gop(self) -> int:
        from diffcodec.methods import get_codec

        return get_codec(self.method).default_gop if self.gop is None else self.gop


def clip_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem) or "clip"


@dataclass(frozen=True)
class RatePoint:
    label: str
    preset: str | None = None
    kbps: float | None = None


def rate_points(config: VideoBenchConfig, codec: Any) -> list[RatePoint]:
    presets = list(config.presets)
    unknown = [p for p in presets if p not in codec.presets]
    if unknown:
        raise UsageError(f"unknown preset(s) {', '.join(map(repr, unknown))} for method {config.method!r} "
                         f"(available: {', '.join(codec.presets)})")
    if not presets and not config.kbps:
        presets = list(codec.presets)
    from diffcodec.bench import resolved_setting

    params = dict(config.encode_params)
    if presets and params and codec.params_override_preset(params):
        presets = [None]            # the parameters fix the rate: one point at the codec's default preset
    pts, seen = [], set()
    for p in presets:               # labelled as the codec resolves them; points it resolves alike run once
        key, label = resolved_setting(codec, p, params)
        if key not in seen:
            seen.add(key)
            pts.append(RatePoint(label, preset=p))
    extra = " ".join(f"{k}={v}" for k, v in params.items())
    pts += [RatePoint(f"{k:g}kbps" + (f" {extra}" if extra else ""), kbps=k) for k in config.kbps]
    return pts


# ----------------------------------------------------------------------------------------------- ffmpeg

def _ffmpeg() -> str:
    from diffcodec.video import ffmpeg_exe

    return ffmpeg_exe()


def _run_ffmpeg(args: list[str], cwd: Path) -> tuple[str, float | None]:
    """Run ffmpeg with ``-benchmark``; (stderr, its real time in seconds)."""
    cmd = [_ffmpeg(), "-hide_banner", "-nostats", "-benchmark", "-y", *args]
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        raise DiffcodecError(f"ffmpeg failed ({shlex.join(args[:12])} ...): {lines[-1] if lines else p.returncode}")
    m = re.findall(r"bench: utime=[\d.]+s stime=[\d.]+s rtime=([\d.]+)s", p.stderr)
    return p.stderr, float(m[-1]) if m else None


@dataclass
class Probe:
    q: float
    path: Path
    bytes: int
    encode_s: float | None
    psnr_y: float | None = None


class BaselineRunner:
    """Encodes one clip with one configuration at quality values on demand, once each."""

    def __init__(self, b: Baseline, work: Path, ref: str, info: Any, threads: int, gop: int = 1):
        self.b, self.work, self.ref, self.info, self.threads, self.gop = b, work, ref, info, threads, gop
        self.probes: dict[float, Probe] = {}
        self.encodes = 0

    def probe(self, q: float) -> Probe:
        if q not in self.probes:
            out = f"{self.b.name}_q{q:g}{self.b.ext}"
            args = ["-i", self.ref, *self.b.encode_args(q, self.threads, self.gop), "-f", self.b.fmt, out]
            _, rtime = _run_ffmpeg(args, self.work)
            self.encodes += 1
            self.probes[q] = Probe(q, self.work / out, (self.work / out).stat().st_size, rtime)
        return self.probes[q]

    def decode(self, p: Probe, suffix: str = ".dec.y4m") -> tuple[Path, float | None]:
        out = p.path.with_suffix(suffix)
        num, den = self.info.fps
        pre = ["-c:v", self.b.decoder] if self.b.decoder else []
        _, rtime = _run_ffmpeg(["-threads", str(self.threads), *pre, "-r", f"{num}/{den}", "-i", p.path.name,
                                "-fps_mode", "passthrough", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe",
                                out.name], self.work)
        return out, rtime

    def psnr_y(self, p: Probe) -> float:
        if p.psnr_y is None:
            # its own file: the probe may be a size-matched row's, whose decode the frame strip still needs
            dec, _ = self.decode(p, ".psnr.y4m")
            p.psnr_y = psnr_only(self.ref_path, dec)
            os.unlink(dec)
        return p.psnr_y

    @property
    def ref_path(self) -> Path:
        return self.work / self.ref

    def search(self, ok: Callable[[Probe], bool]) -> tuple[Probe, bool]:
        """The best-quality grid point (lowest index) for which ``ok`` holds, by bisection (``ok`` assumed
        monotone: false at the best qualities, true from some point on); (probe, True) if none holds: the
        last grid point, flagged."""
        g = self.b.grid
        hi = len(g) - 1
        if not ok(self.probe(g[hi])):
            return self.probes[g[hi]], True
        lo = -1                               # index known (or assumed) not ok; -1 = before the grid
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(self.probe(g[mid])):
                hi = mid
            else:
                lo = mid
        return self.probes[g[hi]], False


# ----------------------------------------------------------------------------------------------- metrics

def psnr_only(ref: Path | str, dist: Path | str) -> float:
    from diffcodec import video

    vals = []
    with video.open_video(str(ref)) as a, video.open_video(str(dist)) as b:
        for fa, fb in zip(a, b):
            vals.append(_metrics.psnr_planes(fa.planes, fb.planes)["y"])
    return float(np.mean(vals))


def vmaf_scores(ref: Path, dist: Path, work: Path, threads: int) -> list[float]:
    """Per-frame VMAF of ``dist`` against ``ref`` (ffmpeg libvmaf, built-in model, native resolution)."""
    log = f"vmaf_{dist.stem}.json"
    graph = (f"[0:v]settb=1/25,setpts=N[d];[1:v]settb=1/25,setpts=N[r];"
             f"[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads={threads}")
    _run_ffmpeg(["-i", dist.name if dist.parent == work else str(dist),
                 "-i", ref.name if ref.parent == work else str(ref), "-lavfi", graph, "-f", "null", "-"], work)
    data = json.loads((work / log).read_text())
    os.unlink(work / log)
    return [float(f["metrics"]["vmaf"]) for f in data["frames"]]


def measure_file(ref: Path, dist: Path, work: Path, threads: int, want_vmaf: bool) -> dict[str, Any]:
    """Per-frame and mean PSNR (Y, U, V, YUV), MS-SSIM of Y, flicker of Y (:func:`metrics.flicker`) and VMAF
    of ``dist`` against ``ref``."""
    from diffcodec import video

    per: dict[str, list[float]] = {"psnr_y": [], "psnr_u": [], "psnr_v": [], "psnr_yuv": [], "ms_ssim_y": [],
                                   "flicker_y": []}
    prev = None
    with video.open_video(str(ref)) as a, video.open_video(str(dist)) as b:
        for fa, fb in zip(a, b):
            per["flicker_y"].append(float("nan") if prev is None else
                                    _metrics.flicker(prev[0], fa.planes[0], prev[1], fb.planes[0]))
            prev = (fa.planes[0], fb.planes[0])
            p = _metrics.psnr_planes(fa.planes, fb.planes)
            for k in ("y", "u", "v", "yuv"):
                if k in p:
                    per[f"psnr_{k}"].append(p[k])
            y0, y1 = fa.planes[0], fb.planes[0]
            per["ms_ssim_y"].append(_metrics.ms_ssim(y0, y1) if min(y0.shape) >= _metrics.MS_SSIM_MIN_SIDE
                                    else float("nan"))
        frames_ref = a.position
    n = len(per["psnr_y"])
    if n == 0 or n != frames_ref:
        raise DiffcodecError(f"{dist.name}: {n} decoded frames against {frames_ref} reference frames")
    if want_vmaf:
        per["vmaf"] = vmaf_scores(ref, dist, work, threads)
        if len(per["vmaf"]) != n:
            raise DiffcodecError(f"{dist.name}: VMAF scored {len(per['vmaf'])} of {n} frames")
    out: dict[str, Any] = {"frames": n, "per_frame": per}
    for k, v in per.items():
        vals = [x for x in v if not math.isnan(x)]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def rgb_ceiling(info: Any, frames: Sequence[tuple[np.ndarray, ...]] | None = None,
                pairs: list[dict[str, float]] | None = None) -> dict[str, float]:
    """Mean PSNR-Y / PSNR-YUV of the RGB round trip (:func:`yuv.planes_to_rgb` then :func:`yuv.rgb_to_planes`)
    that every frame of a clip goes through: the best any method coding RGB can reach."""
    from diffcodec import yuv

    vals = list(pairs or [])
    for planes in frames or ():
        back = yuv.rgb_to_planes(yuv.planes_to_rgb(planes, info), info.chroma, matrix=info.matrix,
                                 color_range=info.range)
        vals.append(_metrics.psnr_planes(planes, back))
    return {"psnr_y": float(np.mean([v["y"] for v in vals])), "psnr_yuv": float(np.mean([v["yuv"] for v in vals]))}


# ----------------------------------------------------------------------------------------------- the run

def _fps(frames: int, seconds: float | None) -> float | None:
    return frames / seconds if seconds else None


class ClipRun:
    """One clip of the benchmark: its reference, our files, the baselines, the rows."""

    def __init__(self, config: VideoBenchConfig, path: str, work: Path):
        self.config, self.path, self.name, self.work = config, path, clip_name(path), work
        self.rows: list[dict[str, Any]] = []
        self.frame_rows: list[dict[str, Any]] = []
        self.decoded: dict[tuple[str, str], Path] = {}    # (codec, matched_to / setting) -> decoded .y4m

    # -- 1. reference
    def write_reference(self) -> None:
        from diffcodec import video, yuv

        ref = self.work / "ref.y4m"
        pairs = []
        with video.open_video(self.path) as reader:
            info = reader.info
            if info.chroma != "420":
                raise UsageError(f"{self.path}: the video benchmark takes 4:2:0 clips (this one is {info.chroma})")
            n = 0
            with video.open_writer(str(ref), replace(info, frames=None), force=True) as w:
                for frame in reader:
                    if self.config.max_frames is not None and n >= self.config.max_frames:
                        break
                    w.write(frame.planes)
                    back = yuv.rgb_to_planes(yuv.planes_to_rgb(frame.planes, info), info.chroma,
                                             matrix=info.matrix, color_range=info.range)
                    pairs.append(_metrics.psnr_planes(frame.planes, back))
                    n += 1
        if n == 0:
            raise UsageError(f"{self.path}: no frames")
        with video.open_video(str(ref)) as r:
            self.info = r.info
        self.frames = n
        self.ceiling = rgb_ceiling(self.info, pairs=pairs)
        self.source_kind = ("source Y4M planes" if self.path.lower().endswith(".y4m")
                            else "frames decoded from the source by ffmpeg")

    def row(self, codec: str, setting: str, nbytes: int, role: str, matched_to: str = "") -> dict[str, Any]:
        i = self.info
        return {"clip": self.name, "codec": codec, "setting": setting, "role": role, "matched_to": matched_to,
                "frames": self.frames, "width": i.width, "height": i.height, "fps": i.fps_float, "bytes": nbytes,
                "kbps": nbytes * 8 * i.fps_float / self.frames / 1000,
                "bpp": nbytes * 8 / (self.frames * i.width * i.height)}

    def add_metrics(self, row: dict[str, Any], dec: Path) -> dict[str, Any]:
        m = measure_file(self.work / "ref.y4m", dec, self.work, self.config.threads, self.config.vmaf)
        for k in ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ms_ssim_y", "flicker_y", "vmaf"):
            row[k] = m.get(k)
        per = m["per_frame"]
        for f in range(m["frames"]):
            self.frame_rows.append({"clip": self.name, "codec": row["codec"], "setting": row["setting"],
                                    "role": row["role"], "matched_to": row.get("matched_to"), "frame": f,
                                    "psnr_y": per["psnr_y"][f],
                                    "psnr_yuv": per["psnr_yuv"][f], "flicker_y": per["flicker_y"][f],
                                    "vmaf": per["vmaf"][f] if "vmaf" in per else None})
        return row

    # -- 2. ours
    def run_ours(self, point: RatePoint, codec: Any) -> dict[str, Any] | None:
        from diffcodec import clips, container, video

        cfg = self.config
        ddc = self.work / f"ours_{re.sub(r'[^A-Za-z0-9._-]+', '_', point.label)}.ddc"
        params = dict(cfg.encode_params)
        if codec.takes_device():
            params["device"] = cfg.device
        t0 = time.perf_counter()
        try:
            with video.open_video(str(self.work / "ref.y4m")) as reader:
                summary = clips.encode_clip(reader, lambda w: atomic.write_with(ddc, w), cfg.method, point.preset,
                                            kbps=point.kbps, gop=cfg.resolved_gop, **params)
        except UsageError as e:
            row = self.row(OURS, point.label, 0, "ours")
            row.update(error=str(e))
            self.rows.append(row)
            return None
        enc_s = time.perf_counter() - t0
        dec_path = ddc.with_suffix(".dec.y4m")
        dec_s = 0.0
        with open(ddc, "rb") as f:
            stream = container.StreamReader(f)
            vinfo = clips.clip_video_info(stream)
            h = stream.header
            assert h is not None
            coded = codec.coded_setting(h.model, h.params)       # what the file says it was coded with
            with video.open_writer(str(dec_path), vinfo, force=True) as w:
                it = clips.decode_frames(stream, **({"device": cfg.device} if "device" in codec.decode_options
                                                    else {}))
                while True:
                    t1 = time.perf_counter()
                    try:
                        _, planes = next(it)
                    except StopIteration:
                        break
                    dec_s += time.perf_counter() - t1
                    w.write(planes)
        with open(ddc, "rb") as f:                   # frame 0's mode (e.g. ddcm's base layer), from the file
            first = next(container.StreamReader(f).frames())[1]
        mode = codec.describe(h.params, [first]).get("summary")
        nbytes = ddc.stat().st_size
        row = self.row(OURS, point.label, nbytes, "ours")
        row.update(encode_s=enc_s, decode_s=dec_s, encode_fps=_fps(self.frames, enc_s),
                   decode_fps=_fps(self.frames, dec_s), passes=summary.get("attempts"),
                   target_kbps=point.kbps, coded=coded, mode=mode)
        self.add_metrics(row, dec_path)
        self.rows.append(row)
        self.decoded[(OURS, point.label)] = dec_path
        return row

    # -- 3. baselines at matched size, 4. BD anchor at matched quality
    def baseline_row(self, runner: BaselineRunner, probe: Probe, over: bool, role: str, matched_to: str,
                     target_bytes: int | None) -> dict[str, Any]:
        dec, dec_s = runner.decode(probe)
        row = self.row(runner.b.name, f"crf={probe.q:g}", probe.bytes, role, matched_to)
        row.update(quality=probe.q, target_bytes=target_bytes, over_target=over,
                   encode_s=probe.encode_s, decode_s=dec_s, encode_fps=_fps(self.frames, probe.encode_s),
                   decode_fps=_fps(self.frames, dec_s), search_encodes=runner.encodes)
        self.add_metrics(row, dec)
        self.rows.append(row)
        self.decoded[(runner.b.name, matched_to)] = dec
        return row


def run_clip(config: VideoBenchConfig, path: str, codec: Any, points: list[RatePoint], work: Path,
             bar: Any) -> ClipRun:
    run = ClipRun(config, path, work)
    bar.set_postfix_str(f"{run.name}: reference")
    run.write_reference()
    runners = {n: BaselineRunner(BASELINES[n], work, "ref.y4m", run.info, config.threads, config.resolved_gop)
               for n in config.baselines}
    anchor = runners.get(BD_ANCHOR)
    for point in points:
        bar.set_postfix_str(f"{run.name} {point.label}")
        ours = run.run_ours(point, codec)
        if ours is not None:
            target = ours["bytes"]
            for name, runner in runners.items():
                bar.set_postfix_str(f"{run.name} {point.label} {name}")
                probe, over = runner.search(lambda p, t=target: p.bytes <= t)
                run.baseline_row(runner, probe, over, runner.b.role, point.label, target)
            if anchor is not None:
                bar.set_postfix_str(f"{run.name} {point.label} {BD_ANCHOR} at our PSNR-Y")
                goal = ours["psnr_y"]
                # the largest CRF whose PSNR-Y is still >= ours: the grid reversed (low quality first)
                probe, over = _search_quality(anchor, goal)
                run.baseline_row(anchor, probe, over, "quality-matched", f"psnr@{point.label}", None)
        bar.update()
    return run


def _search_quality(runner: BaselineRunner, goal: float) -> tuple[Probe, bool]:
    """The largest grid value (lowest rate) whose PSNR-Y is >= ``goal``; (best-quality probe, True) if none."""
    g = runner.b.grid
    if runner.psnr_y(runner.probe(g[-1])) >= goal:
        return runner.probes[g[-1]], False
    lo, hi = 0, len(g) - 1                     # hi: known below goal; lo: assumed >= goal
    if runner.psnr_y(runner.probe(g[lo])) < goal:
        return runner.probes[g[lo]], True
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if runner.psnr_y(runner.probe(g[mid])) >= goal:
            lo = mid
        else:
            hi = mid
    return runner.probes[g[lo]], False


# ----------------------------------------------------------------------------------------------- summary

RESULT_COLUMNS = [
    "clip", "codec", "setting", "role", "matched_to", "bytes", "target_bytes", "over_target", "kbps", "bpp",
    "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ms_ssim_y", "flicker_y", "vmaf", "encode_fps", "decode_fps", "encode_s",
    "decode_s", "quality", "search_encodes", "passes", "target_kbps", "coded", "mode", "frames", "width", "height",
    "fps", "error",
]
FRAME_COLUMNS = ["clip", "codec", "setting", "role", "matched_to", "frame", "psnr_y", "psnr_yuv", "flicker_y",
                 "vmaf"]


def bd_rates(rows: list[dict[str, Any]], clip: str, anchor: str = BD_ANCHOR) -> list[dict[str, Any]]:
    """BD-rate of ours against ``anchor`` (its size- and quality-matched points) and against every other
    configuration (its size-matched points), on PSNR-Y, PSNR-YUV and VMAF."""
    mine = [r for r in rows if r["clip"] == clip and r["codec"] == OURS and not r.get("error")]
    out = []
    for name in dict.fromkeys(r["codec"] for r in rows if r["clip"] == clip and r["codec"] != OURS):
        theirs = [r for r in rows if r["clip"] == clip and r["codec"] == name]
        entry: dict[str, Any] = {"clip": clip, "anchor": name, "our_points": len(mine),
                                 "anchor_points": len(theirs)}
        for metric in ("psnr_y", "psnr_yuv", "vmaf"):
            res = bd_rate([r["kbps"] for r in theirs], [r.get(metric) for r in theirs],
                          [r["kbps"] for r in mine], [r.get(metric) for r in mine])
            entry[metric] = res
        out.append(entry)
    return out


def _group_summary(rows: list[dict[str, Any]], clip: str) -> list[dict[str, Any]]:
    """Curves for the RD plots: one entry per row with mean_kbps / psnr_y / vmaf (bench_report's plot keys)."""
    out = []
    for r in rows:
        if r["clip"] != clip or r.get("error"):
            continue
        out.append({"codec": r["codec"], "setting": r["setting"], "mean_kbps": r["kbps"],
                    "psnr_y": r.get("psnr_y"), "vmaf": r.get("vmaf")})
    return out


def perframe_png(frame_rows: list[dict[str, Any]], clip: str, matched_to: str, our_label: str) -> bytes:
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.2), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    series: dict[str, list[tuple[int, float]]] = {}
    for r in frame_rows:
        if r["clip"] != clip:
            continue
        if r["codec"] == OURS and r["setting"] == our_label:
            key = f"{OURS} {our_label}"
        elif r["codec"] != OURS and r.get("matched_to") == matched_to:
            key = f"{r['codec']} {r['setting']}"
        else:
            continue
        series.setdefault(key, []).append((r["frame"], r["psnr_y"]))
    for key, pts in series.items():
        style = codec_style(OURS if key.startswith(OURS + " ") else key.split(" ", 1)[0])
        style.update(marker=None, linewidth=2.0 if key.startswith(OURS) else 1.2)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=key, **style)
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR-Y [dB]")
    ax.set_title(f"{clip}: per-frame PSNR-Y, baselines at the size of {our_label}", fontsize=9)
    ax.grid(True, alpha=0.4)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _md_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| codec | setting | matched to | kbps | PSNR-Y | PSNR-YUV | MS-SSIM (Y) | VMAF | enc fps | dec fps "
             "| over target |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['codec']} | {r['setting']} | | failed: {r['error']} | | | | | | | |")
            continue
        lines.append(f"| {r['codec']} | {r['setting']} | {r.get('matched_to') or ''} | {_num(r['kbps'], '.1f')} | "
                     f"{_num(r.get('psnr_y'), '.2f')} | {_num(r.get('psnr_yuv'), '.2f')} | "
                     f"{_num(r.get('ms_ssim_y'), '.4f')} | {_num(r.get('vmaf'), '.2f')} | "
                     f"{_num(r.get('encode_fps'), '.1f')} | {_num(r.get('decode_fps'), '.1f')} | "
                     f"{'yes' if r.get('over_target') else ''} |")
    return lines


def _bd_text(res: dict | None) -> str:
    if res is None:
        return "n/a (no overlap)"
    lo, hi = res["quality_range"]
    return f"{res['bd_rate_pct']:+.1f}% [{lo:.1f}-{hi:.1f}]"


def format_markdown(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [f"# Video benchmark: {summary['method']} ({_structure(summary)}) vs {', '.join(summary['baselines'])}", "",
             f"Date (UTC) {summary['date_utc']}; threads {summary['threads']}; command: `{summary['command']}`", "",
             "Baselines at the highest quality whose total size (raw elementary stream) is not larger than our "
             ".ddc file (CRF bisection); `quality-matched` rows: the BD anchor at the largest CRF whose PSNR-Y is "
             ">= ours. MS-SSIM on the Y plane (n/a where a side is <= 160 px); VMAF: libvmaf built-in model, "
             "native resolution; PSNR-YUV = (6 Y + U + V) / 8 per frame, means over frames.", ""]
    for c in summary["clips"]:
        lines += [f"## {c['name']} ({c['width']}x{c['height']}, {c['frames']} frames, {c['fps']:.3f} fps)", "",
                  f"Reference: {c['reference']}. RGB round-trip ceiling (planes -> RGB -> planes): PSNR-Y "
                  f"{_num(c['rgb_ceiling']['psnr_y'], '.2f')} dB, PSNR-YUV "
                  f"{_num(c['rgb_ceiling']['psnr_yuv'], '.2f')} dB.",
                  ""]
        lines += _md_table([r for r in rows if r["clip"] == c["name"]])
        lines += ["", "BD-rate of ours against each configuration (negative = fewer bits than it at equal quality; "
                      "[quality range of the overlap]):", "",
                  "| anchor | points (ours / anchor) | PSNR-Y | PSNR-YUV | VMAF |", "|---|---|---|---|---|"]
        for e in c["bd_rate"]:
            lines.append(f"| {e['anchor']} | {e['our_points']} / {e['anchor_points']} | {_bd_text(e['psnr_y'])} | "
                         f"{_bd_text(e['psnr_yuv'])} | {_bd_text(e['vmaf'])} |")
        lines.append("")
    lines += ["## Baseline settings", ""]
    for name, d in summary["baseline_settings"].items():
        lines.append(f"- **{name}** ({d['role']}): `{d['ffmpeg_args']}`, {d['stream']}; GOP: {d['gop']}; "
                     f"{d['quality_grid']}")
    return "\n".join(lines) + "\n"


def report_html(summary: dict[str, Any], rows: list[dict[str, Any]],
                strips: dict[str, list[tuple[str, str, str]]]) -> str:
    import html

    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>diffcodec video benchmark: {esc(summary['method'])}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>diffcodec video benchmark: {esc(summary['method'])} ({esc(_structure(summary))})</h1>",
             f"<p class=meta>Date (UTC) {esc(summary['date_utc'])}; {summary['threads']} thread(s); wall time "
             f"{summary.get('wall_s', 0):.0f} s. Command: <code>{esc(str(summary['command']))}</code></p>"]
    for c in summary["clips"]:
        name = c["name"]
        parts.append(f"<h2>{esc(name)} <span class=meta>({c['width']}x{c['height']}, {c['frames']} frames; "
                     f"reference: {esc(c['reference'])}; RGB ceiling PSNR-Y {_num(c['rgb_ceiling']['psnr_y'], '.2f')}"
                     f" dB)</span></h2>")
        parts.append("<table><tr><th>codec</th><th>setting</th><th>matched to</th><th>kbps</th><th>PSNR-Y</th>"
                     "<th>PSNR-YUV</th><th>MS-SSIM (Y)</th><th>VMAF</th><th>enc fps</th><th>dec fps</th></tr>")
        for r in rows:
            if r["clip"] != name or r.get("error"):
                continue
            parts.append(f"<tr><td class=l>{esc(r['codec'])}</td><td class=l>{esc(r['setting'])}</td>"
                         f"<td class=l>{esc(r.get('matched_to') or '')}</td><td>{_num(r['kbps'], '.1f')}</td>"
                         f"<td>{_num(r.get('psnr_y'), '.2f')}</td><td>{_num(r.get('psnr_yuv'), '.2f')}</td>"
                         f"<td>{_num(r.get('ms_ssim_y'), '.4f')}</td><td>{_num(r.get('vmaf'), '.2f')}</td>"
                         f"<td>{_num(r.get('encode_fps'), '.1f')}</td><td>{_num(r.get('decode_fps'), '.1f')}</td></tr>")
        parts.append("</table>")
        bd = [e for e in c["bd_rate"] if e["anchor"] == BD_ANCHOR]
        if bd:
            parts.append(f"<p>BD-rate vs {BD_ANCHOR} (PSNR-Y): <b>{esc(_bd_text(bd[0]['psnr_y']))}</b>; VMAF: "
                         f"{esc(_bd_text(bd[0]['vmaf']))}</p>")
        parts.append(f'<div class="plots"><img src="rd_{esc(name)}_psnr_y.png" alt="PSNR-Y vs kbps">'
                     f'<img src="rd_{esc(name)}_vmaf.png" alt="VMAF vs kbps"></div>')
        parts.append(f'<p><img src="perframe_{esc(name)}.png" alt="per-frame PSNR-Y"></p>')
        if strips.get(name):
            parts.append('<div class="row">')
            for src, cap, alt in strips[name]:
                parts.append(f'<figure><img src="{esc(src)}" alt="{esc(alt)}"><figcaption>{cap}</figcaption></figure>')
            parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _frame_strip(run: ClipRun, outdir: Path, our_label: str) -> list[tuple[str, str, str]]:
    """PNGs of one frame (the middle one) of the source, ours at ``our_label`` and every size-matched baseline."""
    from diffcodec import video, yuv
    from diffcodec.bench import _png_bytes

    k = run.frames // 2
    (outdir / "frames").mkdir(parents=True, exist_ok=True)
    items = [("source", run.work / "ref.y4m", None)]
    items.append((f"{OURS} {our_label}", run.decoded.get((OURS, our_label)), (OURS, our_label)))
    for name in run.config.baselines:
        items.append((f"{name} @{our_label}", run.decoded.get((name, our_label)), (name, our_label)))
    out = []
    for cap, path, key in items:
        if path is None or not path.exists():
            continue
        with video.open_video(str(path)) as r:
            r.seek(k)
            frame = r.read()
        if frame is None:
            continue
        fname = f"frames/{run.name}_{re.sub(r'[^A-Za-z0-9._-]+', '_', cap)}_f{k}.png"
        atomic.write_bytes(outdir / fname, _png_bytes(yuv.planes_to_rgb(frame.planes, run.info)))
        row = next((r for r in run.rows if key and r["codec"] == key[0] and
                    (r["setting"] == key[1] if key[0] == OURS else r.get("matched_to") == key[1])), None)
        caption = cap if row is None else (f"{cap}<br>{row['kbps']:.1f} kbps, PSNR-Y {_num(row.get('psnr_y'), '.2f')}"
                                           f", VMAF {_num(row.get('vmaf'), '.1f')}")
        out.append((fname, caption, cap))
    return out


def machine_info() -> dict[str, Any]:
    from diffcodec.bench import machine_info as _mi

    info = _mi()
    try:
        info["ffmpeg"] = subprocess.run([_ffmpeg(), "-version"], stdout=subprocess.PIPE,
                                        text=True).stdout.split("\n")[0]
    except (OSError, DiffcodecError):  # pragma: no cover
        info["ffmpeg"] = None
    return info


def write_outputs(config: VideoBenchConfig, runs: list[ClipRun], points: list[RatePoint], t_start: float,
                  strips: dict[str, list]) -> dict[str, Any]:
    out = Path(config.outdir)
    rows = [r for run in runs for r in run.rows]
    frame_rows = [r for run in runs for r in run.frame_rows]
    atomic.write_text(out / "results.csv", csv_text(rows, RESULT_COLUMNS))
    atomic.write_text(out / "frames.csv", csv_text(frame_rows, FRAME_COLUMNS))
    command = config.command
    labels = [p.label for p in points]
    rp = _report_point(config, points)
    clips = []
    for run in runs:
        i = run.info
        clips.append({"name": run.name, "path": run.path, "width": i.width, "height": i.height, "frames": run.frames,
                      "fps": i.fps_float, "reference": run.source_kind, "rgb_ceiling": run.ceiling,
                      "bd_rate": bd_rates(rows, run.name)})
        curves = _group_summary(rows, run.name)
        atomic.write_bytes(out / f"rd_{run.name}_psnr_y.png", rd_plot_png(
            curves, "psnr_y", "PSNR-Y [dB]", f"{run.name}: PSNR-Y", x_key="mean_kbps", xlabel="rate [kbit/s]",
            note="baselines at matched size; x264-medium also at matched PSNR-Y"))
        atomic.write_bytes(out / f"rd_{run.name}_vmaf.png", rd_plot_png(
            curves, "vmaf", "VMAF", f"{run.name}: VMAF", x_key="mean_kbps", xlabel="rate [kbit/s]",
            note="libvmaf built-in model, native resolution"))
        atomic.write_bytes(out / f"perframe_{run.name}.png", perframe_png(frame_rows, run.name, labels[rp], labels[rp]))
    summary: dict[str, Any] = {
        "method": config.method, "rate_points": labels, "encode_params": dict(config.encode_params),
        "baselines": list(config.baselines),
        "baseline_settings": {n: BASELINES[n].describe(config.threads, config.resolved_gop)
                              for n in config.baselines},
        "gop": config.resolved_gop,
        "threads": config.threads, "device": config.device, "max_frames": config.max_frames,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(command) if isinstance(command, (list, tuple)) else command,
        "machine": machine_info(), "report_point": labels[rp], "clips": clips,
        "notes": {
            "matching": "each baseline at the highest quality (lowest CRF on its grid, bisection, real encodes) "
                        "whose raw-stream size is <= our .ddc file (whole file, container included)",
            "bd_rate": "Bjontegaard delta rate, ln(kbps) as PCHIP of quality, over the overlapping quality range; "
                       f"{BD_ANCHOR} curve = its size-matched + quality-matched points",
            "ms_ssim": "5-scale MS-SSIM on the Y plane per frame, mean; n/a when a side is <= 160 px",
            "vmaf": "ffmpeg libvmaf, built-in model (vmaf_v0.6.1), native resolution, mean of per-frame scores",
            "psnr": "per frame, 8-bit planes, peak 255; PSNR-YUV = (6Y+U+V)/8; means over frames",
            "speed": "ours: frames / wall time of encode_clip (all passes) and of decode_frames; baselines: ffmpeg "
                     "-benchmark rtime of one encode at the chosen CRF / one decode to Y4M; all one thread",
            "reference": "Y4M sources: their planes; other sources: their frames as decoded by ffmpeg",
        },
    }
    summary["wall_s"] = time.perf_counter() - t_start
    atomic.write_text(out / "summary.md", format_markdown(summary, rows))
    atomic.write_text(out / "report.html", report_html(summary, rows, strips))
    summary["rows"] = rows
    atomic.write_text(out / "summary.json", json.dumps(json_clean(summary), indent=2) + "\n")
    return json_clean(summary)


def _report_point(config: VideoBenchConfig, points: list[RatePoint]) -> int:
    if config.report_point is not None:
        return max(0, min(config.report_point, len(points) - 1))
    return (len(points) - 1) // 2


def run_video_bench(config: VideoBenchConfig) -> dict[str, Any]:
    """Run the benchmark of ``config`` and write its outputs into ``config.outdir``; returns the summary."""
    from diffcodec.methods import get_codec

    t_start = time.perf_counter()
    config.check()
    codec = get_codec(config.method)
    codec.check_encode_options({**config.encode_params, **({"device": config.device} if codec.takes_device()
                                                             else {})})
    points = rate_points(config, codec)
    try:
        import torch

        torch.set_num_threads(config.threads)
    except ImportError:  # pragma: no cover
        pass
    out = Path(config.outdir)
    from diffcodec.bench import prepare_outdir

    prepare_outdir(out, config.force, OUTPUT_PATTERNS, ["frames"])
    out.mkdir(parents=True, exist_ok=True)
    runs: list[ClipRun] = []
    strips: dict[str, list] = {}
    rp = _report_point(config, points)
    bar = progress.bar(total=len(config.clips) * len(points), show=False if config.quiet else None,
                       desc="bench --video", unit="point")
    try:
        for clip in config.clips:
            work = Path(tempfile.mkdtemp(prefix=f".work-{clip_name(clip)}-", dir=out))
            try:
                run = run_clip(config, clip, codec, points, work, bar)
                strips[run.name] = _frame_strip(run, out, points[rp].label)
                runs.append(run)
            finally:
                if not config.keep_work:
                    shutil.rmtree(work, ignore_errors=True)
    finally:
        bar.close()
    return write_outputs(config, runs, points, t_start, strips)


def parse_kbps(text: str | None) -> list[float]:
    """``"100,200,400"`` -> [100.0, 200.0, 400.0]."""
    if not text:
        return []
    try:
        return [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise UsageError(f"--kbps takes numbers separated by commas, got {text!r}") from None
