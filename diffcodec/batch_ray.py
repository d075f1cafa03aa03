"""The Ray engine of `diffcodec batch` (``--engine ray``): Ray Data streams the jobs through ``map_batches`` with
:class:`RayCoder`, a class whose actors each build one :class:`diffcodec.batch.Worker` (model files read once per
actor), one file per call; the records stream back to the driver, which writes the manifest as they arrive.

Without ``--address`` an embedded local Ray is started for the batch (and stopped after it); with one
(``auto``, ``HOST:6379``, ``ray://HOST:10001``) the batch runs on that cluster, whose nodes need this diffcodec
installed and the input and output paths mounted at the same place (shared storage). Imported only for
``--engine ray``: Ray is the optional extra ``diffcodec[ray]``."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from diffcodec.batch import BatchConfig, Emit, Job, Worker, set_threads
from diffcodec.errors import UsageError

INSTALL_HINT = 'pip install "diffcodec[ray]"'
MAX_BLOCKS = 100_000        # a block's records reach the driver when the block is done: small blocks, prompt manifest


def import_ray():
    """``ray`` with Ray Data, or a one-line usage error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise UsageError(f"--engine ray needs Ray with Ray Data, which is not installed ({e.name or e}): "
                         f"{INSTALL_HINT}") from None
    return ray


class RayCoder:
    """The ``map_batches`` class: one :class:`Worker` per actor, built when the actor starts."""

    def __init__(self, config_json: str, threads: int):
        set_threads(threads)
        self.worker = Worker(BatchConfig.from_json(config_json))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        records = [json.dumps(self.worker.code(Job(**json.loads(str(j))))) for j in batch["job"]]
        return {"record": np.array(records, dtype=object)}


def _wants_gpu(config: BatchConfig) -> bool:
    if config.device == "cpu":
        return False
    if config.decode:
        return True         # the files say which codec; any of them may run a network
    from diffcodec import api

    return api.get_codec(config.method).takes_device()


def run(jobs: Sequence[Job], config: BatchConfig, emit: Emit, *, workers: int | None = None,
        threads: int | None = None, address: str | None = None,
        gpus_per_worker: float | None = None) -> dict[str, Any]:
    """Code ``jobs`` on Ray, calling ``emit(record)`` on the driver as each file finishes; returns what ran where
    (for the summary). ``workers``: actors (default: as many as the cluster's CPUs, or GPUs, allow); ``threads``:
    CPUs (torch threads) per actor, default 1; ``gpus_per_worker``: default 1 where the cluster has GPUs and the
    method runs networks, else 0."""
    ray = import_ray()
    threads = threads or 1
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                  "log_to_driver": False}
        if address is None:         # embedded: a local Ray of this batch's size
            kwargs["num_cpus"] = (workers or max(1, (os.cpu_count() or 1) // threads)) * threads
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            # Ray turns token authentication on for the clusters it starts, but a driver given an address sends
            # its token only when told to
            hint = ("; a cluster with token authentication (Ray's default) also needs RAY_AUTH_MODE=token and its "
                    "token (RAY_AUTH_TOKEN, or ~/.ray/auth_token)") if address and "RAY_AUTH_MODE" not in os.environ \
                else ""
            raise UsageError(f"cannot start or reach Ray{f' at {address}' if address else ''}: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}{hint}") from None
        started = True
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False        # ours counts files (diffcodec.progress)
        ctx.execution_options.preserve_order = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)   # "progress bars disabled"
        resources = ray.cluster_resources()
        gpus = gpus_per_worker
        if gpus is None:
            gpus = 1.0 if resources.get("GPU", 0) >= 1 and _wants_gpu(config) else 0.0
        if workers is None:
            by_cpu = int(resources.get("CPU", 1) // threads)
            workers = max(1, min(by_cpu, int(resources.get("GPU", 0) // gpus)) if gpus else by_cpu)
        workers = max(1, min(workers, len(jobs)))
        items = [{"job": json.dumps(asdict(j))} for j in jobs]
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), MAX_BLOCKS)))
        ds = ds.map_batches(RayCoder, fn_constructor_args=(config.to_json(), threads), batch_size=1,
                            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads,
                            num_gpus=gpus or None)
        rows = iter(ds.iter_rows())
        try:
            for row in rows:
                emit(json.loads(row["record"]))
        finally:        # stop the streaming executor before Ray goes: its threads outliving ray.shutdown() exit the
            close = getattr(rows, "close", None)            # process with status 1 (an interrupted batch)
            if close is not None:
                close()
    finally:
        if started:
            ray.shutdown()
    return {"workers": workers, "threads": threads, "gpus_per_worker": gpus,
            "ray": "embedded" if address is None else address}
