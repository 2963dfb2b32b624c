"""Analysis by synthesis: latents refined, through the frozen decoder, toward the audio they encode.

An encoder is amortised inference: one pass gives every input a latent, as good as what it generalises from its
training clips. Searching each input's latent against its own decoded audio (Adam on a multi-scale log-mel distance,
starting from the encoder's posterior mean) finds latents that the same decoder renders far closer to the input,
above all for sounds unlike the training set (``python -m vaedemo.amortization`` measures the gap). It costs about
three decoder passes per step, so it is an option of :meth:`vaedemo.inference.Engine.reconstruct`, not its default.

The search's distance is not the evaluation's (one 2048-point log-mel): it averages four FFT sizes, so a figure
measured after refinement is not the distance it minimised.
"""

from __future__ import annotations

import functools

import torch

from .dsp import fitting_mel_filterbank, hann_window, stft_magnitude

SIZES = (2048, 1024, 512, 256)
N_MELS = 80
EPS = 1e-5
LR = 0.05  # the latents' spread is ~0.4-0.9 per dimension in the shipped models; 0.05 a step is a small move


@functools.lru_cache(maxsize=16)
def _filters(sample_rate: int, n_fft: int) -> torch.Tensor:
    return torch.from_numpy(fitting_mel_filterbank(sample_rate, n_fft, N_MELS))


def log_mels(audio: torch.Tensor, sample_rate: int) -> list[torch.Tensor]:
    """ln(mel + EPS) of (B, C, T) audio at each of :data:`SIZES`: (B, mels, C x frames) each."""
    b = audio.shape[0]
    out = []
    for n in SIZES:
        pad = "reflect" if audio.shape[-1] > n // 2 else "constant"  # as the evaluation's STFT (vaedemo.metrics)
        mag = stft_magnitude(audio, n, hann_window(n).to(audio.device), pad_mode=pad)
        mel = torch.log(_filters(sample_rate, n).to(mag) @ mag + EPS)  # (B x C, mels, frames)
        out.append(mel.reshape(b, -1, *mel.shape[1:]).transpose(1, 2).flatten(2))
    return out


def spectral_distance(target: list[torch.Tensor], audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Per example (B,): the mean over :data:`SIZES` of the log-mel L1 between ``target`` (:func:`log_mels` of the
    input) and ``audio`` (B, C, T)."""
    terms = [(t - e).abs().flatten(1).mean(1) for t, e in zip(target, log_mels(audio, sample_rate))]
    return torch.stack(terms).mean(0)


def prior_penalty(model, z: torch.Tensor, examples: int) -> torch.Tensor:
    """Per example (B,): -log p(z) under the model's prior (its flow where it has one), in nats per latent coordinate,
    so that one weight means the same for a 64-d vector and a trajectory of 16 x 86 numbers."""
    return -model.prior_log_prob(z).reshape(examples, -1).sum(1) / (z.numel() // examples)


def refine_latents(model, clips: torch.Tensor, z: torch.Tensor, steps: int, lr: float = LR,
                   prior_weight: float = 0.0, offset: int = 0) -> torch.Tensor:  # fmt: skip
    """``z`` (as ``model.encode(clips)`` gives it) refined by ``steps`` Adam steps on :func:`spectral_distance`
    between the decoded audio and ``clips`` (B, C, T), plus ``prior_weight`` x :func:`prior_penalty` (0: the closest
    audio wherever the latent goes; above 0: a maximum a posteriori search that keeps latents where the prior has
    mass); per example, the best latent seen by that objective (never worse than ``z``). The model's parameters get
    no gradient; call with gradients enabled (not in inference mode). ``offset``: the sample of a longer signal that
    ``clips`` start at (a chunk's, where a noise branch draws its noise)."""
    b, _, t = clips.shape
    lag = model.delay  # a causal model's output lags its input: compare it with the input as delayed
    with torch.no_grad():
        target = log_mels(clips[..., : t - lag], model.sample_rate)
    latent = z.detach().clone().requires_grad_(True)
    best, best_loss = z.detach().clone(), torch.full((b,), float("inf"), device=z.device)
    opt = torch.optim.Adam([latent], lr=lr)
    for step in range(steps + 1):
        audio = model.mode.unfold(model.decode(latent, offset=offset), b)[..., lag:t]
        loss = spectral_distance(target, audio, model.sample_rate)
        if prior_weight:
            loss = loss + prior_weight * prior_penalty(model, latent, b)
        better = loss.detach() < best_loss
        rows = better.repeat_interleave(len(latent) // b)  # a one-vector model has one row per clip of a chunk
        best[rows], best_loss[better] = latent.detach()[rows], loss.detach()[better]
        if step == steps:
            break
        # the latent's gradient alone: the model's parameters are shared (the demo serves several requests at once)
        (latent.grad,) = torch.autograd.grad(loss.sum(), [latent])
        opt.step()
    return best


def searched_latents(model, x: torch.Tensor, steps: int, lr: float = LR, prior_weight: float = 0.0,
                     offset: int = 0) -> torch.Tensor:  # fmt: skip
    """``model.encode(x)`` of (B, C, T) audio refined by :func:`refine_latents`; callable in inference mode."""
    with torch.inference_mode(False), torch.enable_grad():
        x = x.clone()  # a tensor made in inference mode cannot take part in autograd
        with torch.no_grad():
            z = model.encode(x)
        return refine_latents(model, x, z, steps, lr, prior_weight, offset)


def refined_reconstruction(model, x: torch.Tensor, steps: int, lr: float = LR, prior_weight: float = 0.0,
                           offset: int = 0) -> torch.Tensor:  # fmt: skip
    """What ``model(x, sample=False, offset=offset).audio`` gives (B, C, T), from latents refined by
    :func:`refine_latents`."""
    z = searched_latents(model, x, steps, lr, prior_weight, offset)
    with torch.no_grad():
        return model.mode.unfold(model.decode(z, offset=offset), x.shape[0])[..., : x.shape[-1]]
