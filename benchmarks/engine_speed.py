"""Diffusion engine speed on this machine: training throughput (images/s, batch 16 of 64x64 crops) and
sampling time per step (one UNet forward) for a 768x512 image in fp32 and under bf16 autocast (what ddcm's
``--precision bf16`` runs), with peak memory, for the default UNet.

    python benchmarks/engine_speed.py [--threads 2] [--device auto] [--train-steps 10]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from diffcodec.diffusion import NoiseSchedule, UNet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--forward-runs", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if args.device == "auto" else args.device))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = UNet().to(dev).to(memory_format=torch.channels_last)
    sched = NoiseSchedule("cosine")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0 = torch.randn(16, 3, 64, 64, device=dev)
    res = {"device": str(dev), "threads": torch.get_num_threads(), "params": model.num_parameters()}
    times = []
    for _ in range(args.train_steps + 2):
        sync()
        t0 = time.perf_counter()
        t = torch.randint(0, sched.T, (16,), device=dev)
        noise = torch.randn_like(x0)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out = model(sched.q_sample(x0, t, noise), sched.model_time(t).to(dev))
        loss = (out.float() - noise).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    step = sorted(times[2:])[len(times[2:]) // 2]
    res.update({"train_step_s_median": round(step, 3), "train_images_per_s": round(16 / step, 1)})
    model.eval()
    x = torch.randn(1, 3, 512, 768, device=dev).contiguous(memory_format=torch.channels_last)
    for name, bf16 in (("sample_step_768x512_s_median", False), ("sample_step_768x512_bf16_s_median", True)):
        times = []
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            for _ in range(args.forward_runs + 1):
                sync()
                t0 = time.perf_counter()
                model(x, torch.full((1,), 0.5, device=dev))
                sync()
                times.append(time.perf_counter() - t0)
        res[name] = round(sorted(times[1:])[len(times[1:]) // 2], 3)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if dev.type == "cuda":
        res["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
