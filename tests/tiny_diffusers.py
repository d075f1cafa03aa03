"""Tiny randomly initialised diffusers models, saved as their pipelines save them (for tests: nothing is downloaded).

* :func:`save_pixel_ddpm`: a `DDPMPipeline` folder (UNet2DModel + DDPMScheduler), as a CelebA-HQ pixel DDPM is laid out;
* :func:`save_latent_sd`: a `StableDiffusionPipeline` folder (AutoencoderKL + UNet2DConditionModel + CLIP text
  encoder and tokenizer + the PNDMScheduler config Stable Diffusion 2.1 base ships), at a few kilobytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# Stable Diffusion 2.1 base's scheduler config (its scheduler/scheduler_config.json, apart from the version)
SD21_BASE_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
                       "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False,
                       "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None}


def save_pixel_ddpm(folder: Path, seed: int = 0, **scheduler) -> Path:
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=4)
    sched = DDPMScheduler(**{"beta_schedule": "linear", "clip_sample": True, "variance_type": "fixed_small",
                             **scheduler})
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(folder)
    return folder


def _tiny_clip(folder: Path):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{f"{c}</w>": 2 + i for i, c in enumerate("abcdefgh")}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=8)
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=12, intermediate_size=16, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=8, bos_token_id=0, eos_token_id=1,
                            pad_token_id=1)
    return tokenizer, CLIPTextModel(config)


def save_latent_sd(folder: Path, seed: int = 0, **scheduler) -> Path:
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8),   # f = 4
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        layers_per_block=1, norm_num_groups=4, sample_size=32)
    # attention on the downsampled level only: full-resolution self-attention would be slow on larger test images
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                                cross_attention_dim=12, norm_num_groups=4, attention_head_dim=2)
    src = Path(folder).parent / f".{Path(folder).name}-tokenizer"
    tokenizer, text_encoder = _tiny_clip(src)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=PNDMScheduler.from_config({**SD21_BASE_SCHEDULER, **scheduler}),
                                   safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    shutil.rmtree(src)
    return folder
