"""Training: every `diffcodec train ...` command's code, apart from inference.

* :mod:`.loop` the one training loop (resume, LR warm-up + cosine, EMA, periodic validation, JSONL log, atomic
  checkpoints, wall-clock limit, thread count, progress bar); each model plugs in a :class:`.loop.Trainer`
  with its step function;
* :mod:`.denoiser` pixel `pixel-ddpm`, conditional `opq-refiner` and latent `latent-ddpm` denoisers, with
  :mod:`.degrade` (the refiner's OPQ-degraded conditions) and :mod:`.latent` (cached latents as training data);
* :mod:`.autoencoder` the `latent-ae` first stage; :mod:`.diffae` the diffusion-autoencoder codec;
* :mod:`.opq` the OPQ codebooks (faiss, no loop); :mod:`.data` random training crops and fixed validation crops.

The rule: inference never imports this package. Everything `diffcodec encode` / `decode` needs (loading and
export of models, samplers, data conversion) lives outside it; training imports inference, never the reverse.
"""
