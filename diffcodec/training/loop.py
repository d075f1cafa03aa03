"""The one training loop of every network diffcodec ships (denoisers, autoencoder, diffae).

A model plugs in as a :class:`Trainer` subclass: it builds its network and data, and defines ``step()``, the
forward pass of one batch returning the loss. :func:`train` does the rest, the same for every model::

    summary = train(cfg, MyTrainer)       # MyTrainer(cfg, device) is built inside, after the run folder checks

* ``out_dir/checkpoint.pt``: model, EMA, optimizer, step, accumulated wall time, every RNG state (torch,
  the trainer's torch generator and numpy generator, CUDA) and the trainer's :meth:`Trainer.checkpoint_fields`,
  written atomically (:func:`diffcodec.atomic.save_torch`) every ``checkpoint_every`` steps and/or
  ``checkpoint_minutes``, at the end and on Ctrl-C. ``cfg.resume`` continues from it exactly (the fields must
  match: resuming with another model or schedule would silently train something else);
* ``out_dir/train_log.jsonl``: one record per ``log_every`` steps and at the last step,
  ``{"step", **Trainer.log_fields(), "lr", "elapsed_s", "s_per_step", "img_per_s"}``, and one
  ``{"step", "val": ...}`` per validation; on resume, records after the checkpoint's step are dropped (they are
  redone);
* optimizer: AdamW; learning rate: linear warm-up over ``warmup_steps``, then constant or cosine to 0 at
  ``steps`` (:func:`lr_at`); gradient-norm clipping ``grad_clip``; EMA of the weights after every step;
* validation of the EMA model every ``val_every`` steps (and of the final weights, unless the trainer says
  otherwise); stop at ``steps`` or after ``max_minutes``, whichever comes first; ``num_threads`` torch CPU
  threads for the call; progress bar through :func:`diffcodec.progress.bar`;
* with ``cfg.export_name``, :meth:`Trainer.export` writes the shipped artifact.

``cfg`` is the trainer's config, a :class:`LoopConfig` subclass; the loop reads ``out_dir, resume, device, seed,
num_threads, steps, max_minutes, batch, lr, weight_decay, warmup_steps, lr_decay, grad_clip, ema_decay,
ema_warmup, log_every, val_every, checkpoint_every, checkpoint_minutes, progress, export_name`` and calls
``cfg.to_dict()`` (stored in every checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from diffcodec import atomic, progress
from diffcodec.diffusion.ema import EMA
from diffcodec.errors import ModelError, UsageError

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.jsonl"


# ---------------------------------------------------------------------------------------------- helpers
def resolve_device(name: str) -> torch.device:
    """``auto | cpu | cuda | cuda:N`` as a torch device (the decision is :func:`diffcodec.device.resolve_device`'s)."""
    from diffcodec.device import resolve_device as resolve

    base, _, index = str(name).partition(":")
    kind = resolve(base)
    return torch.device(f"cuda:{index}" if index and base == "cuda" else kind)


def device_description(dev: torch.device) -> str:
    """What manifests record as the training device."""
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def lr_at(cfg: Any, step: int) -> float:
    """Learning rate of optimizer step ``step`` (from 0): linear warm-up from 0 over ``cfg.warmup_steps``, then
    ``cfg.lr`` (``lr_decay`` "constant") or a cosine to 0 at ``cfg.steps`` ("cosine")."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.lr_decay == "cosine" and cfg.steps:
        done = min(1.0, max(0.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)))
        return cfg.lr * warm * 0.5 * (1.0 + math.cos(math.pi * done))
    return cfg.lr * warm


def with_threads(num_threads: Optional[int], fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` with ``num_threads`` torch CPU threads (None: as is), restoring the count afterwards."""
    threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(int(num_threads))
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def config_dict(cfg: Any, special: Optional[dict[str, Callable[[Any], Any]]] = None) -> dict[str, Any]:
    """A training config dataclass as JSON-able values (paths as strings; ``special[name](value)`` where given)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if special and f.name in special:
            v = special[f.name](v)
        elif isinstance(v, Path):
            v = str(v)
        elif isinstance(v, (list, tuple)):
            v = [str(x) if isinstance(x, Path) else x for x in v]
        out[f.name] = v
    return out


@dataclasses.dataclass(kw_only=True)
class LoopConfig:
    """The part of a training config that is the same for every trainer: what :func:`train` reads and what
    each trainer takes alike (training data, validation set, provenance for the manifest). A trainer's config
    subclasses it with ``@dataclass(kw_only=True)``, adds its model's options and ``batch`` and ``steps`` (each
    trainer has its own defaults), and redeclares the fields whose default differs for it."""

    data: list[Path]                               # training image folders
    out_dir: Path                                  # checkpoint + log folder
    lr: float = 2e-4                               # AdamW peak learning rate
    weight_decay: float = 0.0
    warmup_steps: int = 200                        # linear warm-up from 0
    lr_decay: str = "cosine"                       # after warm-up: "constant" | "cosine" (to 0 at `steps`)
    grad_clip: Optional[float] = 1.0
    max_minutes: Optional[float] = None            # wall-clock limit of this call; stop at whichever comes first
    ema_decay: float = 0.999
    ema_warmup: bool = True
    device: str = "auto"                           # auto | cpu | cuda[:n]
    seed: int = 0
    checkpoint_every: Optional[int] = None         # steps
    checkpoint_minutes: Optional[float] = 5.0      # and/or minutes
    resume: bool = False
    val_folder: Optional[Path] = None              # validation images (fixed crops of them)
    val_crops: int = 16                            # how many crops
    val_every: Optional[int] = 500
    log_every: int = 10
    export_name: Optional[str] = None              # artifact name, e.g. "models/diffae" (None: no export)
    command: str = ""                              # the command line that ran this (recorded in the manifest)
    license_note: str = ""                         # licence/terms of the training data (recorded in the manifest)
    progress: Optional[bool] = None                # progress bar; None: only when stderr is a TTY
    num_threads: Optional[int] = None              # torch CPU threads for this run (None: leave as is)

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self)


def _command_entry(entry: Any) -> dict[str, Any]:
    """A checkpoint's command record; early 2026-12 checkpoints stored "CMD  # resumed at step N" strings."""
    if isinstance(entry, dict):
        return entry
    command, _, step = str(entry).partition("  # resumed at step ")
    return {"command": command, "from_step": int(step) if step.isdigit() else 0}


def command_fields(cfg: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``command`` (the first that made the file) and, for a resumed run, ``resumed_with``: each
    later command and the step it resumed from (commands not recorded, e.g. from the Python API, are left out)."""
    known = [c for c in summary.get("commands") or [{"command": cfg.command, "from_step": 0}] if c["command"]]
    if not known:
        return {"command": cfg.command}
    return {"command": known[0]["command"], **({"resumed_with": known[1:]} if len(known) > 1 else {})}


def run_manifest(cfg: Any, steps: int, wall: float, device: str) -> dict[str, Any]:
    """What every trainer's manifest records about the run: steps, batch, crop, lr, ema_decay, seed, wall time
    (s) and device."""
    return {"steps": steps, "batch": cfg.batch, "crop": cfg.crop, "lr": cfg.lr, "ema_decay": cfg.ema_decay,
            "seed": cfg.seed, "wall_time_s": round(wall, 1), "device": device}


def check_config(cfg: Any) -> None:
    """The loop's own requirements on a training config (each trainer checks its model's options)."""
    if cfg.steps is None and cfg.max_minutes is None:
        raise UsageError("give steps or max_minutes (or both)")
    if cfg.lr_decay not in ("constant", "cosine"):
        raise UsageError(f"unknown lr_decay {cfg.lr_decay!r}")
    if cfg.batch < 1 or cfg.log_every < 1:
        raise UsageError("batch >= 1 and log_every >= 1 are required")


def run_paths(out_dir: Path | str, resume: bool) -> tuple[Path, Path]:
    """(checkpoint, log) paths of a training run folder (created); refuses to overwrite a run not resumed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out_dir / CHECKPOINT_NAME, out_dir / LOG_NAME
    if ckpt_path.exists() and not resume:
        raise UsageError(f"{ckpt_path} exists: resume it (--resume) or choose another output folder")
    return ckpt_path, log_path


def load_checkpoint(ckpt_path: Path, fmt: str, expected: dict[str, Any]) -> dict[str, Any]:
    """Read a training checkpoint of format ``fmt`` and check that each ``expected`` key matches (resuming a
    run with another model or schedule would silently train something else)."""
    try:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"cannot read checkpoint {ckpt_path}: {e}") from None
    if ck.get("format") != fmt:
        raise ModelError(f"{ckpt_path} is not a {fmt} checkpoint")
    for key, mine in expected.items():
        if ck.get(key) != mine:
            raise UsageError(f"cannot resume {ckpt_path}: its {key} {ck.get(key)!r} differs from {mine!r}")
    return ck


def truncate_log(log_path: Path, step: int) -> None:
    """Drop log records written after the checkpoint we resume from (they will be redone)."""
    if not log_path.exists():
        return
    keep = []
    for line in log_path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except ValueError:
            continue
    atomic.write_text(log_path, "".join(k + "\n" for k in keep))


# ---------------------------------------------------------------------------------------------- trainer
class Trainer:
    """One model's part of the loop. A subclass seeds torch, builds its network, calls
    ``super().__init__(cfg, device, model)`` (which makes the EMA, the AdamW optimizer and the seeded
    ``np_rng`` / ``generator``), builds its data and sets ``val_images`` to enable validation. It defines:

    * :meth:`step`: one training batch: draw it (from ``np_rng`` / ``generator``), run the forward pass,
      accumulate the figures it logs and return the scalar loss; the loop does zero_grad, backward, clipping,
      the optimizer step and the EMA update;
    * :meth:`log_fields`: the means of those figures since the last call (``"loss"`` first), then reset (by
      default the python floats that ``step`` adds up in the dict ``acc``, counting steps in ``acc_n``);
    * :meth:`validate`: figures of ``self.ema.model`` on the fixed validation set;
    * :meth:`checkpoint_fields`: what identifies the run (model config, schedule, ...), stored in every
      checkpoint and compared on resume;
    * :meth:`export`: write the shipped artifact (with ``cfg.export_name``), returning summary updates.
    """

    desc = "train"                     # progress bar label
    checkpoint_format = ""             # the checkpoint's "format" string
    final_validation = True            # validate the final weights when the last validation is older
    val_images: Optional[torch.Tensor] = None
    acc: dict[str, float]              # the default log_fields: figures summed since the last log ...
    acc_n: int                         # ... over this many steps

    def __init__(self, cfg: Any, device: torch.device, model: torch.nn.Module):
        self.cfg, self.device, self.model = cfg, device, model
        self.ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.np_rng = np.random.default_rng(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed)

    def step(self) -> torch.Tensor:
        raise NotImplementedError

    def log_fields(self) -> dict[str, Any]:
        rec = {k: v / self.acc_n for k, v in self.acc.items()}
        self.acc, self.acc_n = dict.fromkeys(self.acc, 0.0), 0
        return rec

    def validate(self) -> dict[str, Any]:
        raise NotImplementedError

    def checkpoint_fields(self) -> dict[str, Any]:
        return {}

    def export(self, summary: dict[str, Any], wall: float) -> dict[str, Any]:
        raise NotImplementedError

    def log_validation(self, last_val: dict[str, Any]) -> Any:
        """What a validation's log record holds under "val" (``last_val`` is ``{"step", **validate()}``)."""
        return last_val

    def postfix(self, record: dict[str, Any]) -> dict[str, str]:
        """Progress bar figures from a log record."""
        return {"loss": f"{record['loss']:.4f}"}

    # ------------------------------------------------------------------ RNG states (checkpointed)
    def rng_state(self) -> dict[str, Any]:
        return {
            "torch": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "numpy": json.dumps(self.np_rng.bit_generator.state),
            "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }

    def set_rng_state(self, rng: dict[str, Any]) -> None:
        torch.set_rng_state(rng["torch"])
        if rng.get("generator") is not None:
            self.generator.set_state(rng["generator"])
        self.np_rng.bit_generator.state = json.loads(rng["numpy"])
        if self.device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], self.device)


# ---------------------------------------------------------------------------------------------- the loop
def train(cfg: Any, make_trainer: Callable[[Any, torch.device], Trainer]) -> dict[str, Any]:
    """Train (or resume) ``make_trainer(cfg, device)``; returns a summary (steps, wall time, first and final
    logged loss, validation, checkpoint and log paths, device, parameter count, export path or None)."""
    check_config(cfg)
    return with_threads(cfg.num_threads, lambda: _run(cfg, make_trainer))


def _run(cfg: Any, make_trainer: Callable[[Any, torch.device], Trainer]) -> dict[str, Any]:
    ckpt_path, log_path = run_paths(cfg.out_dir, cfg.resume)
    device = resolve_device(cfg.device)
    tr = make_trainer(cfg, device)
    model, ema, opt = tr.model, tr.ema, tr.optimizer

    step, prior_wall, last_val = 0, 0.0, None
    commands: list[dict[str, Any]] = [{"command": cfg.command, "from_step": 0}]
    if cfg.resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, tr.checkpoint_format, tr.checkpoint_fields())
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        ema.to(device)
        opt.load_state_dict(ck["optimizer"])
        step, prior_wall, last_val = int(ck["step"]), float(ck["wall_time_s"]), ck.get("last_val")
        # every command that made this checkpoint, oldest first (the manifest lists them to re-create the file)
        commands = [*map(_command_entry, ck.get("commands", [])), {"command": cfg.command, "from_step": step}]
        tr.set_rng_state(ck["rng"])
        truncate_log(log_path, step)
    else:
        atomic.write_text(log_path, "")

    t_start = time.time()

    def save_checkpoint() -> None:
        atomic.save_torch({
            "format": tr.checkpoint_format, "step": step, "wall_time_s": prior_wall + time.time() - t_start,
            "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
            "rng": tr.rng_state(), **tr.checkpoint_fields(), "train_config": json.dumps(cfg.to_dict()),
            "last_val": last_val, "commands": commands,
        }, ckpt_path)

    def validate() -> dict[str, Any]:
        val = {"step": step, **tr.validate()}
        log_f.write(json.dumps({"step": step, "val": tr.log_validation(val)}) + "\n")
        log_f.flush()
        return val

    bar = progress.bar(show=cfg.progress, total=cfg.steps, initial=step, desc=tr.desc)
    last_ckpt = last_log = t_start
    acc_n, first_loss, last_loss, start_step = 0, None, None, step
    log_f = open(log_path, "a")
    model.train()
    try:
        while not (cfg.steps is not None and step >= cfg.steps) and not (
                cfg.max_minutes is not None and time.time() - t_start >= cfg.max_minutes * 60):
            lr = lr_at(cfg, step)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = tr.step()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            ema.update(model)
            step += 1
            acc_n += 1
            bar.update(1)
            if step % cfg.log_every == 0 or (cfg.steps is not None and step >= cfg.steps):
                now = time.time()
                rec = {"step": step, **tr.log_fields(), "lr": lr,
                       "elapsed_s": round(prior_wall + now - t_start, 3),
                       "s_per_step": round((now - last_log) / acc_n, 3),
                       "img_per_s": round(acc_n * cfg.batch / max(now - last_log, 1e-9), 2)}
                log_f.write(json.dumps(rec) + "\n")
                log_f.flush()
                last_loss = rec["loss"]
                first_loss = last_loss if first_loss is None else first_loss
                bar.set_postfix(**tr.postfix(rec), refresh=False)
                acc_n, last_log = 0, now
            if tr.val_images is not None and cfg.val_every and step % cfg.val_every == 0:
                last_val = validate()
            now = time.time()
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or (
                    cfg.checkpoint_minutes and now - last_ckpt >= cfg.checkpoint_minutes * 60):
                save_checkpoint()
                last_ckpt = now
    except KeyboardInterrupt:
        save_checkpoint()
        log_f.close()
        raise
    finally:
        bar.close()
    if tr.final_validation and tr.val_images is not None and (last_val is None or last_val["step"] != step):
        last_val = validate()
    log_f.close()
    save_checkpoint()
    wall = prior_wall + time.time() - t_start
    summary: dict[str, Any] = {
        "steps": step,
        "steps_this_run": step - start_step,
        "wall_time_s": round(wall, 2),
        "wall_time_this_run_s": round(time.time() - t_start, 2),
        "first_loss": first_loss,
        "final_loss": last_loss,
        "validation": last_val,
        "checkpoint": str(ckpt_path),
        "log": str(log_path),
        "device": device_description(device),
        "params": sum(p.numel() for p in model.parameters()),
        "commands": commands,
        "export": None,
    }
    if cfg.export_name:
        summary.update(tr.export(summary, wall))
    return summary
